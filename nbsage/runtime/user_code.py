"""User inference code, called as the SageMaker inference toolkit calls it.

`<model_dir>/code/<entry point>` (default `inference.py`) is imported with `model_dir/code` on
sys.path, after `pip install -r code/requirements.txt` when that file exists (into the model's own
environment, first on the path: see nbsage.runtime.model_env). `model_fn(model_dir)`
runs once, at load; each request then runs `input_fn(body, content_type) -> predict_fn(data, model)
-> output_fn(prediction, accept)`, or the one `transform_fn(model, body, content_type, accept)`.
Every function may take a trailing `context` argument (chosen by arity, as the toolkit does).
`output_fn`/`transform_fn` may return the body, or `(body, content_type)` to set the response type.

Defaults are the toolkit's: application/json -> np.array(json.loads(..)), text/csv ->
np.genfromtxt(.., delimiter=","), application/x-npy -> np.load, application/x-npz ->
scipy.sparse.load_npz; encoders for json, csv and npy. JSON and CSV bodies reach input_fn as str,
others as bytes. Deliberate differences: .npy bodies are loaded with allow_pickle=False (a pickle
in a request is code execution); an Accept the encoders cannot produce is a 406, not a 500;
malformed JSON is a 400; when there is no predict_fn, a model with `.predict` or a callable model
is used directly (the SKLearn/PyTorch containers' defaults), an xgboost Booster on a DMatrix and a
torch module on a float tensor (framework_predict, the XGBoost and PyTorch containers' own).
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import os
import sys
from pathlib import Path

from nbsage import formats
from nbsage.errors import InvalidRequest, NBSageError, UnsupportedAccept, UnsupportedContentType
from nbsage.inference_contract import InferenceHandler

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
NPZ = "application/x-npz"
UTF8_TYPES = (JSON, CSV)
# what the toolkit's default input_fn/output_fn handle: the formats that implement read_array/write_array
ENCODABLE = tuple(formats.array_writers())
DECODABLE = tuple(formats.array_readers())
HANDLER_NAMES = ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")


class InferenceCodeError(NBSageError):
    """The inference script cannot be loaded or does not follow the model_fn/... contract."""


def base_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def default_accept() -> str:
    return os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or JSON


# ---- the toolkit's default decoders and encoders ----------------------------------------------
def decode(body, content_type: str | None):
    """The default input_fn: a request body to a numpy array (or scipy sparse matrix for npz)."""
    try:
        return formats.read_array(body, content_type)
    except UnsupportedContentType:
        what = f"Content-Type {content_type!r} is" if content_type else "a request without Content-Type is"
        raise UnsupportedContentType(
            f"{what} not supported by the default input_fn; it decodes "
            f"{', '.join(DECODABLE)} (define input_fn in your inference script for other types)") from None


def encode(prediction, content_type: str) -> bytes:
    """The default encoder for one content type (json, csv or npy)."""
    return formats.write_array(prediction, content_type)


def default_output_fn(prediction, accept: str | None):
    """Encode with the first type in Accept that the encoders support; returns (body, type)."""
    requested = [base_type(t) for t in (accept or "").split(",") if t.strip()] or ["*/*"]
    for ct in requested:
        if ct == "*/*":
            ct = base_type(default_accept())
        if ct in ENCODABLE:
            return encode(prediction, ct), ct
    raise UnsupportedAccept(f"Accept {accept!r} cannot be produced by the default output_fn; it encodes "
                            f"{', '.join(ENCODABLE)} (define output_fn in your inference script for others)")


# ---- the toolkit's context object ---------------------------------------------------------------
class RequestProcessor:
    """The per-request part of the toolkit's context: request headers in, response headers out."""

    def __init__(self, headers: dict):
        self._request = headers
        self.response_headers: dict[str, str] = {}
        self.status_code, self.reason = 200, None

    def get_request_properties(self) -> dict:
        return self._request

    def add_response_property(self, key: str, value: str) -> None:
        self.response_headers[key] = value

    def get_response_headers(self) -> dict:
        return self.response_headers

    def report_status(self, code: int, reason: str | None = None) -> None:
        self.status_code, self.reason = code, reason


