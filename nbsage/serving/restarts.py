"""How the endpoint's front restarts a variant's model server that ends, and when it gives up.

SageMaker replaces a crashed container again and again; nbsage's front (nbsage.serving.front) does the
same with a variant's instances, waiting longer after each crash in a row (0.5 s, doubling up to 30 s,
so a server that crash-loops does not eat the machine) and saying so in the endpoint's log: one line per
restart, naming the variant, the instance, how it ended and the server's last log lines. An instance
that served `STABLE_SECONDS` before it ended starts a new run of crashes (its replacement waits the
shortest time again).

During CreateEndpoint and UpdateEndpoint an instance must answer GET /ping within its variant's
deadline (ContainerStartupHealthCheckTimeoutInSeconds, else NBSAGE_STARTUP_TIMEOUT_SECONDS): one that
never does fails the operation with SageMaker's FailureReason (`ping_failure`), naming the log file
where SageMaker names CloudWatch.
"""
from __future__ import annotations

BACKOFF_START, BACKOFF_CAP = 0.5, 30.0
STABLE_SECONDS = 60.0
STARTUP_HEALTH_CHECK_FIELD = "ContainerStartupHealthCheckTimeoutInSeconds"
STARTUP_HEALTH_CHECK_BOUNDS = (60, 3600)  # SageMaker's, in seconds


def backoff(crashes: int) -> float:
    """Seconds to wait before starting the instance again after `crashes` crashes in a row."""
    return min(BACKOFF_CAP, BACKOFF_START * 2 ** max(0, crashes - 1))


def crashes_after(previous: int, served_seconds: float | None) -> int:
    """The crash count once an instance ends: one more, unless it had served long enough to count as well."""
    if served_seconds is not None and served_seconds >= STABLE_SECONDS:
        return 1
    return previous + 1


def restart_line(variant: str, shadow: bool, number: int, how: str, crashes: int, delay: float, tail: str) -> str:
    """The endpoint log's line for one restart."""
    kind = "shadow variant" if shadow else "variant"
    return (f"nbsage endpoint front: {kind} {variant!r} instance {number} ended ({how}); crash {crashes} in a row, "
            f"starting another in {delay:g} s" + (f"; its log ends with: {tail}" if tail else ""))


def ping_failure(variant: str, shadow: bool, log: str) -> str:
    """SageMaker's FailureReason for a variant whose container never passed its health check."""
    kind = "shadow production variant" if shadow else "production variant"
    return (f"The primary container for {kind} {variant} did not pass the ping health check. "
            f"Please check the log {log} for this endpoint.")
