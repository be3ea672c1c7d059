"""Script mode as sagemaker-training-toolkit runs it: SM_* environment and `--name value` args.

Two differences from the toolkit, both to keep the user's code in its own place: a source_dir's
requirements.txt is installed into an environment of its own (nbsage.runtime.model_env), first on
the script's path, not into nbsage's; and the script runs in a view of the file system where
NBSAGE_HOME shows only its own job root (nbsage.runtime.private_view), as NBSAGE_JOB_USER where
nbsage runs as root (nbsage.runtime.job_user; its paths are then under /opt/ml, which that user can
reach, as in a SageMaker container).
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from nbsage.errors import ValidationError
from nbsage.runtime import framework_modules, model_env
from nbsage.runtime.environment import TrainingEnvironment
from nbsage.runtime.job_user import JOB_USER_ENV, JobUser, become, hand_over, job_user
from nbsage.runtime.job_user import environment as user_environment
from nbsage.runtime.processing import ISOLATION_ENV
from nbsage.runtime.private_view import OPT_ML, private_view, probe_private_view

# sagemaker_* keys the toolkit removes from the user's hyperparameters
RESERVED = {"sagemaker_program", "sagemaker_submit_directory", "sagemaker_enable_cloudwatch_metrics",
            "sagemaker_region", "sagemaker_container_log_level", "sagemaker_job_name",
            "default_user_module_name", "_tuning_objective_metric", "sagemaker_s3_output"}


def decode(value: str):
    """The toolkit's read: json.loads each value, keeping the raw string when that fails."""
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def user_hyperparameters(raw: dict[str, str]) -> tuple[dict, dict]:
    """(user hyperparameters, framework params): sagemaker_* keys split off as the toolkit does."""
    user, framework = {}, {}
    for k, v in raw.items():
        if k.startswith("sagemaker_") or k in RESERVED:
            if k not in RESERVED:
                framework[k] = decode(v)
        else:
            user[k] = decode(v)
    return user, framework


def to_cmd_args(hps: dict) -> list[str]:
    """Keys sorted; `--key` (or `-k`); dict -> k=v,..; None -> ''; else str(value)."""
    args = []
    for key in sorted(hps):
        value = hps[key]
        args.append(f"-{key}" if len(key) == 1 else f"--{key}")
        if isinstance(value, dict):
            args.append(",".join(f"{k}={v}" for k, v in sorted(value.items())))
        elif value is None:
            args.append("")
        else:
            args.append(str(value))
    return args


def _env_value(value) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def build_environment(env: TrainingEnvironment, entry_point: str, code_dir: Path) -> tuple[dict, list[str]]:
    """The SM_* variables and the user args for one run of the entry point."""
    root = env.root
    hps, framework = user_hyperparameters(env.hyperparameters)
    args = to_cmd_args(hps)
    channels = sorted(env.channels)
    module_dir = decode(env.hyperparameters.get("sagemaker_submit_directory", '""')) or str(code_dir)
    log_level = decode(env.hyperparameters.get("sagemaker_container_log_level", "20"))
    training_env = {
        "channel_input_dirs": {c: str(root.channel_dir(c)) for c in channels},
        "current_host": env.current_host, "current_instance_type": env.instance_type,
        "hosts": env.hosts, "hyperparameters": hps, "framework_module": None,
        "input_config_dir": str(root.config_dir), "input_data_config": env.input_data_config,
        "input_dir": str(root.input_dir), "job_name": env.job_name, "log_level": log_level,
        "master_hostname": env.hosts[0], "model_dir": str(root.model_dir), "module_dir": module_dir,
        "module_name": Path(entry_point).stem, "network_interface_name":
            env.resource_config.get("network_interface_name", "eth0"),
        "num_cpus": env.num_cpus, "num_gpus": env.num_gpus, "num_neurons": 0,
        "output_data_dir": str(root.output_data_dir), "output_dir": str(root.output_dir),
        "output_intermediate_dir": str(root.intermediate_dir), "resource_config": env.resource_config,
        "user_entry_point": entry_point, "additional_framework_parameters": framework,
        "is_master": env.current_host == env.hosts[0],
    }
    sm = {
        "SM_MODEL_DIR": str(root.model_dir), "SM_CHANNELS": json.dumps(channels),
        "SM_HPS": json.dumps(hps, sort_keys=True), "SM_USER_ARGS": json.dumps(args),
        "SM_USER_ENTRY_POINT": entry_point, "SM_MODULE_NAME": Path(entry_point).stem,
        "SM_MODULE_DIR": module_dir, "SM_FRAMEWORK_MODULE": "",
        "SM_FRAMEWORK_PARAMS": json.dumps(framework), "SM_HOSTS": json.dumps(env.hosts),
        "SM_CURRENT_HOST": env.current_host, "SM_CURRENT_INSTANCE_TYPE": env.instance_type,
        "SM_CURRENT_INSTANCE_GROUP": "homogeneousCluster",
        "SM_CURRENT_INSTANCE_GROUP_HOSTS": json.dumps(env.hosts),
        "SM_INSTANCE_GROUPS": json.dumps(["homogeneousCluster"]), "SM_IS_HETERO": "false",
        "SM_NETWORK_INTERFACE_NAME": training_env["network_interface_name"],
        "SM_NUM_GPUS": str(env.num_gpus), "SM_NUM_CPUS": str(env.num_cpus), "SM_NUM_NEURONS": "0",
        "SM_LOG_LEVEL": str(log_level), "SM_INPUT_DIR": str(root.input_dir),
        "SM_INPUT_CONFIG_DIR": str(root.config_dir), "SM_INPUT_DATA_CONFIG": json.dumps(env.input_data_config),
        "SM_RESOURCE_CONFIG": json.dumps(env.resource_config), "SM_OUTPUT_DIR": str(root.output_dir),
        "SM_OUTPUT_DATA_DIR": str(root.output_data_dir),
        # an nbsage addition: CheckpointConfig.LocalPath on this job root (/opt/ml/checkpoints by default)
        "SM_CHECKPOINT_DIR": str(env.checkpoints_dir),
        "SM_OUTPUT_INTERMEDIATE_DIR": str(root.intermediate_dir),
        "SM_TRAINING_ENV": json.dumps(training_env, default=str),
        "SM_IS_MASTER": "true" if training_env["is_master"] else "false",
        "SM_MASTER_ADDR": env.hosts[0],
        "TRAINING_JOB_NAME": env.job_name, "SAGEMAKER_JOB_NAME": env.job_name,
        "CURRENT_HOST": env.current_host, "SAGEMAKER_BASE_DIR": str(root.path),
    }
    for c in channels:
        sm[f"SM_CHANNEL_{c.upper()}"] = str(root.channel_dir(c))
    for k, v in hps.items():
        sm[f"SM_HP_{k.upper()}"] = _env_value(v)
    return sm, args


