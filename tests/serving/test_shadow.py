"""Shadow variants: a copy of live traffic that never reaches, slows or fails the caller, the report
comparing production with the shadow, and promoting the shadow with no failed request."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from nbsage.errors import EndpointError, ValidationError
from nbsage.predictor import Predictor
from nbsage.serving import endpoints, variants
from nbsage.serving.shadow import prediction_values
from nbsage.session import production_variant
from support import LABELS, make_tarball, release, wait_for

# a regressor that fails on rows whose first feature is negative, and holds a row whose first feature
# is 5 until the test opens HOLD_PIPE (a FIFO), saying so first in HOLD_PIPE.held
PICKY = """
import os
import numpy as np

def model_fn(model_dir):
    return np.load(os.path.join(model_dir, "weights.npy"))

def predict_fn(data, model):
    rows = np.atleast_2d(np.asarray(data, dtype=float))
    if (rows[:, 0] < 0).any():
        raise ValueError("a negative first feature")
    if rows[0, 0] == 5:
        open(os.environ["HOLD_PIPE"] + ".held", "w").close()
        with open(os.environ["HOLD_PIPE"]) as pipe:
            pipe.read()
    return rows @ model
"""


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    root = tmp_path_factory.mktemp("shadow-models")
    out = {}
    for name, script, weights in (("labels", LABELS, (1.0, 1.0, 1.0)), ("linear", None, (1.0, 2.0, 3.0)),
                                  ("picky", PICKY, (1.0, 2.0, 3.5))):
        (root / name).mkdir()
        out[name] = make_tarball(root / name, script, weights=weights) if script else \
            make_tarball(root / name, weights=weights)
    return out


def shadow_sent(session, name: str, n: int) -> bool:
    counts = (variants.shadow_record(session, name).get("Counts") or {}).get("Shadow", {})
    return counts.get("Sent", 0) >= n


def invoke(session, name: str, body: bytes) -> tuple[bytes, str]:
    data, _, headers = endpoints.invoke_endpoint(session, name, body, "text/csv", "text/csv")
    return data, headers["X-Amzn-Invoked-Production-Variant"]


def test_a_shadow_classifier_gets_a_copy_and_the_report_gives_label_agreement_then_it_is_promoted(session, archives):
    for name, threshold in (("strict", 7), ("loose", 6)):
        session.create_model(name, container_defs={"ModelDataUrl": str(archives["labels"]),
                                                   "Environment": {"THRESHOLD": str(threshold)}})
    session.endpoint_from_production_variants(
        "labels", [production_variant("loose", "local", 1, "Live")],
        shadow_production_variants=[production_variant("strict", "local", 1, "Shadow")])
    desc = session.describe_endpoint("labels")
    assert [v["VariantName"] for v in desc["ShadowProductionVariants"]] == ["Shadow"]
    # row sums 5, 6.5 and 8: production (> 6) says 0, 1, 1; the shadow (> 7) says 0, 0, 1
    rows = [b"1,2,2", b"2,2,2.5", b"2,3,3"]
    for i in range(30):
        data, variant = invoke(session, "labels", rows[i % 3])
        assert variant == "Live" and int(data) == [0, 1, 1][i % 3]
    wait_for(lambda: shadow_sent(session, "labels", 30), 60, "30 requests copied to the shadow")

    report = Predictor("labels", session).shadow_report()
    assert report.problem_type == "classification"
    assert report.agreement["Compared"] == 30 and report.agreement["LabelAgreement"] == pytest.approx(2 / 3, abs=1e-6)
    assert report.agreement["Confusion"] == {"0": {"0": 10}, "1": {"0": 10, "1": 10}}
    assert report.summary["Live"]["Invocations"] == 30 and report.summary["Shadow"]["Invocations"] == 30
    assert report.summary["Shadow"]["Errors"] == 0 and report.summary["Shadow"]["LatencyP50"] > 0
    page = report._repr_html_()
    assert "LabelAgreement" in page and "data:image/png;base64," in page

    Predictor("labels", session).promote_shadow()
    desc = session.describe_endpoint("labels")
    assert [(v["VariantName"], v["ModelName"]) for v in desc["ProductionVariants"]] == [("Shadow", "strict")]
    assert "ShadowProductionVariants" not in desc
    assert invoke(session, "labels", rows[1]) == (b"0\n", "Shadow")
    with pytest.raises(EndpointError, match="has no shadow variant"):
        Predictor("labels", session).shadow_report()
    with pytest.raises(EndpointError, match="no shadow variant to promote"):
        Predictor("labels", session).promote_shadow()


def test_shadow_failures_never_reach_the_caller_and_the_report_gives_the_regression_difference(session, archives,
                                                                                              tmp_path):
    pipe = tmp_path / "hold"
    os.mkfifo(pipe)
    session.create_model("linear", container_defs={"ModelDataUrl": str(archives["linear"])})
    session.create_model("picky", container_defs={"ModelDataUrl": str(archives["picky"]),
                                                  "Environment": {"HOLD_PIPE": str(pipe)}})
    session.endpoint_from_production_variants(
        "regress", [production_variant("linear", "local", 1, "Live")],
        shadow_production_variants=[production_variant("picky", "local", 1, "Shadow")])
    # the shadow differs by 0.5 * x3 and fails whenever x1 < 0; the caller always gets production's answer
    for i in range(20):
        x1, x3 = (-1 if i % 2 else 1), i % 4
        data, variant = invoke(session, "regress", f"{x1},1,{x3}".encode())
        assert variant == "Live" and float(data) == x1 + 2 + 3 * x3
    wait_for(lambda: shadow_sent(session, "regress", 20), 60, "20 requests copied to the shadow")
    # while the shadow holds a copy, the callers' requests are answered all the same
    try:
        assert invoke(session, "regress", b"5,0,0") == (b"5.0\n", "Live")
        wait_for(lambda: Path(f"{pipe}.held").exists(), 60, "the shadow to hold its copy")
        for _ in range(5):
            assert invoke(session, "regress", b"1,0,0") == (b"1.0\n", "Live")
    finally:
        release(pipe)
    wait_for(lambda: shadow_sent(session, "regress", 26), 60, "the held copy and those behind it to be sent")
    report = Predictor("regress", session).shadow_report()
    assert report.summary["Shadow"]["Errors"] == 10 and report.summary["Live"]["Errors"] == 0
    assert report.problem_type == "regression" and report.agreement["Compared"] == 16
    # compared rows: x1 = 1 and x3 in (0, 2) alternately (differences 0 and 1), then 6 rows with x3 = 0
    assert report.agreement["MeanAbsoluteDifference"] == pytest.approx(5 / 16)
    assert report.agreement["MaxAbsoluteDifference"] == pytest.approx(1.0)
    assert "Shadow" in repr(report)
    from matplotlib.figure import Figure
    scatter = report.plot(Figure().subplots()).axes[0]
    assert scatter.get_title() == "predictions" and len(scatter.collections[0].get_offsets()) == 16
    with pytest.raises(ValidationError, match="TargetVariant must name one of them"):
        endpoints.invoke_endpoint(session, "regress", b"1,1,1", "text/csv", target_variant="Shadow")
    with pytest.raises(ValidationError, match="problem_type must be"):
        Predictor("regress", session).shadow_report(problem_type="ranking")


def test_the_report_counts_every_copy_the_front_logged_as_answered(session, archives):
    """The front writes metrics.json and shadow.json from one cut of its counters, and the report reads the
    shadow log first: once the log shows a copy answered, every count has it (a copy finishing between two
    separate snapshots once made the report one short of the log). Checked all through a burst of
    traffic, when copies finish while the front writes, then exactly once every copy is answered."""
    for name in ("count-live", "count-shadow"):
        session.create_model(name, container_defs={"ModelDataUrl": str(archives["linear"])})
    session.endpoint_from_production_variants(
        "counted", [production_variant("count-live", "local", 1, "Live")],
        shadow_production_variants=[production_variant("count-shadow", "local", 1, "Shadow")])
    predictor = Predictor("counted", session)

    def logged() -> dict:
        return (variants.shadow_record(session, "counted").get("Counts") or {}).get("Shadow", {})

    def consistent():
        """One look, as a reader sees it: the front's two files read log first, and the report."""
        copies = logged().get("Sent", 0)
        assert (variants.variant_metrics(session, "counted").get("Shadow") or {}).get("Invocations", 0) >= copies
        report = predictor.shadow_report()
        live, shadow = report.summary["Live"], report.summary["Shadow"]
        assert report.agreement["Compared"] <= shadow["Invocations"] <= live["Invocations"] - shadow["Dropped"]
        return report

    n, threads, errors = 100, 2, []

    def send():
        try:
            for i in range(n):
                assert invoke(session, "counted", f"{i},1,1".encode()) == (f"{i + 5}.0\n".encode(), "Live")
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
    senders = [threading.Thread(target=send) for _ in range(threads)]
    for t in senders:
        t.start()
    while any(t.is_alive() for t in senders):
        consistent()
    for t in senders:
        t.join()
    assert errors == []
    # the event: every copy answered (or dropped, past the front's queue), as the front's log says
    total = n * threads
    wait_for(lambda: logged().get("Sent", 0) + logged().get("Dropped", 0) == total, 60, "every copy answered")
    report = consistent()
    sent = logged()["Sent"]
    assert report.summary["Live"]["Invocations"] == total and report.summary["Shadow"]["Invocations"] == sent
    assert report.agreement["Compared"] == sent and sent + report.summary["Shadow"]["Dropped"] == total
    assert variants.variant_metrics(session, "counted")["Shadow"]["Invocations"] == sent
    session.delete_endpoint("counted")


def test_predictions_are_read_from_json_and_csv_bodies():
    labels = prediction_values("1\n0\n")
    assert labels == [1, 0] and all(isinstance(v, int) for v in labels)  # labels, where "1.0" would be a score
    assert prediction_values("1.0") == [1.0] and isinstance(prediction_values("1.0")[0], float)
    assert prediction_values("[0.5, 1.5]") == [0.5, 1.5]
    assert prediction_values('{"predictions": [{"score": 0.2}, {"predicted_label": 1}]}') == [0.2, 1]
    assert prediction_values("cat,0.9\ndog,0.8") == ["cat", "dog"]
    assert prediction_values(None) is None
