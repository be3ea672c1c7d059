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


def exit_now(code: int) -> None:
    """End a training runtime whose job is done without the interpreter's teardown.

    Once `train` has returned, the model is packed and every line written; what is left is freeing
    every module and object one by one (xgboost, scipy, pyarrow, torch: 0.1-0.8 s of a short job,
    more than its training). The exit handlers still run (logging, multiprocessing's children), the
    standard streams are flushed, and the exit status is the same. A runtime with a non-daemon
    thread still running exits the usual way, which waits for it.
    """
    import atexit
    import threading
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    main = threading.main_thread()
    if run_exit_handlers is None or any(t is not main and not t.daemon and t.is_alive()
                                        for t in threading.enumerate()):
        sys.exit(code)
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be said
            pass
    os._exit(int(code or 0))


if __name__ == "__main__":
    status = main()
    if sys.argv[1:2] in (["train"], ["serve"]):  # a stopped model server too: a transform job ends when it has
        exit_now(status)
    sys.exit(status)
