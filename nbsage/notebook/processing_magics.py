"""`%%sm_process`: the cell is a processing script, run as a SageMaker processing job.

    %%sm_process --input data/raw:/opt/ml/processing/input/raw --output /opt/ml/processing/output/train
    import pandas as pd
    df = pd.read_csv("/opt/ml/processing/input/raw/data.csv")
    df.dropna().to_csv("/opt/ml/processing/output/train/train.csv", index=False)

It builds a ScriptProcessor and calls `run()`; nothing here another face would need. Returns the
ProcessingJob (also kept as `_sm_processing_job`). Usage mistakes and job failures are one-line
UsageErrors. `register(ipython)` adds the magic.
"""
from __future__ import annotations

import argparse
import functools
import re
import tempfile
from pathlib import Path

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from nbsage.errors import NBSageError

OPT_ML = "/opt/ml/"
UPLOAD_MODES = {"continuous": "Continuous", "endofjob": "EndOfJob"}
_NAMED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_-]*)=(.+)$")
SCRIPT_NAME = "script.py"


def _one_line(method):
    """NBSageError -> UsageError: IPython prints it as one line, without a traceback."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except NBSageError as e:
            raise UsageError(" ".join(str(e).split())) from None
    return wrapper


def _unquote(value):
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _name_and_rest(text: str) -> tuple[str | None, str]:
    """`NAME=rest` -> (NAME, rest); a path or URL without a name -> (None, text)."""
    match = _NAMED.match(text)
    return (match.group(1), match.group(2)) if match else (None, text)


def parse_input(text: str, namespace: dict | None = None):
    """`[NAME=]SRC[:DEST]` -> ProcessingInput; SRC is a path, a URL or a variable holding one;
    DEST defaults to /opt/ml/processing/input/<NAME or SRC's last part>, NAME to DEST's last part."""
    from nbsage.processing import ProcessingInput
    name, rest = _name_and_rest(text.strip())
    # DEST starts at the last ':/' that is not a URL's '://'
    at = max((m.start() for m in re.finditer(":/", rest) if not rest.startswith("://", m.start())), default=-1)
    source, destination = (rest[:at], rest[at + 1:]) if at >= 0 else (rest, None)
    if not source:
        raise UsageError(f"--input {text!r}: write SRC:DEST, e.g. --input data/raw:/opt/ml/processing/input/raw")
    value = (namespace or {}).get(source) if source.isidentifier() else None
    if isinstance(value, (str, Path)):
        source = str(value)
    if destination is None:
        last = name or Path(source.rstrip("/").split("://")[-1]).name or "data"
        destination = f"/opt/ml/processing/input/{last}"
    return ProcessingInput(source=source, destination=destination,
                           input_name=name or Path(destination.rstrip("/")).name or None)


def parse_output(text: str):
    """`[NAME=]SRC[:DEST][:Continuous|:EndOfJob]` -> ProcessingOutput; SRC is under
    /opt/ml/processing/, DEST (a path or URL) defaults to the artifact store, NAME to SRC's last part."""
    from nbsage.processing import ProcessingOutput
    name, rest = _name_and_rest(text.strip())
    mode = "EndOfJob"
    head, sep, last = rest.rpartition(":")
    if sep and last.lower() in UPLOAD_MODES:
        rest, mode = head, UPLOAD_MODES[last.lower()]
    elif sep and "/" not in last:
        raise UsageError(f"--output {text!r}: {last!r} is neither an upload mode (Continuous or EndOfJob) "
                         "nor a destination path or URL")
    source, _, destination = rest.partition(":")
    if not source.startswith("/"):
        raise UsageError(f"--output {text!r}: the source must be a folder under /opt/ml/processing/, "
                         "e.g. --output /opt/ml/processing/output/train")
    return ProcessingOutput(source=source, destination=destination or None,
                            output_name=name or Path(source.rstrip("/")).name or None, s3_upload_mode=mode)


@magics_class
class ProcessingMagics(Magics):
    """`%%sm_process`: processing jobs from a notebook cell."""

    @cell_magic
    @magic_arguments()
    @argument("--input", action="append", metavar="[NAME=]SRC:DEST",
              help="copy SRC (a path, a folder, a URL, or a variable holding one) to DEST under "
                   "/opt/ml/processing/ before the script runs (repeatable)")
    @argument("--output", action="append", metavar="[NAME=]SRC[:DEST][:Continuous]",
              help="upload what the script writes under SRC (under /opt/ml/processing/) to DEST "
                   "(default: the artifact store), at the end or, with :Continuous, while it runs (repeatable)")
    @argument("--name", help="the job name (default: generated)")
    @argument("--no-wait", action="store_true", help="start the job and return at once")
    @argument("--no-logs", action="store_true", help="follow the job without showing its log lines")
    @argument("--command", default="python3", help="the interpreter that runs the cell (default: python3)")
    @argument("--max-runtime", type=int, metavar="S", help="stop the job after S seconds")
    @argument("--instance-type", default="local", metavar="T", help="instance type to record")
    @argument("--env", action="append", metavar="KEY=VALUE", help="an environment variable (repeatable)")
    @argument("--arguments", nargs=argparse.REMAINDER, default=[],
              help="everything after it is passed to the script (sys.argv[1:]); put it last")
    @_one_line
    def sm_process(self, line, cell):
        """Run the cell as a processing script (a SageMaker ScriptProcessor job); returns the ProcessingJob."""
        from nbsage.processing import ScriptProcessor
        args = parse_argstring(self.sm_process, line)
        args.input, args.output, args.env, args.arguments = (
            _unquote(args.input or []), _unquote(args.output or []), _unquote(args.env or []),
            _unquote(args.arguments or []))
        if not (cell or "").strip():
            raise UsageError("%%sm_process runs the cell as the processing script, and the cell is empty")
        env = {}
        for pair in args.env:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise UsageError(f"--env {pair!r}: write KEY=VALUE")
            env[key] = value
        inputs = [parse_input(text, self.shell.user_ns) for text in args.input]
        outputs = [parse_output(text) for text in args.output]
        processor = ScriptProcessor(command=_unquote(args.command).split(), instance_type=args.instance_type,
                                    max_runtime_in_seconds=args.max_runtime, env=env, base_job_name="sm-process")
        with tempfile.TemporaryDirectory(prefix="nbsage-sm-process-") as folder:
            script = Path(folder) / SCRIPT_NAME
            script.write_text(cell)
            job = processor.run(code=str(script), inputs=inputs, outputs=outputs, arguments=args.arguments or None,
                                wait=False, job_name=args.name)
        self.shell.user_ns["_sm_processing_job"] = job
        if not args.no_wait:
            try:
                job.wait(logs=not args.no_logs)
            except KeyboardInterrupt:
                print(f"Stopped following {job.name}; it is still running "
                      f"(_sm_processing_job.stop() stops it).")
        return job


def register(ipython) -> None:
    """Add %%sm_process to an IPython shell."""
    ipython.register_magics(ProcessingMagics(ipython))
