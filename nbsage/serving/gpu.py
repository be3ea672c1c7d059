"""GPU endpoints: an instance type (or accelerator) that asks for CUDA gets it, or a clear error at deploy.

SageMaker's GPU instances (ml.g*, ml.p*, `local_gpu` in local mode) and Elastic Inference's
accelerator_type (ml.eia*) both mean "an accelerator behind the endpoint"; Elastic Inference is retired,
so here both mean a CUDA device on this machine. With one, the model server gets
NBSAGE_INFERENCE_DEVICE=cuda and the built-in loaders that have a CUDA path (XGBoost's device=cuda,
DeepAR's network) load on it; without one, deploy refuses before anything starts, naming the
instance type and the CPU alternative.
"""
from __future__ import annotations

from nbsage.errors import EndpointError

DEVICE_ENV = "NBSAGE_INFERENCE_DEVICE"
CPU_ALTERNATIVE = "instance_type='local' (CPU; or an ml.c*/ml.m* type)"


def wants_gpu(instance_type: str | None, accelerator_type: str | None = None) -> bool:
    """Whether the instance type or an accelerator_type asks for a GPU."""
    from nbsage.runtime.environment import is_gpu_instance_type
    return is_gpu_instance_type(instance_type) or bool(accelerator_type)


def inference_device(instance_type: str | None, accelerator_type: str | None = None, gpus: int | None = None) -> str:
    """'cuda' for a GPU instance type on a machine with a GPU, 'cpu' for a CPU type; an EndpointError
    naming the instance type and the CPU alternative for a GPU type on a machine without one."""
    if not wants_gpu(instance_type, accelerator_type):
        return "cpu"
    if gpus is None:
        from nbsage.runtime.environment import count_gpus
        gpus = count_gpus()
    if gpus > 0:
        return "cuda"
    asked = f"instance type {instance_type!r}" if not accelerator_type else \
        f"accelerator_type {accelerator_type!r} (on instance type {instance_type!r})"
    raise EndpointError(f"{asked} asks for a GPU and this machine has none (nvidia-smi lists no GPU); "
                        f"deploy with {CPU_ALTERNATIVE} and no accelerator_type, or on a machine with an NVIDIA GPU")
