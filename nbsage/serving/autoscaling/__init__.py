"""Automatic scaling of endpoint variants, in Application Auto Scaling's shapes.

`register_scalable_target` names a variant's instance count and its [MinCapacity, MaxCapacity];
`put_scaling_policy` adds a target-tracking policy (SageMakerVariantInvocationsPerInstance or concurrent
requests per instance); the endpoint's controller (`controller.py`) then follows the traffic, and every
change it makes is a scaling activity (`describe_scaling_activities`, and `describe_endpoint`'s
"AutoScaling"). The modules: `policy` (declarations and their checks), `decision` (the rule, a pure
function), `records` (the store's tables), `controller` (the loop that measures, decides and scales), `fleet`
(the controller's view of the endpoint's front, in whose process it runs).
"""
from __future__ import annotations

import uuid

from nbsage.serving.autoscaling.policy import (SCALABLE_DIMENSION, SERVICE_NAMESPACE, ScalableTarget,
                                               ScalingPolicyError, TargetTrackingPolicy, check_service,
                                               parse_resource_id, resource_id)
from nbsage.serving.autoscaling.records import ScalingRecords


def _variant_names(session, endpoint: str) -> list[str]:
    from nbsage.serving.endpoints import describe_endpoint
    return [v["VariantName"] for v in describe_endpoint(session, endpoint)["ProductionVariants"]]


def _existing_variant(session, rid) -> tuple[str, str]:
    """(endpoint, variant) of a ResourceId naming a variant that exists, else ScalingPolicyError."""
    from nbsage.errors import EndpointError, did_you_mean
    endpoint, variant = parse_resource_id(rid)
    try:
        names = _variant_names(session, endpoint)
    except EndpointError as e:
        raise ScalingPolicyError(f"ResourceId {rid!r}: {e}", "ResourceId") from None
    if variant not in names:
        raise ScalingPolicyError(f"ResourceId {rid!r}: endpoint {endpoint!r} has no variant {variant!r}"
                                 f"{did_you_mean(variant, names)}; its variants are {', '.join(names)}", "ResourceId")
    return endpoint, variant


def _behind_a_front(session, endpoint: str, variant: str) -> None:
    """A variant scales as model servers behind the endpoint's front (nbsage.serving.front), where the
    controller runs; a plain endpoint (one direct model server) that is InService is moved behind one
    first, as an update that fails no request (the clients follow it to its new port)."""
    record = session.store.get_endpoint(endpoint)
    if record["config"].get("Front") or record["status"] != "InService":
        return
    from nbsage.serving.variants import update_endpoint_weights_and_capacities
    count = int(record["config"].get("InitialInstanceCount") or 1)
    update_endpoint_weights_and_capacities(session, endpoint, [{"VariantName": variant, "DesiredInstanceCount": count}],
                                           wait=True)


def register_scalable_target(session, ServiceNamespace=SERVICE_NAMESPACE, ResourceId=None,  # noqa: N803
                             ScalableDimension=SCALABLE_DIMENSION, MinCapacity=None, MaxCapacity=None,
                             EvaluationPeriod=None, **_) -> dict:
    """RegisterScalableTarget: the variant's instance count may move in [MinCapacity, MaxCapacity].

    Registering again updates the bounds (a missing one keeps its value, as in AWS). `EvaluationPeriod`
    (seconds, nbsage's addition; default 60, SageMaker's metric period) sets how often the controller looks."""
    check_service(ServiceNamespace, ScalableDimension)
    endpoint, variant = _existing_variant(session, ResourceId)
    records = ScalingRecords(session.store)
    known = records.target(endpoint, variant)
    options = dict(known[1]["options"]) if known else {}
    if known:
        MinCapacity = known[0].min_capacity if MinCapacity is None else MinCapacity
        MaxCapacity = known[0].max_capacity if MaxCapacity is None else MaxCapacity
    if EvaluationPeriod is not None:
        from nbsage.serving.autoscaling.policy import _number
        seconds = _number(EvaluationPeriod, "EvaluationPeriod")
        if seconds <= 0:
            raise ScalingPolicyError(f"EvaluationPeriod must be more than 0 seconds, got {EvaluationPeriod!r}",
                                     "EvaluationPeriod")
        options["EvaluationPeriod"] = seconds
    target = ScalableTarget.checked(endpoint, variant, MinCapacity, MaxCapacity)
    _behind_a_front(session, endpoint, variant)
    records.put_target(target, options)
    key = uuid.uuid5(uuid.NAMESPACE_URL, target.resource_id).hex
    return {"ScalableTargetARN": f"arn:aws:application-autoscaling:local:000000000000:scalable-target/{key}"}


