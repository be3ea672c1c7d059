"""A failure reason on one line, for the tables of jobs every face shows (`nbsage jobs`, `%sm_jobs`).

A FailureReason is SageMaker's several-line text (ExecuteUserScriptError, ExitCode, ErrorMessage,
Command); a table row has room for its kind and what the script said.
"""
from __future__ import annotations


def short_reason(reason: str | None, width: int = 80) -> str:
    """A failure reason on one table line: its telling line (an ErrorMessage, else the first), cut to width."""
    if not reason:
        return ""
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    told = next((line.partition(" ")[2].strip('"') for line in lines if line.startswith("ErrorMessage ")), None)
    text = f"{lines[0].rstrip(':')}: {told}" if told and told not in lines[0] else " ".join(lines[:1])
    return text if len(text) <= width else text[:width - 1] + "…"
