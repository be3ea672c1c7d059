"""`%%sm_process`: the cell is a processing script, run as a SageMaker processing job.

    %%sm_process --input data/raw:/opt/ml/processing/input/raw --output /opt/ml/processing/output/train
    import pandas as pd
    df = pd.read_csv("/opt/ml/processing/input/raw/data.csv")
    df.dropna().to_csv("/opt/ml/processing/output/train/train.csv", index=False)

It builds a ScriptProcessor and calls `run()`; nothing here another face would need (the
`--input`/`--output` grammar is nbsage.arguments'). Returns the ProcessingJob (also kept as
`_sm_processing_job`). Usage mistakes and job failures are one-line UsageErrors. Settings are
traitlets, changed with `%config ProcessingMagics.wait = False`. `register(ipython)` adds the magic.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from traitlets import Bool, Unicode
from traitlets.config import Configurable

from nbsage import arguments
from nbsage.arguments import arg
from nbsage.notebook.magics import follow_then_return
from nbsage.notebook.parsing import one_line, parse, takes

SCRIPT_NAME = "script.py"

PROCESS = [
    arg("--input", action="append", default=[], metavar="[NAME=]SRC:DEST",
        help="copy SRC (a path, a folder, a URL, or a variable holding one) to DEST under "
             "/opt/ml/processing/ before the script runs (repeatable)"),
    arg("--output", action="append", default=[], metavar="[NAME=]SRC[:DEST][:Continuous]",
        help="upload what the script writes under SRC (under /opt/ml/processing/) to DEST "
             "(default: the artifact store), at the end or, with :Continuous, while it runs (repeatable)"),
    arg("--name", help="the job name (default: generated)"),
    arg("--no-wait", action="store_true", help="start the job and return at once"),
    arg("--no-logs", action="store_true", help="follow the job without showing its log lines"),
    arg("--command", help="the interpreter that runs the cell (default: %%config ProcessingMagics.command)"),
    arg("--max-runtime", type=int, metavar="S", help="stop the job after S seconds"),
    arg("--instance-type", metavar="T", help="instance type to record (default: %%config ProcessingMagics.instance_type)"),
    arg("--env", action="append", default=[], metavar="KEY=VALUE", help="an environment variable (repeatable)"),
    arg("--arguments", nargs=argparse.REMAINDER, default=[],
        help="everything after it is passed to the script (sys.argv[1:]); put it last"),
]


@magics_class
class ProcessingMagics(Magics, Configurable):
    """`%%sm_process`: processing jobs from a notebook cell. Configure with `%config ProcessingMagics.<setting>`."""

    command = Unicode("python3", config=True, help="The interpreter that runs the cell.")
    instance_type = Unicode("local", config=True, help="Instance type recorded on processing jobs.")
    wait = Bool(True, config=True, help="Follow %%sm_process jobs until they end.")
    logs = Bool(True, config=True, help="Show log lines while following a job.")

    def __init__(self, shell):
        Configurable.__init__(self, config=shell.config)
        Magics.__init__(self, shell=shell)
        # so `%config ProcessingMagics` finds us (once, also after %reload_ext)
        self.shell.configurables[:] = [c for c in self.shell.configurables if type(c).__name__ != "ProcessingMagics"]
        self.shell.configurables.append(self)

    @cell_magic
    @takes(PROCESS)
    @one_line()
    def sm_process(self, line, cell):
        """Run the cell as a processing script (a SageMaker ScriptProcessor job); returns the ProcessingJob."""
        from nbsage.processing import ScriptProcessor
        args = parse(self.sm_process, line)
        if not (cell or "").strip():
            raise UsageError("%%sm_process runs the cell as the processing script, and the cell is empty")
        env = arguments.environment(args.env)
        inputs = [arguments.processing_input(text, self.shell.user_ns) for text in args.input]
        outputs = [arguments.processing_output(text) for text in args.output]
        processor = ScriptProcessor(command=(args.command or self.command).split(),
                                    instance_type=args.instance_type or self.instance_type,
                                    max_runtime_in_seconds=args.max_runtime, env=env, base_job_name="sm-process")
        with tempfile.TemporaryDirectory(prefix="nbsage-sm-process-") as folder:
            script = Path(folder) / SCRIPT_NAME
            script.write_text(cell)
            job = processor.run(code=str(script), inputs=inputs, outputs=outputs, arguments=args.arguments or None,
                                wait=False, job_name=args.name)
        self.shell.user_ns["_sm_processing_job"] = job
        if self.wait and not args.no_wait:
            try:
                follow_then_return(job, logs=self.logs and not args.no_logs)  # each fact shown once
            except KeyboardInterrupt:
                print(f"Stopped following {job.name}; it is still running "
                      f"(_sm_processing_job.stop() stops it).")
        return job


def register(ipython) -> ProcessingMagics:
    """Add %%sm_process to an IPython shell."""
    magics = ProcessingMagics(ipython)
    ipython.register_magics(magics)
    return magics
