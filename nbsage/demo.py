"""`python -m nbsage.demo NOTEBOOK`: run an example notebook headless through papermill and
print where the executed copy is and the summary the notebook recorded.

The notebook records its summary by displaying a dict under the MIME type
`application/vnd.nbsage.summary+json`; this reads it back from the executed notebook.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

SUMMARY_MIME = "application/vnd.nbsage.summary+json"


def read_summary(notebook: Path) -> dict:
    import nbformat
    nb = nbformat.read(notebook, as_version=4)
    summary: dict = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if SUMMARY_MIME in data:
                summary.update(data[SUMMARY_MIME])
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nbsage.demo", description=__doc__.splitlines()[0])
    parser.add_argument("notebook", nargs="?", default="notebooks/quickstart.ipynb")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument("--output-dir", default=None)
    args = parser.parse_args(argv)
    source = Path(args.notebook)
    out_dir = Path(args.output_dir) if args.output_dir else source.parent / "output"
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / source.name
    # papermill in its own process: it cannot run inside an already running event loop (a kernel)
    cmd = [sys.executable, "-m", "papermill", str(source), str(executed), "-k", "python3",
           "--cwd", str(source.parent), "--log-output", "--no-progress-bar"]
    for name, value in args.parameter:
        cmd += ["-p", name, value]
    print("Running", source, "through papermill ...", flush=True)
    rc = subprocess.call(cmd)
    print()
    print(f"Executed notebook: {executed.resolve()}")
    summary = read_summary(executed) if executed.exists() else {}
    for key, value in summary.items():
        print(f"{key}: {value}")
    if rc != 0:
        print(f"papermill failed (exit code {rc}); open the executed notebook to see the failing cell", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
