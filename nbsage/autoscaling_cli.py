"""`nbsage scaling-activities ENDPOINT`: an endpoint's scalable variants and its scaling activities, newest
first (added to the CLI's parser by `add_commands`)."""
from __future__ import annotations

import json


def cmd_scaling_activities(args, session) -> int:
    from nbsage.cli import _print_table, _short_time
    from nbsage.predictor import Predictor
    predictor = Predictor(args.endpoint, sagemaker_session=session)
    scaling = predictor.describe().get("AutoScaling") or {"ScalableTargets": [], "ScalingActivities": []}
    if args.json:
        print(json.dumps(scaling, indent=2, default=str))
        return 0
    for t in scaling["ScalableTargets"]:
        policies = "; ".join(f"{p['PolicyName']}: {p['PredefinedMetricSpecification']['PredefinedMetricType']} "
                             f"target {p['TargetValue']:g}" for p in t["Policies"]) or "no policy"
        print(f"{t['VariantName']}: {t['MinCapacity']}-{t['MaxCapacity']} instances, {policies}")
    if not scaling["ScalingActivities"]:
        print(f"no scaling activities for endpoint {args.endpoint!r} "
              "(scale it with Predictor.enable_autoscaling or the application-autoscaling client)")
        return 0
    rows = [[_short_time(a["StartTime"]), a["ResourceId"].rsplit("/", 1)[-1],
             f"{a['FromInstanceCount']} -> {a['ToInstanceCount']}", a["StatusCode"], a["Cause"]]
            for a in scaling["ScalingActivities"][:args.limit]]
    _print_table(rows, ["STARTED", "VARIANT", "INSTANCES", "STATUS", "CAUSE"])
    return 0


def add_commands(sub, session_of) -> None:
    p = sub.add_parser("scaling-activities", help="an endpoint's scaling activities (automatic scaling), newest first")
    p.add_argument("endpoint", metavar="ENDPOINT")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N activities (default 20)")
    p.add_argument("--json", action="store_true", help="the scalable targets and activities as JSON")
    p.set_defaults(run=lambda args: cmd_scaling_activities(args, session_of(args)))
