"""Write notebooks/batch_and_pipelines.ipynb (run `python notebooks/make_batch_and_pipelines_notebook.py`
after editing here)."""
from __future__ import annotations

from notebook_builder import write

INTRO = [
    ("md", """# Batch transform, inference pipelines and compiled models with nbsage

SageMaker's deployment beyond one real-time endpoint, on this machine:

1. **Inference pipeline** — a scikit-learn preprocessing script and SageMaker's built-in XGBoost
   behind one endpoint: raw rows (with a text column) in, predictions out.
2. **Batch transform** — a whole folder of CSV files through that pipeline, offline, with each
   prediction joined to its input row and filtered down to an id and the prediction.
3. **Compilation** — Neo's local counterpart: the XGBoost model compiled to ONNX, checked against the
   native model, and served by onnxruntime.

The data is synthetic (customers with an age, an income and a city), so nothing is downloaded.
Run headless with `python -m nbsage.demo notebooks/batch_and_pipelines.ipynb`, or cell by cell in
JupyterLab."""),
    ("params", """# Parameters (papermill overrides these)
rows = 3000
num_round = 60
parity_rows = 10000
latency_repeats = 200
batch_rows = 2000
batch_files = 4"""),
    ("md", """## Data: raw customer rows with a text column

Each row is `age, income, city`; the label (will the customer buy?) depends on the age and on the
city. A model cannot read the city as it is: the preprocessing step scales the numbers and one-hot
encodes the city."""),
    ("code", """from pathlib import Path

import numpy as np
import pandas as pd

CITIES = ["paris", "lyon", "nice", "lille"]
rng = np.random.default_rng(0)
raw = pd.DataFrame({"age": rng.normal(40, 10, rows).round(1), "income": rng.normal(50000, 15000, rows).round(0),
                    "city": rng.choice(CITIES, rows)})
label = ((raw.age > 40) != raw.city.isin(["paris", "nice"])).astype(int)
work = Path("output") / "batch_and_pipelines"   # notebooks/output/ is not tracked
work.mkdir(parents=True, exist_ok=True)
raw.head()"""),
]

# ---- batch transform ------------------------------------------------------------------------------
# The batch transform runs through the pipeline of section 1 (raw rows in), so it comes after it, and
# compares its .out rows with that pipeline's endpoint (deleted at its end).
BATCH_TRANSFORM_CELLS: list = [
    ("md", """## 2. Batch transform through the pipeline: a folder of CSV files, joined and filtered

A folder of customer files, each row an id then the raw `age, income, city`. The transform job sends
every file's rows through the pipeline above (the same stages, in one model server per instance) and
writes one `<file>.out` per file. SageMaker's data processing does the rest, per record:

- `input_filter="$[1:]"` drops the id column before the model sees the row (CSV rows are indexed
  from 0; a slice's end is included, as SageMaker documents);
- `join_source="Input"` appends the model's answer to the original row (id included);
- `output_filter="$[0,-1]"` keeps the id and the prediction of the joined row."""),
    ("code", """import shutil

batch_in, batch_out = work / "batch_in", work / "batch_out"
for folder in (batch_in, batch_out):
    shutil.rmtree(folder, ignore_errors=True)
batch_in.mkdir()
customers = raw.sample(batch_rows, random_state=2).reset_index(drop=True)
customers.insert(0, "customer_id", [f"c{i:05d}" for i in range(len(customers))])
per_file = -(-len(customers) // batch_files)
for i in range(batch_files):
    customers.iloc[i * per_file:(i + 1) * per_file].to_csv(batch_in / f"customers-{i}.csv", header=False, index=False)
print(sorted(p.name for p in batch_in.iterdir()))
print((batch_in / "customers-0.csv").read_text().splitlines()[:2])"""),
    ("code", """transformer = pipeline.transformer(instance_count=2, instance_type="local", strategy="MultiRecord",
                                   assemble_with="Line", accept="text/csv", output_path=str(batch_out))
batch_job = transformer.transform(str(batch_in), content_type="text/csv", split_type="Line",
                                  input_filter="$[1:]", join_source="Input", output_filter="$[0,-1]", logs=False)
batch_desc = batch_job.describe()
{k: batch_desc[k] for k in ("TransformJobStatus", "DataProcessing", "nbsage:ObjectsTransformed",
                            "nbsage:RecordsTransformed")}"""),
    ("md", """The `.out` files, one per input file: each row is the customer's id joined with the pipeline's
prediction. They are the pipeline endpoint's answers for the same rows (the transform's model servers
stage and serve the pipeline as the endpoint does):"""),
    ("code", """print(sorted(p.name for p in batch_out.iterdir()))
joined = pd.concat([pd.read_csv(path, header=None, names=["customer_id", "prediction"])
                    for path in sorted(batch_out.glob("*.out"))], ignore_index=True)
answers = predictor.predict(customers[["age", "income", "city"]].to_csv(header=False, index=False))
check = customers.assign(endpoint=[float(r[0]) for r in answers]).merge(joined, on="customer_id")
batch_diff = float(np.abs(check.prediction - check.endpoint).max())
print((batch_out / "customers-0.csv.out").read_text().splitlines()[:3])
print(f"{len(joined)} joined rows; max |transform - endpoint| = {batch_diff:.2e}")
check.head()"""),
    ("code", """predictor.delete_endpoint()"""),
]

