"""The inference contract: what a loaded model must do to answer /invocations.

Both sides of the model server import this leaf module, and it imports neither: a built-in
algorithm's `load(model_dir)` returns an `InferenceHandler`, user inference code
(model_fn/input_fn/predict_fn/output_fn) is wrapped in one by the runtime, and the runtime's model
server (nbsage/runtime/serve.py) calls any of them the same way, without knowing which algorithm
answers. A handler declares:

* `content_types`: the request Content-Types it reads (anything else is 415 Unsupported Media Type);
* `accepts` and `default_accept`: the response types it writes (an Accept it cannot meet is 406);
* `empty_body_status`: what an empty request gets, 400 (most algorithms: there is nothing to
  predict) or 204 No Content (SageMaker's XGBoost);
* `predict(body, content_type, accept) -> bytes`, raising InvalidRequest (400) with a message that
  names the record and the problem.

`invoke` checks the two headers and calls `predict`.
"""
from __future__ import annotations

from nbsage.errors import UnsupportedAccept, UnsupportedContentType

EMPTY_BODY_IS_AN_ERROR = 400
EMPTY_BODY_IS_NO_CONTENT = 204


def parse_accept(accept: str | None, supported: tuple[str, ...], default: str) -> str:
    """The first type in an Accept header that is supported; */* or none -> default."""
    if not accept:
        return default
    for part in accept.split(","):
        t = part.split(";")[0].strip().lower()
        if t in ("*/*", ""):
            return default
        if t in supported:
            return t
    raise UnsupportedAccept(f"Accept {accept!r} is not supported; this model answers {', '.join(supported)}")


def check_content_type(content_type: str | None, supported: tuple[str, ...]) -> str:
    """The request's content type, normalised ('text/x-libsvm' -> 'text/libsvm'), if supported."""
    from nbsage.formats import normalize_content_type
    ct = normalize_content_type(content_type)
    if ct not in supported:
        raise UnsupportedContentType(
            f"Content-Type {content_type!r} is not supported; this model accepts {', '.join(supported)}")
    return ct


class InferenceHandler:
    """Answers one /invocations request (see the module docstring for what a handler declares)."""

    content_types: tuple[str, ...] = ()
    accepts: tuple[str, ...] = ()
    default_accept: str = "application/json"
    empty_body_status: int = EMPTY_BODY_IS_AN_ERROR

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
        """(response body, its content type) for a request body and its two headers."""
        ct = check_content_type(content_type, self.content_types)
        acc = parse_accept(accept, self.accepts, self.default_accept)
        return self.predict(body, ct, acc), acc

    def predict(self, body: bytes, content_type: str, accept: str) -> bytes:
        raise NotImplementedError
