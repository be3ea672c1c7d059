"""The inference contract, under the name the runtime knew it by before it moved.

The contract (InferenceHandler, check_content_type, parse_accept) lives in the leaf module
`nbsage.inference_contract`, which the runtime and the algorithms both import; this module only
re-exports it for code written against the old path.
"""
from nbsage.inference_contract import InferenceHandler, check_content_type, parse_accept

__all__ = ["InferenceHandler", "check_content_type", "parse_accept"]