PIPELINE = [
    ("md", """## 1. An inference pipeline: preprocessing script + built-in XGBoost in one endpoint

First the preprocessing model: a scikit-learn `ColumnTransformer` fitted on the raw rows and saved in
a model.tar.gz, with an inference script that SageMaker's scikit-learn container would run as it is
(`model_fn`, `input_fn`, `predict_fn`, `output_fn`)."""),
    ("code", """import io
import tarfile

import joblib
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

preprocessor = ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                                  ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"])], sparse_threshold=0)
features = preprocessor.fit_transform(raw)
joblib.dump(preprocessor, work / "preprocessor.joblib")
with tarfile.open(work / "preprocessor.tar.gz", "w:gz") as tar:
    tar.add(work / "preprocessor.joblib", arcname="preprocessor.joblib")

code = work / "preprocess_code"
code.mkdir(exist_ok=True)
(code / "inference.py").write_text('''
import io, os
import joblib
import numpy as np
import pandas as pd

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "preprocessor.joblib"))

def input_fn(body, content_type):
    if content_type != "text/csv":
        raise ValueError(f"this preprocessor reads text/csv, not {content_type}")
    return pd.read_csv(io.StringIO(body), header=None, names=["age", "income", "city"])

def predict_fn(data, model):
    return model.transform(data)

def output_fn(prediction, accept):
    buffer = io.StringIO()
    np.savetxt(buffer, np.asarray(prediction), delimiter=",", fmt="%.9g")
    return buffer.getvalue(), "text/csv"
''')
print(features.shape[1], "features after preprocessing:", list(preprocessor.get_feature_names_out()))"""),
    ("md", """Then SageMaker's built-in XGBoost, trained on the preprocessed rows (label first, no header, as
the algorithm reads CSV):"""),
    ("code", """import nbsage
from nbsage import TrainingInput

train_dir = work / "train"
train_dir.mkdir(exist_ok=True)
np.savetxt(train_dir / "train.csv", np.column_stack([label, features]), delimiter=",", fmt="%.9g")
estimator = nbsage.Estimator("xgboost", hyperparameters={"objective": "binary:logistic", "num_round": num_round,
                                                        "max_depth": 4, "eta": 0.3}, instance_type="local")
job = estimator.fit({"train": TrainingInput(str(train_dir), content_type="text/csv")}, logs=False)
print(job.name, job.describe()["TrainingJobStatus"])"""),
    ("md", """The pipeline: the preprocessing model first, XGBoost second. Each model's answer becomes the next
one's request, with its Content-Type; `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT=text/csv` asks the
preprocessor for CSV, which XGBoost reads. All stages run in one model server process, so a stage adds
only its own work."""),
    ("code", """from nbsage import Model, PipelineModel
from nbsage.serializers import CSVSerializer

preprocess_model = Model(str(work / "preprocessor.tar.gz"), entry_point="inference.py", source_dir=str(code),
                         env={"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"}, name="preprocess")
xgb_model = estimator.create_model(name="xgb")
pipeline = PipelineModel(models=[preprocess_model, xgb_model], name="preprocess-then-xgboost")
predictor = pipeline.deploy(initial_instance_count=1, instance_type="local", serializer=CSVSerializer())
print(predictor.describe()["ProductionVariants"][0]["DeployedImages"])"""),
    ("code", """sample = raw.sample(8, random_state=1)
body = sample.to_csv(header=False, index=False)
served = np.array([float(r[0]) for r in predictor.predict(body)])

import xgboost as xgb
booster = xgb.Booster()
with tarfile.open(estimator.model_data) as tar:
    booster.load_model(bytearray(tar.extractfile("xgboost-model").read()))
in_process = booster.inplace_predict(preprocessor.transform(sample).astype(np.float32))
pipeline_diff = float(np.abs(served - in_process).max())
print(body)
pd.DataFrame({"endpoint": served, "in process": in_process}, index=sample.index)"""),
    ("md", """A stage that fails is named in the error, and the endpoint keeps serving:"""),
    ("code", """try:
    predictor.predict("forty,61000,lyon\\n")
except nbsage.NBSageError as error:
    stage_error = str(error)
    print(stage_error[:300])
print(predictor.predict("40,61000,lyon\\n"))"""),
]