class Context:
    """The `context` argument handlers may take (the subset of MMS's Context that scripts use)."""

    def __init__(self, model_dir: str, headers: dict | None = None):
        self.model_name = "model"
        self.model_dir = model_dir
        self.system_properties = {"model_dir": model_dir, "gpu_id": None, "batch_size": 1,
                                  "server_name": "nbsage", "server_version": "1"}
        self.request_processor = [RequestProcessor(headers or {})]
        self.metrics = None

    def get_request_header(self, idx: int, key: str):
        headers = self.request_processor[idx].get_request_properties()
        return headers.get(key.lower(), headers.get(key))

    def get_all_request_header(self, idx: int) -> dict:
        return self.request_processor[idx].get_request_properties()

    def set_response_header(self, idx: int, key: str, value: str) -> None:
        self.request_processor[idx].add_response_property(key, value)

    def get_response_headers(self, idx: int) -> dict:
        return self.request_processor[idx].get_response_headers()


# ---- loading and calling the script --------------------------------------------------------------
def _arity(fn) -> int | None:
    """How many positional arguments fn takes; None when it takes *args."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _caller(fn, name: str, n: int, script: str):
    """Call fn with n arguments, or n + context when it declares one more."""
    arity = _arity(fn)
    if arity is not None and arity not in (n, n + 1):
        raise InferenceCodeError(f"{script}: {name} takes {arity} arguments; the toolkit calls it with {n} "
                                 f"(or {n + 1} with context)")
    wants_context = arity == n + 1
    return (lambda args, context: fn(*args, context)) if wants_context else (lambda args, context: fn(*args))


def install_requirements(code_dir: Path) -> None:
    """Install code/requirements.txt into the model's own environment and put it first on the path
    (see nbsage.runtime.model_env: nbsage's environment and other models' stay as they are)."""
    from nbsage.runtime import model_env
    requirements = code_dir / "requirements.txt"
    if not model_env.has_requirements(requirements):
        return
    print(f"nbsage model server: installing {requirements} into the model's own environment",
          file=sys.stderr, flush=True)
    try:
        env = model_env.ensure_environment(requirements)
    except model_env.RequirementsError as exc:
        raise InferenceCodeError(f"code/requirements.txt: {exc}") from None
    model_env.activate(env)


def import_script(path: Path):
    """Import the script as a top-level module named after its file (as the toolkit does)."""
    code_dir = str(path.parent)
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    from nbsage.runtime import framework_modules
    if framework_modules.PATH not in sys.path:  # the containers' helper modules, after everything installed
        sys.path.append(framework_modules.PATH)
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InferenceCodeError(f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if previous is not None:
            sys.modules[name] = previous
        else:
            sys.modules.pop(name, None)
        raise
    return module


def framework_decode(model, body, content_type: str | None):
    """The default input_fn, and the XGBoost container's for a Booster: text/libsvm rows (labels,
    if any, ignored) as a DMatrix, read by xgboost's own libsvm parser as in training."""
    if base_type(content_type) in ("text/libsvm", "text/x-libsvm", "libsvm") and _is_booster(model):
        import tempfile
        import xgboost as xgb
        text = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        with tempfile.NamedTemporaryFile(suffix=".libsvm") as f:
            f.write(text if text.endswith(b"\n") else text + b"\n")
            f.flush()
            return xgb.DMatrix(f"{f.name}?format=libsvm")
    return decode(body, content_type)


def _is_booster(model) -> bool:
    return type(model).__module__.split(".")[0] == "xgboost" and type(model).__name__ == "Booster"


def framework_predict(model):
    """The XGBoost and PyTorch containers' default predict_fn, for a model of theirs: an xgboost
    Booster predicts on the request as a DMatrix; a torch module is called on it as a float tensor
    under no_grad, and answers a numpy array. None for any other model."""
    kind = type(model).__module__.split(".")[0]
    if _is_booster(model):
        def predict(args, context):
            import numpy as np
            import xgboost as xgb
            data = args[0]
            if not isinstance(data, xgb.DMatrix):
                data = xgb.DMatrix(np.atleast_2d(data) if isinstance(data, (list, np.ndarray)) else data)
            return model.predict(data, validate_features=False)  # the container's call: a CSV row has no names
        return predict
    if kind == "torch" and hasattr(model, "forward"):
        def predict(args, context):
            import torch
            data = args[0] if isinstance(args[0], torch.Tensor) else torch.as_tensor(args[0])
            with torch.no_grad():
                out = model(data.float() if data.is_floating_point() else data)
            return out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else out
        return predict
    return None


