"""HyperparameterTuner, shaped like the SDK v2's `sagemaker.tuner`, run by Optuna on nbsage's places.

    tuner = HyperparameterTuner(estimator, "validation:auc",
                                {"eta": ContinuousParameter(0.01, 0.3), "max_depth": IntegerParameter(3, 10)},
                                max_jobs=20, max_parallel_jobs=2)
    tuner.fit({"train": train, "validation": validation})
    tuner.best_training_job(); tuner.analytics().dataframe(); tuner.deploy()

Everything is checked before the tuning job is recorded (nbsage.tuning.config): ranges against the
algorithm's declaration, the objective against the metrics it emits, SageMaker's limits. The job
is a record in the store run by a detached driver (nbsage.tuning.driver); its trials are ordinary
training jobs on the estimator's place (local processes, a kernel, a Dask cluster), max_parallel_jobs
at a time. Differences from SageMaker: "Bayesian" is Optuna's TPE sampler; `autotune`,
multi-algorithm tuning (`HyperparameterTuner.create`) and CompleteOnConvergence are not offered.
"""
from __future__ import annotations

import copy
import json
import secrets
import time
from enum import Enum

from nbsage.errors import ValidationError
from nbsage.parameter import (  # noqa: F401 - the SDK's sagemaker.tuner exports these too
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    ParameterRange,
    ScalingType,
)
from nbsage.tuning import config

__all__ = ["HyperparameterTuner", "WarmStartConfig", "WarmStartTypes", "TuningJobCompletionCriteriaConfig",
           "HyperbandStrategyConfig", "StrategyConfig", "ContinuousParameter", "IntegerParameter",
           "CategoricalParameter", "ScalingType"]


class WarmStartTypes(Enum):
    """How parent tuning jobs inform a new one."""

    IDENTICAL_DATA_AND_ALGORITHM = "IdenticalDataAndAlgorithm"
    TRANSFER_LEARNING = "TransferLearning"


class WarmStartConfig:
    """WarmStartConfig: up to 5 finished parent tuning jobs and how to use them."""

    def __init__(self, warm_start_type: WarmStartTypes | str, parents):
        value = warm_start_type.value if isinstance(warm_start_type, WarmStartTypes) else warm_start_type
        if value not in config.WARM_START_TYPES:
            raise ValidationError(f"warm_start_type {warm_start_type!r} is not valid; use one of "
                                  f"{', '.join(config.WARM_START_TYPES)}")
        self.type = WarmStartTypes(value)
        self.parents = [parents] if isinstance(parents, str) else list(parents or [])

    def to_input_req(self) -> dict:
        return {"WarmStartType": self.type.value,
                "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": p} for p in self.parents]}

    @classmethod
    def from_job_desc(cls, warm_start_config: dict | None) -> "WarmStartConfig | None":
        if not warm_start_config:
            return None
        return cls(warm_start_config["WarmStartType"],
                   [p["HyperParameterTuningJobName"] for p in warm_start_config["ParentHyperParameterTuningJobs"]])


class TuningJobCompletionCriteriaConfig:
    """TuningJobCompletionCriteria: stop starting trials at a target value or after N without improvement."""

    def __init__(self, max_number_of_training_jobs_not_improving: int | None = None,
                 complete_on_convergence: bool | None = None, target_objective_metric_value: float | None = None):
        self.max_number_of_training_jobs_not_improving = max_number_of_training_jobs_not_improving
        self.complete_on_convergence = complete_on_convergence
        self.target_objective_metric_value = target_objective_metric_value

    def to_input_req(self) -> dict:
        out: dict = {}
        if self.max_number_of_training_jobs_not_improving is not None:
            out["BestObjectiveNotImproving"] = {
                "MaxNumberOfTrainingJobsNotImproving": int(self.max_number_of_training_jobs_not_improving)}
        if self.complete_on_convergence is not None:
            out["ConvergenceDetected"] = {"CompleteOnConvergence": "Enabled" if self.complete_on_convergence
                                          else "Disabled"}
        if self.target_objective_metric_value is not None:
            out["TargetObjectiveMetricValue"] = float(self.target_objective_metric_value)
        return out


