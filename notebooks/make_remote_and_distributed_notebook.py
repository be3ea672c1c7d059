"""Write notebooks/remote_and_distributed.ipynb (run `python notebooks/make_remote_and_distributed_notebook.py`
after editing here)."""
from __future__ import annotations


from notebook_builder import write

CELLS = [
    ("md", """# Jobs elsewhere: a remote Jupyter kernel and a Dask cluster

The same SageMaker-style training job — built-in XGBoost on scikit-learn's breast-cancer set —
run in two *places* other than this notebook's machine process:

1. **`backend="kernel"`**: in a kernel started through a
   [Jupyter Kernel Gateway](https://jupyter-kernel-gateway.readthedocs.io/) (e.g. one on a GPU box).
   The channels travel through the kernel connection, the job's log and metrics stream back, and
   `model.tar.gz` lands in this notebook's artifact store.
2. **`backend="dask", instance_count=2`**: two hosts on two Dask workers, training one XGBoost
   model together (xgboost's collective, what `xgboost.dask` runs underneath), each host reading
   its own shard of the training channel (`ShardedByS3Key`).

Parameters: `gateway_url` — a running gateway (`http://gpu-box:8888`); empty means this notebook
starts a Kernel Gateway on 127.0.0.1 in a temporary folder and stops it at the end. `scheduler` — a
Dask scheduler (`tcp://host:8786`); empty means the place starts a LocalCluster for the job.

Run headless with `python -m nbsage.demo notebooks/remote_and_distributed.ipynb`, or cell by cell in
JupyterLab."""),
    ("params", """# Parameters (papermill overrides these)
gateway_url = ""   # "" = start a loopback Kernel Gateway here for the demo
scheduler = ""     # "" = a LocalCluster started by the dask place for the job
num_round = 30
max_depth = 3
eta = 0.3
seed = 42"""),
    ("md", """## 1. Data: CSV channels, the training channel in two files

`ShardedByS3Key` gives each host of a multi-instance job its own subset of the channel's files, so
the training set is written as two parts; validation is replicated to every host."""),
    ("code", """from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

data = load_breast_cancer(as_frame=True)
frame = pd.concat([data.target.rename("label"), data.data], axis=1)  # label in the first column
train, validation = train_test_split(frame, test_size=0.3, random_state=seed, stratify=frame.label)

data_dir = Path("data/remote_and_distributed")
(data_dir / "train").mkdir(parents=True, exist_ok=True)
shuffled = train.sample(frac=1.0, random_state=seed)
half = len(shuffled) // 2
for i, part in enumerate([shuffled.iloc[:half], shuffled.iloc[half:]]):
    part.to_csv(data_dir / "train" / f"part-{i}.csv", header=False, index=False)
validation.to_csv(data_dir / "validation.csv", header=False, index=False)
print(f"train {len(train)} rows in 2 files, validation {len(validation)} rows; {frame.shape[1] - 1} features")"""),
    ("md", """## 2. The places

`%sm_places` lists where jobs can run here: this machine, a Jupyter kernel, a Dask cluster."""),
    ("code", """%load_ext nbsage
%sm_places"""),
    ("md", """## 3. A job in a kernel behind a Kernel Gateway

With no `gateway_url` given, start a Kernel Gateway on 127.0.0.1 — as one would on a remote machine:
in a folder of its own, with its own HOME and none of this notebook's `NBSAGE_*` settings, so the
job's files on the kernel's side live there, not here."""),
    ("code", """import os, signal, socket, subprocess, sys, tempfile, time
import requests

started_gateway = None
if gateway_url:
    gateway = gateway_url
else:
    gateway_dir = Path(tempfile.mkdtemp(prefix="nbsage-gateway-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gateway = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBSAGE_", "JUPYTER_"))}
    env["HOME"] = str(gateway_dir)
    gateway_log = open(gateway_dir / "gateway.log", "wb")
    started_gateway = subprocess.Popen(
        [sys.executable, "-m", "kernel_gateway", "--KernelGatewayApp.ip=127.0.0.1",
         f"--KernelGatewayApp.port={port}"],
        cwd=gateway_dir, env=env, stdout=gateway_log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{gateway}/api", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        if started_gateway.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the Kernel Gateway did not start:\\n"
                               + (gateway_dir / "gateway.log").read_text()[-2000:])
        time.sleep(0.2)
print("Kernel Gateway:", gateway, "(started here for the demo)" if started_gateway else "")"""),
    ("md", """The kernel place, described by asking a kernel the gateway starts:"""),
    ("code", """%sm_places --backend kernel --gateway {gateway} --kernel python3"""),
    ("md", """The job: the same `Estimator` as on this machine, with `backend="kernel"` and the gateway. The
log below is streamed back from the kernel."""),
    ("code", """import nbsage
from nbsage import TrainingInput

hyperparameters = {"objective": "binary:logistic", "eval_metric": "auc", "num_round": num_round,
                   "max_depth": max_depth, "eta": eta}
kernel_estimator = nbsage.Estimator("xgboost", hyperparameters=hyperparameters, instance_type="local",
                                    backend="kernel", gateway=gateway, kernel="python3")
kernel_job = kernel_estimator.fit({
    "train": TrainingInput(str(data_dir / "train"), content_type="text/csv"),
    "validation": TrainingInput(str(data_dir / "validation.csv"), content_type="text/csv"),
})
kernel_job"""),
    ("code", """kernel_description = kernel_job.describe()
kernel_auc = kernel_job.final_metrics()["validation:auc"]
print("job:", kernel_job.name)
print("status:", kernel_description["TrainingJobStatus"])
print("final metrics:", {k: round(v, 4) for k, v in kernel_job.final_metrics().items()})
print("model artifact (in this notebook's store):", kernel_estimator.model_data)"""),
    ("md", """## 4. The same job on two Dask workers

`instance_count=2`: host `algo-1` and host `algo-2`, one per worker, each with its own shard of the
training files; they train one model together, and `algo-1` uploads it."""),
    ("code", """dask_estimator = nbsage.Estimator("xgboost", hyperparameters=hyperparameters, instance_type="local",
                                  instance_count=2, backend="dask", scheduler=scheduler or None)
dask_job = dask_estimator.fit({
    "train": TrainingInput(str(data_dir / "train"), content_type="text/csv", distribution="ShardedByS3Key"),
    "validation": TrainingInput(str(data_dir / "validation.csv"), content_type="text/csv"),
})
dask_job"""),
    ("code", """dask_description = dask_job.describe()
dask_auc = dask_job.final_metrics()["validation:auc"]
print("job:", dask_job.name)
print("status:", dask_description["TrainingJobStatus"])
print("final metrics:", {k: round(v, 4) for k, v in dask_job.final_metrics().items()})
print("model artifact:", dask_estimator.model_data)"""),
    ("md", """## 5. Compare

Both models are plain `model.tar.gz` files holding `xgboost-model`; their validation AUCs:"""),
    ("code", """import tarfile, tempfile
import xgboost as xgb

def trees(model_data):
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(model_data) as tar:
            tar.extractall(tmp, filter="data")
        booster = xgb.Booster()
        booster.load_model(bytearray(Path(tmp, "xgboost-model").read_bytes()))
        return booster.num_boosted_rounds()

comparison = pd.DataFrame([
    {"place": "kernel (gateway)", "job": kernel_job.name, "status": kernel_description["TrainingJobStatus"],
     "validation:auc": round(kernel_auc, 4), "trees": trees(kernel_estimator.model_data)},
    {"place": "dask, 2 workers", "job": dask_job.name, "status": dask_description["TrainingJobStatus"],
     "validation:auc": round(dask_auc, 4), "trees": trees(dask_estimator.model_data)},
])
comparison"""),
    ("code", """%sm_jobs --limit 2"""),
    ("md", "## 6. Clean up"),
    ("code", """if started_gateway is not None:  # the gateway started here, with any kernel it still has
    os.killpg(started_gateway.pid, signal.SIGTERM)
    try:
        started_gateway.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(started_gateway.pid, signal.SIGKILL)
        started_gateway.wait()
    gateway_log.close()
    print("stopped the Kernel Gateway at", gateway)"""),
    ("code", """from IPython.display import display
summary = {"kernel job": kernel_job.name, "kernel status": kernel_description["TrainingJobStatus"],
           "kernel validation:auc": round(kernel_auc, 4),
           "dask job": dask_job.name, "dask status": dask_description["TrainingJobStatus"],
           "dask validation:auc": round(dask_auc, 4), "dask instance count": 2,
           "kernel model": kernel_estimator.model_data, "dask model": dask_estimator.model_data}
display({"application/vnd.nbsage.summary+json": summary, "text/plain": repr(summary)}, raw=True)"""),
]


if __name__ == "__main__":
    write(CELLS, "remote_and_distributed.ipynb")
