"""Write notebooks/tuning.ipynb (run `python notebooks/make_tuning_notebook.py` after editing here)."""
from __future__ import annotations

from notebook_builder import write

CELLS = [
    ("md", """# Hyperparameter tuning with nbsage

SageMaker's `HyperparameterTuner` — same ranges, strategies, `describe()`, `analytics()` and
`best_estimator()` — run on this machine, with [Optuna](https://optuna.org) choosing the trials.
Each trial is an ordinary training job of the built-in XGBoost; `max_parallel_jobs` of them run at
once. The data is the Wisconsin breast cancer set that ships with scikit-learn, so nothing is
downloaded.

Run headless with `python -m nbsage.demo notebooks/tuning.ipynb`, or cell by cell in JupyterLab."""),
    ("params", """# Parameters (papermill overrides these)
max_jobs = 12
max_parallel_jobs = 2
num_round = 50
seed = 42"""),
    ("md", """## 1. Data: label first, as SageMaker's XGBoost reads CSV"""),
    ("code", """import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

X, y = load_breast_cancer(return_X_y=True)
X_train, X_valid, y_train, y_valid = train_test_split(X, y, test_size=0.3, random_state=seed, stratify=y)
train = pd.DataFrame(np.column_stack([y_train, X_train]))
valid = pd.DataFrame(np.column_stack([y_valid, X_valid]))
print(f"{len(train)} training rows, {len(valid)} validation rows, {X.shape[1]} features")"""),
    ("md", """## 2. Tune

The ranges are checked against XGBoost's declared hyperparameters before any trial starts (try
`ContinuousParameter(0, 2)` for `eta`, or a range for `booster`, which SageMaker does not tune), and
`validation:auc` must be one of XGBoost's objective metrics. The
table below updates as trials end; the plot at the end shows each trial's objective and the best so
far. `strategy="Bayesian"` is Optuna's TPE sampler; `early_stopping_type="Auto"` would stop trials
that fall below the median of the earlier ones at the same round."""),
    ("code", """import nbsage
from nbsage.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter

estimator = nbsage.Estimator("xgboost", hyperparameters={"objective": "binary:logistic", "num_round": num_round})
tuner = HyperparameterTuner(
    estimator,
    objective_metric_name="validation:auc",
    hyperparameter_ranges={
        "eta": ContinuousParameter(0.01, 0.5, scaling_type="Logarithmic"),
        "max_depth": IntegerParameter(2, 8),
        "min_child_weight": ContinuousParameter(0.5, 8),
        "subsample": ContinuousParameter(0.5, 1.0),
        "colsample_bytree": ContinuousParameter(0.5, 1.0),
    },
    strategy="Bayesian",
    max_jobs=max_jobs,
    max_parallel_jobs=max_parallel_jobs,
    random_seed=seed,
)
tuner.fit({"train": train, "validation": valid})"""),
    ("md", """## 3. The trials

`describe()` answers in DescribeHyperParameterTuningJob's shape; `analytics().dataframe()` has one
row per trial with its hyperparameters, objective, status and times."""),
    ("code", """desc = tuner.describe()
print(desc["HyperParameterTuningJobStatus"], desc["TrainingJobStatusCounters"])
best = desc["BestTrainingJob"]
print("best:", best["TrainingJobName"], best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
print("with:", best["TunedHyperParameters"])
frame = tuner.analytics().dataframe().sort_values("FinalObjectiveValue", ascending=False)
frame[["eta", "max_depth", "min_child_weight", "subsample", "colsample_bytree", "FinalObjectiveValue",
       "TrainingJobStatus", "TrainingElapsedTimeSeconds"]]"""),
    ("md", """How the objective depends on each tuned hyperparameter (a slice plot):"""),
    ("code", """%matplotlib inline
import matplotlib.pyplot as plt

numeric = ["eta", "max_depth", "min_child_weight", "subsample", "colsample_bytree"]
fig, axes = plt.subplots(1, len(numeric), figsize=(14, 3), sharey=True)
for ax, name in zip(axes, numeric):
    ax.scatter(frame[name], frame["FinalObjectiveValue"], s=20)
    ax.set_xlabel(name)
    if name == "eta":
        ax.set_xscale("log")
axes[0].set_ylabel("validation:auc")
fig.suptitle("validation:auc of each trial by hyperparameter")
plt.show()"""),
    ("md", """Tuning jobs are listed like training jobs: `%sm_jobs --tuning` (or `nbsage tuning-jobs` in a
terminal); `HyperparameterTuner.attach(name)` picks one up again, also from another notebook."""),
    ("code", """%load_ext nbsage
%sm_jobs --tuning --limit 3"""),
    ("md", """## 4. Deploy the best model

`tuner.deploy()` serves the best trial's model, as the SDK does."""),
    ("code", """from nbsage.deserializers import CSVDeserializer
from nbsage.serializers import CSVSerializer

predictor = tuner.deploy(initial_instance_count=1, instance_type="local",
                         serializer=CSVSerializer(), deserializer=CSVDeserializer())
scores = np.asarray(predictor.predict(X_valid), dtype=float).ravel()
accuracy = float(np.mean((scores > 0.5) == y_valid))
print(f"validation accuracy of the deployed best model: {accuracy:.3f}")"""),
    ("md", "## 5. Clean up"),
    ("code", """predictor.delete_endpoint()"""),
    ("code", """from IPython.display import display
summary = {"tuning job": desc["HyperParameterTuningJobName"], "status": desc["HyperParameterTuningJobStatus"],
           "trials": len(frame), "best training job": best["TrainingJobName"],
           "best validation:auc": round(best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"], 4),
           "deployed accuracy": round(accuracy, 3)}
display({"application/vnd.nbsage.summary+json": summary, "text/plain": repr(summary)}, raw=True)"""),
]


if __name__ == "__main__":
    write(CELLS, "tuning.ipynb")
