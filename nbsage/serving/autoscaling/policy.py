"""Scalable targets and target-tracking policies: declared once, validated once, in Application Auto
Scaling's words.

A scalable target is one endpoint variant's instance count (`ResourceId="endpoint/<name>/variant/<variant>"`,
`ScalableDimension="sagemaker:variant:DesiredInstanceCount"`) between MinCapacity and MaxCapacity; a policy
(`PolicyType="TargetTrackingScaling"`) keeps one per-instance metric near TargetValue. Every error names the
field at fault (`ScalingPolicyError.field`) and what is accepted, as AWS's ValidationException does.

Local bounds: an instance is a model-server process on this machine, so MaxCapacity is capped at
`NBSAGE_MAX_INSTANCES_PER_VARIANT` (default 16) — a policy asking for more would only starve the machine.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

from nbsage.errors import ValidationError

SERVICE_NAMESPACE = "sagemaker"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
POLICY_TYPE = "TargetTrackingScaling"
DEFAULT_COOLDOWN = 300  # seconds, Application Auto Scaling's default for both cooldowns
MAX_COOLDOWN = 86400
# the predefined metrics a variant's instance count can track, and what each measures here
METRICS = {
    "SageMakerVariantInvocationsPerInstance":
        "invocations per instance per minute (each request counts 1/instances, summed over a minute)",
    "SageMakerVariantConcurrentRequestsPerModelHighResolution":
        "requests in flight per instance (averaged over the evaluation period)",
}
# Application Auto Scaling's limits on TargetValue
TARGET_VALUE_MIN, TARGET_VALUE_MAX = 8.515920e-109, 1.174271e+108


class ScalingPolicyError(ValidationError):
    """A scalable target or scaling policy field is missing or outside its bounds; `field` names it."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field

    def __reduce__(self):
        return type(self), (*self.args[:1], self.field)


def max_instances() -> int:
    """The most instances one variant may have on this machine (NBSAGE_MAX_INSTANCES_PER_VARIANT, default 16)."""
    try:
        value = int(os.environ.get("NBSAGE_MAX_INSTANCES_PER_VARIANT") or 16)
    except ValueError:
        return 16
    return max(1, value)


def resource_id(endpoint_name: str, variant_name: str) -> str:
    return f"endpoint/{endpoint_name}/variant/{variant_name}"


def parse_resource_id(value) -> tuple[str, str]:
    """`endpoint/<name>/variant/<variant>` -> (name, variant); anything else is a ScalingPolicyError."""
    parts = str(value).split("/") if isinstance(value, str) else []
    if len(parts) != 4 or parts[0] != "endpoint" or parts[2] != "variant" or not parts[1] or not parts[3]:
        raise ScalingPolicyError(f"ResourceId {value!r} is not an endpoint variant; give "
                                 "'endpoint/<EndpointName>/variant/<VariantName>' (e.g. "
                                 "'endpoint/my-endpoint/variant/AllTraffic')", "ResourceId")
    return parts[1], parts[3]


def check_service(service_namespace, scalable_dimension) -> None:
    if service_namespace != SERVICE_NAMESPACE:
        raise ScalingPolicyError(f"ServiceNamespace {service_namespace!r} is not answered here; nbsage scales "
                                 f"endpoint variants: ServiceNamespace={SERVICE_NAMESPACE!r}", "ServiceNamespace")
    if scalable_dimension != SCALABLE_DIMENSION:
        raise ScalingPolicyError(f"ScalableDimension {scalable_dimension!r} is not answered here; give "
                                 f"{SCALABLE_DIMENSION!r} (a variant's instance count)", "ScalableDimension")