def put_scaling_policy(session, PolicyName=None, ServiceNamespace=SERVICE_NAMESPACE, ResourceId=None,  # noqa: N803
                       ScalableDimension=SCALABLE_DIMENSION, PolicyType="TargetTrackingScaling",
                       TargetTrackingScalingPolicyConfiguration=None, **_) -> dict:
    """PutScalingPolicy (target tracking) on a registered scalable target; the same name replaces it."""
    check_service(ServiceNamespace, ScalableDimension)
    endpoint, variant = _existing_variant(session, ResourceId)
    records = ScalingRecords(session.store)
    if records.target(endpoint, variant) is None:
        raise ScalingPolicyError(f"No scalable target registered for ResourceId {ResourceId!r}: call "
                                 "register_scalable_target (MinCapacity, MaxCapacity) first", "ResourceId")
    policy = TargetTrackingPolicy.from_request(PolicyName, endpoint, variant, PolicyType,
                                               TargetTrackingScalingPolicyConfiguration)
    records.put_policy(policy)
    return {"PolicyARN": policy.describe()["PolicyARN"], "Alarms": []}


def _filter_resource(ResourceIds, ResourceId=None) -> tuple[str | None, str | None]:  # noqa: N803
    """(endpoint, variant) to filter on; None, None for all."""
    ids = list(ResourceIds or []) + ([ResourceId] if ResourceId else [])
    if not ids:
        return None, None
    if len(ids) > 1:
        raise ScalingPolicyError("give one ResourceId at a time", "ResourceIds")
    return parse_resource_id(ids[0])


def describe_scalable_targets(session, ServiceNamespace=SERVICE_NAMESPACE, ResourceIds=None,  # noqa: N803
                              ScalableDimension=SCALABLE_DIMENSION, **_) -> dict:
    check_service(ServiceNamespace, ScalableDimension)
    endpoint, variant = _filter_resource(ResourceIds)
    from nbsage.store.metadata import iso
    rows = ScalingRecords(session.store).targets(endpoint)
    return {"ScalableTargets": [t.describe(iso(r["creation_time"])) for t, r in rows
                                if variant is None or t.variant_name == variant]}


def describe_scaling_policies(session, ServiceNamespace=SERVICE_NAMESPACE, PolicyNames=None,  # noqa: N803
                              ResourceId=None, ScalableDimension=SCALABLE_DIMENSION, **_) -> dict:
    check_service(ServiceNamespace, ScalableDimension)
    endpoint, variant = _filter_resource(None, ResourceId)
    from nbsage.store.metadata import iso
    rows = ScalingRecords(session.store).policies(endpoint, variant)
    return {"ScalingPolicies": [p.describe(iso(r["creation_time"])) for p, r in rows
                                if not PolicyNames or p.policy_name in PolicyNames]}


def describe_scaling_activities(session, ServiceNamespace=SERVICE_NAMESPACE, ResourceId=None,  # noqa: N803
                                ScalableDimension=SCALABLE_DIMENSION, MaxResults=50, **_) -> dict:
    check_service(ServiceNamespace, ScalableDimension)
    endpoint, variant = _filter_resource(None, ResourceId)
    return {"ScalingActivities": ScalingRecords(session.store).activities(endpoint, variant, limit=MaxResults)}


def delete_scaling_policy(session, PolicyName=None, ServiceNamespace=SERVICE_NAMESPACE, ResourceId=None,  # noqa: N803
                          ScalableDimension=SCALABLE_DIMENSION, **_) -> dict:
    check_service(ServiceNamespace, ScalableDimension)
    endpoint, variant = parse_resource_id(ResourceId)
    if not ScalingRecords(session.store).delete_policy(endpoint, variant, str(PolicyName)):
        raise ScalingPolicyError(f"No scaling policy named {PolicyName!r} on ResourceId {ResourceId!r}", "PolicyName")
    return {}