class UserScriptError(Exception):
    pass


class Confinement:
    """How the script runs: in a view of its own (NBSAGE_HOME hidden but for its root, and /opt/ml
    its job root as in a SageMaker container, see nbsage.runtime.private_view) when one can be
    made, as NBSAGE_JOB_USER when set."""

    def __init__(self, problem: str | None, user: JobUser | None, opt_ml: bool = True):
        self.problem, self.user, self.opt_ml = problem, user, opt_ml

    def preexec(self, root: Path, cwd: Path):
        """What the child does between fork and exec: its view, then its user, then PDEATHSIG
        (a change of uid clears PDEATHSIG, so it comes last)."""
        problem, user, opt_ml = self.problem, self.user, self.opt_ml

        def child():
            if problem is None:
                private_view(root, opt_ml=opt_ml, map_root=False, threads_checked=True)
                os.chdir(cwd)  # the same folder, now seen through the view
            if user is not None:
                become(user)
            _die_with_runtime()
        return child


def confinement(env: TrainingEnvironment) -> Confinement:
    """Probe the view (in a forked child) and read NBSAGE_JOB_USER; raise UserScriptError when the
    job asks for what cannot be given here (NBSAGE_PROCESSING_ISOLATION=namespace, a job user with
    no view to put its root in)."""
    try:
        user = job_user()
    except ValidationError as e:
        raise UserScriptError(f"ClientError: {e}") from None
    mode = (os.environ.get(ISOLATION_ENV) or "auto").strip().lower()
    if mode not in ("auto", "namespace", "none"):
        raise UserScriptError(f"ClientError: {ISOLATION_ENV}={mode!r} is not one of auto, namespace, none")
    # scripts that hard-code /opt/ml/input/data/<channel> run as in SageMaker: /opt/ml is the job
    # root in the view; where only the home can be hidden, the script runs without /opt/ml
    opt_ml = True
    problem = f"{ISOLATION_ENV}=none" if mode == "none" else \
        probe_private_view(env.root.path, opt_ml=True, map_root=False)
    if problem is not None and mode != "none" and user is None:
        without = probe_private_view(env.root.path, opt_ml=False, map_root=False)
        if without is None:
            print(f"nbsage: the script's view has no /opt/ml ({problem}); use the SM_CHANNEL_* and "
                  "SM_MODEL_DIR paths", flush=True)
            problem, opt_ml = None, False
    if problem is not None and (mode == "namespace" or user is not None):
        wants = f"{JOB_USER_ENV}={user.name}" if user is not None else f"{ISOLATION_ENV}=namespace"
        raise UserScriptError(f"ClientError: {wants} needs a private mount namespace, and none can be made "
                              f"here: {problem}")
    if problem is not None:
        print(f"nbsage: the script runs without a view of its own ({problem})", flush=True)
    if user is not None:
        hand_over(env.root.path, user)  # a CheckpointConfig.LocalPath outside the root stays the user's own
        print(f"nbsage: the script runs as {user.name} (uid {user.uid}, {JOB_USER_ENV})", flush=True)
    return Confinement(problem, user, opt_ml)


