"""IPython magics: `%load_ext nbsage`, then `%%sm_train`, `%sm_deploy`, `%sm_predict`, `%sm_jobs`, ...

Each magic parses its line, builds a request and calls the API (Estimator, TrainingJob, Session,
Predictor); nothing here that another face would need. Settings are traitlets, changed with
`%config SageMakerMagics.wait = False`. A usage mistake or any NBSageError is raised as UsageError,
which IPython prints as one line without a traceback.
"""
from __future__ import annotations

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from traitlets import Bool, Float, TraitError, Unicode, validate
from traitlets.config import Configurable

from nbsage import arguments
from nbsage.arguments import CHANNELS, arg, resolve_source  # noqa: F401 (resolve_source: used by forms)
from nbsage.notebook.parsing import one_line, parse, takes

JOB = arg("job", nargs="?", help="job name or variable (default: the last job started here)")
PLACE_BACKEND = arg("--backend", metavar="PLACE", help="describe only this place")


class _ByResponseType:
    """Deserialises a response by the content type the endpoint answered with:
    JSON -> Python objects, CSV -> a numpy array, other text -> str, anything else -> bytes."""

    ACCEPT = ("*/*",)

    def deserialize(self, stream, content_type: str):
        from nbsage import deserializers, formats
        return formats.decode(deserializers.BytesDeserializer().deserialize(stream, content_type), content_type)


class PlaceList(list):
    """Places (describe_place() dicts), shown as a table; the list itself holds the dicts."""

    header = ["Place", "Where", "CPUs", "GPUs", "Memory (GiB)", "Options", "Default"]

    def _rows(self) -> list[list[str]]:
        def cell(value):
            return "?" if value is None else str(value)
        return [[p["name"], p.get("where", "") + (f" ({p['error']})" if p.get("error") else ""), cell(p.get("cpus")),
                 cell(p.get("gpus")), cell(p.get("memory_gib")), ", ".join(p.get("options", [])),
                 "yes" if p.get("default") else ""] for p in self]

    def __repr__(self) -> str:
        from nbsage.notebook.display import _text_table
        return _text_table(self.header, self._rows())

    def _repr_html_(self) -> str:
        from nbsage.notebook.display import _html_table
        return _html_table(self.header, self._rows())


def follow_then_return(job, logs: bool) -> None:
    """job.wait() for a magic that returns the job: the live monitor leaves the final metrics, the
    artifact and the failure reason to the returned job's table and the error line, so the cell
    shows each fact once."""
    from nbsage.notebook.display import LiveMonitor
    from nbsage.watch import watcher_for
    watcher = watcher_for(job.watched(), logs=logs)
    if isinstance(watcher, LiveMonitor):
        watcher.results = False
    watcher.run()
    desc = job.describe()
    if desc[job.status_field] != "Completed":
        raise job.failure(desc)


