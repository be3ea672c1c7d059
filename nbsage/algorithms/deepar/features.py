"""What DeepAR derives from `time_freq`: the time index, the lags and the calendar features.

A time point is an integer *ordinal* in the frequency's base unit (minutes, hours, days, weeks
or months since 1970-01), so point i of a series that starts at ordinal s sits at
`s + i * multiple`. Calendar features are computed from ordinals with numpy, vectorised, and
encoded in [-0.5, 0.5] as GluonTS does.

Lags follow the rule SageMaker's docs describe ("daily: previous week, 2, 3, 4 weeks and year")
and GluonTS's `get_lags_for_frequency` implements: lags 1..7, plus for each time scale at or
above the frequency the points around its first few cycles (±2 for hours in minutes, ±1
otherwise), up to 1200 steps back.
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from nbsage.errors import HyperparameterError

UNITS = ("min", "H", "D", "W", "M")
_FREQ = re.compile(r"^\s*(\d*)\s*(min|H|D|W|M)\s*$")
# base-unit length in minutes, for converting a multiple to the coarser scales (a month is
# treated as 30 days only for lag arithmetic, where no month-level scale sits below it)
_MINUTES = {"min": 1, "H": 60, "D": 1440, "W": 10080}
MAX_LAG = 1200
DEFAULT_LAGS = 7

_EPOCH_DAY_OF_WEEK = 3  # 1970-01-01 was a Thursday (Monday = 0)


def _around(center: int, width: int) -> list[int]:
    return list(range(center - width, center + width + 1))


# for each time scale: the lags around its cycles, for a step of `step` units of that scale
def _minute_scale(step: Fraction) -> list[int]:   # hours, in minutes
    return [lag for k in range(1, 4) for lag in _around(int(k * 60 // step), 2)]


def _hour_scale(step: Fraction) -> list[int]:     # days, in hours
    return [lag for k in range(1, 8) for lag in _around(int(k * 24 // step), 1)]


def _day_scale(step: Fraction) -> list[int]:      # weeks and a month, in days
    return ([lag for k in range(1, 5) for lag in _around(int(k * 7 // step), 1)]
            + _around(int(30 // step), 1))


def _week_scale(step: Fraction) -> list[int]:     # years and 4-week multiples, in weeks
    return ([lag for k in range(1, 4) for lag in _around(int(k * 52 // step), 1)]
            + [int(4 * k // step) for k in range(1, 4)])


def _month_scale(step: Fraction) -> list[int]:    # years, in months
    return [lag for k in range(1, 4) for lag in _around(int(k * 12 // step), 1)]


@dataclass(frozen=True)
class Frequency:
    """A `time_freq` such as `5min`, `H`, `2D`, `W`, `M`."""

    multiple: int
    unit: str

    @classmethod
    def parse(cls, text: str) -> "Frequency":
        m = _FREQ.match(str(text))
        if not m or (m.group(1) and int(m.group(1)) == 0):
            raise HyperparameterError(
                f"hyperparameter 'time_freq' = {text!r} is not valid; expected an optional positive "
                f"integer followed by M (month), W (week), D (day), H (hour) or min (minute), "
                f"e.g. 'H', '5min', '2D'", name="time_freq")
        return cls(int(m.group(1) or 1), m.group(2))

    def __str__(self) -> str:
        return f"{self.multiple if self.multiple != 1 else ''}{self.unit}"

    # ---- the time index --------------------------------------------------------------------------
    def ordinal(self, when: _dt.datetime) -> int:
        """The base-unit ordinal of the period that contains `when` (naive, no time zone)."""
        days = (when.date() - _dt.date(1970, 1, 1)).days
        if self.unit == "M":
            return (when.year - 1970) * 12 + when.month - 1
        if self.unit == "W":
            return (days + _EPOCH_DAY_OF_WEEK) // 7  # weeks start on Monday
        if self.unit == "D":
            return days
        if self.unit == "H":
            return days * 24 + when.hour
        return (days * 24 + when.hour) * 60 + when.minute

    def timestamp(self, ordinal: int) -> _dt.datetime:
        """The start of the period with this ordinal (inverse of `ordinal`)."""
        if self.unit == "M":
            y, m = divmod(int(ordinal), 12)
            return _dt.datetime(1970 + y, m + 1, 1)
        if self.unit == "W":
            return _dt.datetime(1970, 1, 1) + _dt.timedelta(days=int(ordinal) * 7 - _EPOCH_DAY_OF_WEEK)
        step = {"D": _dt.timedelta(days=1), "H": _dt.timedelta(hours=1), "min": _dt.timedelta(minutes=1)}
        return _dt.datetime(1970, 1, 1) + int(ordinal) * step[self.unit]

    def ordinals(self, start: int, length: int, offset: int = 0) -> np.ndarray:
        """Ordinals of points offset..offset+length-1 of a series starting at `start`."""
        return start + (np.arange(length, dtype=np.int64) + offset) * self.multiple

    # ---- lags ----------------------------------------------------------------------------------
    def lags(self) -> list[int]:
        """Lag indices (1 = the previous point), sorted."""
        m = Fraction(self.multiple)
        if self.unit == "M":
            seasonal = _month_scale(m)
        elif self.unit == "W":
            seasonal = _week_scale(m)
        else:
            minutes = m * _MINUTES[self.unit]
            scales = [(_minute_scale, 1), (_hour_scale, 60), (_day_scale, 1440), (_week_scale, 10080)]
            first = {"min": 0, "H": 1, "D": 2}[self.unit]
            seasonal = [lag for fn, unit in scales[first:] for lag in fn(minutes / unit)]
        extra = sorted({lag for lag in seasonal if DEFAULT_LAGS < lag <= MAX_LAG})
        return list(range(1, DEFAULT_LAGS + 1)) + extra

    # ---- calendar features ---------------------------------------------------------------------
    def time_feature_names(self) -> list[str]:
        """The calendar features of this frequency (SageMaker's list), in column order."""
        return {
            "min": ["minute_of_hour", "hour_of_day", "day_of_week", "day_of_month", "day_of_year"],
            "H": ["hour_of_day", "day_of_week", "day_of_month", "day_of_year"],
            "D": ["day_of_week", "day_of_month", "day_of_year"],
            "W": ["day_of_month", "week_of_year"],
            "M": ["month_of_year"],
        }[self.unit]

    @property
    def num_time_features(self) -> int:
        return len(self.time_feature_names())

    def time_features(self, ordinals: np.ndarray) -> np.ndarray:
        """[len(ordinals), num_time_features] float32 calendar features in [-0.5, 0.5]."""
        o = np.asarray(ordinals, dtype=np.int64)
        cols: list[np.ndarray] = []
        if self.unit == "M":
            cols.append((o % 12) / 11.0 - 0.5)
            return np.stack(cols, axis=-1).astype(np.float32)
        if self.unit == "min":
            cols.append((o % 60) / 59.0 - 0.5)
            hours = o // 60
        elif self.unit == "H":
            hours = o
        if self.unit in ("min", "H"):
            cols.append((hours % 24) / 23.0 - 0.5)
            days = hours // 24
        elif self.unit == "D":
            days = o
        else:  # W: the Monday that starts the week
            days = o * 7 - _EPOCH_DAY_OF_WEEK
        d64 = days.astype("datetime64[D]")
        months = d64.astype("datetime64[M]")
        years = d64.astype("datetime64[Y]")
        day_of_month = (d64 - months).astype(np.int64)          # 0..30
        day_of_year = (d64 - years).astype(np.int64)            # 0..365
        if self.unit != "W":
            cols.append(((days + _EPOCH_DAY_OF_WEEK) % 7) / 6.0 - 0.5)
        cols.append(day_of_month / 30.0 - 0.5)
        if self.unit == "W":
            cols.append(np.minimum(day_of_year // 7, 52) / 52.0 - 0.5)
        else:
            cols.append(day_of_year / 365.0 - 0.5)
        return np.stack(cols, axis=-1).astype(np.float32)


def age_feature(positions: np.ndarray) -> np.ndarray:
    """log10(2 + position since the series' first point): lets the model tell new series from old."""
    return np.log10(2.0 + np.maximum(positions, 0)).astype(np.float32)
