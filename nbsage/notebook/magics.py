"""IPython magics: `%load_ext nbsage`, then `%%sm_train`, `%sm_deploy`, `%sm_predict`, `%sm_jobs`, ...

Each magic parses its line, builds a request and calls the API (Estimator, TrainingJob, Session,
Predictor); nothing here that another face would need. Settings are traitlets, changed with
`%config SageMakerMagics.wait = False`. A usage mistake or any NBSageError is raised as UsageError,
which IPython prints as one line without a traceback.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, Float, TraitError, Unicode, validate
from traitlets.config import Configurable

from nbsage.errors import ChannelError, NBSageError, did_you_mean

CHANNELS = ("train", "validation", "test")
_EXPONENT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _one_line(method):
    """Turn NBSageError into UsageError: IPython prints it as one line, no traceback."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except NBSageError as e:
            raise UsageError(" ".join(str(e).split())) from None  # e.g. a multi-line FailureReason
    return wrapper


def _looks_like_data(value) -> bool:
    module = type(value).__module__
    return (isinstance(value, tuple) and len(value) == 2) or module.startswith(("pandas", "numpy", "scipy.sparse"))


def _unquote(value):
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _parse(magic, line: str):
    """parse_argstring, with the quotes IPython's non-POSIX splitting keeps taken off each value."""
    args = parse_argstring(magic, line)
    for key, value in vars(args).items():
        setattr(args, key, _unquote(value))
    return args


def resolve_source(text: str, namespace: dict, channel: str = "train"):
    """What a channel source names: a variable of the notebook (DataFrame, array, (X, y) tuple,
    TrainingInput or a path string), else a URL, else a local path."""
    text = text.strip()
    if text in namespace:
        return namespace[text]
    if "://" in text:
        return text
    if Path(text).expanduser().exists():
        return str(Path(text).expanduser())
    if text.isidentifier():
        names = [n for n, v in namespace.items() if not n.startswith("_") and _looks_like_data(v)]
        raise ChannelError(f"channel {channel!r}: there is no variable {text!r} in the notebook{did_you_mean(text, names)} "
                           "(give the name of a DataFrame, array or (X, y) tuple, a path or a URL)")
    raise ChannelError(f"channel {channel!r}: {text} does not exist (give a path, a URL or the name of a DataFrame)")


