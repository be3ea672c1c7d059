"""50 clients on one endpoint for 10 s, its model server SIGKILLed mid-run: only designed answers, then recovery.

The run itself is `benchmarks/bench_reliability.py`'s (so `make bench` reports the same thing this
asserts). Bounded: 50 client threads, 10 s of load, one kill; every wait has a deadline.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("xgboost")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_reliability  # noqa: E402

DESIGNED = {200, 204, 503}  # 503: the server is at its worker/connection cap (with Retry-After)


def test_a_server_killed_under_load_answers_only_designed_statuses_and_recovers(tmp_path):
    run = bench_reliability.load_and_fault(tmp_path)
    figures = run.figures()
    assert set(run.statuses) <= DESIGNED, figures
    assert run.statuses[200] > 0, figures
    # connection errors only in the restart window: against the killed server, or before the
    # endpoint was InService again with its new one
    outside = [e for e in run.errors
               if e[0] < run.killed_at or (e[1] != run.killed_port and run.back_in_service_at is not None
                                            and e[0] > run.back_in_service_at)]
    assert not outside, (outside[:5], figures)
    assert run.back_in_service_at is not None and run.recovered_at is not None, figures
    assert run.final_status == "InService" and run.answered_after, figures
