"""Write notebooks/production_endpoint.ipynb (run `python notebooks/make_production_endpoint_notebook.py`
after editing here)."""
from __future__ import annotations

from notebook_builder import write

CELLS = [
    ("md", """# A production endpoint: variants, a shadow test, automatic scaling, capture and drift

What SageMaker offers an endpoint once it is in production — production variants sharing traffic by
weight, a shadow variant tried on a copy of live traffic, automatic scaling that follows the load, data
capture and Model Monitor's drift checks — on this machine, in SageMaker's API shapes. The models are
two small XGBoost classifiers trained on four features of scikit-learn's breast cancer data, so nothing
is downloaded.

Run headless with `python -m nbsage.demo notebooks/production_endpoint.ipynb`, or cell by cell in
JupyterLab."""),
    ("params", """# Parameters (papermill overrides these)
num_round = 20
ab_requests = 200         # requests sent to the 70/30 endpoint
shadow_requests = 60      # requests whose copies the shadow answers
load_clients = 4          # threads of the generated load
evaluation_period = 1.0   # seconds between autoscaling evaluations (SageMaker's metrics are per minute: 60)
drift_batches = 10        # captured requests of 50 shifted rows each
seed = 7"""),
    ("md", """## 1. Two models

Model A and model B differ in tree depth. Each training job writes a `model.tar.gz`; `create()` records
it as a named model (CreateModel) for endpoint configs to name."""),
    ("code", """import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

import nbsage
from nbsage.session import production_variant

data = load_breast_cancer(as_frame=True)
features = ["mean radius", "mean texture", "mean smoothness", "mean symmetry"]
X, y = data.data[features].to_numpy(), data.target.to_numpy()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)
train = pd.DataFrame(np.column_stack([y_train, X_train]))

session = nbsage.Session()
estimators = {name: nbsage.Estimator("xgboost", hyperparameters={"objective": "binary:logistic",
                                                                  "num_round": num_round, "max_depth": depth})
              for name, depth in (("cancer-a", 2), ("cancer-b", 5))}
jobs = {name: estimator.fit({"train": train}, wait=False) for name, estimator in estimators.items()}  # side by side
models = {}
for name, job in jobs.items():
    assert job.wait_quietly()["TrainingJobStatus"] == "Completed"
    models[name] = estimators[name].create_model(name=name)
    models[name].create()
print("models:", ", ".join(models))"""),
    ("md", """## 2. Two production variants, 70/30

`endpoint_from_production_variants` creates an endpoint config and an endpoint running it. The endpoint
has one address; behind it each variant has its own model servers, and each request goes to a variant
drawn by weight (or to the one `TargetVariant` names)."""),
    ("code", """from collections import Counter

from nbsage.boto_clients import client

ab = session.endpoint_from_production_variants("cancer-ab", [
    production_variant("cancer-a", variant_name="A", initial_weight=70),
    production_variant("cancer-b", variant_name="B", initial_weight=30)])
runtime = client("sagemaker-runtime", sagemaker_session=session)
rows = [",".join(f"{v:.6g}" for v in x) for x in X_test]
served = Counter()
for i in range(ab_requests):
    answer = runtime.invoke_endpoint(EndpointName=ab, Body=rows[i % len(rows)], ContentType="text/csv")
    served[answer["InvokedProductionVariant"]] += 1
print({name: f"{count / ab_requests:.0%}" for name, count in sorted(served.items())})
pd.DataFrame(session.describe_endpoint(ab)["ProductionVariants"])[
    ["VariantName", "CurrentWeight", "CurrentInstanceCount"]]"""),
    ("md", """## 3. A shadow test

Model B as a shadow of model A: it gets a copy of the live requests after the caller has A's answer, its
answers never reach the caller, and its failures never fail a request. The report compares the two —
latency and errors, as SageMaker's shadow tests do, and also the predictions. Both models answer a
probability, so the report compares the scores as numbers (mean and largest difference); for models that
answer labels it shows how often they agree and the confusion between them."""),
    ("code", """from nbsage.predictor import Predictor
from nbsage.deserializers import CSVDeserializer
from nbsage.serializers import CSVSerializer

session.delete_endpoint(ab)
shadowed = session.endpoint_from_production_variants(
    "cancer-prod", [production_variant("cancer-a", variant_name="A")],
    shadow_production_variants=[production_variant("cancer-b", variant_name="ShadowB")])
predictor = Predictor(shadowed, sagemaker_session=session, serializer=CSVSerializer(),
                      deserializer=CSVDeserializer())
for i in range(shadow_requests):
    predictor.predict(X_test[i % len(X_test)])"""),
    ("code", """import time

deadline = time.monotonic() + 60  # the shadow answers off the request path: wait for its copies
while True:
    report = predictor.shadow_report()
    if report.summary.get(report.shadow, {}).get("Invocations", 0) >= shadow_requests or time.monotonic() > deadline:
        break
    time.sleep(0.2)
report"""),
    ("md", """## 4. Automatic scaling under a generated load

A target-tracking policy on variant A keeps about one request in flight per instance
(`SageMakerVariantConcurrentRequestsPerModelHighResolution`), between 1 and 3 instances. A few client
threads then send requests until the variant has scaled out and served some more, and stop; with no
traffic it scales back in after its cooldown. Every change is a scaling activity. The evaluation period
is short here so that the notebook runs in seconds; SageMaker's is a minute (the default)."""),
    ("code", """import threading

concurrency = "SageMakerVariantConcurrentRequestsPerModelHighResolution"
predictor.enable_autoscaling(min_capacity=1, max_capacity=3, target_value=1.0, metric=concurrency,
                             scale_out_cooldown=0, scale_in_cooldown=2, variant_name="A",
                             evaluation_period=evaluation_period)

start = time.monotonic()
latencies, counts, failures = [], [], []
stop_load, stop_watch = threading.Event(), threading.Event()

def load():
    for i in range(20000):  # bounded: stops once the scale-out has been seen, or after 20,000 requests
        if stop_load.is_set():
            return
        t = time.monotonic()
        try:
            predictor.predict(X_test[i % len(X_test)])
        except Exception as e:
            failures.append(str(e))
        latencies.append((t - start, (time.monotonic() - t) * 1000))

def watch():
    while not stop_watch.is_set():
        variant = predictor.describe()["ProductionVariants"][0]
        counts.append((time.monotonic() - start, variant["CurrentInstanceCount"]))
        stop_watch.wait(0.1)

def scaled(direction):
    return [a for a in predictor.scaling_activities()
            if a["Direction"] == direction and a["StatusCode"] == "Successful"]

def wait_until(condition, what, timeout=180):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout} s")
        time.sleep(0.1)

watcher = threading.Thread(target=watch)
watcher.start()
clients = [threading.Thread(target=load) for _ in range(load_clients)]
for c in clients:
    c.start()
wait_until(lambda: scaled("out"), "scale-out")
served_before = len(latencies)
wait_until(lambda: len(latencies) > served_before + 100, "requests after the scale-out")
stop_load.set()
for c in clients:
    c.join()
load_ended = time.monotonic() - start
wait_until(lambda: scaled("in"), "scale-in after the load")
time.sleep(0.5)  # a last look at the count for the plot
stop_watch.set()
watcher.join()
scale_outs, scale_ins = len(scaled("out")), len(scaled("in"))
print(f"{len(latencies)} requests, {len(failures)} failed")
pd.DataFrame(predictor.scaling_activities())[["StartTime", "FromInstanceCount", "ToInstanceCount", "StatusCode",
                                              "Cause"]]"""),
    ("code", """%matplotlib inline
import matplotlib.pyplot as plt

fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
top.step([t for t, _ in counts], [n for _, n in counts], where="post")
top.set_ylabel("instances of A")
top.set_ylim(0, 3.5)
top.axvline(load_ended, color="gray", linestyle="--", label="load stops")
top.legend(loc="upper right")
bottom.scatter([t for t, _ in latencies], [ms for _, ms in latencies], s=3, alpha=0.4)
bottom.set_yscale("log")
bottom.set_ylabel("latency (ms)")
bottom.set_xlabel("seconds since the load started")
fig.suptitle("Variant A follows the load: instance count and request latency")
plt.show()"""),
    ("md", """## 5. Data capture, a baseline and drift

A single-model endpoint capturing every request and response (JSON Lines files as SageMaker writes
them). The baseline is what the model sees and answers on the training data: `suggest_baseline`
writes Model Monitor's statistics.json and constraints.json. Then the traffic shifts — `mean texture`
goes up by 40% — and a monitoring run (`run_now`, the hourly schedule's run, here and now) compares
the captured data with the baseline."""),
    ("code", """import tempfile
from pathlib import Path

from nbsage.model_monitor import CronExpressionGenerator, DataCaptureConfig, DatasetFormat, DefaultModelMonitor

work = Path(tempfile.mkdtemp(prefix="production-endpoint-"))
capture = DataCaptureConfig(enable_capture=True, sampling_percentage=100, destination_s3_uri=str(work / "capture"))
captured_model = nbsage.Model(models["cancer-a"].model_data, algorithm="xgboost", sagemaker_session=session,
                              env={"NBSAGE_DATA_CAPTURE_ROLL_SECONDS": "0.5"})
watched = captured_model.deploy(endpoint_name="cancer-watched", data_capture_config=capture,
                                serializer=CSVSerializer(), deserializer=CSVDeserializer())

scores = np.asarray(watched.predict(X_train), dtype=float).ravel()
baseline = pd.DataFrame(np.column_stack([scores, X_train]), columns=["score"] + features)
baseline.to_csv(work / "baseline.csv", index=False)
monitor = DefaultModelMonitor(sagemaker_session=session)
monitor.suggest_baseline(baseline_dataset=str(work / "baseline.csv"), dataset_format=DatasetFormat.csv(header=True),
                         output_s3_uri=str(work / "baseline-results"))
monitor.create_monitoring_schedule(monitor_schedule_name="cancer-watched-hourly", endpoint_input="cancer-watched",
                                   output_s3_uri=str(work / "reports"),
                                   schedule_cron_expression=CronExpressionGenerator.hourly())"""),
    ("code", """rng = np.random.default_rng(seed)
shifted = X_test.copy()
shifted[:, features.index("mean texture")] *= 1.4
for _ in range(drift_batches):
    watched.predict(shifted[rng.choice(len(shifted), 50)])

def captured_lines():
    return sum(len(p.read_text().splitlines()) for p in (work / "capture").rglob("*.jsonl"))

wait_until(lambda: captured_lines() >= drift_batches, "captured requests in their files", timeout=60)
execution = monitor.run_now()
print(execution.summary["MonitoringExecutionStatus"], execution.summary.get("ItemCount"), "records")
violations = monitor.latest_monitoring_constraint_violations().body_dict["violations"]
drift = monitor.drift_report()
drift"""),
    ("md", "## 6. Clean up"),
    ("code", """monitor.delete_monitoring_schedule()
watched.delete_endpoint()
predictor.delete_endpoint()"""),
    ("code", """from IPython.display import display
summary = {"variant split": {k: round(v / ab_requests, 3) for k, v in sorted(served.items())},
           "shadow invocations": report.summary[report.shadow]["Invocations"],
           "most instances": max(n for _, n in counts), "instances at the end": counts[-1][1],
           "scale-outs": scale_outs, "scale-ins": scale_ins,
           "load requests": len(latencies), "failed requests": len(failures),
           "monitoring status": execution.summary["MonitoringExecutionStatus"],
           "drifted features": sorted({v["feature_name"] for v in violations
                                       if v["constraint_check_type"] == "baseline_drift_check"})}
display({"application/vnd.nbsage.summary+json": summary, "text/plain": repr(summary)}, raw=True)"""),
]


if __name__ == "__main__":
    write(CELLS, "production_endpoint.ipynb")
