"""The bad-input corpus (tests/reliability/corpus.yaml): every case raises the declared error naming its words.

One parametrised test runs each case the cheapest real way the API allows: hyperparameters through
the declaration's `validate`, channel files through `nbsage.formats`, training inputs as a job
root run by the runtime in this process, CLI misuse through `nbsage.cli.main`, model archives
through `Model(model_data=...)`; the /invocations payloads share one real endpoint (a model
server process) started for the module.
"""
from __future__ import annotations

import gzip
import io
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from nbsage import errors

CORPUS = yaml.safe_load((Path(__file__).with_name("corpus.yaml")).read_text())
SECTIONS = ("hyperparameters", "channels", "training", "invocations", "cli", "cell_bodies", "model_archives")
CSV_FIELD_LIMIT = 128 * 1024


def _generated() -> list[dict]:
    """One hyperparameters case per invalid value each declaration generates."""
    from nbsage import algorithms
    cases = []
    for spec in CORPUS.get("generate", []):
        for name in spec["algorithms"]:
            try:
                declared = algorithms.get(name)
            except ImportError:  # an algorithm whose optional dependency is not installed
                continue
            for hp in declared.hyperparameters:
                for value in hp.invalid_values():
                    cases.append({"id": f"gen-{declared.name}-{hp.name}-{value!r}", "algorithm": declared.name,
                                  "single": True, "values": {hp.name: value}, "error": "HyperparameterError",
                                  "names": [hp.name]})
    return cases


def _cases():
    for section in SECTIONS:
        entries = list(CORPUS.get(section) or [])
        if section == "hyperparameters":
            entries += _generated()
        for case in entries:
            yield pytest.param(section, case, id=f"{section}:{case['id']}")


ALL_CASES = list(_cases())


def test_the_corpus_holds_at_least_120_cases_of_every_kind():
    kinds = {section for section, _ in (p.values for p in ALL_CASES)}
    assert len(ALL_CASES) >= 120 and kinds == set(SECTIONS), (len(ALL_CASES), kinds)


# ---- file contents the YAML names by `make` -------------------------------------------------------
def _csv_huge_cell() -> bytes:
    return b"1,0.5,0.25\n0," + b"x" * (CSV_FIELD_LIMIT + 10) + b",0.2\n"


def _parquet(columns: dict) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq
    out = io.BytesIO()
    pq.write_table(pa.table(columns), out)
    return out.getvalue()


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _recordio_truncated() -> bytes:
    from nbsage import formats
    out = io.BytesIO()
    formats.write(np.ones((4, 3), dtype=np.float32), out, "application/x-recordio-protobuf",
                  labels=np.ones(4, dtype=np.float32))
    data = out.getvalue()
    return data[: len(data) - 7]