class UserCodeHandler(InferenceHandler):
    """An InferenceHandler that runs a script's model_fn/input_fn/predict_fn/output_fn."""

    content_types = DECODABLE
    accepts = ENCODABLE

    def __init__(self, model_dir: str | os.PathLike, entry_point: str = "inference.py"):
        self.model_dir = str(model_dir)
        code_dir = Path(model_dir) / "code"
        script = code_dir / entry_point
        self.script = f"code/{entry_point}"
        if not script.is_file():
            found = sorted(p.name for p in code_dir.glob("*.py")) if code_dir.is_dir() else []
            raise InferenceCodeError(
                f"inference script {self.script} was not found in the model directory {model_dir}"
                + (f"; code/ holds {', '.join(found)}" if found else
                   "; package it in model.tar.gz as code/inference.py or pass entry_point="))
        install_requirements(code_dir)
        module = import_script(script)
        self.module = module
        fns = {name: getattr(module, name, None) for name in HANDLER_NAMES}
        for name, fn in fns.items():
            if fn is not None and not callable(fn):
                raise InferenceCodeError(f"{self.script}: {name} is not a function")
        if fns["transform_fn"] is not None:
            clash = [n for n in ("input_fn", "predict_fn", "output_fn") if fns[n] is not None]
            if clash:
                raise InferenceCodeError(
                    f"{self.script} defines transform_fn together with {', '.join(clash)}; define either "
                    "transform_fn alone or input_fn/predict_fn/output_fn")
        if fns["model_fn"] is None:
            raise InferenceCodeError(f"{self.script} defines no model_fn(model_dir); define one that loads "
                                     "and returns your model from model_dir")
        load_model = _caller(fns["model_fn"], "model_fn", 1, self.script)
        self.model = load_model((self.model_dir,), Context(self.model_dir))
        if fns["transform_fn"] is not None:
            self._transform = _caller(fns["transform_fn"], "transform_fn", 4, self.script)
            self._input = self._predict = self._output = None
        else:
            self._transform = None
            self._input = _caller(fns["input_fn"], "input_fn", 2, self.script) if fns["input_fn"] \
                else (lambda args, context: framework_decode(self.model, *args))
            self._output = _caller(fns["output_fn"], "output_fn", 2, self.script) if fns["output_fn"] \
                else (lambda args, context: default_output_fn(*args))
            if fns["predict_fn"] is not None:
                self._predict = _caller(fns["predict_fn"], "predict_fn", 2, self.script)
            elif framework_predict(self.model) is not None:
                self._predict = framework_predict(self.model)
            elif hasattr(self.model, "predict") and callable(self.model.predict):
                self._predict = lambda args, context: args[1].predict(args[0])
            elif callable(self.model):
                self._predict = lambda args, context: args[1](args[0])
            else:
                raise InferenceCodeError(
                    f"{self.script} defines no predict_fn(data, model) and the model from model_fn "
                    f"({type(self.model).__name__}) has no .predict and is not callable")

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
        out, out_type, _ = self.invoke_request(body, content_type, accept, {})
        return out, out_type

    def invoke_request(self, body: bytes, content_type: str | None, accept: str | None,
                       headers: dict) -> tuple[bytes, str, dict]:
        """Run the script on one request; returns (body, content type, response headers)."""
        if not accept or accept.strip() == "*/*":
            accept = default_accept()
        context = Context(self.model_dir, headers)
        data = body
        if base_type(content_type) in UTF8_TYPES:
            try:
                data = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidRequest(f"the {base_type(content_type)} request body is not UTF-8 text: {exc}") from None
        try:
            if self._transform is not None:
                result = self._transform((self.model, data, content_type, accept), context)
            else:
                decoded = self._input((data, content_type), context)
                prediction = self._predict((decoded, self.model), context)
                result = self._output((prediction, accept), context)
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
        if isinstance(result, tuple) and len(result) == 2:
            out, out_type = result
        else:
            out, out_type = result, None
        if out_type is None:
            first = [t.strip() for t in accept.split(",") if t.strip() and t.strip() != "*/*"]
            out_type = first[0] if first else default_accept()
        if isinstance(out, str):
            out = out.encode("utf-8")
        elif isinstance(out, (bytearray, memoryview)):
            out = bytes(out)
        elif not isinstance(out, bytes):
            raise InferenceCodeError(
                f"{self.script}: {'transform_fn' if self._transform else 'output_fn'} returned a "
                f"{type(out).__name__}; return bytes or str (or a (body, content_type) tuple)")
        return out, out_type, context.get_response_headers(0)


def load(model_dir: str | os.PathLike, entry_point: str | None = None) -> UserCodeHandler:
    """Load `<model_dir>/code/<entry_point or inference.py>` and run its model_fn."""
    return UserCodeHandler(model_dir, entry_point or "inference.py")
