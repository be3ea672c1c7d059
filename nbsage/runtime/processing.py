"""`process`: run one processing job from its root, as a SageMaker processing container does.

The job root is the job's `/opt/ml`: inputs are staged under `processing/...` (each LocalPath of the
request, which must lie under /opt/ml/processing/), the config files are `config/processingjobconfig.json`
(the CreateProcessingJob request echoed back) and `config/resourceconfig.json` (the hosts), and the
job may leave a message in `output/message` (its first 1024 bytes become ExitMessage). The
entrypoint is `AppSpecification.ContainerEntrypoint + ContainerArguments`, with no `train` argument.

How a script that hard-codes /opt/ml/processing/... runs unchanged
----------------------------------------------------------------------
On Linux the runtime gives itself, and so the script it starts, a private mount namespace in
which /opt/ml *is* this job's root and NBSAGE_HOME shows nothing but that root (see
nbsage.runtime.private_view); nothing changes for any other process, so two jobs running at once
each see only their own files. Inside the namespace the script runs as root (as in a SageMaker
container); with a user namespace that root is the invoking user outside, so every file it writes
belongs to that user. Where nbsage runs as root, `NBSAGE_JOB_USER` (e.g. nobody) makes the script
run as that user instead (see nbsage.runtime.job_user). The script's working directory is /opt/ml.

Fallback, where no namespace can be made (not Linux, user namespaces disabled, a seccomp profile
that forbids unshare or mount such as Docker's default one, no /opt): the job still runs, with its
working directory at the job root and `NBSAGE_OPT_ML` naming that root. Entrypoint and
ContainerArguments items that start with /opt/ml/ are rewritten to the job root (they are nbsage's
own, e.g. the script path); nothing the script does is rewritten. A script that opens a hard-coded /opt/ml/... path then fails, and the
job's FailureReason names that path and says why it is missing. Scripts that take their paths from
arguments (`--input-dir /opt/ml/processing/input`) or from NBSAGE_OPT_ML work in both modes.
`NBSAGE_PROCESSING_ISOLATION` chooses: `auto` (default: namespace when possible, else the
fallback), `namespace` (fail the job when no namespace can be made), `none` (always the fallback).

Exit codes: 0 on success; 1 with `output/failure` holding the reason (the stderr tail of the
script for a non-zero exit) otherwise; 143 when stopped by SIGTERM.
"""
from __future__ import annotations

import collections
import ctypes
import json
import os
import posixpath
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from nbsage.arns import arn
from nbsage.errors import ValidationError
from nbsage.runtime.job_user import JOB_USER_ENV, JobUser, hand_over, job_user
from nbsage.runtime.job_user import environment as user_environment
from nbsage.runtime.layout import private_dir, write_private_text
from nbsage.runtime.private_view import OPT_ML, IsolationUnavailable, private_opt_ml, probe_private_opt_ml

PROCESSING_PREFIX = "/opt/ml/processing/"
PROCESSING_JOB_CONFIG = "processingjobconfig.json"
RESOURCE_CONFIG = "resourceconfig.json"
ISOLATION_ENV = "NBSAGE_PROCESSING_ISOLATION"
EXIT_MESSAGE_BYTES = 1024
FAILURE_CHARS = 1024
STDERR_TAIL_LINES = 20
EXIT_FAILURE = 1
EXIT_STOPPED = 143  # 128 + SIGTERM


# ---- the job root ------------------------------------------------------------------------------
def check_local_path(local_path: str, what: str) -> str:
    """The normalised LocalPath, which must lie under /opt/ml/processing/ (SageMaker's rule)."""
    if not isinstance(local_path, str) or not local_path:
        raise ValidationError(f"{what}: a path under {PROCESSING_PREFIX} is required, got {local_path!r}")
    normal = posixpath.normpath(local_path)
    if not local_path.startswith("/") or not (normal + "/").startswith(PROCESSING_PREFIX) \
            or normal + "/" == PROCESSING_PREFIX:
        raise ValidationError(f"{what}: {local_path!r} is not under {PROCESSING_PREFIX}; processing inputs "
                              f"and outputs live in the container at {PROCESSING_PREFIX}<name>, "
                              f"e.g. {PROCESSING_PREFIX}input/data")
    return normal


