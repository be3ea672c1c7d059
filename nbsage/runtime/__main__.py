"""`python -m nbsage.runtime train --root DIR`, `... process --root DIR` and `... serve ...`."""
from __future__ import annotations

import argparse
import os
import sys

from nbsage.runtime.layout import PRIVATE_UMASK


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nbsage.runtime",
                                     description="Run SageMaker's container contract on a job root.")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="run the training job laid out in a job root")
    t.add_argument("--root", required=True, help="the job root (laid out like /opt/ml)")
    p = sub.add_parser("process", help="run the processing job laid out in a job root")
    p.add_argument("--root", required=True, help="the job root (the job's /opt/ml)")
    s = sub.add_parser("serve", help="serve a model directory on 127.0.0.1")
    s.add_argument("--model-dir", required=True)
    s.add_argument("--algorithm", default=None, help="built-in algorithm name; omit for inference code")
    s.add_argument("--entry-point", default=None, help="inference script (model_fn/input_fn/...) in model_dir/code")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--ready-file", default=None, help="write the bound port here once serving")
    s.add_argument("--pipeline", action="store_true", help="model_dir holds a serial inference pipeline")
    args = parser.parse_args(argv)
    os.umask(PRIVATE_UMASK)  # what the job, its script and the model server write is the user's alone
    if args.command == "train":
        from nbsage.runtime.train import run
        return run(args.root)
    if args.command == "process":
        from nbsage.runtime.processing import run as run_processing
        return run_processing(args.root)
    from nbsage.runtime.serve import serve
    return serve(model_dir=args.model_dir, algorithm=args.algorithm, entry_point=args.entry_point,
                 host=args.host, port=args.port, ready_file=args.ready_file, pipeline=args.pipeline)


if __name__ == "__main__":
    sys.exit(main())
