"""Session: where nbsage keeps its records and artifacts, shaped like sagemaker.Session.

NBSAGE_HOME (default ~/.nbsage) holds the SQLite store (`nbsage.db`) and, unless
NBSAGE_ARTIFACT_ROOT or `artifact_root=` names another fsspec URL, the artifact root
(`artifacts/`). Nothing here needs an AWS account: `get_execution_role()` is a local role ARN and
`default_bucket()` names the artifact root (nbsage.store.buckets), so a notebook's
`upload_data` -> `fit("s3://<bucket>/...")` runs offline.
"""
from __future__ import annotations

import os
from pathlib import Path

import warnings

from nbsage.errors import ValidationError
from nbsage.store import Stores, buckets, default_home
from nbsage.store.names import JOB_NAME, check_name, unique_name  # noqa: F401 - the API's names


class Session:
    """The store and artifact root that jobs and endpoints use."""

    _default: "Session | None" = None

    def __init__(self, home: str | os.PathLike | None = None, artifact_root: str | None = None, *,
                 default_bucket: str | None = None, default_bucket_prefix: str | None = None,
                 boto_session=None, sagemaker_client=None, sagemaker_runtime_client=None,
                 sagemaker_featurestore_runtime_client=None, sagemaker_metrics_client=None,
                 sagemaker_config=None):
        # the boto clients and config the SDK's Session takes are accepted so that notebooks
        # building one run unchanged; nothing here calls AWS, so they are not used
        if home is not None and not isinstance(home, (str, os.PathLike)):  # the SDK's Session(boto_session)
            home, boto_session = None, home
        self.stores = Stores.open(home, artifact_root)
        self.home, self.artifact_root = self.stores.home, self.stores.artifact_root
        self.store, self.artifacts = self.stores.store, self.stores.artifacts
        self._default_bucket_name = default_bucket
        self._default_bucket_prefix = default_bucket_prefix
        self._buckets_made: set[str] = set()
        self._boto_session = boto_session

    @classmethod
    def default(cls) -> "Session":
        """The process-wide session; rebuilt when NBSAGE_HOME changes."""
        if cls._default is None or cls._default.home != default_home():
            cls._default = cls()
        return cls._default

    @property
    def jobs_dir(self) -> Path:
        """Job roots (the /opt/ml of each job) for places on this machine."""
        return self.home / "jobs"

    @property
    def endpoints_dir(self) -> Path:
        return self.home / "endpoints"

    def default_output_path(self) -> str:
        return self.artifacts.url("training")

    def default_data_prefix(self) -> str:
        return self.artifacts.url("data")

    # ---- identity and the default bucket (the SDK's Session calls) ------------------------------------
    @property
    def boto_region_name(self) -> str:
        """The region: the given boto session's, else AWS_REGION / AWS_DEFAULT_REGION, else "local"."""
        return getattr(self._boto_session, "region_name", None) or buckets.region()

    @property
    def boto_session(self):
        """The boto3 session given, else one for this region (boto3 when installed; otherwise an
        object with `region_name`, which is what notebooks read from it)."""
        if self._boto_session is None:
            try:
                import boto3
                self._boto_session = boto3.Session(region_name=self.boto_region_name)
            except ImportError:
                from types import SimpleNamespace
                self._boto_session = SimpleNamespace(region_name=self.boto_region_name)
        return self._boto_session

    def account_id(self) -> str:
        return buckets.LOCAL_ACCOUNT

    def default_bucket(self) -> str:
        """The default bucket's name: the artifact root's bucket when it is on S3, a bucket (created
        when missing) on the S3-compatible endpoint the AWS settings name, else a local name whose
        `s3://` URIs resolve into the artifact root (nbsage.store.buckets)."""
        name = self._default_bucket_name or buckets.default_bucket(self.artifact_root)
        if buckets.backed_by_s3(self.artifact_root) and not buckets.is_s3(self.artifact_root) \
                and name not in self._buckets_made:
            buckets.ensure_bucket(name)
            self._buckets_made.add(name)
        return name

    @property
    def default_bucket_prefix(self) -> str | None:
        """The key prefix under the default bucket (None unless configured or the root has one)."""
        if self._default_bucket_prefix is not None:
            return self._default_bucket_prefix.strip("/") or None
        return buckets.default_bucket_prefix(self.artifact_root)

    def resolve_uri(self, uri):
        """Where a URI really is: `s3://<default bucket>/key` -> the artifact store's URL for key
        (unless the default bucket is a real one); anything else unchanged."""
        if isinstance(uri, os.PathLike):
            return uri
        return buckets.resolve(uri, self.artifact_root, self._default_bucket_name)

    def expand_role(self, role: str) -> str:
        """A role name as an ARN (an ARN unchanged), as the SDK's."""
        return role if "/" in role else f"arn:aws:iam::{buckets.LOCAL_ACCOUNT}:role/{role}"

    def _bucket_and_prefix(self, bucket: str | None, key_prefix: str | None) -> tuple[str, str]:
        """The SDK's determine_bucket_and_prefix: the default bucket's prefix applies only to it."""
        key_prefix = (key_prefix or "").strip("/")
        if bucket:
            return bucket, key_prefix
        prefix = self.default_bucket_prefix
        return self.default_bucket(), "/".join(p for p in (prefix, key_prefix) if p)

    def upload_data(self, path, bucket: str | None = None, key_prefix: str = "data", callback=None,
                    extra_args: dict | None = None) -> str:
        """Upload a local file or folder to `s3://<bucket>/<key_prefix>/...` (the default bucket when
        none is given); returns the file's URI, or the prefix's for a folder, as the SDK's does."""
        from nbsage.data import upload_data
        bucket, key_prefix = self._bucket_and_prefix(bucket, key_prefix)
        uri = f"s3://{bucket}/{key_prefix}".rstrip("/")
        local = os.path.expanduser(os.fspath(path))
        upload_data(local, prefix=self.resolve_uri(uri), extra_args=extra_args, session=self)
        return f"{uri}/{os.path.basename(local.rstrip('/'))}" if os.path.isfile(local) else uri

    def upload_string_as_file_body(self, body: str, bucket: str, key: str, kms_key=None) -> str:
        uri = f"s3://{bucket}/{key.lstrip('/')}"
        from nbsage import s3
        s3.write_bytes(body.encode(), uri, self)
        return uri

    def read_s3_file(self, bucket: str, key_prefix: str) -> str:
        from nbsage import s3
        return s3.read_bytes(f"s3://{bucket}/{key_prefix.lstrip('/')}", self).decode()

    def list_s3_files(self, bucket: str, key_prefix: str) -> list[str]:
        """The keys under a prefix (as the SDK's: keys, not URIs)."""
        from nbsage import s3
        return [s3.split_s3(u)[1] for u in s3.S3Downloader.list(f"s3://{bucket}/{key_prefix.lstrip('/')}", self)]

    def download_data(self, path, bucket: str, key_prefix: str = "", extra_args=None) -> list[str]:
        """Download the objects under s3://bucket/key_prefix into the folder `path`; their paths."""
        from nbsage import s3
        return s3.S3Downloader.download(f"s3://{bucket}/{key_prefix.lstrip('/')}", path, sagemaker_session=self)

    # ---- jobs and endpoints by name (the SDK's Session calls) -------------------------------------
    def describe_training_job(self, job_name: str) -> dict:
        from nbsage.training_job import TrainingJob
        return TrainingJob(job_name, self).describe()

    def wait_for_job(self, job: str, poll: int = 5) -> dict:
        """Block until the training job ends; its description (JobFailed when it did not complete)."""
        from nbsage.training_job import TrainingJob
        return TrainingJob(job, self).wait(logs=False)

    def logs_for_job(self, job_name: str, wait: bool = False, poll: int = 10, log_type: str = "All", timeout=None):
        from nbsage.training_job import TrainingJob
        job = TrainingJob(job_name, self)
        if wait:
            job.wait(logs=True)
        else:
            print("\n".join(job.logs()))

    def endpoint_from_job(self, job_name: str, initial_instance_count: int = 1, instance_type: str = "local",
                          image_uri: str | None = None, name: str | None = None, role: str | None = None,
                          wait: bool = True, model_environment_vars: dict | None = None,
                          vpc_config_override=None, accelerator_type=None, data_capture_config=None) -> str:
        """Deploy a completed training job's model to an endpoint named `name` (default: the job's
        name); returns the endpoint's name, as the SDK's."""
        from nbsage.estimator import Estimator
        from nbsage.model import Model
        estimator = Estimator.attach(job_name, sagemaker_session=self)
        model = estimator.create_model()
        if isinstance(model, Model) and model_environment_vars:
            model.env.update({str(k): str(v) for k, v in model_environment_vars.items()})
        model.deploy(initial_instance_count=initial_instance_count, instance_type=instance_type,
                     endpoint_name=name or job_name, wait=wait, data_capture_config=data_capture_config)
        return name or job_name

    # ---- models, endpoint configs and variants (nbsage.serving.variants) ------------------------------
    def create_model(self, name: str, role: str | None = None, container_defs=None, vpc_config=None,
                     enable_network_isolation=None, primary_container=None, tags=None) -> str:
        """CreateModel: record a model under `name` for endpoint configs to name (ModelName). A container
        def is the SDK's ({"Image", "ModelDataUrl", "Environment"}, an Image naming a built-in algorithm)
        or nbsage's ({"ModelDataUrl", "Algorithm", "EntryPoint", "Environment"}); a list is a pipeline."""
        from nbsage.serving import variants
        container = primary_container if primary_container is not None else container_defs
        if isinstance(container, (list, tuple)):
            container = {"Containers": [_container(c) for c in container]}
        elif isinstance(container, dict):
            container = _container(container)
        else:
            raise ValidationError(f"create_model({name!r}): container_defs must be a container dict (or a list of "
                                  f"them for a pipeline), got {type(container).__name__}")
        return variants.create_model(self, name, container)

    def create_endpoint_config(self, name: str, model_name: str, initial_instance_count: int = 1,
                               instance_type: str = "local", accelerator_type=None, tags=None, kms_key=None,
                               data_capture_config_dict=None, volume_size=None, model_data_download_timeout=None,
                               container_startup_health_check_timeout=None, explainer_config_dict=None,
                               variant_name: str = "AllTraffic", **kwargs) -> str:
        """CreateEndpointConfig with one production variant (the SDK's form); returns the name."""
        from nbsage.serving import variants
        variant = production_variant(model_name, instance_type, initial_instance_count, variant_name,
                                     accelerator_type=accelerator_type)
        return variants.create_endpoint_config(self, name, [variant], kwargs.get("shadow_production_variants"),
                                               data_capture_config_dict)

    def create_endpoint_config_from_variants(self, name: str, production_variants: list,
                                             shadow_production_variants: list | None = None,
                                             data_capture_config_dict: dict | None = None) -> str:
        """CreateEndpointConfig with ProductionVariants and ShadowProductionVariants (boto3's shape)."""
        from nbsage.serving import variants
        return variants.create_endpoint_config(self, name, production_variants, shadow_production_variants,
                                               data_capture_config_dict)

    def describe_endpoint_config(self, name: str) -> dict:
        from nbsage.serving import variants
        return variants.describe_endpoint_config(self, name)

    def list_endpoint_configs(self) -> list[dict]:
        from nbsage.serving import variants
        return variants.list_endpoint_configs(self)

    def delete_endpoint_config(self, endpoint_config_name: str) -> None:
        """DeleteEndpointConfig; an endpoint running it keeps running. A config nbsage never recorded
        (a plain deploy's, which goes with its endpoint) is nothing to delete."""
        from nbsage.serving import variants
        if self.store.find_endpoint_config(endpoint_config_name) is not None:
            variants.delete_endpoint_config(self, endpoint_config_name)

    def create_endpoint(self, endpoint_name: str, config_name: str, tags=None, wait: bool = True,
                        live_logging: bool = False) -> str:
        """CreateEndpoint from an endpoint config; returns the endpoint's name, as the SDK's."""
        from nbsage.serving import variants
        variants.create_endpoint(self, endpoint_name, config_name, wait=wait)
        return endpoint_name

    def endpoint_from_production_variants(self, name: str, production_variants: list, tags=None, kms_key=None,
                                          wait: bool = True, data_capture_config_dict: dict | None = None,
                                          async_inference_config_dict=None, explainer_config_dict=None,
                                          live_logging: bool = False, vpc_config=None,
                                          enable_network_isolation=None, role=None,
                                          shadow_production_variants: list | None = None,
                                          data_capture_config=None) -> str:
        """An endpoint config named `name` with these production variants (and, nbsage's addition, shadow
        variants), and an endpoint of the same name running it; returns the name, as the SDK's."""
        from nbsage.serving import variants
        if data_capture_config is not None and data_capture_config_dict is None:
            to_dict = getattr(data_capture_config, "_to_request_dict", None)
            data_capture_config_dict = to_dict() if to_dict else dict(data_capture_config)
        config_name = name if self.store.find_endpoint_config(name) is None else unique_name(name[:30])
        variants.create_endpoint_config(self, config_name, production_variants, shadow_production_variants,
                                        data_capture_config_dict)
        variants.create_endpoint(self, name, config_name, wait=wait)
        return name

    def update_endpoint(self, endpoint_name: str, endpoint_config_name: str, wait: bool = True) -> str:
        """UpdateEndpoint: run another endpoint config, dropping no request; returns the endpoint's name."""
        from nbsage.serving import variants
        variants.update_endpoint(self, endpoint_name, endpoint_config_name, wait=wait)
        return endpoint_name

    def wait_for_endpoint(self, endpoint: str, poll: float = 30, live_logging: bool = False) -> dict:
        """Block until the endpoint is InService (an update finished); its DescribeEndpoint answer."""
        from nbsage.serving import endpoints
        return endpoints.wait_for_endpoint(self, endpoint)

    def update_endpoint_weights_and_capacities(self, endpoint_name: str, desired_weights_and_capacities: list,
                                               wait: bool = True) -> str:
        """UpdateEndpointWeightsAndCapacities: [{"VariantName", "DesiredWeight", "DesiredInstanceCount"}]."""
        from nbsage.serving import variants
        variants.update_endpoint_weights_and_capacities(self, endpoint_name, desired_weights_and_capacities,
                                                        wait=wait)
        return endpoint_name

    def delete_model(self, model_name: str) -> None:
        """Nothing to do: nbsage keeps no model resource apart from the artifact."""

    @property
    def sagemaker_client(self):
        """boto3's `sagemaker` client as notebooks use it (list/describe/delete endpoints, describe jobs)."""
        from nbsage.boto_clients import SageMakerClient
        return SageMakerClient(self)

    @property
    def sagemaker_runtime_client(self):
        """boto3's `sagemaker-runtime` client as notebooks use it (invoke_endpoint)."""
        from nbsage.boto_clients import SageMakerRuntimeClient
        return SageMakerRuntimeClient(self)

    def __repr__(self) -> str:
        return f"Session(home={str(self.home)!r}, artifact_root={self.artifact_root!r})"

    # ---- what the faces list and control (thin over the store, the places and serving) -----------
    def list_training_jobs(self, limit: int = 50) -> list:
        """TrainingJob handles, newest first (InProgress jobs whose process died are marked Failed)."""
        from nbsage.training_job import TrainingJob
        self.watch_jobs()
        return [TrainingJob(row["name"], self) for row in self.store.list_jobs(limit=limit, kind="training")]

    def watch_jobs(self) -> None:
        """Keep this process reconciling the store's jobs (nbsage.backends.reconciler): a job whose
        supervisor died is marked Failed within seconds, whether or not anyone reads it. Called when
        a job is submitted or listed."""
        from nbsage.backends.reconciler import ensure_reconciler
        ensure_reconciler(self)

    def list_endpoints(self) -> list[dict]:
        """DescribeEndpoint-shaped records of every endpoint."""
        from nbsage.serving import endpoints
        return endpoints.list_endpoints(self)

    def describe_endpoint(self, name: str) -> dict:
        from nbsage.serving import endpoints
        return endpoints.describe_endpoint(self, name)

    def invoke_endpoint(self, name: str, body: bytes, content_type: str, accept: str | None = None):
        """(body, content type, headers) of one /invocations request."""
        from nbsage.serving import endpoints
        return endpoints.invoke_endpoint(self, name, body, content_type, accept)

    def delete_endpoint(self, name: str) -> None:
        from nbsage.serving import endpoints
        endpoints.delete_endpoint(self, name)