COMPILATION = [
    ("md", """## 3. Compile the XGBoost model to ONNX (Neo's local counterpart)

`compile_model` records a compilation job (`DescribeCompilationJob`'s shape), converts the booster to
ONNX, checks it against the native model and writes a new model.tar.gz that an endpoint serves with
onnxruntime."""),
    ("code", """compiled = estimator.compile_model(target_instance_family="ml_c5",
                                  input_shape={"data": [1, features.shape[1]]},
                                  output_path=str(work / "compiled"), framework="xgboost", framework_version="3")
from nbsage.compilation.job import CompilationJob
compilation = CompilationJob(compiled._compilation_job_name).describe()
{k: compilation[k] for k in ("CompilationJobName", "CompilationJobStatus", "OutputConfig", "ModelArtifacts",
                             "nbsage:Parity")}"""),
    ("md", """Parity and speed, measured here: the native booster against onnxruntime on the same rows (margins
and probabilities), then the latency of one row and of 1,000 rows. Whichever is faster is reported
as it is."""),
    ("code", """import time
import onnxruntime as ort
from nbsage.compilation.xgboost import to_onnx

rows_x = rng.normal(size=(parity_rows, features.shape[1])).astype(np.float32)
rows_x[:, 2:] = rng.integers(0, 2, size=(parity_rows, features.shape[1] - 2))   # one-hot columns
booster.set_param({"nthread": 1})
options = ort.SessionOptions()
options.intra_op_num_threads = 1
session_prob = ort.InferenceSession(to_onnx(booster, features.shape[1]).SerializeToString(), options)
session_margin = ort.InferenceSession(to_onnx(booster, features.shape[1], margin=True).SerializeToString(), options)
margin_diff = float(np.abs(session_margin.run(["probabilities"], {"features": rows_x})[0][:, 1]
                           - booster.inplace_predict(rows_x, predict_type="margin")).max())
prob_diff = float(np.abs(session_prob.run(["probabilities"], {"features": rows_x})[0][:, 1]
                         - booster.inplace_predict(rows_x)).max())

def p50_ms(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))

one, thousand = rows_x[:1], rows_x[:1000]
latency = pd.DataFrame({
    "native xgboost (ms)": [p50_ms(lambda: booster.inplace_predict(one), latency_repeats),
                            p50_ms(lambda: booster.inplace_predict(thousand), max(5, latency_repeats // 20))],
    "onnxruntime (ms)": [p50_ms(lambda: session_prob.run(None, {"features": one}), latency_repeats),
                         p50_ms(lambda: session_prob.run(None, {"features": thousand}), max(5, latency_repeats // 20))],
}, index=["1 row", "1,000 rows"])
print(f"max |margin difference| over {parity_rows} rows: {margin_diff:.2e}; probabilities: {prob_diff:.2e}")
latency.round(4)"""),
    ("md", """`compiled.deploy(...)`, or `estimator.deploy(instance_type="ml.c5.xlarge", use_compiled_model=True)` as
in the SDK, starts an endpoint that answers the same requests as the XGBoost endpoint, computed by
onnxruntime (the compiled model.tar.gz keeps the original booster beside `model.onnx`)."""),
]

SUMMARY = [
    ("md", "## Summary"),
    ("code", """from IPython.display import display
summary = {"executed job": job.name, "pipeline vs in-process max diff": pipeline_diff,
           "failing stage named": "pipeline stage 1 of 2" in stage_error,
           "batch transform status": batch_desc["TransformJobStatus"], "batch joined rows": len(joined),
           "batch vs endpoint max diff": batch_diff,
           "compilation status": compilation["CompilationJobStatus"], "parity rows": parity_rows,
           "margin max diff": margin_diff, "probability max diff": prob_diff,
           "latency ms": {k: {i: round(v, 4) for i, v in col.items()} for k, col in latency.to_dict().items()}}
display({"application/vnd.nbsage.summary+json": summary, "text/plain": repr(summary)}, raw=True)"""),
]

CELLS = INTRO + PIPELINE + BATCH_TRANSFORM_CELLS + COMPILATION + SUMMARY


if __name__ == "__main__":
    write(CELLS, "batch_and_pipelines.ipynb")
