"""`%sm_transform` / `%%sm_transform`: batch transform from a notebook line or cell.

    %sm_transform xgb-job --data data/batch/ --content-type text/csv --split-type Line --assemble-with Line

    %%sm_transform churn-model --data s3://bucket/batch/
    content_type: text/csv
    split_type: Line
    input_filter: "$[1:]"
    join_source: Input
    output_filter: "$[0,-1]"

JOB_OR_MODEL may also be the name of an Estimator or Model in the notebook (its model is recorded
first). The grammar is nbsage.transform_arguments' (the CLI's `nbsage transform` takes the same); this
module parses, calls it and shows the job. Returns the TransformJob (also kept as
`_sm_transform_job`), followed live by the notebook's job monitor. `%sm_transform_jobs` lists the
transform jobs. Mistakes and failures are one-line UsageErrors; `%config TransformMagics.wait = False`
starts jobs without following them.
"""
from __future__ import annotations

from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from traitlets import Bool
from traitlets.config import Configurable

from nbsage.arguments import arg, place_arguments
from nbsage.notebook.parsing import one_line, parse, takes
from nbsage.transform_arguments import TRANSFORM, TRANSFORM_HEADER, transform_rows


class TransformJobList(list):
    """Transform jobs (table rows, newest first), shown as a table."""

    def __init__(self, rows):
        super().__init__(rows)

    def __repr__(self) -> str:
        if not self:
            return "no transform jobs"
        widths = [max(len(str(r[i])) for r in [TRANSFORM_HEADER, *self]) for i in range(len(TRANSFORM_HEADER))]
        return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in [TRANSFORM_HEADER, *self])

    def _repr_html_(self) -> str:
        from html import escape
        if not self:
            return "<i>no transform jobs</i>"
        head = "".join(f"<th style='text-align:left'>{escape(h.capitalize())}</th>" for h in TRANSFORM_HEADER)
        body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{escape(str(c))}</td>" for c in r) + "</tr>"
                       for r in self)
        return f"<table><tr>{head}</tr>{body}</table>"


def job_list(session, limit: int = 50) -> TransformJobList:
    return TransformJobList(transform_rows(session, limit))


@magics_class
class TransformMagics(Magics, Configurable):
    """`%sm_transform`, `%%sm_transform`, `%sm_transform_jobs`. Configure with `%config TransformMagics.<setting>`."""

    wait = Bool(True, config=True, help="Follow %sm_transform jobs until they end.")

    def __init__(self, shell):
        Configurable.__init__(self, config=shell.config)
        Magics.__init__(self, shell=shell)
        self.shell.configurables[:] = [c for c in self.shell.configurables if type(c).__name__ != "TransformMagics"]
        self.shell.configurables.append(self)

    @property
    def _session(self):
        from nbsage.session import Session
        return Session.default()

    @line_cell_magic
    @takes(TRANSFORM, place_arguments())
    @one_line()
    def sm_transform(self, line, cell=None):
        """Run a batch transform job with a model (or a training job's model); returns the TransformJob."""
        from nbsage.transform_arguments import transform_call
        args = parse(self.sm_transform, line)
        held = self.shell.user_ns.get(args.model) if args.model.isidentifier() else None
        if held is not None and not isinstance(held, str) and hasattr(held, "transformer"):
            args.model = held.transformer().model_name  # an Estimator or Model in the notebook: its model, recorded
        data = args.data
        if data and data.isidentifier() and isinstance(self.shell.user_ns.get(data), str):
            args.data = self.shell.user_ns[data]  # a variable holding the path or URL
        job = transform_call(args, self._session, body=cell, wait=False)
        self.shell.user_ns["_sm_transform_job"] = job
        if self.wait and not args.no_wait:
            try:
                job.wait(logs=not args.quiet)
            except KeyboardInterrupt:
                print(f"Stopped following {job.name}; it is still running (_sm_transform_job.stop() stops it).")
        return job

    @line_magic
    @takes([arg("--limit", type=int, default=50, help="show at most this many jobs (newest first)")])
    @one_line()
    def sm_transform_jobs(self, line):
        """List transform jobs: name, status, model, records, objects, created, output path."""
        args = parse(self.sm_transform_jobs, line)
        return job_list(self._session, args.limit)


def register(ipython) -> TransformMagics:
    """Add %sm_transform and %sm_transform_jobs to an IPython shell."""
    magics = TransformMagics(ipython)
    ipython.register_magics(magics)
    return magics
