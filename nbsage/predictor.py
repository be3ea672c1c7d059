"""Predictor: a handle on an endpoint, shaped like the SageMaker Python SDK v2's `sagemaker.Predictor`.

`predict(data)` serializes data with `serializer` (its CONTENT_TYPE is the request's Content-Type),
asks for `deserializer.ACCEPT`, invokes the endpoint and deserializes the answer. Any process can
build a Predictor for an endpoint another process deployed: it only needs the name.
"""
from __future__ import annotations

import html
import io

from nbsage.deserializers import BaseDeserializer, BytesDeserializer
from nbsage.errors import EndpointError
from nbsage.serializers import BaseSerializer, IdentitySerializer


class Predictor:
    """Makes predictions against a deployed endpoint."""

    def __init__(self, endpoint_name: str, sagemaker_session=None,
                 serializer: BaseSerializer = IdentitySerializer(),
                 deserializer: BaseDeserializer = BytesDeserializer(), component_name: str | None = None):
        if sagemaker_session is None:
            from nbsage.session import Session
            sagemaker_session = Session.default()
        self.endpoint_name = endpoint_name
        self.sagemaker_session = sagemaker_session
        self.serializer = serializer
        self.deserializer = deserializer
        self.component_name = component_name

    @property
    def endpoint(self) -> str:
        """The endpoint name (the SDK's deprecated alias of endpoint_name)."""
        return self.endpoint_name

    @property
    def content_type(self) -> str:
        """The Content-Type sent with requests (the serializer's)."""
        return self.serializer.CONTENT_TYPE

    @property
    def accept(self) -> tuple[str, ...]:
        """The types asked for in Accept (the deserializer's)."""
        return self.deserializer.ACCEPT

    def _request_args(self, data, initial_args=None, target_variant=None, custom_attributes=None,
                      inference_id=None) -> dict:
        args = dict(initial_args) if initial_args else {}
        args.setdefault("ContentType", self.content_type)
        if "Accept" not in args:
            accept = self.accept
            args["Accept"] = ", ".join(accept) if isinstance(accept, (tuple, list)) else accept
        if target_variant is not None:
            args["TargetVariant"] = target_variant
        if custom_attributes is not None:
            args["CustomAttributes"] = custom_attributes
        if inference_id is not None:
            args["InferenceId"] = inference_id
        args["Body"] = self.serializer.serialize(data) if "Body" not in args else args["Body"]
        return args

    def predict(self, data, initial_args=None, target_model=None, target_variant=None,
                inference_id=None, custom_attributes=None, component_name=None):
        """Serialize data, invoke the endpoint and return the deserialized answer."""
        from nbsage.serving.endpoints import invoke_endpoint
        args = self._request_args(data, initial_args, target_variant, custom_attributes, inference_id)
        if target_model is not None:
            args["TargetModel"] = target_model
        body, content_type, _ = invoke_endpoint(
            self.sagemaker_session, self.endpoint_name, args["Body"], args.get("ContentType"),
            args.get("Accept"), custom_attributes=args.get("CustomAttributes"),
            target_variant=args.get("TargetVariant"), inference_id=args.get("InferenceId"),
            target_model=args.get("TargetModel"))
        return self.deserializer.deserialize(io.BytesIO(body), content_type)

    def describe(self) -> dict:
        """The endpoint's DescribeEndpoint answer."""
        from nbsage.serving.endpoints import describe_endpoint
        return describe_endpoint(self.sagemaker_session, self.endpoint_name)

    def update_endpoint(self, initial_instance_count: int | None = None, instance_type: str | None = None,
                        accelerator_type: str | None = None, model_name: str | None = None, tags=None,
                        kms_key=None, data_capture_config_dict: dict | None = None, max_instance_count=None,
                        min_instance_count=None, wait: bool = True, endpoint_config_name: str | None = None) -> None:
        """Move the endpoint to a new endpoint config with no request dropped (the new model's
        instances answer /ping before they get traffic; the old ones drain, then stop).

        With model_name / initial_instance_count / instance_type, the new config has one production
        variant (the SDK's rule) with what is given and the rest from the current variant; with
        endpoint_config_name, that recorded config is run as it is."""
        from nbsage.serving import variants
        session = self.sagemaker_session
        if endpoint_config_name is not None:
            variants.update_endpoint(session, self.endpoint_name, endpoint_config_name, wait=wait)
            return
        current = variants.current_endpoint_config(session, self.endpoint_name)
        production = current["ProductionVariants"]
        if any(v is not None for v in (initial_instance_count, instance_type, accelerator_type, model_name)):
            if model_name is None and len(production) > 1:
                names = ", ".join(sorted({v["ModelName"] for v in production}))
                raise EndpointError(f"endpoint {self.endpoint_name!r} serves several models ({names}): name the one "
                                    "to keep with model_name=")
            base = production[0]
            variant = {"VariantName": base["VariantName"], "ModelName": model_name or base["ModelName"],
                       "InitialInstanceCount": initial_instance_count or base["InitialInstanceCount"],
                       "InitialVariantWeight": 1.0, "InstanceType": instance_type or base["InstanceType"]}
            if accelerator_type:
                variant["AcceleratorType"] = accelerator_type
            current = {"ProductionVariants": [variant]}
        if data_capture_config_dict is not None:
            current["DataCaptureConfig"] = data_capture_config_dict
        current.pop("EndpointConfigName", None)
        variants.update_endpoint_from(session, self.endpoint_name, current, wait=wait)

    def shadow_report(self, problem_type: str | None = None):
        """How the shadow variant compares with production: invocations, errors, latency percentiles
        and prediction agreement (a ShadowReport: shows as a table and a plot in a notebook)."""
        from nbsage.serving.shadow import shadow_report
        return shadow_report(self.sagemaker_session, self.endpoint_name, problem_type=problem_type)

    def promote_shadow(self, wait: bool = True) -> None:
        """Make the shadow variant the production variant, as an update that drops no request."""
        from nbsage.serving.shadow import promote_shadow
        promote_shadow(self.sagemaker_session, self.endpoint_name, wait=wait)

    def endpoint_status(self) -> str:
        return self.describe()["EndpointStatus"]

    def delete_endpoint(self, delete_endpoint_config: bool = True) -> None:
        """Stop the endpoint's servers and remove it (and, as the SDK does, its endpoint config)."""
        from nbsage.serving.endpoints import delete_endpoint
        config = self.sagemaker_session.store.get_endpoint(self.endpoint_name)["config"]
        delete_endpoint(self.sagemaker_session, self.endpoint_name)
        if delete_endpoint_config and config.get("Front") and config.get("EndpointConfigName"):
            self.sagemaker_session.delete_endpoint_config(config["EndpointConfigName"])

    def delete_model(self) -> None:
        """Nothing to do: nbsage keeps no separate model resource for an endpoint."""

    # ---- automatic scaling (nbsage.serving.autoscaling) ------------------------------------------------
    def enable_autoscaling(self, min_capacity: int, max_capacity: int, target_value: float,
                           metric: str = "SageMakerVariantInvocationsPerInstance", scale_in_cooldown: int = 300,
                           scale_out_cooldown: int = 300, disable_scale_in: bool = False,
                           variant_name: str | None = None, policy_name: str | None = None,
                           evaluation_period: float | None = None) -> dict:
        """Scale a variant (the endpoint's only one by default) between min_capacity and max_capacity,
        keeping `metric` per instance near `target_value`: RegisterScalableTarget and a target-tracking
        PutScalingPolicy in one call. `evaluation_period` (seconds, default 60) is how often it looks."""
        from nbsage.serving.autoscaling import enable_autoscaling
        return enable_autoscaling(self.sagemaker_session, self.endpoint_name, min_capacity, max_capacity,
                                  target_value, metric=metric, scale_in_cooldown=scale_in_cooldown,
                                  scale_out_cooldown=scale_out_cooldown, disable_scale_in=disable_scale_in,
                                  variant_name=variant_name, policy_name=policy_name,
                                  evaluation_period=evaluation_period)

    def disable_autoscaling(self, variant_name: str | None = None) -> None:
        """Stop scaling a variant (all of them by default); instance counts stay where they are."""
        from nbsage.serving.autoscaling import disable_autoscaling
        disable_autoscaling(self.sagemaker_session, self.endpoint_name, variant_name)

    def scaling_activities(self, limit: int = 50) -> list[dict]:
        """The endpoint's scaling activities, newest first (DescribeScalingActivities' rows)."""
        from nbsage.serving.autoscaling import ScalingRecords
        return ScalingRecords(self.sagemaker_session.store).activities(self.endpoint_name, limit=limit)

    def _summary(self) -> tuple[str, str | None, str | None]:
        try:
            desc = self.describe()
        except EndpointError:
            return "NotFound", None, None
        return desc["EndpointStatus"], desc.get("Url"), desc.get("FailureReason")

    def __repr__(self) -> str:
        status, url, _ = self._summary()
        return (f"{type(self).__name__}(endpoint_name={self.endpoint_name!r}, status={status!r}, url={url!r}, "
                f"serializer={type(self.serializer).__name__}, deserializer={type(self.deserializer).__name__})")

    def _repr_html_(self) -> str:
        status, url, reason = self._summary()
        color = {"InService": "#1a7f37", "Failed": "#cf222e", "Creating": "#9a6700"}.get(status, "#57606a")
        rows = [("Endpoint", html.escape(self.endpoint_name)),
                ("Status", f'<span style="color:{color};font-weight:bold">{html.escape(status)}</span>'),
                ("URL", f"<code>{html.escape(url)}</code>" if url else "&mdash;"),
                ("Content-Type", f"<code>{html.escape(self.content_type)}</code>"),
                ("Accept", f"<code>{html.escape(', '.join(self.accept))}</code>")]
        if reason:
            rows.append(("Failure reason", html.escape(reason)))
        body = "".join(f'<tr><th style="text-align:left">{k}</th><td style="text-align:left">{v}</td></tr>'
                       for k, v in rows)
        return f'<table><caption style="text-align:left"><b>{type(self).__name__}</b></caption>{body}</table>'


RealTimePredictor = Predictor  # the SDK v1 name, for old notebooks
