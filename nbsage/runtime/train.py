"""`train`: run one training job from its root, as a SageMaker container does.

Exit codes and the failure file follow the contract: 0 and output/success on success; non-zero
and output/failure (first 1024 characters become FailureReason) otherwise. A built-in
algorithm's user-facing errors are written as `ClientError: ...`, internal ones as
`AlgorithmError: ...`, the prefixes SageMaker's built-in algorithms use.
"""
from __future__ import annotations

import signal
import sys
import time
import traceback

from nbsage.errors import NBSageError
from nbsage.runtime import layout
from nbsage.runtime.environment import TrainingEnvironment, count_gpus, is_gpu_instance_type
from nbsage.runtime.layout import JobRoot
from nbsage.runtime.packaging import pack_dir
from nbsage.runtime.user_paths import to_user_paths

EXIT_FAILURE = 1
EXIT_STOPPED = 143  # 128 + SIGTERM


class Stopped(BaseException):
    """Raised in the job's main thread when SIGTERM arrives (StopTrainingJob, MaxRuntime)."""


def _on_sigterm(signum, frame):
    raise Stopped()


def algorithm_name(root: JobRoot) -> str | None:
    """The built-in algorithm a root names, or None for a user script."""
    spec = root.read_config(layout.TRAINING_JOB_CONFIG).get("AlgorithmSpecification", {})
    return spec.get("AlgorithmName") or spec.get("TrainingImage")


def run(root_path: str) -> int:
    root = JobRoot(root_path)
    root.output_dir.mkdir(parents=True, exist_ok=True)
    root.model_dir.mkdir(parents=True, exist_ok=True)
    root.output_data_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _on_sigterm)
    started = time.time()
    try:
        env = TrainingEnvironment(root)
        if is_gpu_instance_type(env.instance_type) and count_gpus() == 0:
            raise NBSageError(
                f"instance type {env.instance_type!r} asks for a GPU, and this place has none; "
                "use instance_type='local' (CPU) or run on a place with an NVIDIA GPU")
        if "sagemaker_program" in env.hyperparameters:
            from nbsage.runtime.script_mode import UserScriptError, run_script
            try:
                rc = run_script(env)
            except UserScriptError as e:
                root.write_failure(str(e))
                return EXIT_FAILURE
            if rc != 0:
                return EXIT_FAILURE
        else:
            from nbsage import algorithms
            name = algorithm_name(root)
            if not name:
                raise NBSageError("the job root names neither a built-in algorithm "
                                  "(trainingjobconfig.json AlgorithmSpecification) nor a script (sagemaker_program)")
            algorithm = algorithms.get(name)
            algorithm.train(env)
    except Stopped:
        root.write_failure("Stopped: the job received SIGTERM")
        # a model saved on SIGTERM (XGBoost's save_model_on_termination, a script's handler) is
        # packed as on completion: the place uploads it and the stopped job can be deployed
        pack_dir(root.model_dir, root.model_archive)
        print("Training stopped (SIGTERM).", file=sys.stderr, flush=True)
        return EXIT_STOPPED
    except NBSageError as e:
        message = to_user_paths(root, str(e))  # the user's file, not the staged copy under the root
        root.write_failure(f"ClientError: {message}")
        print(f"ClientError: {message}", file=sys.stderr, flush=True)
        return EXIT_FAILURE
    except Exception as e:  # the job must end with a reason, whatever went wrong
        traceback.print_exc()
        root.write_failure(f"AlgorithmError: {type(e).__name__}: {e}")
        return EXIT_FAILURE
    pack_dir(root.model_dir, root.model_archive)
    pack_dir(root.output_data_dir, root.output_archive)
    root.success_file.touch()
    print(f"Training finished in {time.time() - started:.2f} s", flush=True)
    return 0
