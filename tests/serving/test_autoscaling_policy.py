"""Autoscaling's declarations, its rule and its records, without a running endpoint: the scalable target and
policy checks (each error naming its field), the target-tracking decision as a pure function, and the
application-autoscaling client's shapes over the store."""
from __future__ import annotations

import pytest

from nbsage.boto_clients import client
from nbsage.errors import ValidationError
from nbsage.serving.autoscaling import ScalingPolicyError, ScalingRecords
from nbsage.serving.autoscaling.decision import capacity_for, decide
from nbsage.serving.autoscaling.policy import ScalableTarget, TargetTrackingPolicy

IPI = "SageMakerVariantInvocationsPerInstance"
CONC = "SageMakerVariantConcurrentRequestsPerModelHighResolution"
RID = "endpoint/shop/variant/AllTraffic"


def policy(target=60.0, metric=IPI, scale_in=300, scale_out=60, disable_scale_in=False, name="p"):
    return TargetTrackingPolicy(name, "shop", "AllTraffic", target, metric, scale_in, scale_out, disable_scale_in)


TARGET = ScalableTarget("shop", "AllTraffic", 1, 4)


# ---- the rule ---------------------------------------------------------------------------------------
def test_scale_out_is_proportional_to_the_metric_over_its_target():
    assert capacity_for(1, 240.0, 60.0) == 4 and capacity_for(2, 120.0, 60.0) == 4
    assert capacity_for(2, 61.0, 60.0) == 3 and capacity_for(3, 0.0, 60.0) == 0
    d = decide(TARGET, [policy()], 1, {IPI: 150.0}, now=1000.0)
    assert (d.current, d.desired, d.direction) == (1, 3, "out") and "150" in d.cause and "target 60" in d.cause


def test_scale_out_is_clamped_to_max_capacity_and_waits_for_its_cooldown():
    d = decide(TARGET, [policy()], 2, {IPI: 600.0}, now=1000.0)
    assert d.desired == 4 and "MaxCapacity" in d.cause
    assert decide(TARGET, [policy(scale_out=60)], 2, {IPI: 600.0}, now=1000.0, last_scale_out=970.0) is None
    assert decide(TARGET, [policy(scale_out=60)], 2, {IPI: 600.0}, now=1000.0, last_scale_out=940.0).desired == 4


def test_scale_in_waits_for_its_cooldown_after_any_scaling_and_stops_at_min_capacity():
    p = policy(scale_in=100)
    assert decide(TARGET, [p], 4, {IPI: 0.0}, now=1000.0, last_scale_out=950.0) is None
    assert decide(TARGET, [p], 4, {IPI: 0.0}, now=1000.0, last_scale_in=950.0) is None
    d = decide(TARGET, [p], 4, {IPI: 0.0}, now=1000.0, last_scale_out=850.0)
    assert (d.desired, d.direction) == (1, "in") and "MinCapacity" in d.cause


def test_disable_scale_in_never_scales_in_but_still_scales_out():
    p = policy(disable_scale_in=True, scale_in=0)
    assert decide(TARGET, [p], 3, {IPI: 0.0}, now=1000.0) is None
    assert decide(TARGET, [p], 1, {IPI: 120.0}, now=1000.0).desired == 2


def test_no_measurement_means_no_scaling_and_the_largest_ask_of_several_policies_wins():
    assert decide(TARGET, [policy()], 2, {}, now=1000.0) is None
    assert decide(TARGET, [policy()], 2, {IPI: None}, now=1000.0) is None
    two = [policy(metric=IPI, target=60.0, name="calls"), policy(metric=CONC, target=1.0, name="busy", scale_in=0)]
    d = decide(TARGET, two, 2, {IPI: 30.0, CONC: 1.5}, now=1000.0)
    assert d.desired == 3 and "'busy'" in d.cause
    # one policy asks for fewer, the other for as many as there are: no scale-in
    assert decide(TARGET, two, 2, {IPI: 10.0, CONC: 1.0}, now=1000.0) is None