def _integer(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ScalingPolicyError(f"{field} must be a whole number, got {value!r}", field)
    return int(value)


def _number(value, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScalingPolicyError(f"{field} must be a finite number, got {value!r}", field)
    return float(value)


@dataclass(frozen=True)
class ScalableTarget:
    """One variant's instance count and the range a policy may move it in."""

    endpoint_name: str
    variant_name: str
    min_capacity: int
    max_capacity: int

    @property
    def resource_id(self) -> str:
        return resource_id(self.endpoint_name, self.variant_name)

    @classmethod
    def checked(cls, endpoint_name: str, variant_name: str, min_capacity, max_capacity) -> "ScalableTarget":
        """MinCapacity >= 1 (an instance-based variant never goes to zero), MaxCapacity >= MinCapacity and at
        most this machine's limit."""
        if min_capacity is None:
            raise ScalingPolicyError("MinCapacity is required when registering a scalable target", "MinCapacity")
        if max_capacity is None:
            raise ScalingPolicyError("MaxCapacity is required when registering a scalable target", "MaxCapacity")
        low, high = _integer(min_capacity, "MinCapacity"), _integer(max_capacity, "MaxCapacity")
        if low < 1:
            raise ScalingPolicyError(f"MinCapacity must be at least 1 for an instance-based variant, got {low}",
                                     "MinCapacity")
        if high < low:
            raise ScalingPolicyError(f"MaxCapacity ({high}) must be at least MinCapacity ({low})", "MaxCapacity")
        limit = max_instances()
        if high > limit:
            raise ScalingPolicyError(f"MaxCapacity {high} is over this machine's limit of {limit} instances per "
                                     "variant (each instance is a model-server process here); give at most "
                                     f"{limit}, or raise NBSAGE_MAX_INSTANCES_PER_VARIANT", "MaxCapacity")
        return cls(endpoint_name, variant_name, low, high)

    def describe(self, creation_time: str | None = None) -> dict:
        """DescribeScalableTargets' shape."""
        out = {"ServiceNamespace": SERVICE_NAMESPACE, "ResourceId": self.resource_id,
               "ScalableDimension": SCALABLE_DIMENSION, "MinCapacity": self.min_capacity,
               "MaxCapacity": self.max_capacity, "RoleARN": "", "SuspendedState": {
                   "DynamicScalingInSuspended": False, "DynamicScalingOutSuspended": False,
                   "ScheduledScalingSuspended": False}}
        if creation_time:
            out["CreationTime"] = creation_time
        return out


@dataclass(frozen=True)
class TargetTrackingPolicy:
    """A target-tracking policy: keep `metric` per instance near `target_value`."""

    policy_name: str
    endpoint_name: str
    variant_name: str
    target_value: float
    metric: str = "SageMakerVariantInvocationsPerInstance"
    scale_in_cooldown: int = DEFAULT_COOLDOWN
    scale_out_cooldown: int = DEFAULT_COOLDOWN
    disable_scale_in: bool = False

    @property
    def resource_id(self) -> str:
        return resource_id(self.endpoint_name, self.variant_name)

    @classmethod
    def from_request(cls, policy_name, endpoint_name: str, variant_name: str, policy_type,
                     configuration) -> "TargetTrackingPolicy":
        """From PutScalingPolicy's arguments; every field checked, the error naming it."""
        if not isinstance(policy_name, str) or not policy_name.strip() or len(policy_name) > 256:
            raise ScalingPolicyError(f"PolicyName must be a non-empty string of at most 256 characters, got "
                                     f"{policy_name!r}", "PolicyName")
        if policy_type != POLICY_TYPE:
            raise ScalingPolicyError(f"PolicyType {policy_type!r} is not answered here; nbsage scales variants by "
                                     f"target tracking: PolicyType={POLICY_TYPE!r}", "PolicyType")
        if not isinstance(configuration, dict):
            raise ScalingPolicyError("TargetTrackingScalingPolicyConfiguration is required with "
                                     f"PolicyType={POLICY_TYPE!r}: a dict with TargetValue and "
                                     "PredefinedMetricSpecification", "TargetTrackingScalingPolicyConfiguration")
        known = {"TargetValue", "PredefinedMetricSpecification", "CustomizedMetricSpecification",
                 "ScaleInCooldown", "ScaleOutCooldown", "DisableScaleIn"}
        for key in configuration:
            if key not in known:
                from nbsage.errors import did_you_mean
                raise ScalingPolicyError(f"TargetTrackingScalingPolicyConfiguration has no field {key!r}"
                                         f"{did_you_mean(key, sorted(known))}; it takes {', '.join(sorted(known))}",
                                         f"TargetTrackingScalingPolicyConfiguration.{key}")
        if "CustomizedMetricSpecification" in configuration:
            raise ScalingPolicyError("CustomizedMetricSpecification is not answered here (there is no CloudWatch); "
                                     f"give PredefinedMetricSpecification with one of {', '.join(METRICS)}",
                                     "CustomizedMetricSpecification")
        spec = configuration.get("PredefinedMetricSpecification")
        if not isinstance(spec, dict) or "PredefinedMetricType" not in spec:
            raise ScalingPolicyError("PredefinedMetricSpecification is required: "
                                     "{'PredefinedMetricType': 'SageMakerVariantInvocationsPerInstance'} "
                                     f"(or one of {', '.join(METRICS)})", "PredefinedMetricSpecification")
        metric = check_metric(spec["PredefinedMetricType"], "PredefinedMetricSpecification.PredefinedMetricType")
        if "TargetValue" not in configuration:
            raise ScalingPolicyError("TargetValue is required: the metric's value per instance to keep "
                                     "(e.g. 70.0 invocations per instance per minute)", "TargetValue")
        policy = cls(policy_name.strip(), endpoint_name, variant_name,
                     target_value=configuration["TargetValue"], metric=metric,
                     scale_in_cooldown=configuration.get("ScaleInCooldown", DEFAULT_COOLDOWN),
                     scale_out_cooldown=configuration.get("ScaleOutCooldown", DEFAULT_COOLDOWN),
                     disable_scale_in=configuration.get("DisableScaleIn", False))
        return policy.checked()

    def checked(self) -> "TargetTrackingPolicy":
        """This policy with its numbers checked: TargetValue > 0, cooldowns whole seconds in [0, 86400]."""
        target = _number(self.target_value, "TargetValue")
        if not TARGET_VALUE_MIN <= target <= TARGET_VALUE_MAX:
            raise ScalingPolicyError(f"TargetValue must be greater than 0 (and at most {TARGET_VALUE_MAX:g}), got "
                                     f"{self.target_value!r}", "TargetValue")
        cooldowns = {}
        for field, value in (("ScaleInCooldown", self.scale_in_cooldown), ("ScaleOutCooldown", self.scale_out_cooldown)):
            seconds = _integer(value, field)
            if not 0 <= seconds <= MAX_COOLDOWN:
                raise ScalingPolicyError(f"{field} must be between 0 and {MAX_COOLDOWN} seconds, got {value!r}", field)
            cooldowns[field] = seconds
        if not isinstance(self.disable_scale_in, bool):
            raise ScalingPolicyError(f"DisableScaleIn must be true or false, got {self.disable_scale_in!r}",
                                     "DisableScaleIn")
        check_metric(self.metric, "PredefinedMetricSpecification.PredefinedMetricType")
        return TargetTrackingPolicy(self.policy_name, self.endpoint_name, self.variant_name, target, self.metric,
                                    cooldowns["ScaleInCooldown"], cooldowns["ScaleOutCooldown"],
                                    self.disable_scale_in)

    def configuration(self) -> dict:
        """TargetTrackingScalingPolicyConfiguration, as PutScalingPolicy takes it."""
        return {"TargetValue": self.target_value,
                "PredefinedMetricSpecification": {"PredefinedMetricType": self.metric},
                "ScaleInCooldown": self.scale_in_cooldown, "ScaleOutCooldown": self.scale_out_cooldown,
                "DisableScaleIn": self.disable_scale_in}

    def to_json(self) -> dict:
        return asdict(self)

    def describe(self, creation_time: str | None = None) -> dict:
        """DescribeScalingPolicies' shape."""
        import uuid
        key = uuid.uuid5(uuid.NAMESPACE_URL, f"{self.resource_id}/{self.policy_name}")
        out = {"PolicyARN": f"arn:aws:autoscaling:local:000000000000:scalingPolicy:{key}:resource/"
                            f"{SERVICE_NAMESPACE}/{self.resource_id}:policyName/{self.policy_name}",
               "PolicyName": self.policy_name, "ServiceNamespace": SERVICE_NAMESPACE,
               "ResourceId": self.resource_id, "ScalableDimension": SCALABLE_DIMENSION,
               "PolicyType": POLICY_TYPE, "TargetTrackingScalingPolicyConfiguration": self.configuration(),
               "Alarms": []}
        if creation_time:
            out["CreationTime"] = creation_time
        return out


def check_metric(value, field: str = "metric") -> str:
    if value not in METRICS:
        from nbsage.errors import did_you_mean
        raise ScalingPolicyError(f"{field} {value!r} is not a metric a variant can track"
                                 f"{did_you_mean(str(value), list(METRICS))}; give one of {', '.join(METRICS)}", field)
    return value
