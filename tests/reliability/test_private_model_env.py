"""A model's code/requirements.txt (and a script's requirements.txt) is installed into an environment
of its own, layered over nbsage's: the model imports it, nbsage's environment does not get it, and a
second model that needs another version of the same package gets its own environment.

No network: the requirement is a wheel the test writes next to requirements.txt (`./probe.whl`).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nbsage.estimator import Estimator
from nbsage.serving import endpoints
from nbsage.session import Session

PACKAGE = "nbsage_private_probe"

INFERENCE = f"""
import {PACKAGE}

def model_fn(model_dir):
    return {PACKAGE}

def predict_fn(data, model):
    return {{"version": model.VERSION, "file": model.__file__}}
"""


def write_wheel(folder: Path, version: str) -> str:
    """A pure-Python wheel of one module whose VERSION is `version`; returns its file name."""
    name = f"{PACKAGE}-{version}-py3-none-any.whl"
    dist = f"{PACKAGE}-{version}.dist-info"
    files = {f"{PACKAGE}.py": f"VERSION = {version!r}\n",
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: {version}\n",
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(folder / name, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return name


def model_with_requirement(folder: Path, version: str) -> Path:
    code = folder / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text(INFERENCE)
    (code / "requirements.txt").write_text(f"./{write_wheel(code, version)}\n")
    return folder


def nbsage_has_probe() -> bool:
    """Whether nbsage's own interpreter (without any model's environment) can import the package."""
    return subprocess.run([sys.executable, "-c", f"import {PACKAGE}"], capture_output=True).returncode == 0


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")


def test_each_model_gets_its_requirements_in_its_own_environment(tmp_path, nbsage_home, offline):
    assert not nbsage_has_probe()
    session = Session.default()
    seen = {}
    try:
        for name, version in (("probe-one", "1.0"), ("probe-two", "2.0")):
            model = model_with_requirement(tmp_path / name, version)
            endpoints.deploy(session, name, str(model), entry_point="inference.py")
            body, _, _ = session.invoke_endpoint(name, b"[1]", "application/json")
            seen[name] = json.loads(body)
    finally:
        for name in ("probe-one", "probe-two"):
            try:
                session.delete_endpoint(name)
            except Exception:
                pass
    envs = Path(nbsage_home) / "envs"
    assert seen["probe-one"]["version"] == "1.0" and seen["probe-two"]["version"] == "2.0"
    one, two = (Path(seen[n]["file"]) for n in ("probe-one", "probe-two"))
    assert envs in one.parents and envs in two.parents
    assert one.parents[3] != two.parents[3]  # envs/<digest>/lib/pythonX.Y/site-packages/module.py
    assert not nbsage_has_probe()


def test_a_second_server_with_the_same_requirements_reuses_the_environment(tmp_path, nbsage_home, offline):
    from nbsage.runtime import model_env
    model = model_with_requirement(tmp_path / "m", "1.0")
    requirements = model / "code" / "requirements.txt"
    first = model_env.ensure_environment(requirements)
    marker = (first / model_env.COMPLETE).stat().st_mtime_ns
    again = model_env.ensure_environment(requirements)
    assert again == first and (again / model_env.COMPLETE).stat().st_mtime_ns == marker
    assert first.parent == Path(nbsage_home) / "envs"


def test_two_servers_that_need_the_same_environment_build_it_once(tmp_path, nbsage_home, offline):
    session = Session.default()
    names = ("same-one", "same-two")
    model = model_with_requirement(tmp_path / "same", "4.0")
    try:
        for name in names:  # both servers start before either has its environment
            endpoints.deploy(session, name, str(model), entry_point="inference.py", wait=False)
        for name in names:
            endpoints.wait_for_endpoint(session, name, timeout=180)
            body, _, _ = session.invoke_endpoint(name, b"[1]", "application/json")
            assert json.loads(body)["version"] == "4.0"
    finally:
        for name in names:
            try:
                session.delete_endpoint(name)
            except Exception:
                pass
    envs = [p for p in (Path(nbsage_home) / "envs").iterdir() if p.is_dir()]
    assert len(envs) == 1, envs


def test_a_training_scripts_requirements_stay_out_of_nbsages_environment(tmp_path, nbsage_home, offline):
    src = tmp_path / "src"
    src.mkdir()
    (src / "requirements.txt").write_text(f"./{write_wheel(src, '3.0')}\n")
    (src / "train.py").write_text(
        f"import os, {PACKAGE}\n"
        f"open(os.path.join(os.environ['SM_MODEL_DIR'], 'v.txt'), 'w').write({PACKAGE}.VERSION)\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "d.csv").write_text("1,2\n")
    job = Estimator(entry_point="train.py", source_dir=str(src),
                    sagemaker_session=Session.default()).fit(str(data), logs=False)
    assert job.status == "Completed", job.describe().get("FailureReason")
    assert not nbsage_has_probe()
    assert any((Path(nbsage_home) / "envs").glob(f"*/lib/*/site-packages/{PACKAGE}.py"))