class HyperbandStrategyConfig:
    """Hyperband's resources (epochs or rounds): a trial is never stopped before min_resource and ends at max_resource."""

    def __init__(self, max_resource: int | None = None, min_resource: int | None = None):
        self.max_resource, self.min_resource = max_resource, min_resource

    def to_input_req(self) -> dict:
        return {k: v for k, v in (("MinResource", self.min_resource), ("MaxResource", self.max_resource))
                if v is not None}


class StrategyConfig:
    def __init__(self, hyperband_strategy_config: HyperbandStrategyConfig):
        self.hyperband_strategy_config = hyperband_strategy_config

    def to_input_req(self) -> dict:
        return {"HyperbandStrategyConfig": self.hyperband_strategy_config.to_input_req()}


def _req(value):
    return value.to_input_req() if hasattr(value, "to_input_req") else value


class HyperparameterTuner:
    """Runs a search over `hyperparameter_ranges` of `estimator`, optimising `objective_metric_name`."""

    def __init__(self, estimator, objective_metric_name: str, hyperparameter_ranges: dict,
                 metric_definitions: list[dict] | None = None, strategy: str = "Bayesian",
                 objective_type: str | None = None, max_jobs: int | None = None, max_parallel_jobs: int = 1,
                 max_runtime_in_seconds: int | None = None, tags: list | None = None,
                 base_tuning_job_name: str | None = None, warm_start_config: WarmStartConfig | None = None,
                 strategy_config=None, completion_criteria_config=None, early_stopping_type: str = "Off",
                 estimator_name: str | None = None, random_seed: int | None = None, autotune: bool = False,
                 hyperparameters_to_keep_static: list | None = None):
        if autotune:
            raise ValidationError("autotune is not offered by nbsage: give hyperparameter_ranges")
        if estimator_name is not None:
            raise ValidationError("multi-algorithm tuning (estimator_name, HyperparameterTuner.create) is not "
                                  "offered by nbsage: tune one estimator")
        self.estimator = estimator
        self.objective_metric_name = objective_metric_name
        self._hyperparameter_ranges = dict(hyperparameter_ranges or {})
        self.metric_definitions = metric_definitions
        self.strategy = strategy
        algorithm = getattr(estimator, "algorithm", None)
        self.objective_type = objective_type or config.objective_direction(objective_metric_name, algorithm) \
            or "Maximize"
        self.max_parallel_jobs = max_parallel_jobs
        self.max_jobs = max_jobs
        self.max_runtime_in_seconds = max_runtime_in_seconds
        self.tags = tags or []
        self.base_tuning_job_name = base_tuning_job_name
        self.warm_start_config = warm_start_config
        self.strategy_config = strategy_config
        self.completion_criteria_config = completion_criteria_config
        self.early_stopping_type = early_stopping_type
        self.random_seed = random_seed
        self.latest_tuning_job = None
        self._current_job_name: str | None = None
        self.validate()

    # ---- checks ---------------------------------------------------------------------------------------
    def hyperparameter_ranges(self) -> dict:
        """ParameterRanges as the API takes them."""
        return config.parameter_ranges(self._hyperparameter_ranges)

    def _static(self) -> dict:
        return {k: v for k, v in self.estimator._hyperparameters.items() if v is not None}

    def _metric_definitions(self) -> list[dict]:
        return list(self.metric_definitions or self.estimator.metric_definitions or [])

    def _resolved_max_jobs(self) -> int:
        size = config.grid_size(self._hyperparameter_ranges, self.strategy)
        if size is not None:
            if self.max_jobs is not None and self.max_jobs != size:
                raise ValidationError(f"max_jobs ({self.max_jobs}) must be left out or equal the number of "
                                      f"combinations of the Grid strategy's values ({size})")
            return size
        return 1 if self.max_jobs is None else self.max_jobs

    def _objective_hyperparameter(self) -> dict:
        """`_tuning_objective_metric`, for an algorithm that declares it (XGBoost computes that metric), as the SDK sets it."""
        algorithm = getattr(self.estimator, "algorithm", None)
        if algorithm is not None and any(hp.name == "_tuning_objective_metric" for hp in algorithm.hyperparameters):
            return {"_tuning_objective_metric": self.objective_metric_name}
        return {}

    def validate(self) -> None:
        """Every rule SageMaker applies to CreateHyperParameterTuningJob, naming the parameter at fault."""
        algorithm = getattr(self.estimator, "algorithm", None)
        static = self._static()
        config.check_ranges(self._hyperparameter_ranges, algorithm, static)
        config.check_limits(self.strategy, self.objective_type, self.early_stopping_type,
                            self._resolved_max_jobs(), self.max_parallel_jobs)
        config.check_objective(self.objective_metric_name, algorithm, self._metric_definitions())
        if self.strategy == "Hyperband":
            config.hyperband_resources(_req(self.strategy_config), static)
        if self.random_seed is not None and (not isinstance(self.random_seed, int) or isinstance(self.random_seed, bool)):
            raise ValidationError(f"random_seed must be an integer, got {self.random_seed!r}")
        if algorithm is not None:  # the algorithm's own rules over a trial's hyperparameters (num_class, ...)
            algorithm.validate({**static, **config.sample_values(self._hyperparameter_ranges),
                                **self._objective_hyperparameter()})

    def _check_warm_start(self, session) -> dict | None:
        if self.warm_start_config is None:
            return None
        from nbsage.errors import JobError
        from nbsage.tuning.records import objective_of
        parents = self.warm_start_config.parents
        if not parents or len(parents) > config.MAX_PARENTS:
            raise ValidationError(f"warm_start_config needs 1 to {config.MAX_PARENTS} parent tuning jobs, "
                                  f"got {len(parents)}")
        for parent in parents:
            try:
                job = session.store.get_job(parent)
            except JobError as e:
                raise ValidationError(f"warm start parent: {e}") from None
            if job["kind"] != "tuning":
                raise ValidationError(f"warm start parent {parent!r} is a {job['kind']} job, not a tuning job")
            if job["status"] not in ("Completed", "Stopped", "Failed"):
                raise ValidationError(f"warm start parent {parent!r} is {job['status']}: parents must have ended")
            metric, _ = objective_of(json.loads(job["request"]))
            if metric != self.objective_metric_name:
                raise ValidationError(f"warm start parent {parent!r} optimised {metric!r}, and this tuning job "
                                      f"optimises {self.objective_metric_name!r}: the objective metric must be the same")
        return self.warm_start_config.to_input_req()

    # ---- the request ----------------------------------------------------------------------------------
    def _tuning_job_name(self) -> str:
        base = self.base_tuning_job_name or (self.estimator.base_job_name or
                                             (self.estimator.algorithm.name if self.estimator.algorithm else "tuning"))
        base = "".join(c if c.isalnum() else "-" for c in base).strip("-")[:14] or "tuning"
        return f"{base}-{time.strftime('%y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)[:3]}"

    def _request(self, name: str, inputs) -> dict:
        from nbsage.inputs import normalize_inputs
        est = self.estimator
        static = self._static()
        algorithm = est.algorithm
        trial_like = copy.copy(est)  # the definition is made as one trial's request, then the ranges leave it
        trial_like._hyperparameters = {**static, **config.sample_values(self._hyperparameter_ranges)}
        definition = trial_like._request(name, normalize_inputs(inputs))
        definition.pop("TrainingJobName")
        hps = definition.pop("HyperParameters")
        for tuned in self._hyperparameter_ranges:
            hps.pop(algorithm.hyperparameter(tuned).name if algorithm else tuned, None)
        hps.update(self._objective_hyperparameter())
        definition["StaticHyperParameters"] = hps
        definition["AlgorithmSpecification"]["MetricDefinitions"] = self._metric_definitions()
        options = dict(est.backend_options)
        try:
            json.dumps(options)
        except TypeError:
            bad = next(k for k, v in options.items() if not _is_json(v))
            raise ValidationError(f"place option {bad!r} = {options[bad]!r} cannot be recorded for the tuning job's "
                                  "trials: give it as text (an address, a path, a URL)") from None
        tuning_config = {
            "Strategy": self.strategy,
            "HyperParameterTuningJobObjective": {"Type": self.objective_type, "MetricName": self.objective_metric_name},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": self._resolved_max_jobs(),
                               "MaxParallelTrainingJobs": self.max_parallel_jobs},
            "ParameterRanges": self.hyperparameter_ranges(),
            "TrainingJobEarlyStoppingType": self.early_stopping_type,
        }
        if self.max_runtime_in_seconds:
            tuning_config["ResourceLimits"]["MaxRuntimeInSeconds"] = int(self.max_runtime_in_seconds)
        if self.random_seed is not None:
            tuning_config["RandomSeed"] = self.random_seed
        if self.strategy_config is not None:
            tuning_config["StrategyConfig"] = _req(self.strategy_config)
        if self.completion_criteria_config is not None:
            tuning_config["TuningJobCompletionCriteria"] = _req(self.completion_criteria_config)
        request = {"HyperParameterTuningJobName": name, "HyperParameterTuningJobConfig": tuning_config,
                   "TrainingJobDefinition": definition, "Tags": self.tags,
                   "nbsage:Place": est.backend or "local", "nbsage:PlaceOptions": options}
        return request

    # ---- actions --------------------------------------------------------------------------------------
    def fit(self, inputs=None, job_name: str | None = None, include_cls_metadata: bool = False,
            estimator_kwargs: dict | None = None, wait: bool = True, **kwargs) -> None:
        """CreateHyperParameterTuningJob: check, record, start the driver; with wait=True follow it to its end."""
        from nbsage import backends
        from nbsage.tuning.driver import start_driver
        from nbsage.tuning_job import TuningJob
        self.validate()
        session = self.estimator.session
        name = config.check_name(job_name) if job_name else self._tuning_job_name()
        request_warm = self._check_warm_start(session)
        request = self._request(name, inputs)
        if request_warm:
            request["WarmStartConfig"] = request_warm
        from nbsage.store.requests import TrainingRequest
        probe = TrainingRequest.from_dict({"TrainingJobName": name, **request["TrainingJobDefinition"]})
        backends.get(request["nbsage:Place"], session, **request["nbsage:PlaceOptions"]).check(probe)
        session.store.create_job(name, request, "local", None, kind="tuning")
        session.watch_jobs()
        start_driver(session, name)
        self._current_job_name = name
        self.latest_tuning_job = TuningJob(name, session)
        if wait:
            self.wait()

    def _job(self):
        if self.latest_tuning_job is None:
            raise ValidationError("this tuner has no tuning job yet: call fit() first, or HyperparameterTuner.attach(name)")
        return self.latest_tuning_job

    def wait(self) -> dict:
        """Block until the tuning job ends (a live trials table in a notebook)."""
        return self._job().wait()

    def describe(self) -> dict:
        return self._job().describe()

    def stop_tuning_job(self) -> None:
        self._job().stop()

    def best_training_job(self) -> str:
        """The name of the best completed trial."""
        desc = self.describe()
        best = desc.get("BestTrainingJob")
        if not best:
            raise ValidationError(f"No best training job available for the tuning job {self._job().name!r} "
                                  f"({desc['HyperParameterTuningJobStatus']}, trials: "
                                  + ", ".join(f"{k} {v}" for k, v in desc["TrainingJobStatusCounters"].items() if v)
                                  + ")")
        return best["TrainingJobName"]

    def best_estimator(self, best_training_job: str | None = None):
        """An Estimator attached to the best trial (without _tuning_objective_metric, as the SDK does)."""
        from nbsage.estimator import Estimator
        est = Estimator.attach(best_training_job or self.best_training_job(), self.estimator.session)
        est._hyperparameters.pop("_tuning_objective_metric", None)
        return est

    def deploy(self, initial_instance_count: int = 1, instance_type: str = "local", serializer=None,
               deserializer=None, endpoint_name: str | None = None, wait: bool = True, model_name=None, **kwargs):
        """An endpoint for the best trial's model; returns a Predictor."""
        return self.best_estimator().deploy(initial_instance_count=initial_instance_count,
                                            instance_type=instance_type, serializer=serializer,
                                            deserializer=deserializer, endpoint_name=endpoint_name, wait=wait,
                                            **kwargs)

    def analytics(self):
        from nbsage.analytics import HyperparameterTuningJobAnalytics
        return HyperparameterTuningJobAnalytics(self._job().name, self.estimator.session)

    def _warm_copy(self, kind: WarmStartTypes, additional_parents=None, estimator=None) -> "HyperparameterTuner":
        tuner = copy.copy(self)
        tuner.estimator = estimator or self.estimator
        tuner.warm_start_config = WarmStartConfig(kind, [self._job().name, *(additional_parents or [])])
        tuner.latest_tuning_job, tuner._current_job_name = None, None
        return tuner

    def identical_dataset_and_algorithm_tuner(self, additional_parents=None) -> "HyperparameterTuner":
        """A new tuner that warm-starts from this one's job (same data and algorithm)."""
        return self._warm_copy(WarmStartTypes.IDENTICAL_DATA_AND_ALGORITHM, additional_parents)

    def transfer_learning_tuner(self, additional_parents=None, estimator=None) -> "HyperparameterTuner":
        """A new tuner that starts from this one's best configurations (data or ranges may change)."""
        return self._warm_copy(WarmStartTypes.TRANSFER_LEARNING, additional_parents, estimator)

    @classmethod
    def attach(cls, tuning_job_name: str, sagemaker_session=None, job_details: dict | None = None,
               estimator_cls=None) -> "HyperparameterTuner":
        """A tuner for an existing tuning job (its driver is started again if it died)."""
        from nbsage.estimator import Estimator
        from nbsage.session import Session
        from nbsage.store.requests import TrainingRequest
        from nbsage.tuning_job import TuningJob
        session = sagemaker_session or Session.default()
        job = TuningJob(tuning_job_name, session)
        desc = job_details or job.describe()
        cfg, definition = desc["HyperParameterTuningJobConfig"], desc["TrainingJobDefinition"]
        request = json.loads(session.store.get_job(tuning_job_name)["request"])
        trials = job.trials()
        if trials:
            estimator = Estimator.attach(trials[0]["TrainingJobName"], session)
        else:
            typed = TrainingRequest.from_dict({"TrainingJobName": tuning_job_name, **definition})
            estimator = Estimator(typed.image, sagemaker_session=session, instance_type=typed.instance_type,
                                  instance_count=typed.instance_count)
        estimator._hyperparameters = {k: v for k, v in (definition.get("StaticHyperParameters") or {}).items()
                                      if k != "_tuning_objective_metric" and not k.startswith("sagemaker_")}
        if estimator.entry_point:
            decoded = {}
            for k, v in estimator._hyperparameters.items():
                try:
                    decoded[k] = json.loads(v)
                except ValueError:
                    decoded[k] = v
            estimator._hyperparameters = decoded
        estimator.backend = request.get("nbsage:Place", "local")
        estimator.backend_options = request.get("nbsage:PlaceOptions") or {}
        tuner = cls.__new__(cls)
        tuner.estimator = estimator
        tuner.objective_metric_name = cfg["HyperParameterTuningJobObjective"]["MetricName"]
        tuner.objective_type = cfg["HyperParameterTuningJobObjective"]["Type"]
        tuner._hyperparameter_ranges = config.ranges_of(cfg["ParameterRanges"])
        tuner.metric_definitions = (definition.get("AlgorithmSpecification") or {}).get("MetricDefinitions")
        tuner.strategy = cfg["Strategy"]
        tuner.max_jobs = cfg["ResourceLimits"]["MaxNumberOfTrainingJobs"]
        tuner.max_parallel_jobs = cfg["ResourceLimits"]["MaxParallelTrainingJobs"]
        tuner.max_runtime_in_seconds = cfg["ResourceLimits"].get("MaxRuntimeInSeconds")
        tuner.tags = request.get("Tags") or []
        tuner.base_tuning_job_name = None
        tuner.warm_start_config = WarmStartConfig.from_job_desc(desc.get("WarmStartConfig"))
        tuner.strategy_config = cfg.get("StrategyConfig")
        tuner.completion_criteria_config = cfg.get("TuningJobCompletionCriteria")
        tuner.early_stopping_type = cfg.get("TrainingJobEarlyStoppingType", "Off")
        tuner.random_seed = cfg.get("RandomSeed")
        tuner.latest_tuning_job = job
        tuner._current_job_name = tuning_job_name
        return tuner

    def __repr__(self) -> str:
        return (f"HyperparameterTuner({self.estimator!r}, {self.objective_metric_name!r}, "
                f"{self._hyperparameter_ranges!r}, strategy={self.strategy!r}, max_jobs={self.max_jobs!r}, "
                f"max_parallel_jobs={self.max_parallel_jobs!r})")


def _is_json(value) -> bool:
    try:
        json.dumps(value)
        return True
    except TypeError:
        return False
