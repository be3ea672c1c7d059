"""`nbsage tune`, `nbsage tuning-jobs`, `nbsage describe-tuning-job`, `nbsage stop-tuning-job`:
the tuning commands of the CLI (added to its parser by `add_commands`).

    nbsage tune xgboost --objective validation:auc --max-jobs 20 --max-parallel 2 \\
        --train data/train.csv --validation data/valid.csv \\
        --hp num_round=50 --hp 'max_depth=int(3, 10)' --hp 'eta=float(0.01, 0.3, log)'

Ranges and fixed values share the grammar of `%%sm_tune` (nbsage.tuning_arguments); a YAML file of
both is `--hyperparameters FILE`.
"""
from __future__ import annotations

import json

from nbsage import arguments, tuning_arguments


def cmd_tune(args, session) -> int:
    from nbsage.estimator import Estimator
    from nbsage.tuner import HyperparameterTuner
    options, inputs, tuner_options = tuning_arguments.tuning_call(args)
    tuner = HyperparameterTuner(Estimator(sagemaker_session=session, **options), **tuner_options)
    tuner.fit(inputs, job_name=args.name, wait=False)
    job = tuner.latest_tuning_job
    if args.no_wait:
        print(job.name)
        return 0
    from nbsage.cli import wait_in_terminal
    desc = wait_in_terminal(job, args, "tuning job", "stop-tuning-job")
    if desc["HyperParameterTuningJobStatus"] == "Failed":
        raise job.failure(desc)
    best = desc.get("BestTrainingJob")
    if best:
        metric = best["FinalHyperParameterTuningJobObjectiveMetric"]
        print(f"best training job: {best['TrainingJobName']} {metric['MetricName']} = {metric['Value']:.6g}")
        print("hyperparameters: " + ", ".join(f"{k}={v}" for k, v in best["TunedHyperParameters"].items()))
    print(f"{job.name}: {desc['HyperParameterTuningJobStatus']}")
    return 0


def cmd_tuning_jobs(args, session) -> int:
    from nbsage.tuning_job import TUNING_LIST_HEADER, list_tuning_jobs, tuning_row
    descriptions = [job.describe() for job in list_tuning_jobs(session, limit=args.limit)]
    if args.json:
        print(json.dumps(descriptions, indent=2, default=str))
        return 0
    if not descriptions:
        print("no tuning jobs yet (start one with: nbsage tune ...)")
        return 0
    rows = [tuning_row(d) for d in descriptions]
    header = [h.upper() for h in TUNING_LIST_HEADER]
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def cmd_describe_tuning_job(args, session) -> int:
    from nbsage.tuning_job import TuningJob
    job = TuningJob(args.job, session)
    desc = job.describe()
    if args.trials:
        desc["TrainingJobSummaries"] = job.trials()
    print(json.dumps(desc, indent=2, default=str))
    return 0


def cmd_stop_tuning_job(args, session) -> int:
    from nbsage.tuning_job import TuningJob
    job = TuningJob(args.job, session)
    job.stop()
    desc = job.wait_quietly(timeout=60) if args.wait else job.describe()
    print(f"{job.name}: {desc['HyperParameterTuningJobStatus']}")
    return 0


def add_commands(sub, session_of) -> None:
    """The tuning subcommands on the CLI's subparsers; `session_of(args)` is the CLI's session."""
    def run(command):
        return lambda args: command(args, session_of(args))

    t = sub.add_parser("tune", help="start a hyperparameter tuning job (ranges like 'eta=float(0.01, 0.3, log)')",
                       description="Start a hyperparameter tuning job and follow its trials until it ends.")
    for flags, kwargs in arguments.TRAIN + tuning_arguments.TUNE + arguments.place_arguments():
        t.add_argument(*flags, **kwargs)
    t.set_defaults(run=run(cmd_tune))

    j = sub.add_parser("tuning-jobs", help="list hyperparameter tuning jobs, newest first")
    j.add_argument("--limit", type=int, default=50, metavar="N")
    j.add_argument("--json", action="store_true", help="DescribeHyperParameterTuningJob of each, as JSON")
    j.set_defaults(run=run(cmd_tuning_jobs))

    d = sub.add_parser("describe-tuning-job", help="DescribeHyperParameterTuningJob of one tuning job, as JSON")
    d.add_argument("job", metavar="TUNING_JOB")
    d.add_argument("--trials", action="store_true", help="add each trial's summary (TrainingJobSummaries)")
    d.set_defaults(run=run(cmd_describe_tuning_job))

    s = sub.add_parser("stop-tuning-job", help="stop a tuning job (its running trials stop, none start)")
    s.add_argument("job", metavar="TUNING_JOB")
    s.add_argument("--wait", action="store_true", help="return once it has stopped")
    s.set_defaults(run=run(cmd_stop_tuning_job))