class ProcessingRoot:
    """Paths of one processing job root (the job's /opt/ml)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).resolve()

    config_dir = property(lambda self: self.path / "config")
    processing_dir = property(lambda self: self.path / "processing")
    output_dir = property(lambda self: self.path / "output")
    message_file = property(lambda self: self.path / "output" / "message")
    failure_file = property(lambda self: self.path / "output" / "failure")

    def local(self, container_path: str) -> Path:
        """Where a path of the container (/opt/ml/...) is in this root."""
        rel = posixpath.relpath(posixpath.normpath(container_path), OPT_ML)
        if rel == ".." or rel.startswith("../"):
            raise ValidationError(f"{container_path!r} is not under {OPT_ML}")
        return self.path if rel == "." else self.path / rel

    def read_config(self, name: str) -> dict:
        path = self.config_dir / name
        return json.loads(path.read_text()) if path.exists() else {}

    def write_config(self, name: str, content: dict) -> None:
        private_dir(self.config_dir)
        tmp = self.config_dir / f".{name}.tmp"
        write_private_text(tmp, json.dumps(content, indent=2, default=str))
        os.replace(tmp, self.config_dir / name)

    def write_failure(self, message: str) -> None:
        """Write output/failure unless the job already wrote one."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if not self.failure_file.exists():
            self.failure_file.write_text(message[:FAILURE_CHARS])

    def failure_reason(self) -> str | None:
        if self.failure_file.exists():
            return self.failure_file.read_text(errors="replace")[:FAILURE_CHARS] or None
        return None

    def exit_message(self) -> str | None:
        """ExitMessage: the first 1024 bytes of output/message (None when absent or not UTF-8)."""
        try:
            data = self.message_file.read_bytes()[:EXIT_MESSAGE_BYTES]
        except OSError:
            return None
        return data.decode("utf-8", errors="ignore") or None  # ignore: a character cut at byte 1024


def processing_job_config(request: dict) -> dict:
    """processingjobconfig.json: the CreateProcessingJob request echoed back, defaults filled in."""
    name = request["ProcessingJobName"]
    app = dict(request.get("AppSpecification") or {})
    app.setdefault("ImageUri", None)
    app.setdefault("ContainerEntrypoint", None)
    app.setdefault("ContainerArguments", None)
    inputs = []
    for item in request.get("ProcessingInputs") or []:
        item = json.loads(json.dumps(item))
        s3 = item.get("S3Input")
        if s3 is not None:
            s3.setdefault("S3DataType", "S3Prefix")
            s3.setdefault("S3InputMode", "File")
            s3.setdefault("S3DataDistributionType", "FullyReplicated")
            s3.setdefault("S3CompressionType", "None")
            s3.setdefault("S3DownloadMode", "StartOfJob")
        inputs.append(item)
    outputs = request.get("ProcessingOutputConfig") or {"Outputs": []}
    outputs = dict(outputs, Outputs=list(outputs.get("Outputs") or []))
    outputs.setdefault("KmsKeyId", None)
    cluster = dict((request.get("ProcessingResources") or {}).get("ClusterConfig") or {})
    cluster.setdefault("InstanceCount", 1)
    cluster.setdefault("InstanceType", "local")
    cluster.setdefault("VolumeSizeInGB", 30)
    cluster.setdefault("VolumeKmsKeyId", None)
    return {
        "ProcessingJobArn": request.get("ProcessingJobArn") or arn("processing-job", name),
        "ProcessingJobName": name,
        "AppSpecification": app,
        "Environment": dict(request.get("Environment") or {}),
        "NetworkConfig": request.get("NetworkConfig"),
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": outputs,
        "ProcessingResources": {"ClusterConfig": cluster},
        "RoleArn": request.get("RoleArn"),
        "StoppingCondition": request.get("StoppingCondition") or {"MaxRuntimeInSeconds": 86400},
    }


def resource_config(request: dict, host_index: int = 0) -> dict:
    """resourceconfig.json: the hosts, with the keys SDK local mode adds."""
    cluster = (request.get("ProcessingResources") or {}).get("ClusterConfig") or {}
    hosts = [f"algo-{i + 1}" for i in range(int(cluster.get("InstanceCount") or 1))]
    return {"current_host": hosts[host_index], "hosts": hosts, "network_interface_name": "eth0",
            "current_instance_type": cluster.get("InstanceType") or "local"}