def test_a_count_outside_new_bounds_moves_into_them_at_once():
    d = decide(ScalableTarget("shop", "AllTraffic", 3, 5), [policy()], 1, {}, now=0.0, last_scale_out=0.0)
    assert d.desired == 3 and "outside" in d.cause


# ---- the checks (item 7: a scaling policy outside its bounds) ---------------------------------------
@pytest.mark.parametrize("low, high, field, words", [
    (0, 2, "MinCapacity", "at least 1"), (3, 2, "MaxCapacity", "at least MinCapacity"),
    (1, 999, "MaxCapacity", "limit of 16"), (1.5, 2, "MinCapacity", "whole number"),
    (None, 2, "MinCapacity", "required")])
def test_capacities_outside_their_bounds_name_the_field(low, high, field, words):
    with pytest.raises(ScalingPolicyError, match=words) as info:
        ScalableTarget.checked("shop", "AllTraffic", low, high)
    assert info.value.field == field and field in str(info.value)


@pytest.mark.parametrize("config, field, words", [
    ({"TargetValue": 0, "PredefinedMetricSpecification": {"PredefinedMetricType": IPI}}, "TargetValue", "greater than 0"),
    ({"TargetValue": -5.0, "PredefinedMetricSpecification": {"PredefinedMetricType": IPI}}, "TargetValue", "greater than 0"),
    ({"TargetValue": float("nan"), "PredefinedMetricSpecification": {"PredefinedMetricType": IPI}}, "TargetValue", "finite"),
    ({"PredefinedMetricSpecification": {"PredefinedMetricType": IPI}}, "TargetValue", "required"),
    ({"TargetValue": 70, "PredefinedMetricSpecification": {"PredefinedMetricType": IPI}, "ScaleInCooldown": -1},
     "ScaleInCooldown", "between 0 and"),
    ({"TargetValue": 70, "PredefinedMetricSpecification": {"PredefinedMetricType": IPI}, "ScaleOutCooldown": 1e9},
     "ScaleOutCooldown", "between 0 and"),
    ({"TargetValue": 70, "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationPerInstance"}},
     "PredefinedMetricSpecification.PredefinedMetricType", "did you mean 'SageMakerVariantInvocationsPerInstance'"),
    ({"TargetValue": 70}, "PredefinedMetricSpecification", "required"),
    ({"TargetValue": 70, "PredefinedMetricSpecification": {"PredefinedMetricType": IPI}, "ScaleInCoolDown": 5},
     "TargetTrackingScalingPolicyConfiguration.ScaleInCoolDown", "did you mean 'ScaleInCooldown'"),
    ({"TargetValue": 70, "PredefinedMetricSpecification": {"PredefinedMetricType": IPI}, "DisableScaleIn": "no"},
     "DisableScaleIn", "true or false"),
])
def test_policy_fields_outside_their_bounds_name_the_field(config, field, words):
    with pytest.raises(ScalingPolicyError, match=words) as info:
        TargetTrackingPolicy.from_request("p", "shop", "AllTraffic", "TargetTrackingScaling", config)
    assert info.value.field == field


def test_a_step_scaling_policy_is_refused_naming_target_tracking():
    with pytest.raises(ScalingPolicyError, match="TargetTrackingScaling") as info:
        TargetTrackingPolicy.from_request("p", "shop", "AllTraffic", "StepScaling", {})
    assert info.value.field == "PolicyType" and isinstance(info.value, ValidationError)


# ---- the client's shapes over the store ---------------------------------------------------------------
@pytest.fixture
def shop(session):
    """An endpoint record (no server: these calls only read its variants)."""
    session.store.create_endpoint("shop", {"EndpointConfigName": "shop", "InitialInstanceCount": 1})
    return session


