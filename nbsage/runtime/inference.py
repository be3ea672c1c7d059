"""The interface between the model server and whatever answers /invocations.

A built-in algorithm's `load(model_dir)` returns an `InferenceHandler`; user inference code
(model_fn/input_fn/predict_fn/output_fn) is wrapped in one too. `invoke` returns the response
body and its content type, or raises UnsupportedContentType (415), UnsupportedAccept (406) or
InvalidRequest (400) with a message that names the problem.
"""
from __future__ import annotations

from nbsage.errors import UnsupportedAccept, UnsupportedContentType


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
    from nbsage.formats import normalize_content_type
    ct = normalize_content_type(content_type)
    if ct not in supported:
        raise UnsupportedContentType(
            f"Content-Type {content_type!r} is not supported; this model accepts {', '.join(supported)}")
    return ct


class InferenceHandler:
    """Answers one /invocations request."""

    content_types: tuple[str, ...] = ()
    accepts: tuple[str, ...] = ()
    default_accept: str = "application/json"

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
        ct = check_content_type(content_type, self.content_types)
        acc = parse_accept(accept, self.accepts, self.default_accept)
        return self.predict(body, ct, acc), acc

    def predict(self, body: bytes, content_type: str, accept: str) -> bytes:
        raise NotImplementedError
