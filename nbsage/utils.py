"""`sagemaker.utils`: the job-name helpers notebooks call (the module is named after the SDK's, so
`sagemaker.utils.name_from_base(...)` keeps working after `import nbsage as sagemaker`)."""
from __future__ import annotations

import re
import secrets
import time


def sagemaker_timestamp() -> str:
    """`YYYY-MM-DD-HH-MM-SS-mmm` (UTC), the SDK's job-name timestamp."""
    now = time.time()
    return time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(now)) + f"-{int(now * 1000) % 1000:03d}"


def sagemaker_short_timestamp() -> str:
    """`YYMMDD-HHMM`, the SDK's short timestamp."""
    return time.strftime("%y%m%d-%H%M", time.gmtime())


def name_from_base(base: str, max_length: int = 63, short: bool = False) -> str:
    """`<base>-<timestamp>`, the base trimmed so the whole is at most max_length characters."""
    timestamp = sagemaker_short_timestamp() if short else sagemaker_timestamp()
    return f"{base[:max_length - len(timestamp) - 1]}-{timestamp}"


def unique_name_from_base(base: str, max_length: int = 63) -> str:
    """`<base>-<unix time>-<4 hex digits>`, as the SDK's."""
    unique, stamp = f"{secrets.randbelow(16**4):04x}", str(int(time.time()))
    return f"{base[:max_length - 2 - len(stamp) - len(unique)]}-{stamp}-{unique}"


def base_name_from_image(image: str, default_base_name: str | None = None) -> str:
    """The algorithm's name in an image URI (`.../sagemaker-xgboost:1.7-1` -> `sagemaker-xgboost`)."""
    match = re.match(r"^(.+/)?([^:/]+)(:[^:]+)?$", image or "")
    return match.group(2) if match else (default_base_name or image)


def name_from_image(image: str, max_length: int = 63) -> str:
    return name_from_base(base_name_from_image(image), max_length=max_length)