@functools.cache
def _yaml_loader():
    """SafeLoader that also reads 1e-3 as a number (YAML 1.1 wants 1.0e-3; users write 1e-3)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass
    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT, list("-+.0123456789"))
    return Loader


def parse_hyperparameters(body: str | None, pairs: list[str] | None) -> dict:
    """Hyperparameters from a YAML cell body (`num_round: 50`) and `key=value` pairs (these win)."""
    import yaml
    values: dict = {}
    if body and body.strip():
        try:
            loaded = yaml.load(body, Loader=_yaml_loader())
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            if mark is not None and mark.line >= len(body.rstrip("\n").splitlines()):
                mark = getattr(e, "context_mark", None) or mark  # "end of input": point at what is unclosed
            where = f" at line {mark.line + 2} of the cell" if mark is not None else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise UsageError(f"the hyperparameters are not valid YAML{where}: {problem}; "
                             "write one 'name: value' per line") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise UsageError(f"the cell body must be hyperparameters as 'name: value' lines, not a {type(loaded).__name__}")
        values.update({str(k): v for k, v in (loaded or {}).items()})
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--hp {pair!r}: write hyperparameters as name=value, e.g. --hp num_round=50")
        try:
            values[key.strip()] = yaml.load(raw, Loader=_yaml_loader()) if raw.strip() else None
        except yaml.YAMLError as e:
            raise UsageError(f"--hp {pair!r}: the value is not valid YAML ({getattr(e, 'problem', e)})") from None
    return values


def _metric_definitions(pairs: list[str] | None) -> list[dict] | None:
    definitions = []
    for pair in pairs or []:
        name, sep, regex = pair.partition("=")
        if not sep or not name or not regex:
            raise UsageError(f"--metric {pair!r}: write NAME=REGEX, e.g. --metric 'train:loss=loss=([0-9.]+)'")
        try:
            if re.compile(regex).groups < 1:
                raise UsageError(f"--metric {pair!r}: the regex needs a group that captures the value, e.g. ([0-9.]+)")
        except re.error as e:
            raise UsageError(f"--metric {pair!r}: the regex is not valid ({e})") from None
        definitions.append({"Name": name, "Regex": regex})
    return definitions or None


class _ByResponseType:
    """Deserialises a response by the content type the endpoint answered with:
    JSON -> Python objects, CSV -> a numpy array, other text -> str, anything else -> bytes."""

    ACCEPT = ("*/*",)

    def deserialize(self, stream, content_type: str):
        from nbsage import deserializers
        base = (content_type or "").split(";")[0].strip().lower()
        if base == "application/json":
            return deserializers.JSONDeserializer().deserialize(stream, content_type)
        if base in ("application/jsonlines", "application/x-jsonlines"):
            return deserializers.JSONLinesDeserializer().deserialize(stream, content_type)
        if base == "text/csv":
            return deserializers.NumpyDeserializer().deserialize(stream, content_type)
        body = deserializers.BytesDeserializer().deserialize(stream, content_type)
        if base.startswith("text/"):
            return body.decode("utf-8", errors="replace")
        return body


class PlaceList(list):
    """Places (describe_place() dicts), shown as a table; the list itself holds the dicts."""

    header = ["Place", "Where", "CPUs", "GPUs", "Memory (GiB)", "Default"]

    def _rows(self) -> list[list[str]]:
        def cell(value):
            return "?" if value is None else str(value)
        return [[p["name"], p.get("where", "") + (f" ({p['error']})" if p.get("error") else ""), cell(p.get("cpus")),
                 cell(p.get("gpus")), cell(p.get("memory_gib")), "yes" if p.get("default") else ""] for p in self]

    def __repr__(self) -> str:
        from nbsage.notebook.display import _text_table
        return _text_table(self.header, self._rows())

    def _repr_html_(self) -> str:
        from nbsage.notebook.display import _html_table
        return _html_table(self.header, self._rows())


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
    @magic_arguments()
    @argument("algorithm", nargs="?", help="built-in algorithm (xgboost, linear-learner, ...); "
                                           "leave out with --entry-point")
    @argument("--train", metavar="SRC", help="training data: a path, a URL, or the name of a DataFrame, "
                                              "array or (X, y) tuple in the notebook")
    @argument("--validation", metavar="SRC", help="validation data (same forms as --train)")
    @argument("--test", metavar="SRC", help="test data (same forms as --train)")
    @argument("--name", help="the job name (default: generated from the algorithm and the time)")
    @argument("--no-wait", action="store_true", help="start the job and return at once")
    @argument("--content-type", metavar="CT", help="content type of the channels, e.g. text/csv, text/libsvm")
    @argument("--instance-type", metavar="T", help="instance type to record (default: %%config setting)")
    @argument("--instance-count", metavar="N", type=int, default=1,
              help="instances (hosts): N > 1 trains across N processes or Dask workers")
    @argument("--max-run", metavar="S", type=int, default=86400, help="stop the job after S seconds")
    @argument("--entry-point", metavar="F", help="script mode: the training script")
    @argument("--source-dir", metavar="D", help="script mode: the directory holding the script")
    @argument("--hp", action="append", metavar="NAME=VALUE", help="a hyperparameter (repeatable)")
    @argument("--metric", action="append", metavar="NAME=REGEX",
              help="script mode: a metric scraped from the logs (repeatable)")
    @argument("--backend", metavar="PLACE", help="where the job runs: local, kernel, ... (see %%sm_places)")
    @argument("--gateway", metavar="URL", help="kernel place: a kernel gateway URL, e.g. http://gpu-box:8888")
    @argument("--kernel", metavar="NAME", help="kernel place: the kernel (kernelspec) name, e.g. python3")
    @argument("--connection-file", metavar="F", help="kernel place: a running kernel's connection file")
    @argument("--scheduler", metavar="ADDR",
              help="dask place: a Dask scheduler address, e.g. tcp://host:8786 (default: a LocalCluster)")
    @_one_line
    def sm_train(self, line, cell=None):
        """Start a training job; the cell body holds the hyperparameters as YAML (`num_round: 50`).

        Returns the TrainingJob (also kept as `_sm_job`), so `job = %sm_train ...` works.
        """
        from nbsage.estimator import Estimator
        from nbsage.inputs import TrainingInput
        args = _parse(self.sm_train, line)
        hyperparameters = parse_hyperparameters(cell, args.hp)
        if not args.train:
            raise UsageError("--train is required: a path, a URL, or the name of a DataFrame, array or (X, y) tuple")
        inputs = {ch: TrainingInput(resolve_source(getattr(args, ch), self.shell.user_ns, ch),
                                    content_type=args.content_type)
                  for ch in CHANNELS if getattr(args, ch)}
        estimator = Estimator(args.algorithm, hyperparameters, entry_point=args.entry_point,
                              source_dir=args.source_dir, metric_definitions=_metric_definitions(args.metric),
                              instance_type=args.instance_type or self.instance_type, max_run=args.max_run,
                              instance_count=args.instance_count,
                              backend=args.backend or self.default_backend, sagemaker_session=self._session,
                              **self._place_options(args))
        job = estimator.fit(inputs, wait=False, job_name=args.name)
        self.shell.user_ns["_sm_job"] = job
        if self.wait and not args.no_wait:
            try:
                job.wait(logs=self.logs)
            except KeyboardInterrupt:
                print(f"Stopped following {job.name}; it is still running (%sm_stop {job.name} stops it).")
        return job

    def _place_options(self, args) -> dict:
        """Place options given on the line, else the %config ones (only those set reach the place).

        The %config gateway/kernel are defaults of the kernel place only: another place chosen
        with --backend does not receive them.
        """
        kernel_place = (getattr(args, "backend", None) or self.default_backend) == "kernel"
        options = {"gateway": getattr(args, "gateway", None) or (self.gateway if kernel_place else None),
                   "kernel": getattr(args, "kernel", None) or (self.kernel if kernel_place else None),
                   "connection_file": getattr(args, "connection_file", None),
                   "scheduler": getattr(args, "scheduler", None)}
        return {k: v for k, v in options.items() if v}

    # ---- places ------------------------------------------------------------------------------------
    @line_magic
    @magic_arguments()
    @argument("--backend", metavar="PLACE", help="describe only this place")
    @argument("--gateway", metavar="URL", help="kernel place: a kernel gateway URL")
    @argument("--kernel", metavar="NAME", help="kernel place: the kernel (kernelspec) name")
    @argument("--connection-file", metavar="F", help="kernel place: a running kernel's connection file")
    @_one_line
    def sm_places(self, line):
        """List the places jobs can run in, with their CPUs, GPUs and memory.

        The default place (%config SageMakerMagics.default_backend) is described with the
        configured gateway/kernel; a remote kernel is asked by starting one for the question.
        """
        from nbsage import backends
        args = _parse(self.sm_places, line)
        options = self._place_options(args)
        names = [args.backend] if args.backend else backends.names()
        rows = []
        for name in names:
            chosen = name == (args.backend or self.default_backend)
            place = backends.get(name, self._session, **(options if chosen else {}))
            rows.append(dict(place.describe_place(), default=name == self.default_backend))
        return PlaceList(rows)

    # ---- jobs --------------------------------------------------------------------------------------
    @line_magic
    @magic_arguments()
    @argument("--limit", type=int, default=50, help="show at most this many jobs (newest first)")
    @_one_line
    def sm_jobs(self, line):
        """List training jobs: name, status, algorithm, created, duration, final metric."""
        from nbsage.notebook.display import JobList
        args = _parse(self.sm_jobs, line)
        return JobList(self._session.list_training_jobs(limit=args.limit))

    @line_magic
    @magic_arguments()
    @argument("job", nargs="?", help="job name or variable (default: the last job started here)")
    @argument("--tail", type=int, metavar="N", help="only the last N lines")
    @_one_line
    def sm_logs(self, line):
        """Show a training job's log lines."""
        from nbsage.notebook.display import JobLogs, _is_protocol_line
        args = _parse(self.sm_logs, line)
        job = self._job(args.job)
        lines = [line for line in job.logs() if not _is_protocol_line(line)]
        return JobLogs(job.name, lines[-args.tail:] if args.tail else lines)

    @line_magic
    @magic_arguments()
    @argument("job", nargs="?", help="job name or variable (default: the last job started here)")
    @_one_line
    def sm_describe(self, line):
        """DescribeTrainingJob: the job's full record."""
        from nbsage.notebook.display import JobDescription
        args = _parse(self.sm_describe, line)
        return JobDescription(self._job(args.job).describe())

    @line_magic
    @magic_arguments()
    @argument("job", nargs="?", help="job name or variable (default: the last job started here)")
    @_one_line
    def sm_stop(self, line):
        """Stop a running training job (SIGTERM, then SIGKILL after a grace period); it ends Stopped."""
        args = _parse(self.sm_stop, line)
        job = self._job(args.job)
        job.stop()
        job.wait_quietly(timeout=self.stop_timeout)
        return job

    # ---- endpoints ---------------------------------------------------------------------------------
    @line_magic
    @magic_arguments()
    @argument("job", nargs="?", help="a completed job's name or variable (default: the last job started here)")
    @argument("--name", help="the endpoint name (default: generated)")
    @argument("--instance-type", metavar="T", help="instance type to record (default: %%config setting)")
    @_one_line
    def sm_deploy(self, line):
        """Deploy a completed job's model to an endpoint; returns its Predictor (also kept as `_sm_predictor`)."""
        from nbsage.estimator import Estimator
        args = _parse(self.sm_deploy, line)
        job = self._job(args.job)
        predictor = Estimator.attach(job.name, sagemaker_session=self._session).deploy(
            endpoint_name=args.name, instance_type=args.instance_type or self.instance_type)
        self.shell.user_ns["_sm_predictor"] = predictor
        return predictor

    @line_magic
    @magic_arguments()
    @argument("endpoint", help="endpoint name, or a variable holding a Predictor")
    @argument("expression", nargs="*", help="the data: a DataFrame, array or list of rows (sent as CSV), "
                                            "a dict (JSON) or a str (sent as text/csv)")
    @_one_line
    def sm_predict(self, line):
        """Send data to an endpoint; the answer is read by its content type (JSON -> objects, CSV -> array)."""
        from nbsage import serializers
        from nbsage.predictor import Predictor
        # EXPR is Python, so it is not split like shell words: the first word is the endpoint
        endpoint, _, expression = line.strip().partition(" ")
        if not endpoint or not expression.strip():
            raise UsageError("usage: %sm_predict ENDPOINT EXPRESSION, e.g. %sm_predict my-endpoint X_test[:5]")
        try:
            data = self.shell.ev(expression)
        except Exception as e:
            raise UsageError(f"cannot evaluate {expression.strip()!r}: {type(e).__name__}: {e}") from None
        serializer = serializers.JSONSerializer() if isinstance(data, dict) else serializers.CSVSerializer()
        predictor = Predictor(self._endpoint_name(endpoint), sagemaker_session=self._session,
                              serializer=serializer, deserializer=_ByResponseType())
        return predictor.predict(data)

    @line_magic
    @_one_line
    def sm_endpoints(self, line):
        """List endpoints: name, status, created, URL."""
        from nbsage.notebook.display import EndpointList
        if line.strip():
            raise UsageError("%sm_endpoints takes no arguments")
        return EndpointList(self._session.list_endpoints())

    @line_magic
    @magic_arguments()
    @argument("endpoint", help="endpoint name, or a variable holding a Predictor")
    @_one_line
    def sm_delete(self, line):
        """Delete an endpoint (its server process stops)."""
        args = _parse(self.sm_delete, line)
        name = self._endpoint_name(args.endpoint)
        self._session.delete_endpoint(name)
        print(f"Deleted endpoint {name}.")


def load_ipython_extension(ipython) -> None:
    """`%load_ext nbsage`: the SageMaker magics, the data magics (%sm_load, %%sm_sql) and %%sm_process."""
    from nbsage.notebook import data_magics, processing_magics
    ipython.register_magics(SageMakerMagics(ipython))
    data_magics.register(ipython)
    processing_magics.register(ipython)
