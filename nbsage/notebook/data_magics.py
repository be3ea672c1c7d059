"""Magics that bring data into the notebook: `%sm_load NAME SRC` and `%%sm_sql NAME [--con URL]`.

    %sm_load train s3://bucket/prefix/            # a folder, a file, any fsspec URL
    %sm_load train data/train.csv.gz --content-type text/csv
    %%sm_sql top
    SELECT * FROM df WHERE label = 1              -- notebook DataFrames are tables (DuckDB)
    %%sm_sql rows --con postgresql://user@host/db
    SELECT ...

Each stores a pandas DataFrame in the notebook variable NAME (through `nbsage.data.load` /
`nbsage.data.sql`) and prints one line saying what it loaded. `%config DataMagics.connection = URL`
sets the connection `%%sm_sql` uses without --con. Usage mistakes and data errors are one-line
UsageErrors.
"""
from __future__ import annotations

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from traitlets import Bool, Unicode
from traitlets.config import Configurable

from nbsage.arguments import arg
from nbsage.notebook.parsing import one_line, parse, takes

NAME = "notebook variable that receives the {} as a DataFrame"


def _parse_named(magic, line: str):
    args = parse(magic, line)
    if not args.name.isidentifier():
        raise UsageError(f"{args.name!r} is not a valid variable name for the result")
    return args


@magics_class
class DataMagics(Magics, Configurable):
    """Load data and run SQL into notebook variables. Configure with `%config DataMagics.<setting> = value`."""

    connection = Unicode("", config=True,
                         help="Connection %%sm_sql uses without --con: a SQLAlchemy URL, duckdb:///file.duckdb, "
                              "or the name of a connection variable; empty means the embedded DuckDB.")
    quiet = Bool(False, config=True, help="Do not print the one-line summary after loading.")

    def __init__(self, shell):
        Configurable.__init__(self, config=shell.config)
        Magics.__init__(self, shell=shell)
        self.shell.configurables[:] = [c for c in self.shell.configurables if type(c).__name__ != "DataMagics"]
        self.shell.configurables.append(self)

    def _store(self, name: str, frame, source: str) -> None:
        self.shell.user_ns[name] = frame
        if not self.quiet:
            rows, cols = frame.shape
            print(f"{name}: {rows} rows x {cols} columns from {source}")

    def _source(self, text: str):
        """A notebook variable holding data (or a path/URL string), else the text itself."""
        ns = self.shell.user_ns
        if text.isidentifier() and text in ns:
            return ns[text]
        return text

    @line_magic
    @takes([arg("name", help=NAME.format("data")),
            arg("source", help="a file, a folder, an fsspec URL (s3://, gs://, https://, memory://), "
                               "or a notebook variable holding data"),
            arg("--content-type", metavar="CT", help="how to read the files when their names do not say "
                                                      "(text/csv, text/libsvm, application/x-parquet, "
                                                      "application/jsonlines, application/x-recordio-protobuf)")])
    @one_line(OSError, ValueError)  # a file that cannot be read, a malformed value
    def sm_load(self, line):
        """Load a file, folder or URL into a pandas DataFrame named NAME."""
        from nbsage.data import load
        args = _parse_named(self.sm_load, line)
        self._store(args.name, load(self._source(args.source), args.content_type), args.source)

    @cell_magic
    @takes([arg("name", help=NAME.format("result")),
            arg("--con", metavar="URL", help="a SQLAlchemy URL (postgresql://..., redshift+redshift_connector://..., "
                                              "awsathena+rest://..., sqlite:///file.db), duckdb:///file.duckdb, or "
                                              "the name of a connection variable; default: embedded DuckDB")])
    @one_line(OSError, ValueError)
    def sm_sql(self, line, cell):
        """Run the cell as SQL and store the result in NAME; notebook DataFrames are tables in DuckDB."""
        from nbsage.data import sql
        args = _parse_named(self.sm_sql, line)
        if not cell or not cell.strip():
            raise UsageError("%%sm_sql needs a query in the cell body")
        con = args.con or self.connection or None
        if isinstance(con, str) and con.isidentifier() and con in self.shell.user_ns:
            con = self.shell.user_ns[con]
        where = con if isinstance(con, str) else type(con).__name__ if con is not None else "DuckDB"
        if isinstance(where, str):
            from nbsage.data import _redact
            where = _redact(where)
        self._store(args.name, sql(cell, con, namespace=self.shell.user_ns), where)


def register(ipython) -> DataMagics:
    """Add %sm_load and %%sm_sql to an IPython shell (called by `%load_ext nbsage`)."""
    magics = DataMagics(ipython)
    ipython.register_magics(magics)
    return magics
