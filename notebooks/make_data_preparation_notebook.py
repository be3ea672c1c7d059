"""Write notebooks/data_preparation.ipynb (run: python notebooks/make_data_preparation_notebook.py).

The notebook is kept as code here so a change is one readable diff; the .ipynb is what users open.
"""
from __future__ import annotations


from notebook_builder import write

CELLS = [
    ("md", """# Data preparation: from a raw table to RecordIO-protobuf and Parquet channels

The SageMaker data-preparation workflow, on this machine with nbsage: load a raw table, explore it,
clean and split it in a **processing job** (a real process that sees `/opt/ml/processing/...` as in
SageMaker), write the channels the built-in algorithms read — **RecordIO-protobuf** and
**Parquet**, label first — and train **Linear Learner** from the RecordIO channel.

Run headless with `python -m nbsage.demo notebooks/data_preparation.ipynb` (papermill), or cell by cell."""),
    ("params", """# Parameters (papermill overrides these)
epochs = 10
mini_batch_size = 64
validation_fraction = 0.2
test_fraction = 0.2
seed = 7"""),
    ("md", """## 1. Load

The raw data: scikit-learn's bundled breast-cancer table (569 tumours, 30 measurements, a diagnosis),
saved as a CSV with a header — the kind of file a data set arrives as."""),
    ("code", """from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer

raw_dir = Path("data/data_preparation/raw")
raw_dir.mkdir(parents=True, exist_ok=True)
bunch = load_breast_cancer(as_frame=True)
raw = bunch.data.assign(diagnosis=np.where(bunch.target == 1, "benign", "malignant"))
raw.to_csv(raw_dir / "breast_cancer.csv", index=False)

frame = pd.read_csv(raw_dir / "breast_cancer.csv")
print(f"{len(frame)} rows, {frame.shape[1]} columns")
frame.iloc[:5, [0, 1, 2, 3, -1]]"""),
    ("md", "## 2. Explore"),
    ("code", """summary_stats = frame.describe().T[["mean", "std", "min", "max"]]
print(frame["diagnosis"].value_counts().to_string())
summary_stats.head(8)"""),
    ("code", """%matplotlib inline
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, column in zip(axes, ["mean radius", "worst concave points"]):
    for label, group in frame.groupby("diagnosis"):
        ax.hist(group[column], bins=30, alpha=0.6, label=label)
    ax.set_title(column)
    ax.set_xlabel("value")
axes[0].set_ylabel("tumours")
axes[1].legend()
plt.tight_layout()
plt.show()"""),
    ("md", """## 3. Process with a processing job

The script is an ordinary SageMaker processing script: it reads `/opt/ml/processing/input/raw`,
encodes the label (malignant = 1), splits train / validation / test, standardises the features with
the training split's statistics and writes

* `recordio/{train,validation}/*.pbr` — `application/x-recordio-protobuf`, one `Record` per row,
  `features["values"]` and `label["values"]` as float32 tensors (what the SageMaker SDK writes);
* `parquet/{train,validation,test}/*.parquet` — `application/x-parquet`, the label column first;
* `scaler/scaler.json` — the statistics, to apply to new data.

Paths come in as arguments, as SageMaker's own examples pass them."""),
    ("code", """code_dir = Path("data/data_preparation/code")
code_dir.mkdir(parents=True, exist_ok=True)
(code_dir / "preprocess.py").write_text('''
import argparse, json
from pathlib import Path

import numpy as np
import pandas as pd

from nbsage.formats import write

parser = argparse.ArgumentParser()
parser.add_argument("--input", default="/opt/ml/processing/input/raw")
parser.add_argument("--output", default="/opt/ml/processing/output")
parser.add_argument("--validation-fraction", type=float, default=0.2)
parser.add_argument("--test-fraction", type=float, default=0.2)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

frame = pd.concat([pd.read_csv(p) for p in sorted(Path(args.input).glob("*.csv"))], ignore_index=True)
before = len(frame)
frame = frame.dropna().drop_duplicates()
y = (frame.pop("diagnosis") == "malignant").to_numpy(np.float32)
x = frame.to_numpy(np.float32)

rng = np.random.default_rng(args.seed)
order = rng.permutation(len(x))
n_test = int(len(x) * args.test_fraction)
n_val = int(len(x) * args.validation_fraction)
splits = {"test": order[:n_test], "validation": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}

mean = x[splits["train"]].mean(axis=0)
std = x[splits["train"]].std(axis=0) + 1e-6
x = (x - mean) / std

out = Path(args.output)
for name, rows in splits.items():
    if name != "test":
        write(x[rows], out / "recordio" / name / f"{name}.pbr", "application/x-recordio-protobuf", labels=y[rows])
    write(x[rows], out / "parquet" / name / f"{name}.parquet", "application/x-parquet", labels=y[rows])
(out / "scaler").mkdir(parents=True, exist_ok=True)
(out / "scaler" / "scaler.json").write_text(json.dumps(
    {"columns": list(frame.columns), "mean": mean.tolist(), "std": std.tolist()}))
print(f"read {before} rows, kept {len(x)}; " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))
''')"""),
    ("code", """import sys

from nbsage.processing import ProcessingInput, ProcessingOutput, ScriptProcessor

processor = ScriptProcessor(command=[sys.executable], base_job_name="prepare-breast-cancer")
processing_job = processor.run(
    code=str(code_dir / "preprocess.py"),
    inputs=[ProcessingInput(str(raw_dir), "/opt/ml/processing/input/raw", input_name="raw")],
    outputs=[ProcessingOutput(f"/opt/ml/processing/output/{name}", output_name=name)
             for name in ("recordio", "parquet", "scaler")],
    arguments=["--input", "/opt/ml/processing/input/raw", "--output", "/opt/ml/processing/output",
               "--validation-fraction", str(validation_fraction), "--test-fraction", str(test_fraction),
               "--seed", str(seed)],
    logs=False,
)
print(processing_job.describe()["ProcessingJobStatus"], processing_job.name)
print("\\n".join(processing_job.logs()[-3:]))"""),
    ("md", """## 4. The channels

Each output is a folder in the artifact store. The files read back through the same readers the
built-in algorithms use — `nbsage.formats.read_table` for a whole channel, `iter_batches` for one
larger than memory."""),
    ("code", """from nbsage.formats import iter_batches, read_table

recordio_uri = processing_job.output("recordio")
parquet_uri = processing_job.output("parquet")
channel_files = sorted(str(p.relative_to(Path(recordio_uri).parent)) for p in Path(recordio_uri).rglob("*.*"))
channel_files += sorted(str(p.relative_to(Path(parquet_uri).parent)) for p in Path(parquet_uri).rglob("*.*"))
print("\\n".join(channel_files))

train_rio = read_table(sorted(Path(recordio_uri, "train").iterdir()), "application/x-recordio-protobuf")
train_pq = read_table(sorted(Path(parquet_uri, "train").iterdir()), "application/x-parquet")
assert np.array_equal(train_rio.features, train_pq.features) and np.array_equal(train_rio.labels, train_pq.labels)
print(f"train: {train_rio.num_rows} records x {train_rio.num_features} features; the RecordIO and Parquet "
      f"channels hold the same rows; {train_rio.labels.mean():.0%} malignant")
batches = [x.shape[0] for x, y in iter_batches(sorted(Path(recordio_uri, "train").iterdir()),
                                                 "application/x-recordio-protobuf", batch_rows=100)]
print("streamed in batches of", batches)"""),
    ("md", "The RecordIO files are the SageMaker SDK's format, byte for byte; the SDK's reader opens them:"),
    ("code", """import os
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
try:
    from sagemaker.amazon.common import read_records
    with open(next(Path(recordio_uri, "train").iterdir()), "rb") as f:
        first = read_records(f)[0]
    print("SDK read_records: label", first.label["values"].float32_tensor.values[0],
          "features[:3]", list(first.features["values"].float32_tensor.values[:3]))
except ImportError:
    print("the SageMaker Python SDK is not installed; skipping the cross-check")"""),
    ("md", """## 5. Train Linear Learner from the RecordIO channel

`content_type="application/x-recordio-protobuf"`, as on SageMaker; the validation channel picks the
decision threshold."""),
    ("code", """import nbsage
from nbsage import TrainingInput

estimator = nbsage.Estimator(
    "linear-learner",
    hyperparameters={"predictor_type": "binary_classifier", "epochs": epochs,
                     "mini_batch_size": mini_batch_size, "binary_classifier_model_selection_criteria": "accuracy"},
    instance_type="local",
)
training_job = estimator.fit({
    "train": TrainingInput(f"{recordio_uri}/train", content_type="application/x-recordio-protobuf"),
    "validation": TrainingInput(f"{recordio_uri}/validation", content_type="application/x-recordio-protobuf"),
}, logs=False)
metrics = training_job.final_metrics()
print(training_job.name, training_job.describe()["TrainingJobStatus"])
{k: round(v, 4) for k, v in sorted(metrics.items()) if k.startswith("validation:")}"""),
    ("md", "## 6. Score the held-out Parquet split with the trained model's endpoint"),
    ("code", """from nbsage.serializers import CSVSerializer
from nbsage.deserializers import JSONDeserializer

test = read_table(sorted(Path(parquet_uri, "test").iterdir()), "application/x-parquet")
predictor = estimator.deploy(initial_instance_count=1, instance_type="local",
                             serializer=CSVSerializer(), deserializer=JSONDeserializer())
try:
    response = predictor.predict(test.features)
finally:
    predictor.delete_endpoint()
predicted = np.array([p["predicted_label"] for p in response["predictions"]])
test_accuracy = float((predicted == test.labels).mean())
print(f"test accuracy on {test.num_rows} held-out records: {test_accuracy:.3f}")"""),
    ("code", """from IPython.display import display

summary = {
    "processing job": processing_job.name,
    "training job": training_job.name,
    "raw rows": int(len(frame)),
    "train records": int(train_rio.num_rows),
    "features": int(train_rio.num_features),
    "channel files": channel_files,
    "validation:binary_classification_accuracy": round(metrics["validation:binary_classification_accuracy"], 4),
    "test accuracy": round(test_accuracy, 4),
}
display({"application/vnd.nbsage.summary+json": summary, "text/plain": repr(summary)}, raw=True)"""),
]


if __name__ == "__main__":
    write(CELLS, "data_preparation.ipynb")