def test_the_client_registers_describes_and_deregisters_in_boto3_shapes(shop):
    aas = client("application-autoscaling", sagemaker_session=shop)
    out = aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=RID,
                                       ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                                       MinCapacity=1, MaxCapacity=3)
    assert out["ScalableTargetARN"].startswith("arn:aws:application-autoscaling:")
    config = {"TargetValue": 70.0, "PredefinedMetricSpecification": {"PredefinedMetricType": IPI},
              "ScaleInCooldown": 120, "ScaleOutCooldown": 30}
    out = aas.put_scaling_policy(PolicyName="calls", ServiceNamespace="sagemaker", ResourceId=RID,
                                 ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                                 PolicyType="TargetTrackingScaling", TargetTrackingScalingPolicyConfiguration=config)
    assert ":policyName/calls" in out["PolicyARN"]
    targets = aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[RID])["ScalableTargets"]
    assert [(t["ResourceId"], t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [(RID, 1, 3)]
    policies = aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=RID)["ScalingPolicies"]
    assert policies[0]["TargetTrackingScalingPolicyConfiguration"] == {**config, "DisableScaleIn": False}
    aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=RID,
                                 ScalableDimension="sagemaker:variant:DesiredInstanceCount", MaxCapacity=5)
    assert aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"][0]["MaxCapacity"] == 5
    assert aas.describe_scaling_activities(ServiceNamespace="sagemaker", ResourceId=RID) == {"ScalingActivities": []}
    aas.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=RID,
                                   ScalableDimension="sagemaker:variant:DesiredInstanceCount")
    assert aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"] == []
    with pytest.raises(ValidationError, match="answers register_scalable_target"):
        aas.put_scheduled_action(ServiceNamespace="sagemaker")


def test_a_resource_that_is_not_an_endpoint_variant_is_refused_naming_resource_id(shop):
    aas = client("application-autoscaling", sagemaker_session=shop)
    for rid, words in (("endpoint/shop/variant/Blue", "no variant 'Blue'; its variants are AllTraffic"),
                       ("endpoint/shpo/variant/AllTraffic", "did you mean 'shop'"),
                       ("shop/AllTraffic", "endpoint/<EndpointName>/variant/<VariantName>")):
        with pytest.raises(ScalingPolicyError, match=words) as info:
            aas.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=rid,
                                         ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                                         MinCapacity=1, MaxCapacity=2)
        assert info.value.field == "ResourceId"
    with pytest.raises(ScalingPolicyError, match="register_scalable_target .* first"):
        aas.put_scaling_policy(PolicyName="p", ServiceNamespace="sagemaker", ResourceId=RID,
                               ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                               PolicyType="TargetTrackingScaling",
                               TargetTrackingScalingPolicyConfiguration={"TargetValue": 1.0})
    with pytest.raises(ScalingPolicyError, match="ServiceNamespace 'ecs'"):
        aas.describe_scalable_targets(ServiceNamespace="ecs")
    with pytest.raises(ValidationError, match="did you mean 'application-autoscaling'"):
        client("application-autoscalling", sagemaker_session=shop)


def test_a_refused_short_call_records_nothing(shop):
    from nbsage.predictor import Predictor
    predictor = Predictor("shop", sagemaker_session=shop)
    with pytest.raises(ScalingPolicyError, match="TargetValue"):
        predictor.enable_autoscaling(1, 3, target_value=0)
    with pytest.raises(ScalingPolicyError, match="MaxCapacity"):
        predictor.enable_autoscaling(3, 2, target_value=10)
    assert ScalingRecords(shop.store).targets("shop") == []
    row = predictor.enable_autoscaling(1, 3, target_value=10, scale_in_cooldown=0, evaluation_period=0.5)
    assert row["PolicyName"] == "AllTraffic-InvocationsPerInstance-target"
    target, record = ScalingRecords(shop.store).targets("shop")[0]
    assert (target.min_capacity, target.max_capacity, record["options"]) == (1, 3, {"EvaluationPeriod": 0.5})
    predictor.disable_autoscaling()
    assert ScalingRecords(shop.store).targets("shop") == []


# ---- the controller's bookkeeping, over a fleet of counters ------------------------------------------
class Counters:
    """A variant as the controller sees it: an instance count, a measured metric, and a count to set."""

    def __init__(self, count=1, metric=None, fail=None):
        self.count, self.metric, self.fail, self.asked = count, metric, fail, []

    def instance_count(self, variant):
        return self.count

    def metrics(self, variant, seconds):
        return {IPI: self.metric}

    def set_instance_count(self, variant, count):
        self.asked.append(count)
        if self.fail:
            raise RuntimeError(self.fail)
        self.count = count


