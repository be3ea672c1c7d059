"""`Session.sagemaker_client` and `Session.sagemaker_runtime_client`: the few boto3 calls SageMaker
notebooks make on the SDK session's clients, answered by nbsage in boto3's shapes.

Notebooks reach past the SDK for a handful of calls — `sess.sagemaker_client.list_endpoints(...)`
before deploying, `session.sagemaker_runtime_client.invoke_endpoint(...)` to send a raw body.
These objects answer those with nbsage's own endpoints; any other operation fails naming the
ones there are, rather than reaching AWS.
"""
from __future__ import annotations

import io

from nbsage.errors import ValidationError


class _Client:
    """Operations by boto3 name; anything else is an error that lists them."""

    service = ""
    operations: tuple[str, ...] = ()

    def __init__(self, session):
        self._session = session

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        raise ValidationError(f"{self.service}.{name} is not answered by nbsage's {self.service} client; it "
                              f"answers {', '.join(self.operations)}")


class SageMakerClient(_Client):
    """The `sagemaker` client's endpoint and training-job reads, and endpoint deletion."""

    service = "sagemaker"
    operations = ("list_endpoints", "describe_endpoint", "delete_endpoint", "describe_training_job",
                  "list_training_jobs", "create_model", "create_endpoint_config", "describe_endpoint_config",
                  "list_endpoint_configs", "delete_endpoint_config", "create_endpoint", "update_endpoint",
                  "update_endpoint_weights_and_capacities")

    # ---- models, endpoint configs and variants (nbsage.serving.variants); like boto3, they return at once
    def create_model(self, ModelName: str, PrimaryContainer: dict | None = None, Containers: list | None = None,
                     **_) -> dict:  # noqa: N803
        self._session.create_model(ModelName, container_defs=Containers or PrimaryContainer)
        from nbsage.arns import arn
        return {"ModelArn": arn("model", ModelName)}

    def create_endpoint_config(self, EndpointConfigName: str, ProductionVariants: list,  # noqa: N803
                               ShadowProductionVariants: list | None = None, DataCaptureConfig: dict | None = None,
                               **_) -> dict:
        self._session.create_endpoint_config_from_variants(EndpointConfigName, ProductionVariants,
                                                           ShadowProductionVariants, DataCaptureConfig)
        return {"EndpointConfigArn": self._session.describe_endpoint_config(EndpointConfigName)["EndpointConfigArn"]}

    def describe_endpoint_config(self, EndpointConfigName: str) -> dict:  # noqa: N803
        return self._session.describe_endpoint_config(EndpointConfigName)

    def list_endpoint_configs(self, NameContains: str | None = None, MaxResults: int = 10, **_) -> dict:  # noqa: N803
        configs = [c for c in self._session.list_endpoint_configs()
                   if not NameContains or NameContains in c["EndpointConfigName"]]
        return {"EndpointConfigs": configs[:int(MaxResults)]}

    def delete_endpoint_config(self, EndpointConfigName: str) -> dict:  # noqa: N803
        self._session.delete_endpoint_config(EndpointConfigName)
        return {}

    def create_endpoint(self, EndpointName: str, EndpointConfigName: str, **_) -> dict:  # noqa: N803
        self._session.create_endpoint(EndpointName, EndpointConfigName, wait=False)
        return {"EndpointArn": self._session.describe_endpoint(EndpointName)["EndpointArn"]}

    def update_endpoint(self, EndpointName: str, EndpointConfigName: str, **_) -> dict:  # noqa: N803
        self._session.update_endpoint(EndpointName, EndpointConfigName, wait=False)
        return {"EndpointArn": self._session.describe_endpoint(EndpointName)["EndpointArn"]}

    def update_endpoint_weights_and_capacities(self, EndpointName: str, DesiredWeightsAndCapacities: list,  # noqa: N803
                                               **_) -> dict:
        self._session.update_endpoint_weights_and_capacities(EndpointName, DesiredWeightsAndCapacities, wait=False)
        return {"EndpointArn": self._session.describe_endpoint(EndpointName)["EndpointArn"]}

    def list_endpoints(self, NameContains: str | None = None, MaxResults: int = 10, StatusEquals=None,
                       SortBy=None, SortOrder=None, NextToken=None, **_) -> dict:  # noqa: N803 - boto3's names
        found = []
        for desc in self._session.list_endpoints():
            if NameContains and NameContains not in desc["EndpointName"]:
                continue
            if StatusEquals and desc["EndpointStatus"] != StatusEquals:
                continue
            found.append({k: desc[k] for k in ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime",
                                                "EndpointStatus") if k in desc})
        return {"Endpoints": found[:int(MaxResults)]}

    def describe_endpoint(self, EndpointName: str) -> dict:  # noqa: N803
        return self._session.describe_endpoint(EndpointName)

    def delete_endpoint(self, EndpointName: str) -> dict:  # noqa: N803
        self._session.delete_endpoint(EndpointName)
        return {}

    def describe_training_job(self, TrainingJobName: str) -> dict:  # noqa: N803
        from nbsage.training_job import TrainingJob
        return TrainingJob(TrainingJobName, self._session).describe()

    def list_training_jobs(self, NameContains: str | None = None, MaxResults: int = 10, **_) -> dict:  # noqa: N803
        jobs = [j.describe() for j in self._session.list_training_jobs(limit=200)]
        jobs = [d for d in jobs if not NameContains or NameContains in d["TrainingJobName"]]
        keys = ("TrainingJobName", "TrainingJobArn", "CreationTime", "TrainingEndTime", "TrainingJobStatus")
        return {"TrainingJobSummaries": [{k: d[k] for k in keys if k in d} for d in jobs[:int(MaxResults)]]}


