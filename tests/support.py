"""Helpers shared by test modules (tests/ is on pytest's pythonpath: `from support import wait_for`)."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path


def wait_for(predicate, timeout: float = 90, what: str = "condition", interval: float = 0.05):
    """Poll predicate until it returns something true (returned); AssertionError naming `what` after timeout s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


# A script-mode job that checkpoints every step: each host keeps {host}-state.json (its last step)
# and {host}-step-<n> (the newest only, older ones removed) in its checkpoint folder, resumes after the step in its
# state, and, given --markers DIR, writes "<script pid> <runtime pid>" into DIR/<host> at every start.
# Given --hold-at N --release FILE it waits before step N until FILE exists, so a test can kill it mid-run
# however slowly the machine goes (without the hold a busy machine can let it finish before the kill).
STEPPER = """\
import json, os, sys, time
host = os.environ.get("SM_CURRENT_HOST", "algo-1")
total, pause = int(sys.argv[sys.argv.index("--steps") + 1]), float(sys.argv[sys.argv.index("--pause") + 1])
hold_at = int(sys.argv[sys.argv.index("--hold-at") + 1]) if "--hold-at" in sys.argv else -1
release = sys.argv[sys.argv.index("--release") + 1] if "--release" in sys.argv else None
if "--markers" in sys.argv:
    markers = sys.argv[sys.argv.index("--markers") + 1]
    with open(os.path.join(markers, host + ".tmp"), "w") as f:
        f.write(f"{os.getpid()} {os.getppid()}")
    os.replace(os.path.join(markers, host + ".tmp"), os.path.join(markers, host))
folder = os.environ["SM_CHECKPOINT_DIR"]
os.makedirs(folder, exist_ok=True)
state = os.path.join(folder, f"{host}-state.json")
start = 0
if os.path.exists(state):
    with open(state) as f:
        start = json.load(f)["step"] + 1
    print(f"resumed at step {start}", flush=True)
for step in range(start, total):
    if step == hold_at and release:
        held_until = time.time() + 600
        while not os.path.exists(release):
            if time.time() > held_until:
                sys.exit(f"held before step {step}, and {release} did not appear within 600 s")
            time.sleep(0.05)
    time.sleep(pause)
    with open(state + ".sagemaker-ignore", "w") as f:
        json.dump({"step": step}, f)
    os.replace(state + ".sagemaker-ignore", state)
    with open(os.path.join(folder, f"{host}-step-{step}"), "w") as f:
        f.write(str(step))
    for name in os.listdir(folder):  # keep the newest step only (an older one may come back from a restore)
        if name.startswith(f"{host}-step-") and name != f"{host}-step-{step}":
            os.remove(os.path.join(folder, name))
    print(f"step {step}", flush=True)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as f:
    f.write(f"trained {total} steps")
"""


# A script-mode job held until the test releases it: given --release PIPE (a FIFO the test made with
# os.mkfifo) it blocks opening the pipe until `release(PIPE)` opens its other end, or until the job is
# stopped; it waits on the pipe, not in a polling loop, however slowly the machine goes.
HELD = """
import sys
print("waiting for the release pipe", flush=True)
with open(sys.argv[sys.argv.index("--release") + 1]) as pipe:
    pipe.read()
"""


def release(pipe: Path) -> None:
    """Let a HELD job go on: open and close the pipe's writing end (nothing to do if no job holds it)."""
    try:
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # ENXIO: nothing has the pipe open for reading (the job ended or never got there)
        pass


def source(tmp_path: Path, body: str, name: str = "src", entry_point: str = "train.py") -> Path:
    """A source_dir (tmp_path/name) holding the entry point with `body` (dedented); its path."""
    src = tmp_path / name
    src.mkdir(exist_ok=True)
    (src / entry_point).write_text(textwrap.dedent(body))
    return src


# User inference code for a model whose weights are weights.npy: predictions are rows @ weights.
INFERENCE = """
import os
import numpy as np

def model_fn(model_dir):
    return np.load(os.path.join(model_dir, "weights.npy"))

def predict_fn(data, model):
    return np.atleast_2d(np.asarray(data, dtype=float)) @ model
"""


# A classifier for shadow tests: label 1 where rows @ weights is above THRESHOLD (from the model's Environment).
LABELS = """
import os
import numpy as np

def model_fn(model_dir):
    return np.load(os.path.join(model_dir, "weights.npy")), float(os.environ["THRESHOLD"])

def predict_fn(data, model):
    weights, threshold = model
    return (np.atleast_2d(np.asarray(data, dtype=float)) @ weights > threshold).astype(int)
"""


def make_tarball(root: Path, script: str | None = INFERENCE, weights=(1.0, 2.0, 3.0)) -> Path:
    """root/model.tar.gz as a training job writes it: weights.npy, and code/inference.py unless script is None."""
    import numpy as np
    src = root / "src"
    src.mkdir(parents=True)
    np.save(src / "weights.npy", np.asarray(weights))
    if script is not None:
        (src / "code").mkdir()
        (src / "code" / "inference.py").write_text(textwrap.dedent(script))
    archive = root / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for entry in sorted(src.iterdir()):
            tar.add(entry, arcname=entry.name)
    return archive


class Gateway:
    """A Jupyter Kernel Gateway on 127.0.0.1 in a folder of its own, started as a user would.

    It gets its own HOME and none of the notebook's NBSAGE_*/JUPYTER_* settings; its kernels get only
    what a gateway passes on (KERNEL_* variables and KG_ENV_PROCESS_WHITELIST).
    """

    def __init__(self, folder: Path, timeout: float = 120):
        import requests
        self.folder = folder
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NBSAGE_", "JUPYTER_"))}
        env["HOME"] = str(folder)
        self.log = open(folder / "gateway.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kernel_gateway", "--KernelGatewayApp.ip=127.0.0.1",
             f"--KernelGatewayApp.port={port}", "--JupyterWebsocketPersonality.list_kernels=True"],
            cwd=folder, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

        def answers() -> bool:
            # the port may have been taken since it was free: the gateway then says where it listens
            said = re.search(r"is available at (http://\S+?)/?\s", (folder / "gateway.log").read_text())
            if said:
                self.url = said.group(1)
            if self.proc.poll() is not None:
                raise RuntimeError(f"the kernel gateway exited: {(folder / 'gateway.log').read_text()[-2000:]}")
            try:
                return bool(said) and requests.get(f"{self.url}/api", timeout=1).status_code == 200
            except requests.RequestException:
                return False
        try:
            wait_for(answers, timeout, "the kernel gateway to answer", interval=0.2)
        except AssertionError:
            self.stop()
            raise RuntimeError(f"the kernel gateway did not start: {(folder / 'gateway.log').read_text()[-2000:]}")
        except BaseException:
            self.stop()
            raise

    def kernels(self) -> list[dict]:
        import requests
        return requests.get(f"{self.url}/api/kernels", timeout=5).json()

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def aws_environment(endpoint: str, folder: Path) -> dict:
    """Credentials and endpoint for an S3 server on loopback, set the ordinary boto/fsspec way (no
    AWS config or credentials files of the machine are read)."""
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint, "AWS_CONFIG_FILE": str(folder / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(folder / "no-aws-credentials")}


def loadable_algorithms() -> list[str]:
    """The built-in algorithms whose declaration imports (one still being written is left out)."""
    from nbsage import algorithms
    names = []
    for name in algorithms.names():
        try:
            algorithms.get(name)
        except ImportError:
            continue
        names.append(name)
    return names
