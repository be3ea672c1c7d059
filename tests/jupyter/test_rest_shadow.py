"""The console's shadow-test routes (/nbsage/api/endpoints/NAME/shadow[/promote]) on a real Jupyter server.

The report's numbers come from the files an endpoint's front writes (metrics.json, shadow.json); here
they are written as the front writes them, so the routes are tested without starting model servers
(tests/serving/test_shadow.py runs the real thing)."""
from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError

pytest.importorskip("pytest_jupyter")

pytestmark = pytest.mark.filterwarnings("error::jupyter_server.utils.JupyterServerAuthWarning")


def variant(name: str) -> dict:
    return {"VariantName": name, "ModelName": f"model-{name}", "InstanceType": "local", "InitialInstanceCount": 1,
            "InitialVariantWeight": 1.0, "DesiredWeight": 1.0, "DesiredInstanceCount": 1, "Serve": {}}


@pytest.fixture
def shadowed(tmp_path, monkeypatch):
    """An endpoint record with a shadow variant and the files its front would have written."""
    from nbsage.serving.front import METRICS_NAME, SHADOW_NAME, write_json
    from nbsage.session import Session
    session = Session.default()
    for name, shadows in (("shadowed", [variant("Shadow")]), ("alone", [])):
        config = {"Front": True, "EndpointConfigName": name, "Generation": 1, "ProductionVariants": [variant("Live")]}
        if shadows:
            config["ShadowProductionVariants"] = shadows
        session.store.create_endpoint(name, config)
        session.store.update_endpoint(name, status="InService")
    folder = session.endpoints_dir / "shadowed"
    folder.mkdir(parents=True)
    pairs = [{"shadow_variant": "Shadow", "production_status": 200, "shadow_status": 200, "production_ms": 1.0,
              "shadow_ms": 2.0, "production": f"{p}\n", "shadow": f"{s}\n"} for p, s in ((0, 0), (1, 0), (1, 1), (1, 1))]
    write_json(folder / SHADOW_NAME, {"Counts": {"Shadow": {"Sent": 4, "Errors": 0, "Dropped": 0}}, "Pairs": pairs})
    write_json(folder / METRICS_NAME, {"Timestamp": 0, "Variants": {
        "Live": {"Invocations": 4, "Invocation4XXErrors": 0, "Invocation5XXErrors": 0},
        "Shadow": {"Invocations": 4, "Invocation4XXErrors": 0, "Invocation5XXErrors": 1}}})
    return session


async def test_the_shadow_report_route_answers_the_comparison(jp_fetch, shadowed):
    report = json.loads((await jp_fetch("nbsage", "api", "endpoints", "shadowed", "shadow")).body)
    assert report["ProductionVariant"] == "Live" and report["ShadowVariant"] == "Shadow"
    assert report["Agreement"]["ProblemType"] == "classification" and report["Agreement"]["LabelAgreement"] == 0.75
    assert report["Agreement"]["Confusion"] == {"0": {"0": 1}, "1": {"0": 1, "1": 2}}
    assert report["Variants"]["Shadow"]["Errors"] == 1 and report["Variants"]["Shadow"]["LatencyP50"] == 2.0


@pytest.mark.parametrize("path, method, code", [(("nope", "shadow"), "GET", 404), (("alone", "shadow"), "GET", 409),
                                                (("alone", "shadow", "promote"), "POST", 409)])
async def test_shadow_routes_refuse_unknown_endpoints_and_endpoints_without_a_shadow(jp_fetch, shadowed, path,
                                                                                   method, code):
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("nbsage", "api", "endpoints", *path, method=method, body=b"{}" if method == "POST" else None)
    assert info.value.code == code
    assert "shadow" in json.loads(info.value.response.body)["message"] or code == 404
