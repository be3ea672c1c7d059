"""Write notebooks/deepar.ipynb (run `python notebooks/make_deepar_notebook.py` after editing here)."""
from __future__ import annotations


from notebook_builder import write

CELLS = [
    ("md", """# DeepAR forecasting with nbsage

SageMaker's built-in DeepAR — same hyperparameters, JSON Lines records, metrics and endpoint
request/response shapes — trained and served on this machine. The data is the monthly El Niño
sea-surface temperature record that ships with statsmodels (1950–2010), so nothing is downloaded.

The model learns from the series' own past (lags of 1–7, 11–13, 23–25 and 35–37 months for
monthly data) and the month of the year, and forecasts the next `prediction_length` months as
100 sample paths, from which the endpoint returns the mean and any quantiles.

Run headless with `python -m nbsage.demo notebooks/deepar.ipynb`, or cell by cell in JupyterLab."""),
    ("params", """# Parameters (papermill overrides these)
epochs = 60
context_length = 24
prediction_length = 12
test_windows = 12
mini_batch_size = 64
learning_rate = 0.005
num_eval_samples = 100"""),
    ("md", """## 1. Data: one JSON Lines record per series

DeepAR reads `{"start": "YYYY-MM-DD HH:MM:SS", "target": [...]}` records (missing values as
`"NaN"`). The training channel holds the series up to the first forecast start; the test
channel holds the series up to the end of each of the last `test_windows` forecast windows —
DeepAR scores the last `prediction_length` points of each test record."""),
    ("code", """import json
from pathlib import Path

import numpy as np
from statsmodels.datasets import elnino

frame = elnino.load().data
sst = frame.drop(columns="YEAR").to_numpy(dtype=float).ravel()   # Jan 1950 .. Dec 2010
start = "1950-01-01 00:00:00"

def record(values):
    return {"start": start, "target": ["NaN" if np.isnan(v) else round(float(v), 3) for v in values]}

first_cut = len(sst) - prediction_length - test_windows + 1
train_records = [record(sst[:first_cut])]
test_records = [record(sst[:first_cut + k + prediction_length]) for k in range(test_windows)]

data_dir = Path("data/deepar")
data_dir.mkdir(parents=True, exist_ok=True)
for name, records in [("train", train_records), ("test", test_records)]:
    (data_dir / f"{name}.json").write_text("".join(json.dumps(r) + "\\n" for r in records))
print(f"{len(sst)} months; training on the first {first_cut}, {len(test_records)} test windows of {prediction_length}")"""),
    ("md", """## 2. Train SageMaker's built-in DeepAR

A real training job: the log shows SageMaker's lines (`#quality_metric`, `#test_score`), and the
job's checkpoints let a stopped job resume from its last epoch."""),
    ("code", """import nbsage
from nbsage import TrainingInput

estimator = nbsage.Estimator(
    "deepar",
    hyperparameters={
        "time_freq": "M",
        "context_length": context_length,
        "prediction_length": prediction_length,
        "epochs": epochs,
        "mini_batch_size": mini_batch_size,
        "learning_rate": learning_rate,
        "likelihood": "student-T",
        "num_eval_samples": num_eval_samples,
        "test_quantiles": [0.1, 0.5, 0.9],
    },
    instance_type="local",
)
job = estimator.fit({
    "train": TrainingInput(str(data_dir / "train.json"), content_type="application/jsonlines"),
    "test": TrainingInput(str(data_dir / "test.json"), content_type="application/jsonlines"),
})
metrics = job.final_metrics()
print("test:RMSE", round(metrics["test:RMSE"], 4), " test:mean_wQuantileLoss", round(metrics["test:mean_wQuantileLoss"], 4))"""),
    ("md", """The baseline a forecaster must beat: *seasonal naive*, which repeats the same months of the
previous year. Scored on the same windows with the same code as the job's test metrics:"""),
    ("code", """from nbsage.algorithms.deepar.evaluation import score, seasonal_naive

histories = [np.asarray(sst[:first_cut + k]) for k in range(test_windows)]
actual = np.stack([sst[first_cut + k:first_cut + k + prediction_length] for k in range(test_windows)])
naive = score(seasonal_naive(histories, prediction_length, 12), actual, [0.1, 0.5, 0.9])
print(f"seasonal naive: RMSE {naive['RMSE']:.4f}, mean_wQuantileLoss {naive['mean_wQuantileLoss']:.4f}")
print(f"DeepAR:         RMSE {metrics['test:RMSE']:.4f}, mean_wQuantileLoss {metrics['test:mean_wQuantileLoss']:.4f}")"""),
    ("md", """## 3. Deploy and forecast

The endpoint takes SageMaker's DeepAR request — `instances` plus a `configuration` naming the
outputs — and answers `{"predictions": [{"mean": [...], "quantiles": {"0.1": [...], ...}}]}`."""),
    ("code", """from nbsage.deserializers import JSONDeserializer
from nbsage.serializers import JSONSerializer

predictor = estimator.deploy(initial_instance_count=1, instance_type="local",
                             serializer=JSONSerializer(), deserializer=JSONDeserializer())
history = sst[:len(sst) - prediction_length]                      # forecast the last year of the record
request = {"instances": [record(history)],
           "configuration": {"num_samples": 200, "output_types": ["mean", "quantiles"],
                             "quantiles": ["0.1", "0.5", "0.9"]}}
forecast = predictor.predict(request)["predictions"][0]
print({k: (len(v) if isinstance(v, list) else sorted(v)) for k, v in forecast.items()})"""),
    ("code", """%matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd

months = pd.period_range("1950-01", periods=len(sst), freq="M").to_timestamp()
future = months[-prediction_length:]
shown = slice(len(sst) - 6 * 12, len(sst))
fig, ax = plt.subplots(figsize=(10, 4))
ax.plot(months[shown], sst[shown], color="black", lw=1.2, label="observed")
ax.fill_between(future, forecast["quantiles"]["0.1"], forecast["quantiles"]["0.9"], color="tab:blue",
                alpha=0.25, label="10%-90% band")
ax.plot(future, forecast["quantiles"]["0.5"], color="tab:blue", lw=1.5, label="median forecast")
ax.plot(future, forecast["mean"], color="tab:orange", lw=1, ls="--", label="mean forecast")
ax.axvline(future[0], color="grey", lw=0.8, ls=":")
ax.set_title("El Niño sea-surface temperature: DeepAR forecast of the last 12 months")
ax.set_ylabel("°C")
ax.legend(loc="upper left", ncols=2)
plt.show()
inside = float(np.mean((sst[-prediction_length:] >= forecast["quantiles"]["0.1"])
                       & (sst[-prediction_length:] <= forecast["quantiles"]["0.9"])))
print(f"observed months inside the 10%-90% band: {inside:.0%}")"""),
    ("md", "## 4. Clean up"),
    ("code", """predictor.delete_endpoint()"""),
    ("code", """from IPython.display import display
summary = {"executed job": job.name, "test:RMSE": round(metrics["test:RMSE"], 4),
           "test:mean_wQuantileLoss": round(metrics["test:mean_wQuantileLoss"], 4),
           "seasonal naive mean_wQuantileLoss": round(naive["mean_wQuantileLoss"], 4),
           "forecast length": len(forecast["mean"]), "quantiles": sorted(forecast["quantiles"]),
           "band coverage": round(inside, 3)}
display({"application/vnd.nbsage.summary+json": summary, "text/plain": repr(summary)}, raw=True)"""),
]


if __name__ == "__main__":
    write(CELLS, "deepar.ipynb")
