"""Monitoring schedule expressions, as CreateMonitoringSchedule accepts them.

Model Monitor takes `cron(Minutes Hours Day-of-month Month Day-of-week Year)` with a fixed minute
(0) and hours that are `*` (hourly), one hour `H` (daily), `H/N` (every N hours from H) or a list
`a,b,c`; the other fields are `*` or `?`. `NOW` is a one-time schedule. Times are UTC.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from nbsage.errors import ValidationError

NOW = "NOW"
ACCEPTED = ("cron(0 * ? * * *) (hourly, CronExpressionGenerator.hourly()), cron(0 H ? * * *) (daily at hour H, "
            "CronExpressionGenerator.daily(H)), cron(0 H/N ? * * *) (every N hours from H), cron(0 a,b,c ? * * *), "
            "or NOW (one run)")
_CRON = re.compile(r"cron\((.*)\)")


def hours_of(expression: str) -> tuple[int, list[int]]:
    """(minute, sorted hours) a cron expression fires at; ValidationError naming what is accepted."""
    match = _CRON.fullmatch((expression or "").strip())
    fields = match.group(1).split() if match else []
    bad = ValidationError(f"schedule_cron_expression {expression!r} is not one Model Monitor accepts; use {ACCEPTED}")
    if len(fields) != 6 or any(f not in ("*", "?") for f in fields[2:]) or not fields[0].isdigit():
        raise bad
    minute, hours = int(fields[0]), fields[1]
    if minute > 59:
        raise bad
    try:
        if hours == "*":
            return minute, list(range(24))
        if "/" in hours:
            start, step = (int(x) for x in hours.split("/"))
            if not 0 <= start < 24 or step < 1:
                raise bad
            return minute, list(range(start, 24, step))
        chosen = sorted({int(h) for h in hours.split(",")})
    except ValueError:
        raise bad from None
    if not chosen or any(not 0 <= h < 24 for h in chosen):
        raise bad
    return minute, chosen


def check(expression: str) -> str:
    """The expression, checked (NOW, or a cron Model Monitor accepts)."""
    if (expression or "").strip() == NOW:
        return NOW
    hours_of(expression)
    return expression.strip()


def next_time(expression: str, after: datetime) -> datetime:
    """The first time the schedule fires strictly after `after`."""
    minute, hours = hours_of(expression)
    t = after.astimezone(timezone.utc).replace(minute=minute, second=0, microsecond=0)
    for _ in range(50):
        if t > after and t.hour in hours:
            return t
        t += timedelta(hours=1)
    raise ValidationError(f"schedule_cron_expression {expression!r} never fires")


def last_time(expression: str, at: datetime) -> datetime:
    """The last time the schedule fired at or before `at`."""
    minute, hours = hours_of(expression)
    t = at.astimezone(timezone.utc).replace(minute=minute, second=0, microsecond=0)
    for _ in range(50):
        if t <= at and t.hour in hours:
            return t
        t -= timedelta(hours=1)
    raise ValidationError(f"schedule_cron_expression {expression!r} never fires")


def offset(text: str | None, default: timedelta) -> timedelta:
    """An ISO 8601 offset such as '-PT1H' or '-PT30M' (data_analysis_start_time/end_time) as a timedelta."""
    if not text:
        return default
    match = re.fullmatch(r"(-?)PT(\d+)([HM])", text.strip())
    if not match:
        raise ValidationError(f"data analysis time {text!r} is not an offset such as '-PT1H' or '-PT30M'")
    amount = int(match.group(2)) * (3600 if match.group(3) == "H" else 60)
    return timedelta(seconds=-amount if match.group(1) else amount)