class SageMakerRuntimeClient(_Client):
    """The `sagemaker-runtime` client's invoke_endpoint, with boto3's response shape."""

    service = "sagemaker-runtime"
    operations = ("invoke_endpoint",)

    def invoke_endpoint(self, EndpointName: str, Body, ContentType: str | None = None, Accept: str | None = None,
                        CustomAttributes: str | None = None, TargetVariant: str | None = None,
                        InferenceId: str | None = None, **_) -> dict:  # noqa: N803
        from nbsage.serving.endpoints import invoke_endpoint
        body, content_type, headers = invoke_endpoint(self._session, EndpointName, Body, ContentType, Accept,
                                                      custom_attributes=CustomAttributes,
                                                      target_variant=TargetVariant, inference_id=InferenceId)
        response = {"Body": io.BytesIO(body), "ContentType": content_type,
                    "InvokedProductionVariant": headers.get("X-Amzn-Invoked-Production-Variant", "AllTraffic")}
        if headers.get("X-Amzn-SageMaker-Custom-Attributes"):
            response["CustomAttributes"] = headers["X-Amzn-SageMaker-Custom-Attributes"]
        return response


class ApplicationAutoScalingClient(_Client):
    """The `application-autoscaling` client's calls for endpoint variants (nbsage.serving.autoscaling)."""

    service = "application-autoscaling"
    operations = ("register_scalable_target", "deregister_scalable_target", "put_scaling_policy",
                  "delete_scaling_policy", "describe_scalable_targets", "describe_scaling_policies",
                  "describe_scaling_activities")

    def __getattr__(self, name):
        if name in self.operations:
            from nbsage.serving import autoscaling
            operation = getattr(autoscaling, name)
            return lambda **kwargs: operation(self._session, **kwargs)
        return super().__getattr__(name)


_CLIENTS = {"sagemaker": SageMakerClient, "sagemaker-runtime": SageMakerRuntimeClient,
            "application-autoscaling": ApplicationAutoScalingClient}


def client(service_name: str, sagemaker_session=None, **_):
    """`boto3.client(service_name)` for the services nbsage answers: sagemaker, sagemaker-runtime,
    application-autoscaling (region, credentials and endpoint_url are accepted and unused)."""
    if service_name not in _CLIENTS:
        from nbsage.errors import did_you_mean
        raise ValidationError(f"nbsage answers no {service_name!r} client{did_you_mean(service_name, list(_CLIENTS))}; "
                              f"it answers {', '.join(_CLIENTS)}")
    if sagemaker_session is None:
        from nbsage.session import Session
        sagemaker_session = Session()
    return _CLIENTS[service_name](sagemaker_session)