def production_variant(model_name: str | None = None, instance_type: str | None = "local",
                       initial_instance_count: int | None = None, variant_name: str = "AllTraffic",
                       initial_weight: float = 1, accelerator_type: str | None = None, **kwargs) -> dict:
    """A ProductionVariant for an endpoint config (sagemaker.session.production_variant's shape)."""
    variant = {"VariantName": variant_name}
    if model_name:
        variant["ModelName"] = model_name
        variant["InitialVariantWeight"] = initial_weight
    if accelerator_type:
        variant["AcceleratorType"] = accelerator_type
    variant["InitialInstanceCount"] = initial_instance_count or 1
    variant["InstanceType"] = instance_type or "local"
    if kwargs.get("container_startup_health_check_timeout") is not None:
        variant["ContainerStartupHealthCheckTimeoutInSeconds"] = kwargs["container_startup_health_check_timeout"]
    return variant


def _container(definition: dict) -> dict:
    """An SDK container def ({"Image", "ModelDataUrl", "Environment"}) in nbsage's words."""
    from nbsage import algorithms
    container = {k: v for k, v in definition.items() if k != "Image"}
    image = definition.get("Image") or definition.get("ImageUri")
    if image:
        container["ImageUri"] = image
        if not container.get("Algorithm") and algorithms.is_builtin(image):
            container["Algorithm"] = algorithms.canonical_name(image)
    container.setdefault("Environment", {})
    return container


def get_execution_role(sagemaker_session: Session | None = None, use_default: bool = False) -> str:
    """The role ARN a notebook passes to jobs: a local one (nbsage needs no IAM role; it is recorded
    as the job's RoleArn). NBSAGE_ROLE_ARN overrides it."""
    from nbsage.arns import execution_role
    return execution_role()


def _s3_input_class():
    from nbsage.inputs import TrainingInput

    class s3_input(TrainingInput):  # noqa: N801 - the SDK v1 name
        """The SDK v1 name of TrainingInput (sagemaker.session.s3_input), with the SDK's warning."""

        def __init__(self, *args, **kwargs):
            warnings.warn("s3_input has been renamed in sagemaker>=2: use sagemaker.inputs.TrainingInput",
                          DeprecationWarning, stacklevel=2)
            super().__init__(*args, **kwargs)

    s3_input.__qualname__ = "s3_input"
    return s3_input


def __getattr__(name: str):
    if name == "s3_input":  # built on first use: nbsage.inputs is not imported with the session
        value = globals()["s3_input"] = _s3_input_class()
        return value
    raise AttributeError(f"module 'nbsage.session' has no attribute {name!r}")
