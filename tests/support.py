"""Helpers shared by test modules (tests/ is on pytest's pythonpath: `from support import wait_for`)."""
from __future__ import annotations

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
STEPPER = """\
import json, os, sys, time
host = os.environ.get("SM_CURRENT_HOST", "algo-1")
total, pause = int(sys.argv[sys.argv.index("--steps") + 1]), float(sys.argv[sys.argv.index("--pause") + 1])
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