def deregister_scalable_target(session, ServiceNamespace=SERVICE_NAMESPACE, ResourceId=None,  # noqa: N803
                               ScalableDimension=SCALABLE_DIMENSION, **_) -> dict:
    """DeregisterScalableTarget: the variant stops scaling (and its policies go); its count stays as it is."""
    check_service(ServiceNamespace, ScalableDimension)
    endpoint, variant = parse_resource_id(ResourceId)
    records = ScalingRecords(session.store)
    if records.target(endpoint, variant) is None:
        raise ScalingPolicyError(f"No scalable target registered for ResourceId {ResourceId!r}", "ResourceId")
    records.delete_target(endpoint, variant)
    return {}


def _one_variant(session, endpoint: str, variant_name: str | None) -> str:
    if variant_name is not None:
        return variant_name
    names = _variant_names(session, endpoint)
    if len(names) != 1:
        raise ScalingPolicyError(f"endpoint {endpoint!r} has {len(names)} variants ({', '.join(names)}); "
                                 "name the one to scale with variant_name", "variant_name")
    return names[0]


def enable_autoscaling(session, endpoint: str, min_capacity: int, max_capacity: int, target_value: float,
                       metric: str = "SageMakerVariantInvocationsPerInstance", scale_in_cooldown: int = 300,
                       scale_out_cooldown: int = 300, disable_scale_in: bool = False,
                       variant_name: str | None = None, policy_name: str | None = None,
                       evaluation_period: float | None = None) -> dict:
    """RegisterScalableTarget + a target-tracking PutScalingPolicy for one variant; returns
    DescribeScalingPolicies' row. The policy is checked before anything is recorded."""
    variant = _one_variant(session, endpoint, variant_name)
    rid = resource_id(endpoint, variant)
    name = policy_name or f"{variant}-{metric.removeprefix('SageMakerVariant')}-target"
    configuration = {"TargetValue": target_value, "PredefinedMetricSpecification": {"PredefinedMetricType": metric},
                     "ScaleInCooldown": scale_in_cooldown, "ScaleOutCooldown": scale_out_cooldown,
                     "DisableScaleIn": disable_scale_in}
    _existing_variant(session, rid)
    ScalableTarget.checked(endpoint, variant, min_capacity, max_capacity)
    TargetTrackingPolicy.from_request(name, endpoint, variant, "TargetTrackingScaling", configuration)
    register_scalable_target(session, ResourceId=rid, MinCapacity=min_capacity, MaxCapacity=max_capacity,
                             EvaluationPeriod=evaluation_period)
    put_scaling_policy(session, PolicyName=name, ResourceId=rid,
                       TargetTrackingScalingPolicyConfiguration=configuration)
    return describe_scaling_policies(session, PolicyNames=[name], ResourceId=rid)["ScalingPolicies"][0]


def disable_autoscaling(session, endpoint: str, variant_name: str | None = None) -> None:
    """Deregister the variant's scalable target (every scalable variant of the endpoint by default)."""
    records = ScalingRecords(session.store)
    for target, _ in records.targets(endpoint):
        if variant_name is None or target.variant_name == variant_name:
            records.delete_target(endpoint, target.variant_name)


def endpoint_scaling(session, endpoint: str, limit: int = 20) -> dict | None:
    """What describe_endpoint shows of autoscaling: each scalable variant's bounds and policies, and the
    latest scaling activities; None when the endpoint scales no variant and never did."""
    records = ScalingRecords(session.store)
    targets = records.targets(endpoint)
    activities = records.activities(endpoint, limit=limit)
    if not targets and not activities:
        return None
    policies = records.policies(endpoint)
    return {"ScalableTargets": [{"VariantName": t.variant_name, "MinCapacity": t.min_capacity,
                                 "MaxCapacity": t.max_capacity,
                                 "Policies": [p.describe()["TargetTrackingScalingPolicyConfiguration"]
                                              | {"PolicyName": p.policy_name}
                                              for p, _ in policies if p.variant_name == t.variant_name]}
                                for t, _ in targets],
            "ScalingActivities": activities}


__all__ = ["register_scalable_target", "put_scaling_policy", "describe_scalable_targets",
           "describe_scaling_policies", "describe_scaling_activities", "delete_scaling_policy",
           "deregister_scalable_target", "enable_autoscaling", "disable_autoscaling", "endpoint_scaling", "ScalingPolicyError", "ScalableTarget",
           "TargetTrackingPolicy", "resource_id"]
