"""One monitoring schedule's scheduler: `python -m nbsage.serving.monitor.scheduler --name <schedule>`.

Started detached by `schedules.ensure_scheduler` (NBSAGE_HOME in its environment). It runs the
execution due whenever the schedule's cron expression fires (`schedules.run_due`), looks at the
schedule's record at least every CHECK_SECONDS in between, and ends when the schedule is stopped or
deleted (or on SIGTERM, which delete sends). A one-time (NOW) schedule runs once and ends.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import datetime, timezone

CHECK_SECONDS = 30.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nbsage.serving.monitor.scheduler",
                                     description="Run a monitoring schedule's executions when they are due.")
    parser.add_argument("--name", required=True, help="the monitoring schedule's name")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    from nbsage.errors import NBSageError
    from nbsage.serving.monitor import cron, schedules
    from nbsage.session import Session
    session = Session()
    print(f"nbsage monitoring scheduler: following schedule {args.name!r}", flush=True)
    while not stop.is_set():
        try:
            record = schedules.load(session, args.name)
        except NBSageError:
            print("nbsage monitoring scheduler: the schedule is gone; ending", flush=True)
            return 0
        if record["MonitoringScheduleStatus"] != "Scheduled":
            print(f"nbsage monitoring scheduler: the schedule is {record['MonitoringScheduleStatus']}; ending",
                  flush=True)
            return 0
        try:
            summary = schedules.run_due(session, args.name)
        except Exception as exc:  # noqa: BLE001 - logged; the next time tries again
            print(f"nbsage monitoring scheduler: an execution could not run: {type(exc).__name__}: {exc}", flush=True)
            summary = None
        if summary is not None:
            print(f"nbsage monitoring scheduler: {summary['ProcessingJobName']} "
                  f"{summary['MonitoringExecutionStatus']}", flush=True)
        expression = record["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"]
        if expression == cron.NOW:
            return 0
        now = datetime.now(timezone.utc)
        wait = (cron.next_time(expression, now) - now).total_seconds()
        stop.wait(max(0.5, min(CHECK_SECONDS, wait + 0.5)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