@magics_class
class SageMakerMagics(Magics, Configurable):
    """The SageMaker workflow as magics. Configure with `%config SageMakerMagics.<setting> = value`."""

    default_backend = Unicode("local", config=True, help="Where jobs run: the place (backend) name.")
    instance_type = Unicode("local", config=True, help="Instance type recorded on jobs and endpoints.")
    wait = Bool(True, config=True, help="Follow %%sm_train jobs until they end (like fit(wait=True)).")
    logs = Bool(True, config=True, help="Show log lines while following a job.")
    stop_timeout = Float(30.0, config=True, help="Seconds %sm_stop waits for a job to reach Stopped.")
    gateway = Unicode("", config=True, help="The kernel place's kernel gateway URL, e.g. http://gpu-box:8888.")
    kernel = Unicode("", config=True, help="The kernel place's kernel name (a kernelspec), e.g. python3.")

    def __init__(self, shell):
        Configurable.__init__(self, config=shell.config)
        Magics.__init__(self, shell=shell)
        # so `%config SageMakerMagics` finds us (once, also after %reload_ext)
        self.shell.configurables[:] = [c for c in self.shell.configurables if type(c).__name__ != "SageMakerMagics"]
        self.shell.configurables.append(self)

    @validate("default_backend")
    def _check_backend(self, proposal):
        value = proposal["value"].strip()
        if not value:
            raise TraitError("SageMakerMagics.default_backend must name a place, e.g. 'local'")
        return value

    @validate("stop_timeout")
    def _check_stop_timeout(self, proposal):
        if proposal["value"] < 0:
            raise TraitError("SageMakerMagics.stop_timeout must be 0 or more seconds")
        return proposal["value"]

    # ---- helpers ---------------------------------------------------------------------------------
    @property
    def _session(self):
        from nbsage.session import Session
        return Session.default()

    def _job(self, ref: str | None):
        """A TrainingJob from a job name, a variable holding a job (or an Estimator), or the last job."""
        from nbsage.training_job import TrainingJob
        ns = self.shell.user_ns
        if not ref:
            if ns.get("_sm_job") is None:
                raise UsageError("name a training job (see %sm_jobs); no job has been started in this session yet")
            return ns["_sm_job"]
        value = ns.get(ref) if ref.isidentifier() else None
        if isinstance(value, TrainingJob):
            return value
        if getattr(value, "latest_training_job", None) is not None:
            return value.latest_training_job
        return TrainingJob(ref, self._session)

    def _endpoint_name(self, ref: str) -> str:
        value = self.shell.user_ns.get(ref) if ref.isidentifier() else None
        return getattr(value, "endpoint_name", None) or ref

    # ---- training ----------------------------------------------------------------------------------
    @line_cell_magic
    @takes(arguments.TRAIN, arguments.place_arguments())
    @one_line()
    def sm_train(self, line, cell=None):
        """Start a training job; the cell body holds the hyperparameters as YAML (`num_round: 50`).

        Returns the TrainingJob (also kept as `_sm_job`), so `job = %sm_train ...` works.
        """
        from nbsage.estimator import Estimator
        args = parse(self.sm_train, line)
        options, inputs = arguments.training_call(
            args, body=cell, namespace=self.shell.user_ns, instance_type=self.instance_type,
            backend=self.default_backend, place_defaults=self._place_defaults())
        estimator = Estimator(sagemaker_session=self._session, **options)
        job = estimator.fit(inputs, wait=False, job_name=args.name)
        self.shell.user_ns["_sm_job"] = job
        if self.wait and not args.no_wait:
            try:
                follow_then_return(job, logs=self.logs and not args.quiet)
            except KeyboardInterrupt:
                print(f"Stopped following {job.name}; it is still running (%sm_stop {job.name} stops it).")
        return job

    def _place_defaults(self) -> dict:
        """The %config place options: defaults for a place that declares them (the kernel's gateway, kernel)."""
        return {"gateway": self.gateway, "kernel": self.kernel}

    # ---- places ------------------------------------------------------------------------------------
    @line_magic
    @takes([PLACE_BACKEND], arguments.place_arguments())
    @one_line()
    def sm_places(self, line):
        """List the places jobs can run in, with their CPUs, GPUs, memory and options.

        The default place (%config SageMakerMagics.default_backend) is described with the
        configured gateway/kernel; a remote kernel is asked by starting one for the question.
        """
        from nbsage import places
        args = parse(self.sm_places, line)
        chosen = args.backend or self.default_backend
        options = arguments.place_options(args, chosen, self._place_defaults())
        rows = []
        for name in [args.backend] if args.backend else places.names():
            rows.append(dict(places.describe(name, self._session, **(options if name == chosen else {})),
                             default=name == self.default_backend))
        return PlaceList(rows)

    # ---- jobs --------------------------------------------------------------------------------------
    @line_magic
    @takes([arg("--limit", type=int, default=50, help="show at most this many jobs (newest first)"),
            arg("--kind", choices=["training", "transform", "tuning"], default="training",
                help="which jobs (default: training)"),
            arg("--tuning", action="store_true", help="list hyperparameter tuning jobs (as --kind tuning)")])
    @one_line()
    def sm_jobs(self, line):
        """List training jobs: name, status, algorithm, created, duration, final metric (--tuning: tuning jobs)."""
        from nbsage.notebook.display import JobList
        args = parse(self.sm_jobs, line)
        if args.tuning or args.kind == "tuning":
            from nbsage.notebook.tuning_magics import tuning_jobs
            return tuning_jobs(args.limit)
        if args.kind == "transform":  # transform jobs: nbsage.notebook.transform_magics
            from nbsage.notebook.transform_magics import job_list
            return job_list(self._session, args.limit)
        return JobList(self._session.list_training_jobs(limit=args.limit))

    @line_magic
    @takes([JOB], arguments.LOGS)
    @one_line()
    def sm_logs(self, line):
        """Show a training job's log lines (without nbsage's #metric/#progress lines, as `nbsage logs`)."""
        from nbsage.notebook.display import JobLogs
        args = parse(self.sm_logs, line)
        job = self._job(args.job)
        return JobLogs(job.name, arguments.reader_lines(job.logs(), args.tail))

    @line_magic
    @takes([arg("--limit", type=int, default=50, help="show at most this many models (newest first)")])
    @one_line()
    def sm_models(self, line):
        """List models: every training job's artifact and every deployed model, with the endpoints serving it."""
        from nbsage.model_list import list_models
        from nbsage.notebook.display import ModelList
        args = parse(self.sm_models, line)
        return ModelList(list_models(self._session, limit=args.limit))

    @line_magic
    @takes([JOB])
    @one_line()
    def sm_describe(self, line):
        """DescribeTrainingJob: the job's full record."""
        from nbsage.notebook.display import JobDescription
        args = parse(self.sm_describe, line)
        return JobDescription(self._job(args.job).describe())

    @line_magic
    @takes([JOB])
    @one_line()
    def sm_stop(self, line):
        """Stop a running training job (SIGTERM, then SIGKILL after a grace period); it ends Stopped."""
        args = parse(self.sm_stop, line)
        job = self._job(args.job)
        job.stop()
        job.wait_quietly(timeout=self.stop_timeout)
        return job

    # ---- endpoints ---------------------------------------------------------------------------------
    @line_magic
    @takes([arg("job", nargs="?", help="a completed job's name or variable (default: the last job started here)")],
           arguments.DEPLOY)
    @one_line()
    def sm_deploy(self, line):
        """Deploy a completed job's model to an endpoint; returns its Predictor (also kept as `_sm_predictor`)."""
        from nbsage.estimator import Estimator
        args = parse(self.sm_deploy, line)
        job = self._job(args.job)
        predictor = Estimator.attach(job.name, sagemaker_session=self._session).deploy(
            **arguments.deploy_call(args, instance_type=self.instance_type))
        self.shell.user_ns["_sm_predictor"] = predictor
        return predictor

    @line_magic
    @takes([arg("endpoint", help="endpoint name, or a variable holding a Predictor"),
            arg("expression", nargs="*", help="the data: a DataFrame, array or list of rows (sent as CSV), "
                                              "a dict (JSON) or a str (sent as text/csv)")])
    @one_line()
    def sm_predict(self, line):
        """Send data to an endpoint; the answer is read by its content type (JSON -> objects, CSV -> array)."""
        from nbsage import serializers
        from nbsage.predictor import Predictor
        # EXPR is Python, so it is not split like shell words: the first word is the endpoint
        endpoint, _, expression = line.strip().partition(" ")
        if not endpoint or not expression.strip() or endpoint.startswith("-"):
            raise UsageError("usage: %sm_predict ENDPOINT EXPRESSION, e.g. %sm_predict my-endpoint X_test[:5]"
                             + (f"; it takes no option {endpoint}" if endpoint.startswith("-") else ""))
        try:
            data = self.shell.ev(expression)
        except Exception as e:
            raise UsageError(f"cannot evaluate {expression.strip()!r}: {type(e).__name__}: {e}") from None
        serializer = serializers.JSONSerializer() if isinstance(data, dict) else serializers.CSVSerializer()
        predictor = Predictor(self._endpoint_name(endpoint), sagemaker_session=self._session,
                              serializer=serializer, deserializer=_ByResponseType())
        return predictor.predict(data)

    @line_magic
    @one_line()
    def sm_endpoints(self, line):
        """List endpoints: name, status, created, URL."""
        from nbsage.notebook.display import EndpointList
        if line.strip():
            raise UsageError(f"%sm_endpoints takes no arguments, not {line.strip()}")
        return EndpointList(self._session.list_endpoints())

    @line_magic
    @takes([arg("endpoint", help="endpoint name, or a variable holding a Predictor")])
    @one_line()
    def sm_delete(self, line):
        """Delete an endpoint (its server process stops)."""
        args = parse(self.sm_delete, line)
        name = self._endpoint_name(args.endpoint)
        self._session.delete_endpoint(name)
        print(f"Deleted endpoint {name}.")


def load_ipython_extension(ipython) -> None:
    """`%load_ext nbsage`: the SageMaker magics, the data magics (%sm_load, %%sm_sql) and %%sm_process."""
    from nbsage.notebook import data_magics, processing_magics, transform_magics, tuning_magics
    ipython.register_magics(SageMakerMagics(ipython))
    data_magics.register(ipython)
    processing_magics.register(ipython)
    tuning_magics.register(ipython)
    transform_magics.register(ipython)
