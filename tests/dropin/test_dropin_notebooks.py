"""SageMaker's own example notebooks (aws/amazon-sagemaker-examples) run with `import nbsage as sagemaker`.

Each port in notebooks/ is the upstream notebook with only the import line and the data locations
changed (portdiff.py checks it against the upstream cells kept in `<name>.original.json`, and
`<name>.diff` shows every change). Papermill runs them with the real SageMaker SDK blocked (a
`sagemaker` package first on PYTHONPATH that raises on import), so nothing falls through to the SDK
the dev extras install. Each must run to the end, and its metrics must be close to the same
library (xgboost, scikit-learn, torch) run directly on the data the notebook wrote.
"""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from dropin import portdiff

HERE = Path(__file__).resolve().parent
NOTEBOOKS = HERE / "notebooks"
BLOCKED = HERE / "blocked"
REPO = HERE.parent.parent
# the six notebooks run at once (much of each is process start-up and waiting); on a busy machine
# they take longer than the suite's default timeout
pytestmark = pytest.mark.timeout(900)
PORTS = ["xgboost_managed_spot_training", "linear_learner_mnist", "deepar_synthetic", "blazingtext_word2vec_text8",
         "sagemaker_script_mode", "xgboost_abalone_dist_script_mode"]


class Run:
    """One executed port: its folder (the notebook's working directory), home and outcome."""

    def __init__(self, name: str, folder: Path):
        self.name, self.folder, self.home = name, folder, folder / "nbsage-home"
        self.output = folder / f"{name}.executed.ipynb"
        self.returncode, self.log = None, ""

    def execute(self) -> "Run":
        env = dict(os.environ, NBSAGE_HOME=str(self.home), PYTHONPATH=os.pathsep.join(
            [str(BLOCKED), str(REPO), str(self.folder)]))
        env.pop("NBSAGE_ARTIFACT_ROOT", None)
        proc = subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOKS / f"{self.name}.ipynb"),
                               str(self.output), "-k", "python3", "--cwd", str(self.folder)],
                              env=env, capture_output=True, text=True, timeout=600)
        self.returncode, self.log = proc.returncode, proc.stdout[-4000:] + proc.stderr[-6000:]
        return self

    def session(self):
        from nbsage.session import Session
        return Session(home=self.home)

    def jobs(self) -> list:
        """The notebook's training jobs, oldest first."""
        return list(reversed(self.session().list_training_jobs()))

    def outputs(self) -> list[str]:
        """The text of every cell output, in order."""
        import nbformat
        nb = nbformat.read(self.output, as_version=4)
        texts = []
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                texts.append(out.get("text", "") or out.get("data", {}).get("text/plain", ""))
        return texts

    def stop_endpoints(self) -> None:
        if not (self.home / "nbsage.db").exists():
            return
        session = self.session()
        for desc in session.list_endpoints():
            session.delete_endpoint(desc["EndpointName"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    """Every port executed at the same time, each in a folder of its own with its support files."""
    prepared = []
    for name in PORTS:
        folder = tmp_path_factory.mktemp(name)
        shutil.copy(NOTEBOOKS / "dropin_data.py", folder)
        if (NOTEBOOKS / f"{name}_files").is_dir():
            shutil.copytree(NOTEBOOKS / f"{name}_files", folder, dirs_exist_ok=True)
        prepared.append(Run(name, folder))
    with ThreadPoolExecutor(len(prepared)) as pool:
        done = {r.name: r for r in pool.map(Run.execute, prepared)}
    yield done
    for run in done.values():
        run.stop_endpoints()


def completed(runs: dict[str, Run], name: str) -> Run:
    run = runs[name]
    assert run.returncode == 0, f"{name} did not run to the end:\n{run.log}"
    return run


def last_float(pattern: str, lines) -> float:
    values = [float(m.group(1)) for line in lines for m in [re.search(pattern, line)] if m]
    assert values, f"no line matches {pattern!r}"
    return values[-1]


# ---- the ports are the upstream notebooks -----------------------------------------------------------
@pytest.mark.parametrize("name", PORTS)
def test_port_changes_only_the_import_line_and_data_locations(name):
    original, ported = portdiff.load(NOTEBOOKS, name)
    assert portdiff.problems(original, ported) == []
    assert (NOTEBOOKS / f"{name}.diff").read_text() == portdiff.unified(original, ported), \
        f"{name}.diff is out of date"
    imports = [c for c in ported if "import nbsage as sagemaker" in c["source"]]
    assert imports, "the port imports nbsage as sagemaker"


def test_the_real_sdk_is_blocked_for_the_ports():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(BLOCKED), str(REPO)]))
    proc = subprocess.run([sys.executable, "-c", "import sagemaker"], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "blocked" in proc.stderr
    proc = subprocess.run([sys.executable, "-c", "import nbsage as sagemaker\nfrom sagemaker.xgboost import XGBoost\n"
                           "from sagemaker.sklearn.processing import SKLearnProcessor\nprint(XGBoost.__module__)"],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "nbsage.xgboost.estimator"


# ---- each runs to the end, with the metrics of the library run directly ------------------------------
def xgboost_rmse(train_files, validation_files, params: dict, rounds: int) -> float:
    """validation-rmse of xgboost.train run directly on libsvm files (the files concatenated)."""
    import xgboost as xgb

    def matrix(files, tmp):
        path = tmp / ("joined-" + Path(files[0]).name)
        path.write_bytes(b"".join(Path(f).read_bytes() for f in files))
        return xgb.DMatrix(f"{path}?format=libsvm")
    tmp = Path(train_files[0]).parent
    dtrain, dval = matrix(train_files, tmp), matrix(validation_files, tmp)
    result: dict = {}
    xgb.train(params, dtrain, rounds, evals=[(dval, "validation")], evals_result=result, verbose_eval=False)
    return result["validation"]["rmse"][-1]


ABALONE_PARAMS = {"max_depth": 5, "eta": 0.2, "gamma": 4, "min_child_weight": 6, "subsample": 0.7,
                  "objective": "reg:squarederror", "seed": 0}


def test_xgboost_managed_spot_training_matches_xgboost_run_directly(runs):
    run = completed(runs, "xgboost_managed_spot_training")
    builtin, script = run.jobs()
    assert builtin.describe()["EnableManagedSpotTraining"] is True
    direct = xgboost_rmse([run.folder / "abalone"], [run.folder / "abalone"], ABALONE_PARAMS, 50)
    ours = builtin.final_metrics()["train:rmse"]
    scripted = last_float(r"validation-rmse:([0-9.]+)", script.logs())
    print(f"xgboost_managed_spot_training: built-in train:rmse {ours:.4f}, script mode validation-rmse "
          f"{scripted:.4f}, xgboost directly {direct:.4f}")
    assert ours == pytest.approx(direct, rel=0.1)
    assert scripted == pytest.approx(direct, rel=0.1)


def test_xgboost_abalone_dist_script_mode_trains_on_two_hosts_like_xgboost_directly(runs):
    run = completed(runs, "xgboost_abalone_dist_script_mode")
    (job,) = run.jobs()
    assert job.describe()["ResourceConfig"]["InstanceCount"] == 2
    data = run.folder / "data"
    direct = xgboost_rmse([data / "abalone.train_0", data / "abalone.train_1"], [data / "abalone.validation"],
                          ABALONE_PARAMS, 50)
    ours = last_float(r"validation-rmse:([0-9.]+)", job.logs())
    print(f"xgboost_abalone_dist_script_mode: validation-rmse {ours:.4f} on 2 hosts, xgboost directly {direct:.4f}")
    assert ours == pytest.approx(direct, rel=0.15)
    predicted = next(t for t in run.outputs() if t.startswith("Predicted values are"))
    values = [float(v) for v in re.findall(r"-?[0-9]+\.[0-9]+(?:e-?[0-9]+)?", predicted)]
    assert len(values) == sum(1 for _ in open(data / "abalone.test"))


def test_linear_learner_mnist_classifies_zeros_like_scikit_learn(runs):
    run = completed(runs, "linear_learner_mnist")
    from sklearn.linear_model import LogisticRegression
    sys.path.insert(0, str(NOTEBOOKS))
    import dropin_data
    (train_x, train_y), _, (test_x, test_y) = dropin_data.mnist_sets()
    direct = LogisticRegression(max_iter=500).fit(train_x, train_y == 0).score(test_x, test_y == 0)
    table = next(t for t in run.outputs() if "actuals" in t and "predictions" in t)
    rows = [list(map(float, line.split()[1:])) for line in table.splitlines() if re.match(r"^\s*[01]\s", line)]
    counts = np.array(rows)
    ours = np.trace(counts) / counts.sum()
    print(f"linear_learner_mnist: accuracy {ours:.4f} (zero against the rest), scikit-learn directly {direct:.4f}")
    assert counts.sum() == len(test_y)
    assert ours >= direct - 0.03


def test_deepar_synthetic_forecasts_about_as_well_as_the_seasonal_naive_forecast(runs):
    run = completed(runs, "deepar_synthetic")
    (job,) = run.jobs()
    metrics = job.final_metrics()
    series = [json.loads(line)["target"] for line in (run.folder / "test.json").read_text().splitlines()]
    naive = np.sqrt(np.mean([(np.array(s[-48:]) - np.array(s[-48 - 24:-24])) ** 2 for s in series]))
    mean_forecast = np.sqrt(np.mean([(np.array(s[-48:]) - np.mean(s[:-48])) ** 2 for s in series]))
    print(f"deepar_synthetic: test:RMSE {metrics['test:RMSE']:.4f}, seasonal naive {naive:.4f}, "
          f"each series' mean {mean_forecast:.4f}, "
          f"test:mean_wQuantileLoss {metrics['test:mean_wQuantileLoss']:.4f}")
    assert metrics["test:RMSE"] < min(mean_forecast, 1.25 * naive)


def test_blazingtext_word2vec_text8_trains_on_two_hosts_and_serves_the_vectors(runs):
    # no word2vec library is installed to compare with, and a corpus small enough for a test is
    # mostly discarded by the notebook's sampling_threshold: the checks are the contract's
    run = completed(runs, "blazingtext_word2vec_text8")
    (job,) = run.jobs()
    assert job.describe()["ResourceConfig"]["InstanceCount"] == 2
    losses = [float(m.group(1)) for line in job.logs() for m in [re.search(r"train:loss=([0-9.]+) step=", line)] if m]
    assert len(losses) == 5 and losses[-1] < losses[0]
    assert json.loads((run.folder / "eval.json").read_text())
    header, *rows = (run.folder / "vectors.txt").read_text().splitlines()
    assert int(header.split()[1]) == 100 and all(len(r.split()) == 101 for r in rows)
    vecs = next(t for t in run.outputs() if "awesome" in t and "vector" in t)
    served = {v["word"]: v["vector"] for v in ast.literal_eval(vecs.strip())}  # the notebook prints the list
    assert sorted(served) == ["awesome", "blazing"] and all(len(v) == 100 for v in served.values())
    print(f"blazingtext_word2vec_text8: train:loss {losses[0]:.4f} -> {losses[-1]:.4f} over 5 epochs on 2 hosts, "
          f"{len(rows)} word vectors")


def test_sagemaker_script_mode_sklearn_pytorch_and_xgboost_match_the_libraries_run_directly(runs):
    run = completed(runs, "sagemaker_script_mode")
    sklearn_job, pytorch_job, xgboost_job = run.jobs()
    import pandas as pd
    from sklearn.ensemble import RandomForestRegressor
    train = pd.read_csv(run.folder / "data/train/train.csv", header=None)
    test = pd.read_csv(run.folder / "data/test/test.csv", header=None)
    forest = RandomForestRegressor(max_depth=20, n_jobs=2, n_estimators=120, random_state=0)
    direct_r2 = forest.fit(train.iloc[:, 1:], train.iloc[:, 0]).score(test.iloc[:, 1:], test.iloc[:, 0])
    ours_r2 = last_float(r"Score: (-?[0-9.]+)", sklearn_job.logs())
    mse = last_float(r"Test MSE: ([0-9.e-]+)", pytorch_job.logs())
    y_test = np.load(run.folder / "data/test/y_test.npy")
    rmse_folds = last_float(r"RMSE average across folds: ([0-9.e-]+)", xgboost_job.logs())
    sys.path.insert(0, str(run.folder))
    from my_custom_library import cross_validation
    direct_rmse = sum(cross_validation(train, 5, {"max_depth": 5, "eta": 0.2, "objective": "reg:squarederror",
                                                  "num_round": 6})[0]) / 5
    print(f"sagemaker_script_mode: SKLearn R^2 {ours_r2:.4f} (scikit-learn directly {direct_r2:.4f}); PyTorch test "
          f"MSE {mse:.5f} (variance of the target {np.var(y_test):.5f}); XGBoost 5-fold RMSE {rmse_folds:.3e} "
          f"(xgboost directly {direct_rmse:.3e})")
    assert ours_r2 == pytest.approx(direct_r2, abs=0.05)
    assert mse < np.var(y_test)
    assert rmse_folds == pytest.approx(direct_rmse, rel=0.2)