MAKERS = {
    "csv_huge_cell": _csv_huge_cell,
    "parquet_truncated": lambda: _parquet({"label": [1.0, 0.0], "a": [0.5, 0.1]})[:-20],
    "parquet_string_column": lambda: _parquet({"label": [1.0, 0.0], "city": ["Lyon", "Oslo"]}),
    "parquet_nan_label": lambda: _parquet({"label": [1.0, float("nan")], "a": [0.5, 0.1]}),
    "recordio_truncated": _recordio_truncated,
    "gzip_not_tar": lambda: gzip.compress(b"just some text, not a tar archive\n" * 20),
    "tar_with_readme": lambda: _tar({"README.txt": b"my model\n"}),
    "tar_of_linear_learner": lambda: _tar({"linear-learner-model.npz": b"PK", "linear-learner-model.json": b"{}"}),
    "tar_of_xgboost": lambda: _tar({"xgboost-model": b"{}"}),
    "tar_empty": lambda: _tar({}),
    "body_over_limit": lambda: b"1,2,3\n" * (7 * 1024 * 1024 // 6 + 10),
}


def content(spec: dict) -> bytes:
    if "make" in spec:
        return MAKERS[spec["make"]]()
    if "hex" in spec:
        return bytes.fromhex(spec["hex"])
    return spec["text"].encode()


def write(folder: Path, spec: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / spec["name"]
    path.write_bytes(content(spec))
    return path


def assert_names(message: str, case: dict) -> None:
    for word in case.get("names", []):
        assert str(word) in message, f"{case['id']}: {word!r} not named in: {message}"
    for word in case.get("absent", []):
        assert str(word) not in message, f"{case['id']}: {word!r} should not appear in: {message}"
    assert "Traceback" not in message and "Stack trace" not in message, message


def raises(case: dict, call) -> str:
    expected = getattr(errors, case["error"])
    with pytest.raises(expected) as info:
        call()
    message = str(info.value)
    assert "\n" not in message.strip(), f"{case['id']}: not one line: {message}"
    return message


# ---- the one test ---------------------------------------------------------------------------------
@pytest.mark.parametrize("section,case", ALL_CASES)
def test_bad_input_is_refused_naming_the_problem(section, case, tmp_path, request, capsys):
    globals()[f"_run_{section}"](case, tmp_path, request, capsys)


def _run_hyperparameters(case, tmp_path, request, capsys):
    from nbsage import algorithms
    declared = algorithms.get(case["algorithm"])
    if case.get("single"):  # a generated case: the one hyperparameter's parse
        hp = declared.hyperparameter(next(iter(case["values"])))
        message = raises(case, lambda: hp.parse(next(iter(case["values"].values()))))
    else:
        message = raises(case, lambda: declared.validate(case["values"]))
    assert_names(message, case)


def _run_channels(case, tmp_path, request, capsys):
    from nbsage import formats
    from nbsage.formats import values
    path = write(tmp_path / "train", case["file"])
    ct = case["content_type"]

    def read():
        table = formats.read_table([path], ct, **(case.get("options") or {}))
        if case.get("check") == "finite":
            values.check_finite(table, [path], ct)
    assert_names(raises(case, read), case)


def _run_training(case, tmp_path, request, capsys):
    """A job root laid out as staging leaves it: the user's file copied under input/data/train."""
    import contextlib
    import signal

    from nbsage.runtime.job_config import write_job_configs
    from nbsage.runtime.layout import JobRoot
    from nbsage.runtime.train import run
    user = tmp_path / "my-data"
    source = write(user, {"name": "train.csv", **{k: v for k, v in case.items() if k in ("text", "make")}})
    hps = {"num_round": 3, "objective": "binary:logistic", **(case.get("hyperparameters") or {})}
    request_ = {"TrainingJobName": "corpus", "AlgorithmSpecification": {"TrainingImage": "xgboost"},
                "HyperParameters": {k: str(v) for k, v in hps.items()},
                "InputDataConfig": [{"ChannelName": "train", "ContentType": "text/csv",
                                     "DataSource": {"S3DataSource": {"S3Uri": str(user)}}}],
                "ResourceConfig": {"InstanceType": "local", "InstanceCount": 1}}
    root = write_job_configs(JobRoot(tmp_path / "job"), request_)
    root.channel_dir("train").mkdir(parents=True, exist_ok=True)
    shutil.copy(source, root.channel_dir("train") / "train.csv")
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            rc = run(str(root.path))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert rc == 1
    failure = root.failure_file.read_text()
    assert str(source) in failure, failure  # the user's file, not the staged copy
    assert_names(failure, case)


@pytest.fixture(scope="module")
def xgboost_endpoint(tmp_path_factory):
    """One endpoint serving a 3-feature XGBoost model, shared by every /invocations case."""
    xgb = pytest.importorskip("xgboost")
    from nbsage.serving import endpoints
    from nbsage.session import Session
    folder = tmp_path_factory.mktemp("corpus-endpoint")
    rng = np.random.default_rng(0)
    x = rng.random((64, 3))
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2},
                        xgb.DMatrix(x, label=(x[:, 0] > 0.5).astype(float)), num_boost_round=3)
    model = folder / "model"
    model.mkdir()
    booster.save_model(str(model / "xgboost-model"))
    (folder / "model.tar.gz").write_bytes(_tar({"xgboost-model": (model / "xgboost-model").read_bytes()}))
    session = Session(home=folder / "home")
    endpoints.deploy(session, "corpus", str(folder / "model.tar.gz"), algorithm="xgboost")
    yield session
    endpoints.delete_endpoint(session, "corpus")


def _run_invocations(case, tmp_path, request, capsys):
    from nbsage.serving import endpoints
    session = request.getfixturevalue("xgboost_endpoint")
    body = content(case["body"])
    try:
        answer, _, _ = endpoints.invoke_endpoint(session, "corpus", body, case["content_type"], case.get("accept"))
        status, message = (204 if not answer else 200), answer.decode(errors="replace")
    except errors.ModelError as e:
        status, message = e.status, e.message
    expected = case["status"] if isinstance(case["status"], list) else [case["status"]]
    assert status in expected, f"{case['id']}: answered {status}: {message}"
    assert_names(message, case)
    # the server is still there and answers a good request after every bad one
    good, _, _ = endpoints.invoke_endpoint(session, "corpus", b"0.1,0.2,0.3\n", "text/csv", None)
    assert good.strip()


def _run_cli(case, tmp_path, request, capsys):
    from nbsage.cli import main
    data = tmp_path / "train.csv"
    data.write_text("1,0.5,0.25\n0,0.1,0.2\n")
    argv = [a.replace("{data}", str(data)).replace("{tmp}", str(tmp_path)) for a in case["argv"]]
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own usage errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == case["exit"], f"{case['id']}: exit {rc}: {err}"
    assert_names(err, case)


def _run_cell_bodies(case, tmp_path, request, capsys):
    from nbsage.arguments import read_yaml_mapping
    assert_names(raises(case, lambda: read_yaml_mapping(case["body"], "the cell")), case)


def _run_model_archives(case, tmp_path, request, capsys):
    from nbsage.model import Model
    path = write(tmp_path, case["model_data"])
    assert_names(raises(case, lambda: Model(model_data=str(path), algorithm=case["algorithm"])), case)