def prepare(root_path: str | os.PathLike, request: dict) -> ProcessingRoot:
    """Lay out a processing root: the two config files and an empty folder per LocalPath."""
    root = ProcessingRoot(root_path)
    for d in (root.path, root.config_dir, root.processing_dir, root.output_dir):
        private_dir(d)
    for item in request.get("ProcessingInputs") or []:
        local = (item.get("S3Input") or item.get("DatasetDefinition") or {}).get("LocalPath")
        if local:
            root.local(check_local_path(local, f"ProcessingInput {item.get('InputName')!r}")).mkdir(
                parents=True, exist_ok=True)
    for item in (request.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
        local = (item.get("S3Output") or {}).get("LocalPath")
        if local:
            root.local(check_local_path(local, f"ProcessingOutput {item.get('OutputName')!r}")).mkdir(
                parents=True, exist_ok=True)
    root.write_config(PROCESSING_JOB_CONFIG, processing_job_config(request))
    root.write_config(RESOURCE_CONFIG, resource_config(request))
    return root


# ---- running the entrypoint -------------------------------------------------------------------------
class _Stop:
    requested = False


def _on_sigterm(signum, frame):
    # the whole process group got SIGTERM (StopProcessingJob): the script handles its own; we wait for it
    _Stop.requested = True


def _die_with_runtime():
    """Linux: the script gets SIGKILL when the runtime dies, as a container's processes die with it."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _relay_stderr(stream, tail: collections.deque) -> None:
    for raw in stream:
        line = raw.decode("utf-8", errors="replace")
        sys.stderr.write(line)
        sys.stderr.flush()
        if line.strip():
            tail.append(line.rstrip("\n"))


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def _resolve_program(program: str, path: str) -> str | None:
    if "/" in program:
        return program if os.path.exists(program) else None
    return shutil.which(program, path=path)


def _fallback_hint(tail: list[str], root: ProcessingRoot, isolation_problem: str | None) -> str:
    """In the fallback, name the hard-coded /opt/ml path the script tripped over, and why it is missing."""
    if isolation_problem is None:
        return ""
    for line in reversed(tail):
        found = re.search(r"(/opt/ml(?:/[^\s'\":,)\]]*)?)", line)
        if found and not os.path.exists(found.group(1)):
            path = found.group(1)
            return (f"ClientError: the script uses the hard-coded path {path}, which does not exist here: this "
                    f"place could not give the job its own /opt/ml ({isolation_problem}). The job's /opt/ml is "
                    f"{root.path} (also in $NBSAGE_OPT_ML); pass paths as arguments or read $NBSAGE_OPT_ML")
    return ""


def _failure(head: str, tail: list[str]) -> str:
    """`head` and as much of the end of the stderr tail as fits in 1024 characters."""
    text = head
    if tail:
        room = FAILURE_CHARS - len(head) - len("\nstderr (last lines):\n")
        body = "\n".join(tail)
        if room > 0:
            text += "\nstderr (last lines):\n" + (body[-room:] if len(body) > room else body)
    return text[:FAILURE_CHARS]


class _Refused(Exception):
    """The job cannot start as configured; the message is its FailureReason."""


def _own_view(root: ProcessingRoot, user: JobUser | None) -> tuple[str | None, str]:
    """Make /opt/ml this job's root (see nbsage.runtime.private_view) as NBSAGE_PROCESSING_ISOLATION
    says: (why there is none, or None; how it was made). Raises _Refused when the job needs one
    (`namespace`, or a job user, whose root lies where only nbsage's user may enter) and none can be made."""
    mode = (os.environ.get(ISOLATION_ENV) or "auto").strip().lower()
    if mode not in ("auto", "namespace", "none"):
        raise _Refused(f"ClientError: {ISOLATION_ENV}={mode!r} is not one of auto, namespace, none")
    problem, how = (f"{ISOLATION_ENV}=none" if mode == "none" else None), ""
    if mode != "none":
        try:
            problem = probe_private_opt_ml(root.path)
            if problem is None:
                how = private_opt_ml(root.path)
        except (IsolationUnavailable, OSError) as e:
            problem = str(e)
    if problem is not None and mode == "namespace":
        raise _Refused(f"ClientError: {ISOLATION_ENV}=namespace, and no private /opt/ml can be made here: {problem}")
    if problem is not None and user is not None:
        raise _Refused(f"ClientError: {JOB_USER_ENV}={user.name} needs a private /opt/ml for the job, and none "
                       f"can be made here: {problem}")
    return problem, how


def run(root_path: str) -> int:
    """Run the processing job laid out in `root_path`; the exit code follows the contract."""
    root = ProcessingRoot(root_path)
    root.output_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _on_sigterm)
    config = root.read_config(PROCESSING_JOB_CONFIG)
    if not config:
        root.write_failure(f"ClientError: {root.config_dir / PROCESSING_JOB_CONFIG} is missing; "
                           "the job root was not prepared")
        return EXIT_FAILURE
    app = config.get("AppSpecification") or {}
    entrypoint = list(app.get("ContainerEntrypoint") or [])
    arguments = [str(a) for a in app.get("ContainerArguments") or []]
    if not entrypoint:
        root.write_failure("ClientError: AppSpecification.ContainerEntrypoint is empty; nbsage runs no container "
                           "images, so it needs the command to run (Processor(entrypoint=[...]) or ScriptProcessor)")
        return EXIT_FAILURE

    try:
        user = job_user()
        if user is not None:
            hand_over(root.path, user)  # the job writes its outputs as that user
        problem, how = _own_view(root, user)
    except ValidationError as e:
        root.write_failure(f"ClientError: {e}")
        return EXIT_FAILURE
    except _Refused as e:
        root.write_failure(str(e))
        return EXIT_FAILURE
    if problem is None:
        opt_ml = OPT_ML
        print(f"nbsage: /opt/ml is this job's own root ({how})", flush=True)
    else:
        opt_ml = str(root.path)
        print(f"nbsage: no private /opt/ml ({problem}); the job runs in {opt_ml} and paths it hard-codes "
              "under /opt/ml are not redirected", flush=True)

        def rewrite(item: str) -> str:
            return opt_ml + item[len(OPT_ML):] if item == OPT_ML or item.startswith(OPT_ML + "/") else item
        entrypoint = [rewrite(str(a)) for a in entrypoint]
        arguments = [rewrite(a) for a in arguments]

    env = dict(os.environ)
    env.pop(ISOLATION_ENV, None)
    env.pop(JOB_USER_ENV, None)
    if user is not None:
        env.update(user_environment(user))
        print(f"nbsage: the job runs as {user.name} (uid {user.uid}, {JOB_USER_ENV})", flush=True)
    # the "image's" interpreter is the one nbsage runs on, so `python3` finds this environment's packages
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", os.defpath)])
    env.update({str(k): str(v) for k, v in (config.get("Environment") or {}).items()})
    env.update(NBSAGE_OPT_ML=opt_ml, PYTHONUNBUFFERED=env.get("PYTHONUNBUFFERED", "1"))
    program = _resolve_program(str(entrypoint[0]), env["PATH"])
    if program is None:
        root.write_failure(f"ClientError: the entrypoint program {entrypoint[0]!r} was not found "
                           f"(ContainerEntrypoint {entrypoint})")
        return EXIT_FAILURE
    argv = [program, *[str(a) for a in entrypoint[1:]], *arguments]
    tail: collections.deque = collections.deque(maxlen=STDERR_TAIL_LINES)
    try:
        as_user = {} if user is None else {"user": user.uid, "group": user.gid, "extra_groups": []}
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=opt_ml,
                                preexec_fn=_die_with_runtime, **as_user)
    except OSError as e:
        as_whom = "" if user is None else (f" as {user.name} ({JOB_USER_ENV}), who must be able to reach and "
                                           "run it")
        root.write_failure(f"ClientError: cannot start the entrypoint {argv[0]!r}{as_whom}: {e.strerror or e}")
        return EXIT_FAILURE
    relay = threading.Thread(target=_relay_stderr, args=(proc.stderr, tail), daemon=True)
    relay.start()
    rc = proc.wait()
    relay.join(5)
    lines = list(tail)
    if _Stop.requested:
        root.write_failure("Stopped: the job received SIGTERM")
        print("Processing stopped (SIGTERM).", file=sys.stderr, flush=True)
        return EXIT_STOPPED
    if rc != 0:
        ended = (f"was killed by {_signal_name(rc)}" + (" (out of memory?)" if rc == -signal.SIGKILL else "")
                 if rc < 0 else f"exited with code {rc}")
        hint = _fallback_hint(lines, root, problem)
        head = f"{hint} (the script {ended})" if hint else f"AlgorithmError: the processing script {ended}"
        root.write_failure(_failure(head, lines))
        return EXIT_FAILURE
    if root.message_file.exists():
        try:
            root.message_file.read_bytes()[:EXIT_MESSAGE_BYTES].decode("utf-8")
        except UnicodeDecodeError as e:
            if e.start < EXIT_MESSAGE_BYTES - 4:  # not just a character cut at the 1 KB limit
                root.write_failure("ClientError: /opt/ml/output/message is not UTF-8 text")
                return EXIT_FAILURE
    return 0
