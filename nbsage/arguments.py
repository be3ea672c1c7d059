"""The faces' argument grammar: one definition of what `%%sm_train`, `%sm_deploy`, `%sm_logs`, ... and
`nbsage train`, `nbsage deploy`, `nbsage logs`, ... accept, and of what their values mean.

Both faces add the same argument lists (`TRAIN`, `DEPLOY`, `LOGS`, `place_arguments()`) to their
parser (argparse for the CLI, IPython's magic_arguments for the magics) and read the parsed values
with the same functions, so a line gives the same job request from either face:

- hyperparameters: `--hp NAME=VALUE` (repeatable), each value a YAML scalar (`50` is a number,
  `1e-3` a float, `binary:logistic` a string), over a `--hyperparameters FILE` and a magic's cell
  body (YAML mappings; a key given twice is refused, naming it);
- channels: `--train`, `--validation`, `--test` and `--channel NAME=SRC`;
- metric definitions: `--metric NAME=REGEX`, the regex checked for a capture group;
- place options: one flag per option the places declare (nbsage.backends.options), e.g. `--gateway`;
- log lines for a reader: `reader_lines()` leaves out the `#metric`/`#progress` protocol lines.

Mistakes raise nbsage.errors.ValidationError naming the argument; each face shows it as one line.
IPython is not imported here (the CLI is a face too).
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

from nbsage.errors import ChannelError, ValidationError, did_you_mean

CHANNELS = ("train", "validation", "test")
UPLOAD_MODES = {"continuous": "Continuous", "endofjob": "EndOfJob"}
_NAMED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_-]*)=(.+)$")
_EXPONENT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
_PROTOCOL_PREFIXES = ("#metric ", "#progress ")


def arg(*flags: str, **kwargs) -> tuple[tuple[str, ...], dict]:
    """One argument, as `parser.add_argument(*flags, **kwargs)` takes it."""
    return flags, kwargs


# ---- the argument lists ---------------------------------------------------------------------------
TRAIN = [
    arg("algorithm", nargs="?", metavar="ALGORITHM",
        help="a built-in algorithm (xgboost, linear-learner, ...); leave out with --entry-point"),
    arg("--train", metavar="SRC", help="the train channel: a file, a folder, an fsspec URL, or (in a notebook) "
                                       "the name of a DataFrame, array or (X, y) tuple"),
    arg("--validation", metavar="SRC", help="the validation channel (same forms as --train)"),
    arg("--test", metavar="SRC", help="the test channel (same forms as --train)"),
    arg("--channel", action="append", default=[], metavar="NAME=SRC", help="any other channel (repeatable)"),
    arg("--content-type", metavar="CT", help="content type of the channels, e.g. text/csv, text/libsvm"),
    arg("--hp", action="extend", nargs="+", default=[], metavar="NAME=VALUE",
        help="a hyperparameter, its value read as YAML (repeatable; wins over the file and the cell)"),
    arg("--hyperparameters", metavar="FILE", help="hyperparameters from a YAML or JSON file"),
    arg("--name", metavar="JOB", help="the job name (default: generated from the algorithm and the time)"),
    arg("--no-wait", action="store_true", help="start the job and return at once"),
    arg("--quiet", action="store_true", help="follow the job without showing its log lines"),
    arg("--instance-type", metavar="TYPE", help="local (CPU), local_gpu or an ml.* type (default: local)"),
    arg("--instance-count", type=int, default=1, metavar="N",
        help="instances (hosts): N > 1 trains across N processes or Dask workers (default: 1)"),
    arg("--max-run", type=int, default=86400, metavar="S",
        help="MaxRuntimeInSeconds: stop the job after S seconds (default: 86400)"),
    arg("--entry-point", metavar="FILE", help="script mode: a SageMaker training script"),
    arg("--source-dir", metavar="DIR", help="script mode: the folder holding the entry point (and requirements.txt)"),
    arg("--metric", action="append", default=[], metavar="NAME=REGEX",
        help="script mode: a metric scraped from the logs, the regex's first group is the value (repeatable)"),
    arg("--output-path", metavar="URL", help="where model.tar.gz goes (default: the artifact root)"),
    arg("--backend", metavar="PLACE", help="where the job runs: local, kernel, dask (default: local)"),
]

DEPLOY = [
    arg("--name", metavar="ENDPOINT", help="the endpoint name (default: generated)"),
    arg("--instance-type", metavar="TYPE", help="instance type to record (default: local)"),
    arg("--instance-count", type=int, default=1, metavar="N", help="instances (default: 1)"),
    arg("--entry-point", metavar="FILE", help="inference code (model_fn, input_fn, predict_fn, output_fn); "
                                              "default: the job's own script, for a script-mode job"),
    arg("--source-dir", metavar="DIR", help="the folder holding --entry-point"),
]

LOGS = [arg("--tail", type=int, metavar="N", help="only the last N lines")]


@functools.cache
def place_arguments() -> list[tuple[tuple[str, ...], dict]]:
    """One flag per option the places declare (`--gateway URL`, `--scheduler ADDR`, ...), default None."""
    from nbsage import places
    arguments = []
    for option, owners in places.option_table():
        kwargs = {"dest": option.name, "metavar": option.metavar, "default": None,
                  "help": f"{' and '.join(owners)} place: {option.help}"}
        if option.type is dict:
            kwargs.update(action="append", help=kwargs["help"] + " (repeatable)")
        elif option.type is not str:
            kwargs["type"] = option.type
        if option.choices:
            kwargs["choices"] = list(option.choices)
        arguments.append(arg(option.option_string, **kwargs))
    return arguments


def place_options(args, place: str | None, defaults: dict | None = None) -> dict:
    """The place options given on the line, over `defaults` (e.g. a face's settings) for the options
    `place` declares; only those set reach the place, which refuses any it does not declare."""
    from nbsage import places
    declared = {o.name for o in places.options(place)} if defaults else set()
    values = {name: value for name, value in (defaults or {}).items() if value and name in declared}
    for option, _ in places.option_table():
        value = getattr(args, option.name, None)
        if value is None:
            continue
        values[option.name] = (dict(split_pair(v, option.option_string, "KEY=VALUE") for v in value)
                               if option.type is dict else value)
    return values


# ---- values -----------------------------------------------------------------------------------------
def unquote(value):
    """A value with the quotes around it taken off (IPython's non-POSIX splitting keeps them)."""
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def one_line(text) -> str:
    """A message on one line (a FailureReason may span several)."""
    return " ".join(str(text).split())


def split_pair(text: str, option: str, what: str = "NAME=VALUE", example: str = "") -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValidationError(f"{option} {text!r} is not {what}" + (f": {example}" if example else ""))
    return name.strip(), value


# ---- hyperparameters ------------------------------------------------------------------------------
@functools.cache
def yaml_loader():
    """SafeLoader that reads 1e-3 as a number (YAML 1.1 wants 1.0e-3; users write 1e-3) and refuses a
    mapping key given twice (plain YAML keeps the last one silently)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} is given twice", key_node.start_mark)
                if isinstance(key, (str, int, float, bool)):
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT, list("-+.0123456789"))
    return Loader


def read_yaml_mapping(text: str, where: str, first_line: int = 1) -> dict:
    """A mapping of name: value from YAML text; `where` names it in errors ("the cell", "file x.yaml")."""
    import yaml
    if not text or not text.strip():
        return {}
    try:
        loaded = yaml.load(text, Loader=yaml_loader())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        if mark is not None and mark.line >= len(text.rstrip("\n").splitlines()):
            mark = getattr(e, "context_mark", None) or mark  # "end of input": point at what is unclosed
        at = f" at line {mark.line + first_line} of {where}" if mark is not None else f" ({where})"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        if problem.endswith(" is given twice"):
            raise ValidationError(f"hyperparameter {problem[len('the key '):]}{at}; keep one") from None
        raise ValidationError(f"the hyperparameters are not valid YAML{at}: {problem}; "
                              "write one 'name: value' per line") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValidationError(f"{where} must hold a mapping of hyperparameters, one 'name: value' per line, "
                              f"not a {type(loaded).__name__}")
    return {str(k): v for k, v in loaded.items()}


def hyperparameter_value(pair: str):
    """`--hp NAME=VALUE` -> (name, value), the value a YAML scalar (empty -> None)."""
    import yaml
    name, raw = split_pair(pair, "--hp", "NAME=VALUE",
                           "write hyperparameters as name=value, e.g. --hp num_round=50")
    try:
        return name, yaml.load(raw, Loader=yaml_loader()) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ValidationError(f"--hp {pair!r}: the value is not valid YAML ({getattr(e, 'problem', e)})") from None


def hyperparameters(args, body: str | None = None) -> dict:
    """The file (--hyperparameters), then a magic's cell body, then the --hp pairs (the last wins)."""
    values: dict = {}
    path = getattr(args, "hyperparameters", None)
    if path:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise ValidationError(f"cannot read hyperparameters file {path!r}: {e.strerror or e}") from None
        values.update(read_yaml_mapping(text, f"hyperparameters file {path!r}"))
    values.update(read_yaml_mapping(body or "", "the cell", first_line=2))  # line 1 is the magic's
    values.update(hyperparameter_value(pair) for pair in getattr(args, "hp", None) or [])
    return values


# ---- metrics and channels ----------------------------------------------------------------------------
def metric_definitions(pairs: list[str] | None) -> list[dict] | None:
    """`--metric NAME=REGEX` -> MetricDefinitions; the regex must compile and capture the value."""
    definitions = []
    for pair in pairs or []:
        name, regex = split_pair(pair, "--metric", "NAME=REGEX",
                                 "write NAME=REGEX, e.g. --metric 'train:loss=loss=([0-9.]+)'")
        try:
            groups = re.compile(regex).groups
        except re.error as e:
            raise ValidationError(f"--metric {pair!r}: the regex is not valid ({e})") from None
        if groups < 1:
            raise ValidationError(f"--metric {pair!r}: the regex needs a group that captures the value, e.g. ([0-9.]+)")
        definitions.append({"Name": name, "Regex": regex})
    return definitions or None


def _looks_like_data(value) -> bool:
    module = type(value).__module__
    return (isinstance(value, tuple) and len(value) == 2) or module.startswith(("pandas", "numpy", "scipy.sparse"))


def resolve_source(text: str, namespace: dict | None, channel: str = "train"):
    """What a channel source names: a variable of the notebook (DataFrame, array, (X, y) tuple,
    TrainingInput or a path string), else a URL, else a local path. Without a namespace (the CLI)
    the text is the source as given."""
    text = text.strip()
    if namespace is None:
        return text
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


def channel_sources(args) -> dict[str, str]:
    """--train/--validation/--test, then --channel NAME=SRC; a channel given twice is refused."""
    sources = {name: getattr(args, name) for name in CHANNELS if getattr(args, name, None)}
    for pair in getattr(args, "channel", None) or []:
        name, source = split_pair(pair, "--channel", "NAME=SRC", "e.g. --channel extra=data/extra.csv")
        if name in sources:
            raise ValidationError(f"channel {name!r} is given twice (--{name} or --channel {name}=...)"
                                  if name in CHANNELS else f"--channel {name}=... is given twice")
        sources[name] = source
    return sources


# ---- a training job -------------------------------------------------------------------------------------
def training_call(args, *, body: str | None = None, namespace: dict | None = None,
                  instance_type: str = "local", backend: str = "local", place_defaults: dict | None = None):
    """(Estimator keyword arguments, fit inputs) from parsed TRAIN + place_arguments() values.

    `namespace` is a notebook's variables (channel sources may name them); `instance_type`,
    `backend` and `place_defaults` are the face's defaults for what the line leaves out.
    """
    from nbsage.inputs import TrainingInput
    if not args.algorithm and not args.entry_point:
        from nbsage import algorithms
        raise ValidationError(f"name a built-in algorithm ({', '.join(algorithms.names())}) or give --entry-point")
    if args.source_dir and not args.entry_point:
        raise ValidationError("--source-dir needs --entry-point (the script to run in it)")
    sources = channel_sources(args)
    if not args.entry_point and "train" not in sources:
        raise ValidationError("--train is required: a path, a URL, or the name of a DataFrame, array or "
                              "(X, y) tuple in the notebook")
    inputs = {}
    for name, text in sources.items():
        source = resolve_source(text, namespace, name)
        inputs[name] = TrainingInput(source, content_type=args.content_type) if args.content_type else source
    place = args.backend or backend
    estimator = dict(
        algorithm_or_image=args.algorithm, hyperparameters=hyperparameters(args, body),
        entry_point=args.entry_point, source_dir=args.source_dir,
        metric_definitions=metric_definitions(args.metric), instance_type=args.instance_type or instance_type,
        instance_count=args.instance_count, max_run=args.max_run, output_path=args.output_path, backend=place,
        **place_options(args, place, place_defaults))
    return estimator, inputs


def deploy_call(args, instance_type: str = "local") -> dict:
    """`Estimator.attach(job).deploy(**deploy_call(args))` keyword arguments from parsed DEPLOY values."""
    if args.source_dir and not args.entry_point:
        raise ValidationError("--source-dir needs --entry-point (the inference script in it)")
    return dict(initial_instance_count=args.instance_count, instance_type=args.instance_type or instance_type,
                endpoint_name=args.name, entry_point=args.entry_point, source_dir=args.source_dir)


# ---- a processing job ----------------------------------------------------------------------------------
def _name_and_rest(text: str) -> tuple[str | None, str]:
    """`NAME=rest` -> (NAME, rest); a path or URL without a name -> (None, text)."""
    match = _NAMED.match(text)
    return (match.group(1), match.group(2)) if match else (None, text)


def processing_input(text: str, namespace: dict | None = None):
    """`[NAME=]SRC[:DEST]` -> ProcessingInput; SRC is a path, a URL or a variable holding one;
    DEST defaults to /opt/ml/processing/input/<NAME or SRC's last part>, NAME to DEST's last part."""
    from nbsage.processing import ProcessingInput
    name, rest = _name_and_rest(text.strip())
    # DEST starts at the last ':/' that is not a URL's '://'
    at = max((m.start() for m in re.finditer(":/", rest) if not rest.startswith("://", m.start())), default=-1)
    source, destination = (rest[:at], rest[at + 1:]) if at >= 0 else (rest, None)
    if not source:
        raise ValidationError(f"--input {text!r}: write SRC:DEST, e.g. --input data/raw:/opt/ml/processing/input/raw")
    value = (namespace or {}).get(source) if source.isidentifier() else None
    if isinstance(value, (str, Path)):
        source = str(value)
    if destination is None:
        last = name or Path(source.rstrip("/").split("://")[-1]).name or "data"
        destination = f"/opt/ml/processing/input/{last}"
    return ProcessingInput(source=source, destination=destination,
                           input_name=name or Path(destination.rstrip("/")).name or None)


def processing_output(text: str):
    """`[NAME=]SRC[:DEST][:Continuous|:EndOfJob]` -> ProcessingOutput; SRC is under
    /opt/ml/processing/, DEST (a path or URL) defaults to the artifact store, NAME to SRC's last part."""
    from nbsage.processing import ProcessingOutput
    name, rest = _name_and_rest(text.strip())
    mode = "EndOfJob"
    head, sep, last = rest.rpartition(":")
    if sep and last.lower() in UPLOAD_MODES:
        rest, mode = head, UPLOAD_MODES[last.lower()]
    elif sep and "/" not in last:
        raise ValidationError(f"--output {text!r}: {last!r} is neither an upload mode (Continuous or EndOfJob) "
                              "nor a destination path or URL")
    source, _, destination = rest.partition(":")
    if not source.startswith("/"):
        raise ValidationError(f"--output {text!r}: the source must be a folder under /opt/ml/processing/, "
                              "e.g. --output /opt/ml/processing/output/train")
    return ProcessingOutput(source=source, destination=destination or None,
                            output_name=name or Path(source.rstrip("/")).name or None, s3_upload_mode=mode)


def environment(pairs: list[str] | None) -> dict[str, str]:
    """`--env KEY=VALUE` (repeatable) -> a dict."""
    env = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValidationError(f"--env {pair!r}: write KEY=VALUE")
        env[key] = value
    return env


# ---- logs -----------------------------------------------------------------------------------------------
def is_protocol_line(line: str) -> bool:
    """nbsage's own `#metric`/`#progress` lines: data for the monitor, noise for a reader."""
    return line.startswith(_PROTOCOL_PREFIXES)


def reader_lines(lines, tail: int | None = None) -> list[str]:
    """A job's log lines as every face shows them: without protocol lines, the last `tail` only."""
    shown = [line for line in lines if not is_protocol_line(line)]
    return shown[-tail:] if tail else shown