def _die_with_runtime():
    """Linux: the script gets SIGKILL when the runtime dies, as a container's processes die with it."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _relay_stderr(proc: subprocess.Popen, tail: list[str]) -> None:
    """Copy the script's stderr to ours, keeping the last lines for ExecuteUserScriptError."""
    assert proc.stderr is not None
    for raw in proc.stderr:
        line = raw.decode("utf-8", errors="replace")
        sys.stderr.write(line)
        sys.stderr.flush()
        tail.append(line)
        tail[:] = tail[-40:]


def run_script(env: TrainingEnvironment) -> int:
    """Install requirements, run the entry point with cwd = code dir; return its exit code."""
    entry_point = decode(env.hyperparameters.get("sagemaker_program", '""'))
    code_dir = env.root.code_dir
    if not entry_point or not (code_dir / entry_point).exists():
        raise UserScriptError(f"entry point {entry_point!r} was not found in the job's code directory {code_dir}")
    requirements = code_dir / "requirements.txt"
    first: list[str] = []  # the job's own environment (see nbsage.runtime.model_env), before nbsage's
    if model_env.has_requirements(requirements):
        print(f"Installing requirements from {requirements}", flush=True)
        try:
            packages = model_env.ensure_environment(requirements, log=lambda m: print(m, flush=True))
        except model_env.RequirementsError as exc:
            raise UserScriptError(f"InstallRequirementsError: {exc}") from None
        first = [str(model_env.site_packages(packages))]
    sm, args = build_environment(env, entry_point, code_dir)
    if entry_point.endswith(".sh"):
        (code_dir / entry_point).chmod(0o700)
    view = confinement(env)
    seen_code_dir = code_dir  # where the script finds its code: /opt/ml/code for a job user
    if view.user is not None:  # the script sees its root at /opt/ml, which its user can reach
        sm = {k: v.replace(str(env.root.path), OPT_ML) for k, v in sm.items()}
        seen_code_dir = Path(OPT_ML) / "code"
    child_env = dict(os.environ)
    child_env.pop(JOB_USER_ENV, None)
    child_env.update(sm)
    # the framework containers' helper modules (sagemaker_containers, ...) come last: an installed copy wins
    child_env["PYTHONPATH"] = os.pathsep.join([str(seen_code_dir)] + first + [p for p in sys.path if p]
                                              + [framework_modules.PATH])
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    if view.user is not None:
        child_env.update(user_environment(view.user))
    if entry_point.endswith(".sh"):
        cmd = ["/bin/sh", "-c", " ".join([f"./{entry_point}"] + [shlex.quote(a) for a in args])]
    elif (code_dir / "setup.py").exists():
        cmd = [sys.executable, "-m", Path(entry_point).stem] + args
    else:
        cmd = [sys.executable, entry_point] + args
    print("Invoking script with the following command:\n" + " ".join(shlex.quote(c) for c in cmd), flush=True)
    try:
        proc = subprocess.Popen(cmd, cwd=code_dir, env=child_env, stdout=sys.stdout,
                                stderr=subprocess.PIPE, preexec_fn=view.preexec(env.root.path, seen_code_dir))
    except PermissionError as e:
        if view.user is None:
            raise
        raise UserScriptError(f"ClientError: {view.user.name} ({JOB_USER_ENV}) cannot run {cmd[0]}: {e.strerror} "
                              f"(the interpreter and every folder above it must be readable by that user)") from None
    tail: list[str] = []
    try:
        _relay_stderr(proc, tail)
        rc = proc.wait()
    except BaseException:
        # SIGTERM (train.Stopped) reaches the script too, through the process group: give its own
        # handler the time it needs (whoever stops the job SIGKILLs the group after a grace period)
        # instead of leaving, which would SIGKILL it at once through PR_SET_PDEATHSIG.
        try:
            _relay_stderr(proc, tail)
            proc.wait()
        except BaseException:
            proc.kill()
        raise
    if rc != 0:
        seen, message = set(), []
        for line in tail:
            if line not in seen:
                seen.add(line)
                message.append(line.rstrip())
        env.root.write_failure(
            "ExecuteUserScriptError:\nExitCode {}\nErrorMessage \"{}\"\nCommand \"{}\"".format(
                rc, "\n".join(message)[-800:], " ".join(cmd)))
    return rc
