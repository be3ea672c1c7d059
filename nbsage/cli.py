"""`nbsage`: train, watch, deploy and invoke from a terminal.

A thin face over the Python API (Estimator, TrainingJob, Session, Model): each command parses
its arguments, calls the API and prints the result. Help for the built-in algorithms is
generated from their declarations (`nbsage algorithms xgboost`, `nbsage train xgboost --help`).

Errors print one line, `nbsage: error: ...`, on stderr: exit code 2 for a usage mistake (bad
arguments, an invalid hyperparameter or channel), 1 for a job that failed or anything else
that went wrong.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from nbsage import arguments
from nbsage.arguments import one_line as _one_line

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
FOLLOW_POLL_SECONDS = 0.5


class UsageError(Exception):
    """A command line that cannot be run as given (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors raised so that main() prints them as one line."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ---- shared helpers ---------------------------------------------------------------------------
def _session(args):
    from nbsage.session import Session
    if getattr(args, "home", None):
        return Session(home=args.home)
    return Session.default()


def _algorithm_reference(name: str) -> str:
    from nbsage import algorithms
    return algorithms.get(name).help_text()


def _algorithm_list() -> str:
    from nbsage import algorithms
    return ", ".join(algorithms.names())


def _job_what(job_desc: dict) -> str:
    """The algorithm a job ran, or its script."""
    hps = job_desc.get("HyperParameters", {})
    if "sagemaker_program" in hps:
        try:
            return json.loads(hps["sagemaker_program"])
        except ValueError:
            return hps["sagemaker_program"]
    spec = job_desc.get("AlgorithmSpecification", {})
    return spec.get("AlgorithmName") or spec.get("TrainingImage") or ""


def _print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


def _short_time(iso_text: str | None) -> str:
    return (iso_text or "")[:19].replace("T", " ")


# ---- train ------------------------------------------------------------------------------------
class _TrainHelp(argparse.Action):
    """`nbsage train [ALGORITHM] --help`: the usage, plus the algorithm's generated reference."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help()
        name = getattr(namespace, "algorithm", None)
        if name:
            print()
            print(_algorithm_reference(name))
        parser.exit()


def cmd_train(args) -> int:
    from nbsage.errors import JobFailed
    from nbsage.estimator import Estimator

    options, inputs = arguments.training_call(args)
    estimator = Estimator(sagemaker_session=_session(args), **options)
    job = estimator.fit(inputs, wait=False, job_name=args.name)
    if args.no_wait:
        print(job.name)
        return 0
    desc = wait_in_terminal(job, args, "job", "stop")
    if desc["TrainingJobStatus"] != "Completed":
        raise JobFailed(job.name, desc["TrainingJobStatus"], desc.get("FailureReason"))
    for metric in desc.get("FinalMetricDataList", []):
        print(f"{metric['MetricName']} = {metric['Value']:.6g}")
    model = desc.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    print(f"{job.name}: Completed" + (f"; model artifacts: {model}" if model else ""))
    return 0


def wait_in_terminal(job, args, noun: str, stop_command: str) -> dict:
    """Follow a job until it ends (its log unless --quiet); on Ctrl-C say that it keeps running and how
    to stop it, then let main() exit with EXIT_INTERRUPTED."""
    try:
        return job.wait(logs=not args.quiet, raise_on_failure=False)
    except KeyboardInterrupt:
        print(f"nbsage: interrupted; {noun} {job.name} keeps running (stop it with: nbsage {stop_command} "
              f"{job.name})", file=sys.stderr)
        raise


# ---- jobs -------------------------------------------------------------------------------------
def cmd_jobs(args) -> int:
    if getattr(args, "kind", "training") == "transform":  # transform jobs: nbsage.transform_arguments
        return cmd_transform_jobs(args)
    descriptions = [job.describe() for job in _session(args).list_training_jobs(limit=args.limit)]
    if args.json:
        print(json.dumps(descriptions, indent=2, default=str))
        return 0
    if not descriptions:
        print("no training jobs yet (start one with: nbsage train ...)")
        return 0
    from nbsage.reasons import short_reason
    rows = []
    for d in descriptions:
        metrics = ", ".join(f"{m['MetricName']}={m['Value']:.4g}" for m in d.get("FinalMetricDataList", []))
        rows.append([d["TrainingJobName"], d["TrainingJobStatus"], d["SecondaryStatus"], _job_what(d),
                     _short_time(d.get("CreationTime")), str(d.get("TrainingTimeInSeconds", "")), metrics,
                     short_reason(d.get("FailureReason"))])
    _print_table(rows, ["NAME", "STATUS", "SECONDARY", "ALGORITHM", "CREATED", "SECONDS", "METRICS", "FAILURE REASON"])
    return 0


# ---- models -----------------------------------------------------------------------------------
def cmd_models(args) -> int:
    """ListModels: every training job's model artifact and every deployed model, newest first."""
    from nbsage.model_list import list_models
    models = list_models(_session(args), limit=args.limit)
    if args.json:
        print(json.dumps(models, indent=2, default=str))
        return 0
    if not models:
        print("no models yet (a completed training job makes one: nbsage train ...)")
        return 0
    rows = [[m["ModelName"], m["PrimaryContainer"]["Image"] or "", _short_time(m["CreationTime"]),
             ",".join(m["nbsage:Endpoints"]), m["PrimaryContainer"]["ModelDataUrl"] or ""] for m in models]
    _print_table(rows, ["NAME", "ALGORITHM", "CREATED", "ENDPOINTS", "MODEL DATA"])
    return 0


def _job(args, name: str):
    from nbsage.training_job import TrainingJob
    return TrainingJob(name, _session(args))


def cmd_describe(args) -> int:
    print(json.dumps(_job(args, args.job).describe(), indent=2, default=str))
    return 0


def cmd_logs(args) -> int:
    """The job's log lines, without the #metric/#progress lines (as %sm_logs and the live display)."""
    from nbsage.training_job import TERMINAL_STATUSES
    job = _job(args, args.job)
    seen = len(job.logs())
    for line in arguments.reader_lines(job.logs()[:seen], None if args.follow else args.tail):
        print(line)
    if not args.follow:
        return 0
    sys.stdout.flush()
    try:
        while True:
            done = job.status in TERMINAL_STATUSES  # read before the logs, so no last line is missed
            lines = job.logs()
            for line in arguments.reader_lines(lines[seen:]):
                print(line)
            seen = len(lines)
            sys.stdout.flush()
            if done:
                return 0
            time.sleep(FOLLOW_POLL_SECONDS)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def cmd_stop(args) -> int:
    job = _job(args, args.job)
    job.stop()
    if args.wait:
        desc = job.wait_quietly()
        print(f"{job.name}: {desc['TrainingJobStatus']} ({desc['SecondaryStatus']})")
    else:
        print(f"{job.name}: {job.status}")
    return 0


# ---- endpoints --------------------------------------------------------------------------------
def cmd_deploy(args) -> int:
    from nbsage.estimator import Estimator
    predictor = Estimator.attach(args.job, sagemaker_session=_session(args)).deploy(**arguments.deploy_call(args))
    print(getattr(predictor, "endpoint_name", None) or args.name)
    return 0


def cmd_endpoints(args) -> int:
    session = _session(args)
    if args.endpoint:
        print(json.dumps(session.describe_endpoint(args.endpoint), indent=2, default=str))
        return 0
    endpoints = session.list_endpoints()
    if args.json:
        print(json.dumps(endpoints, indent=2, default=str))
        return 0
    if not endpoints:
        print("no endpoints (deploy one with: nbsage deploy JOB)")
        return 0
    rows = []
    for e in endpoints:
        rows.append([e.get("EndpointName", ""), e.get("EndpointStatus", ""),
                     _short_time(str(e.get("CreationTime") or "")), e.get("Url") or ""])
    _print_table(rows, ["NAME", "STATUS", "CREATED", "URL"])
    return 0


def cmd_invoke(args) -> int:
    if args.file == "-":
        body = sys.stdin.buffer.read()
    else:
        try:
            body = Path(args.file).read_bytes()
        except OSError as e:
            raise UsageError(f"cannot read request body {args.file!r}: {e.strerror or e}") from None
    result = _session(args).invoke_endpoint(args.endpoint, body, args.content_type, args.accept)
    answer = result[0] if isinstance(result, tuple) else result
    if isinstance(answer, str):
        answer = answer.encode()
    out = sys.stdout.buffer
    out.write(answer)
    if sys.stdout.isatty() and not answer.endswith(b"\n"):
        out.write(b"\n")
    out.flush()
    return 0


def cmd_delete(args) -> int:
    _session(args).delete_endpoint(args.endpoint)
    print(f"deleted endpoint {args.endpoint}")
    return 0


def cmd_prune(args) -> int:
    """Remove the folders of jobs that ended long enough ago (records and uploaded artifacts stay)."""
    from nbsage.backends.retention import RETENTION_ENV, prune_job_folders, retention_days
    days = args.older_than if args.older_than is not None else (retention_days() or 0.0)
    if days < 0:
        raise UsageError(f"--older-than {days:g}: expected a number of days >= 0")
    pruned = prune_job_folders(_session(args), days, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for p in pruned:
        print(f"{verb} {p.path} ({p.bytes / 2**20:.1f} MiB)")
    total = sum(p.bytes for p in pruned) / 2**20
    print(f"{verb} {len(pruned)} job folder(s) of jobs that ended over {days:g} day(s) ago, {total:.1f} MiB "
          f"(job records, logs and uploaded artifacts are kept; {RETENTION_ENV} prunes after every job)")
    return 0


# ---- algorithms -------------------------------------------------------------------------------
def cmd_algorithms(args) -> int:
    from nbsage import algorithms
    if args.name:
        print(_algorithm_reference(args.name))
        return 0
    rows = []
    for name in algorithms.names():
        try:
            algo = algorithms.get(name)
            rows.append([name, algo.title, algo.description])
        except ImportError as e:  # an algorithm whose module or library is not installed here
            rows.append([name, "(unavailable)", _one_line(e)])
    _print_table(rows, ["NAME", "TITLE", "DESCRIPTION"])
    print("\nnbsage algorithms NAME   every hyperparameter, channel and metric of one algorithm")
    return 0


# ---- batch transform ----------------------------------------------------------------------------
def cmd_transform(args) -> int:
    from nbsage.transform_arguments import transform_call
    job = transform_call(args, _session(args))
    desc = job.describe()
    print(f"{job.name}: {desc['TransformJobStatus']}; {desc['nbsage:RecordsTransformed']:,} records, "
          f"{desc['nbsage:ObjectsTransformed']}/{desc['nbsage:ObjectsTotal']} objects -> "
          f"{desc['TransformOutput']['S3OutputPath']}")
    return 0


def cmd_transform_jobs(args) -> int:
    from nbsage.transform_arguments import TRANSFORM_HEADER, transform_rows
    session = _session(args)
    if args.json:
        from nbsage.transformer import TransformJob
        print(json.dumps([TransformJob(r["name"], session).describe() for r in
                          session.store.list_jobs(limit=args.limit, kind="transform")], indent=2, default=str))
        return 0
    rows = transform_rows(session, args.limit)
    if not rows:
        print("no transform jobs yet (start one with: nbsage transform MODEL --data SRC)")
        return 0
    _print_table(rows, TRANSFORM_HEADER)
    return 0


# ---- the parser -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from nbsage import __version__
    parser = _Parser(prog="nbsage", description="The SageMaker workflow on this machine: train with the "
                     "built-in algorithms or your own script, follow jobs, deploy and invoke endpoints.")
    parser.add_argument("--version", action="version", version=f"nbsage {__version__}")
    parser.add_argument("--home", metavar="DIR", help="where nbsage keeps its records and artifacts "
                        "(default: $NBSAGE_HOME or ~/.nbsage)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    t = sub.add_parser(
        "train", add_help=False, help="start a training job (a built-in algorithm or a script)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Start a training job and follow it until it ends.",
        epilog=f"built-in algorithms: {_algorithm_list()}\n"
               "  nbsage train ALGORITHM --help   lists the algorithm's hyperparameters\n\n"
               "examples:\n"
               "  nbsage train xgboost --train data/train.csv --validation data/val.csv \\\n"
               "      --hp objective=binary:logistic --hp num_round=50\n"
               "  nbsage train --entry-point train.py --source-dir src --train data/ --hp epochs=10")
    t.add_argument("-h", "--help", action=_TrainHelp, help="show this help (and ALGORITHM's hyperparameters)")
    for flags, kwargs in arguments.TRAIN + arguments.place_arguments():
        t.add_argument(*flags, **kwargs)
    t.set_defaults(run=cmd_train)

    j = sub.add_parser("jobs", help="list training jobs, newest first")
    j.add_argument("--limit", type=int, default=50, metavar="N")
    j.add_argument("--json", action="store_true", help="DescribeTrainingJob of each job, as JSON")
    j.add_argument("--kind", choices=["training", "transform"], default="training",
                   help="which jobs (default: training)")
    j.set_defaults(run=cmd_jobs)

    m = sub.add_parser("models", help="list models (training jobs' artifacts and deployed models), newest first")
    m.add_argument("--limit", type=int, default=50, metavar="N")
    m.add_argument("--json", action="store_true", help="DescribeModel of each model, as JSON")
    m.set_defaults(run=cmd_models)

    d = sub.add_parser("describe", help="DescribeTrainingJob of one job, as JSON")
    d.add_argument("job", metavar="JOB")
    d.set_defaults(run=cmd_describe)

    lg = sub.add_parser("logs", help="print a job's log")
    lg.add_argument("job", metavar="JOB")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until the job ends")
    for flags, kwargs in arguments.LOGS:
        lg.add_argument(*flags, **kwargs)
    lg.set_defaults(run=cmd_logs)

    s = sub.add_parser("stop", help="stop a running job (SIGTERM, then SIGKILL after a grace period)")
    s.add_argument("job", metavar="JOB")
    s.add_argument("--wait", action="store_true", help="return once the job has stopped")
    s.set_defaults(run=cmd_stop)

    dp = sub.add_parser("deploy", help="start an endpoint serving a completed job's model")
    dp.add_argument("job", metavar="JOB")
    for flags, kwargs in arguments.DEPLOY:
        dp.add_argument(*flags, **kwargs)
    dp.set_defaults(run=cmd_deploy)

    e = sub.add_parser("endpoints", help="list endpoints (or describe one, as JSON)")
    e.add_argument("endpoint", nargs="?", metavar="ENDPOINT")
    e.add_argument("--json", action="store_true")
    e.set_defaults(run=cmd_endpoints)

    iv = sub.add_parser("invoke", help="send a request to an endpoint and print the response body")
    iv.add_argument("endpoint", metavar="ENDPOINT")
    iv.add_argument("file", metavar="FILE", help="the request body; - reads standard input")
    iv.add_argument("--content-type", default="text/csv", metavar="CT", help="(default: text/csv)")
    iv.add_argument("--accept", metavar="CT", help="the response content type to ask for")
    iv.set_defaults(run=cmd_invoke)

    de = sub.add_parser("delete", help="delete an endpoint (stops its server)")
    de.add_argument("endpoint", metavar="ENDPOINT")
    de.set_defaults(run=cmd_delete)

    # ---- batch transform (nbsage.transform_arguments) ----
    from nbsage.transform_arguments import TRANSFORM
    tf = sub.add_parser("transform",
                        help="run a batch transform job: a model over a data set, one .out per input file")
    for flags, kwargs in TRANSFORM + arguments.place_arguments():
        tf.add_argument(*flags, **kwargs)
    tf.set_defaults(run=cmd_transform)

    pr = sub.add_parser("prune", help="remove the folders of jobs that ended (their records and artifacts stay)")
    pr.add_argument("--older-than", type=float, default=None, metavar="DAYS",
                    help="only jobs that ended more than DAYS days ago (default: $NBSAGE_JOB_RETENTION_DAYS, else 0)")
    pr.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    pr.set_defaults(run=cmd_prune)

    a = sub.add_parser("algorithms", help="the built-in algorithms and their hyperparameters")
    a.add_argument("name", nargs="?", metavar="NAME")
    a.set_defaults(run=cmd_algorithms)

    from nbsage import tuning_cli  # tune, tuning-jobs, describe-tuning-job, stop-tuning-job
    tuning_cli.add_commands(sub, _session)
    from nbsage import autoscaling_cli  # scaling-activities
    autoscaling_cli.add_commands(sub, _session)

    from nbsage.algorithms.seq2seq import prepare_cli  # seq2seq-prepare (SageMaker's create_vocab_proto.py)
    prepare_cli.add_command(sub)
    return parser


def _error(message) -> None:
    print(f"nbsage: error: {_one_line(message)}", file=sys.stderr)


def main(argv=None) -> int:
    """The `nbsage` console script; returns the exit code."""
    from nbsage.errors import JobFailed, NBSageError, ValidationError
    command = "this command"
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        return args.run(args) or 0
    except UsageError as e:
        _error(e)
        return EXIT_USAGE
    except ValidationError as e:  # hyperparameters, channels, names: the command line was wrong
        _error(e)
        return EXIT_USAGE
    except JobFailed as e:
        _error(e)
        return EXIT_FAILED
    except NBSageError as e:
        _error(e)
        return EXIT_FAILED
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("nbsage."):
            _error(f"this installation of nbsage has no {e.name} ({command} needs it)")
            return EXIT_FAILED
        raise
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `nbsage logs JOB | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
