"""The console's REST API (/nbsage/api/) on a real Jupyter server, with real jobs and an endpoint.

One tiny XGBoost job is trained for the module; each test points NBSAGE_HOME at its home.
"""
from __future__ import annotations

import json
import os

import pytest
from tornado.httpclient import HTTPClientError

from support import HELD, release, source, wait_for

pytest.importorskip("pytest_jupyter")

pytestmark = pytest.mark.filterwarnings("error::jupyter_server.utils.JupyterServerAuthWarning")

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A home with one completed 3-round XGBoost job and one record of a kind with no handle class."""
    home = tmp_path_factory.mktemp("console-home")
    data = tmp_path_factory.mktemp("console-data")
    (data / "train.csv").write_text("".join(f"{i % 2},{i},{(i * 7) % 5}\n" for i in range(40)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBSAGE_HOME", str(home))
        from nbsage.estimator import Estimator
        from nbsage.inputs import TrainingInput
        from nbsage.session import Session
        est = Estimator("xgboost", {"num_round": 3, "objective": "binary:logistic"},
                        sagemaker_session=Session.default())
        est.fit({"train": TrainingInput(str(data), content_type="text/csv"),
                 "validation": TrainingInput(str(data), content_type="text/csv")},
                job_name="rest-xgb", wait=True, logs=False)
        Session.default().store.create_job("rest-labeling", {"TaskTitle": "cats"}, "local", None, kind="labeling")
    return home


@pytest.fixture
def home(trained, monkeypatch):
    monkeypatch.setenv("NBSAGE_HOME", str(trained))
    return trained


async def get(jp_fetch, *path, **params):
    response = await jp_fetch("nbsage", "api", *path, params=params or None)
    return json.loads(response.body)


async def refused(jp_fetch, *path, method="GET", body=None, **params) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("nbsage", "api", *path, method=method, body=body, params=params or None,
                       allow_nonstandard_methods=True)
    return info.value.code, json.loads(info.value.response.body)


async def test_jobs_lists_every_kind_with_sagemaker_field_names(jp_fetch, home):
    jobs = (await get(jp_fetch, "jobs"))["Jobs"]
    by_name = {j.get("TrainingJobName") or j.get("LabelingJobName"): j for j in jobs}
    xgb = by_name["rest-xgb"]
    assert xgb["TrainingJobStatus"] == "Completed" and xgb["SecondaryStatus"] == "Completed"
    assert xgb["nbsage:Kind"] == "training" and xgb["nbsage:Backend"] == "local"
    assert xgb["nbsage:InstanceCount"] == 1 and xgb["nbsage:Algorithm"] == "xgboost"
    assert xgb["nbsage:ObjectiveMetric"]["MetricName"].startswith("validation:")
    assert by_name["rest-labeling"]["nbsage:Kind"] == "labeling"
    assert "LabelingJobStatus" in by_name["rest-labeling"]
    kinds = (await get(jp_fetch, "job-kinds"))["JobKinds"]
    assert {"training", "processing", "labeling"} <= set(kinds)


async def test_jobs_filter_by_status_kind_and_text(jp_fetch, home):
    names = lambda rows: [r.get("TrainingJobName") or r.get("LabelingJobName") for r in rows]  # noqa: E731
    assert names((await get(jp_fetch, "jobs", kind="training"))["Jobs"]) == ["rest-xgb"]
    assert names((await get(jp_fetch, "jobs", status="Completed"))["Jobs"]) == ["rest-xgb"]
    assert names((await get(jp_fetch, "jobs", text="XGBOOST"))["Jobs"]) == ["rest-xgb"]
    assert names((await get(jp_fetch, "jobs", text="nothing-like-it"))["Jobs"]) == []
    code, error = await refused(jp_fetch, "jobs", status="Running")
    assert code == 400 and "InProgress" in error["message"] and "\n" not in error["message"]


async def test_describe_metrics_logs_and_artifacts(jp_fetch, home):
    desc = await get(jp_fetch, "jobs", "rest-xgb")
    assert desc["TrainingJobName"] == "rest-xgb" and desc["HyperParameters"]["num_round"] == "3"
    assert [t["Status"] for t in desc["SecondaryStatusTransitions"]][-1] == "Completed"
    metrics = (await get(jp_fetch, "jobs", "rest-xgb", "metrics"))["Metrics"]
    steps = [m["Step"] for m in metrics if m["MetricName"] == "train:logloss"]
    assert steps == [0, 1, 2]
    later = (await get(jp_fetch, "jobs", "rest-xgb", "metrics", after=metrics[-2]["id"]))["Metrics"]
    assert later == metrics[-1:]
    logs = await get(jp_fetch, "jobs", "rest-xgb", "logs")
    messages = [e["Message"] for e in logs["events"]]
    assert logs["ended"] and messages and not any(m.startswith("#metric") for m in messages)
    tail = await get(jp_fetch, "jobs", "rest-xgb", "logs", since=logs["events"][-2]["seq"])
    assert [e["Message"] for e in tail["events"]] == messages[-1:] and tail["next"] == logs["next"]
    last_two = await get(jp_fetch, "jobs", "rest-xgb", "logs", tail=2)
    assert [e["Message"] for e in last_two["events"]] == messages[-2:]
    listing = await get(jp_fetch, "jobs", "rest-xgb", "artifacts")
    assert "xgboost-model" in [f["Name"] for f in listing["Files"]]
    download = await jp_fetch("nbsage", "api", "jobs", "rest-xgb", "artifacts", params={"download": "1"})
    assert download.headers["Content-Type"] == "application/gzip" and download.body[:2] == b"\x1f\x8b"


async def test_unknown_names_and_bad_arguments_are_one_line_4xx(jp_fetch, home):
    code, error = await refused(jp_fetch, "jobs", "rest-xgbb")
    assert code == 404 and "rest-xgb" in error["message"]  # did you mean
    code, error = await refused(jp_fetch, "jobs", "rest-xgb", "logs", since="soon")
    assert code == 400 and "since" in error["message"]
    code, error = await refused(jp_fetch, "endpoints", "nope")
    assert code == 404 and "nope" in error["message"]
    code, error = await refused(jp_fetch, "jobs", "rest-xgb", "stop", method="POST", body=b"")
    assert code == 409 and "Completed" in error["message"]
    code, error = await refused(jp_fetch, "jobs", "rest-xgb", "deploy", method="POST", body=b"[1]")
    assert code == 400 and "JSON object" in error["message"]
    code, error = await refused(jp_fetch, "jobs", "rest-xgb", "deploy", method="POST",
                                body=json.dumps({"InitialInstanceCount": 0}).encode())
    assert code == 400 and "InitialInstanceCount" in error["message"]
    code, error = await refused(jp_fetch, "endpoints", "nope", method="DELETE")
    assert code == 404
    for error in [error]:
        assert "Traceback" not in json.dumps(error)


async def test_without_the_token_every_route_is_refused(jp_fetch, home, http_server_client, jp_base_url):
    from jupyter_server.utils import url_path_join
    for method, path, body in [("GET", "jobs", None), ("GET", "jobs/rest-xgb/logs", None),
                               ("GET", "models", None), ("POST", "jobs/rest-xgb/stop", b""),
                               ("DELETE", "endpoints/any", None), ("GET", "events", None)]:
        with pytest.raises(HTTPClientError) as info:
            await http_server_client.fetch(url_path_join(jp_base_url, "nbsage/api", path), method=method,
                                           body=body, allow_nonstandard_methods=True)
        assert info.value.code == 403, (method, path)


def test_every_route_is_behind_authentication(jp_serverapp):
    from nbsage.jupyter.handlers import routes
    app = jp_serverapp.web_app
    assert [m for path, handler in routes("/") for m in app._check_handler_auth(path, handler)] == []


async def test_openapi_description_names_every_route(jp_fetch, home):
    import yaml

    from nbsage.jupyter.handlers import routes
    text = (await jp_fetch("nbsage", "api", "openapi.yaml")).body.decode()
    described = set(yaml.safe_load(text)["paths"])
    served = {path.split("/nbsage/api", 1)[1].replace("(?P<name>[^/]+)", "{name}") for path, _ in routes("/")}
    assert served == described


async def test_places_and_models(jp_fetch, home):
    places = {p["PlaceName"]: p for p in (await get(jp_fetch, "places"))["Places"]}
    assert "local" in places and "Unavailable" not in places["local"]
    models = (await get(jp_fetch, "models"))["Models"]
    assert [m["ModelName"] for m in models] == ["rest-xgb"]
    assert models[0]["PrimaryContainer"]["ModelDataUrl"].endswith("model.tar.gz")


async def test_deploy_invoke_and_delete_an_endpoint(jp_fetch, home):
    response = await jp_fetch("nbsage", "api", "jobs", "rest-xgb", "deploy", method="POST",
                              body=json.dumps({"EndpointName": "rest-ep"}).encode())
    assert response.code == 201 and json.loads(response.body)["EndpointName"] == "rest-ep"
    code, error = await refused(jp_fetch, "jobs", "rest-xgb", "deploy", method="POST",
                                body=json.dumps({"EndpointName": "rest-ep"}).encode())
    assert code == 409 and "already exists" in error["message"]
    from nbsage.serving.endpoints import wait_for_endpoint
    from nbsage.session import Session
    assert wait_for_endpoint(Session.default(), "rest-ep", timeout=120)["EndpointStatus"] == "InService"
    answer = await jp_fetch("nbsage", "api", "endpoints", "rest-ep", "invoke", method="POST",
                            body=json.dumps({"Body": "1,2\n3,4", "ContentType": "text/csv"}).encode())
    answer = json.loads(answer.body)
    assert answer["StatusCode"] == 200 and len(answer["Body"].split()) == 2
    desc = await get(jp_fetch, "endpoints", "rest-ep")
    assert desc["nbsage:Invocations"]["Invocations"] == 1 and desc["ProductionVariants"][0]["DesiredInstanceCount"] == 1
    models = (await get(jp_fetch, "models"))["Models"]
    assert models[0]["nbsage:Endpoints"] == ["rest-ep"]
    pid = Session.default().store.get_endpoint("rest-ep")["pid"]
    response = await jp_fetch("nbsage", "api", "endpoints", "rest-ep", method="DELETE")
    assert response.code == 204
    assert (await get(jp_fetch, "endpoints"))["Endpoints"] == []
    from nbsage.store.metadata import pid_alive
    wait_for(lambda: not pid_alive(pid), timeout=30, what="the endpoint's server to end")


async def test_stop_a_running_job_with_its_changes_pushed(jp_fetch, jp_ws_fetch, tmp_path):  # own NBSAGE_HOME
    """The events websocket announces the new job, its log lines and its end; stop ends it Stopped."""
    import asyncio

    from nbsage.estimator import Estimator
    from nbsage.session import Session
    socket = await jp_ws_fetch("nbsage", "api", "events")
    notices: list[dict] = []

    async def notice(predicate, what):
        async def read():
            while True:
                for n in notices:
                    if predicate(n):
                        return n
                message = await socket.read_message()
                assert message is not None, "the events socket closed"
                notices.append(json.loads(message))
        return await asyncio.wait_for(read(), timeout=120)

    pipe = tmp_path / "release"
    os.mkfifo(pipe)
    est = Estimator(entry_point="train.py", source_dir=str(source(tmp_path, HELD)),
                    hyperparameters={"release": str(pipe)}, sagemaker_session=Session.default())
    job = est.fit(wait=False, job_name="rest-held")
    try:
        await notice(lambda n: n["type"] == "jobs" and "rest-held" in n["changed"], "the new job")
        # the notice of a log line comes after the line is in the store
        await notice(lambda n: n["type"] == "logs" and n["job"] == "rest-held"
                     and any("waiting for the release" in line for line in job.logs()), "its log lines")
        response = await jp_fetch("nbsage", "api", "jobs", "rest-held", "stop", method="POST", body=b"")
        assert json.loads(response.body)["TrainingJobStatus"] in ("Stopping", "Stopped")
        notices.clear()
        await notice(lambda n: n["type"] == "jobs" and "rest-held" in n["changed"]
                     and job.describe()["TrainingJobStatus"] == "Stopped", "its end")
    finally:
        release(pipe)
        socket.close()
