"""Write a job root's config files from a CreateTrainingJob-shaped request."""
from __future__ import annotations

from nbsage.runtime import layout
from nbsage.runtime.layout import JobRoot


def input_data_config(channels: list[dict], default_mode: str = "File") -> dict:
    """inputdataconfig.json from InputDataConfig (note S3DistributionType, not S3DataDistributionType)."""
    out = {}
    for ch in channels:
        s3 = ch.get("DataSource", {}).get("S3DataSource", {})
        entry = {}
        if ch.get("ContentType"):
            entry["ContentType"] = ch["ContentType"]
        entry["TrainingInputMode"] = ch.get("InputMode") or default_mode
        entry["S3DistributionType"] = s3.get("S3DataDistributionType", "FullyReplicated")
        entry["RecordWrapperType"] = ch.get("RecordWrapperType", "None")
        if ch.get("CompressionType") and ch["CompressionType"] != "None":
            entry["CompressionType"] = ch["CompressionType"]
        out[ch["ChannelName"]] = entry
    return out


def resource_config(request: dict, host_index: int = 0) -> dict:
    res = request.get("ResourceConfig", {})
    count = int(res.get("InstanceCount", 1) or 1)
    hosts = [f"algo-{i + 1}" for i in range(count)]
    instance_type = res.get("InstanceType", "local")
    return {"current_host": hosts[host_index], "hosts": hosts, "network_interface_name": "eth0",
            "current_instance_type": instance_type, "current_group_name": "homogeneousCluster",
            "instance_groups": [{"instance_group_name": "homogeneousCluster",
                                 "instance_type": instance_type, "hosts": hosts}]}


def write_job_configs(root: JobRoot, request: dict, host_index: int = 0) -> JobRoot:
    """Lay out the root and write hyperparameters/inputdataconfig/resourceconfig/trainingjobconfig."""
    root.create()
    mode = request.get("AlgorithmSpecification", {}).get("TrainingInputMode", "File")
    root.write_config(layout.HYPERPARAMETERS, {k: str(v) for k, v in request.get("HyperParameters", {}).items()})
    root.write_config(layout.INPUT_DATA_CONFIG, input_data_config(request.get("InputDataConfig", []), mode))
    root.write_config(layout.RESOURCE_CONFIG, resource_config(request, host_index))
    root.write_config(layout.TRAINING_JOB_CONFIG, request)
    return root