def test_the_controller_records_each_activity_and_remembers_cooldowns_across_a_restart(shop):
    from nbsage.serving.autoscaling.controller import Controller
    from nbsage.serving.endpoints import describe_endpoint
    from nbsage.predictor import Predictor
    Predictor("shop", sagemaker_session=shop).enable_autoscaling(1, 4, target_value=60.0, scale_out_cooldown=0,
                                                                 scale_in_cooldown=30, evaluation_period=1)
    import time
    clock = [time.time()]  # the recorded activities' times are wall-clock times: the restart reads them
    fleet = Counters(count=1, metric=150.0)
    controller = Controller(shop.store, "shop", fleet, clock=lambda: clock[0])
    assert [d.desired for d in controller.step()] == [3] and fleet.count == 3
    fleet.metric = 0.0
    clock[0] += 1
    assert controller.step() == []  # scale-in waits for its cooldown
    restarted = Controller(shop.store, "shop", fleet, clock=lambda: clock[0])
    assert restarted.step() == []  # ... also in a controller that starts again (the recorded times)
    clock[0] += 40
    assert [d.desired for d in restarted.step()] == [1]
    acts = describe_endpoint(shop, "shop")["AutoScaling"]["ScalingActivities"]
    assert [(a["FromInstanceCount"], a["ToInstanceCount"], a["StatusCode"]) for a in acts] == \
        [(3, 1, "Successful"), (1, 3, "Successful")]
    assert "scale in to 1 (MinCapacity)" in acts[0]["Cause"] and acts[1]["Description"].endswith("count to 3.")


def test_a_scaling_that_fails_is_recorded_failed_with_the_reason(shop):
    from nbsage.serving.autoscaling.controller import Controller
    from nbsage.predictor import Predictor
    Predictor("shop", sagemaker_session=shop).enable_autoscaling(1, 2, target_value=1.0, evaluation_period=1)
    controller = Controller(shop.store, "shop", Counters(count=1, metric=5.0, fail="the model failed to load"),
                            clock=lambda: 0.0)
    assert controller.step() == []
    (act,) = Predictor("shop", sagemaker_session=shop).scaling_activities()
    assert act["StatusCode"] == "Failed" and "the model failed to load" in act["StatusMessage"]


def test_the_cli_lists_an_endpoints_scaling_activities(shop, capsys):
    from nbsage.cli import main
    from nbsage.predictor import Predictor
    from nbsage.serving.autoscaling.controller import Controller
    Predictor("shop", sagemaker_session=shop).enable_autoscaling(1, 3, target_value=60.0, evaluation_period=1)
    Controller(shop.store, "shop", Counters(count=1, metric=120.0)).step()
    assert main(["scaling-activities", "shop"]) == 0
    out = capsys.readouterr().out
    assert "AllTraffic: 1-3 instances" in out and "1 -> 2" in out and "Successful" in out and "scale out to 2" in out
    assert main(["scaling-activities", "shop", "--json"]) == 0
    assert '"ToInstanceCount": 2' in capsys.readouterr().out


def test_deleting_the_endpoint_forgets_its_targets_policies_and_activities(shop):
    from nbsage.predictor import Predictor
    from nbsage.serving.autoscaling.controller import Controller
    from nbsage.serving.endpoints import delete_endpoint
    Predictor("shop", sagemaker_session=shop).enable_autoscaling(1, 3, target_value=60.0, evaluation_period=1)
    Controller(shop.store, "shop", Counters(count=1, metric=120.0)).step()
    records = ScalingRecords(shop.store)
    assert records.targets("shop") and records.policies("shop") and records.activities("shop")
    delete_endpoint(shop, "shop")
    assert (records.targets("shop"), records.policies("shop"), records.activities("shop")) == ([], [], [])
