"""statistics.json, constraints.json and constraint_violations.json, in Model Monitor's schemas.

statistics.json: `{"version": 0, "dataset": {"item_count"}, "features": [{"name", "inferred_type",
"numerical_statistics": {"common": {"num_present", "num_missing"}, "mean", "sum", "std_dev", "min", "max",
"distribution": {"kll": {"buckets": [{"lower_bound", "upper_bound", "count"}], "sketch": {"parameters":
{"c", "k"}, "data": [[...]]}}}}} | "string_statistics": {"common", "distinct_count", "distribution":
{"categorical": {"buckets": [{"value", "count"}]}}}]}`. The sketch holds the sorted values themselves
up to k of them, else k evenly spaced quantiles — not a KLL sketch's compactor levels, but a summary of
the same distribution that any reader of `data` can use.

Types are Model Monitor's: Integral, Fractional, String (Unknown when a column has no value).

Checks of a monitoring execution (constraint_check_type): missing_column_check, extra_column_check,
data_type_check (the share of a feature's values that are of its baseline type is below
`datatype_check_threshold`), completeness_check (the share of present values is below the feature's
`completeness`), baseline_drift_check (the distance between the baseline and the current distribution
is above `distribution_constraints.comparison_threshold`; for numbers the largest gap between the two
empirical CDFs — the Kolmogorov-Smirnov distance — and for strings the largest gap between the two
value frequencies, L-infinity, against `categorical_comparison_threshold`), categorical_values_check
(the share of values inside the baseline's domain is below `domain_content_threshold`). A feature's
`monitoringConfigOverrides` override the global `monitoring_config` values.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np

from nbsage.serving.monitor.datasets import Dataset

SKETCH_K = 2048
SKETCH_C = 0.64
HISTOGRAM_BUCKETS = 10
MAX_DOMAIN = 20  # a string feature with at most this many distinct values gets a domain constraint
MAX_CATEGORIES = 1000
NUMERIC = ("Integral", "Fractional")
DEFAULT_MONITORING_CONFIG = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {"perform_comparison": "Enabled", "comparison_threshold": 0.1,
                                 "comparison_method": "Robust", "categorical_comparison_threshold": 0.1,
                                 "categorical_drift_method": "LInfinity"},
}


def value_type(value: str) -> str:
    """Integral, Fractional or String: what one value is."""
    try:
        int(value)
        return "Integral"
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return "String"
    return "Fractional" if math.isfinite(number) else "String"


def infer_type(values) -> str:
    """A column's type: Integral when every value is, else Fractional when every value is a number,
    else String; Unknown with no values."""
    kinds = {value_type(v) for v in values if v is not None}
    if not kinds:
        return "Unknown"
    if kinds == {"Integral"}:
        return "Integral"
    return "Fractional" if kinds <= set(NUMERIC) else "String"


def _numbers(values) -> np.ndarray:
    out = []
    for v in values:
        if v is not None and value_type(v) != "String":
            out.append(float(v))
    return np.asarray(out, dtype=float)


def sketch(numbers: np.ndarray) -> list[float]:
    """The sorted values, or SKETCH_K evenly spaced quantiles of them."""
    ordered = np.sort(numbers)
    if len(ordered) > SKETCH_K:
        ordered = np.quantile(ordered, np.linspace(0.0, 1.0, SKETCH_K))
    return [float(x) for x in ordered]


def _numerical(values, present: int, missing: int) -> dict:
    numbers = _numbers(values)
    common = {"num_present": present, "num_missing": missing}
    if not len(numbers):
        return {"common": common}
    low, high = float(numbers.min()), float(numbers.max())
    edges = np.linspace(low, high, HISTOGRAM_BUCKETS + 1) if high > low else np.array([low, high])
    counts, _ = np.histogram(numbers, bins=edges)
    return {"common": common, "mean": float(numbers.mean()), "sum": float(numbers.sum()),
            "std_dev": float(numbers.std()), "min": low, "max": high,
            "distribution": {"kll": {
                "buckets": [{"lower_bound": float(a), "upper_bound": float(b), "count": float(n)}
                            for a, b, n in zip(edges[:-1], edges[1:], counts)],
                "sketch": {"parameters": {"c": SKETCH_C, "k": float(SKETCH_K)}, "data": [sketch(numbers)]}}}}


def _string(values, present: int, missing: int) -> dict:
    counts = Counter(v for v in values if v is not None)
    return {"common": {"num_present": present, "num_missing": missing}, "distinct_count": float(len(counts)),
            "distribution": {"categorical": {"buckets": [{"value": v, "count": float(n)}
                                                         for v, n in counts.most_common(MAX_CATEGORIES)]}}}


def feature_statistics(name: str, values: list, inferred_type: str | None = None) -> dict:
    """One feature of statistics.json."""
    present = sum(v is not None for v in values)
    kind = inferred_type or infer_type(values)
    feature = {"name": name, "inferred_type": kind}
    if kind in NUMERIC:
        feature["numerical_statistics"] = _numerical(values, present, len(values) - present)
    else:
        feature["string_statistics"] = _string(values, present, len(values) - present)
    return feature


def dataset_statistics(dataset: Dataset) -> dict:
    """statistics.json of a dataset."""
    return {"version": 0, "dataset": {"item_count": len(dataset.rows)},
            "features": [feature_statistics(name, dataset.column(i)) for i, name in enumerate(dataset.names)]}


def suggest_constraints(statistics: dict) -> dict:
    """constraints.json suggested by a baseline's statistics, as Model Monitor suggests them."""
    features = []
    for feature in statistics["features"]:
        kind = feature["inferred_type"]
        stats = feature.get("numerical_statistics") or feature.get("string_statistics") or {}
        common = stats.get("common", {})
        total = common.get("num_present", 0) + common.get("num_missing", 0)
        constraint = {"name": feature["name"], "inferred_type": kind,
                      "completeness": round(common.get("num_present", 0) / total, 6) if total else 0.0}
        if kind in NUMERIC:
            constraint["num_constraints"] = {"is_non_negative": bool(stats.get("min", -1) >= 0)}
        elif kind == "String" and stats.get("distinct_count", MAX_DOMAIN + 1) <= MAX_DOMAIN:
            constraint["string_constraints"] = {
                "domains": sorted(b["value"] for b in stats["distribution"]["categorical"]["buckets"])}
        features.append(constraint)
    return {"version": 0, "features": features,
            "monitoring_config": {**DEFAULT_MONITORING_CONFIG,
                                  "distribution_constraints": dict(DEFAULT_MONITORING_CONFIG["distribution_constraints"])}}


# ---- distances ------------------------------------------------------------------------------------------
def _sketch_of(feature: dict) -> np.ndarray:
    data = (((feature.get("numerical_statistics") or {}).get("distribution") or {}).get("kll") or {}) \
        .get("sketch", {}).get("data") or []
    return np.sort(np.asarray([x for level in data for x in level], dtype=float))


def _categories(feature: dict) -> dict[str, float]:
    buckets = (((feature.get("string_statistics") or {}).get("distribution") or {}).get("categorical") or {}) \
        .get("buckets") or []
    total = sum(b["count"] for b in buckets)
    return {b["value"]: b["count"] / total for b in buckets} if total else {}


def distance(baseline: dict, current: dict) -> float | None:
    """The distribution distance between two statistics.json features: Kolmogorov-Smirnov for numbers,
    L-infinity between value frequencies for strings; None when they cannot be compared."""
    if baseline.get("inferred_type") in NUMERIC and current.get("inferred_type") in NUMERIC:
        a, b = _sketch_of(baseline), _sketch_of(current)
        if not len(a) or not len(b):
            return None
        points = np.concatenate([a, b])
        cdf_a = np.searchsorted(a, points, side="right") / len(a)
        cdf_b = np.searchsorted(b, points, side="right") / len(b)
        return float(np.max(np.abs(cdf_a - cdf_b)))
    if baseline.get("inferred_type") == "String" and current.get("inferred_type") == "String":
        p, q = _categories(baseline), _categories(current)
        if not p or not q:
            return None
        return float(max(abs(p.get(v, 0.0) - q.get(v, 0.0)) for v in set(p) | set(q)))
    return None


# ---- constraint violations ---------------------------------------------------------------------------------
def _config(constraints: dict, feature: dict) -> dict:
    config = dict(constraints.get("monitoring_config") or DEFAULT_MONITORING_CONFIG)
    distribution = {**DEFAULT_MONITORING_CONFIG["distribution_constraints"],
                    **(config.get("distribution_constraints") or {})}
    overrides = feature.get("monitoringConfigOverrides") or {}
    distribution.update(overrides.get("distribution_constraints") or {})
    config.update({k: v for k, v in overrides.items() if k != "distribution_constraints"})
    config["distribution_constraints"] = distribution
    return config


def _violation(name: str, check: str, description: str) -> dict:
    return {"feature_name": name, "constraint_check_type": check, "description": description}


def evaluate(constraints: dict, baseline_statistics: dict, current: Dataset) -> tuple[dict, dict]:
    """(statistics.json, constraint_violations.json) of the current dataset against a baseline."""
    current_stats = dataset_statistics(current)
    violations: list[dict] = []
    expected = [f["name"] for f in constraints.get("features", [])]
    monitoring_config = constraints.get("monitoring_config") or DEFAULT_MONITORING_CONFIG
    if monitoring_config.get("evaluate_constraints", "Enabled") != "Enabled":
        return current_stats, {"violations": []}
    if not current.rows:
        return current_stats, {"violations": []}
    width = len(current.names)
    for name in expected[width:]:
        violations.append(_violation(name, "missing_column_check",
                                     f"There are missing columns in the current dataset: it has {width} columns, "
                                     f"the baseline constraints {len(expected)}"))
    for name in current.names[len(expected):]:
        violations.append(_violation(name, "extra_column_check",
                                     f"There are extra columns in the current dataset: it has {width} columns, "
                                     f"the baseline constraints {len(expected)}"))
    baseline_features = {f["name"]: f for f in baseline_statistics.get("features", [])}
    current_features = {f["name"]: f for f in current_stats["features"]}
    for index, constraint in enumerate(constraints.get("features", [])[:width]):
        name, kind = constraint["name"], constraint.get("inferred_type")
        config = _config(constraints, constraint)
        if config.get("evaluate_constraints", "Enabled") != "Enabled":
            continue  # turned off for this feature (Constraints.set_monitoring(False, name))
        values = current.column(index)
        present = [v for v in values if v is not None]
        if kind in NUMERIC and present:
            allowed = {"Integral"} if kind == "Integral" else set(NUMERIC)
            share = sum(value_type(v) in allowed for v in present) / len(present)
            threshold = float(config.get("datatype_check_threshold", 1.0))
            if share < threshold:
                violations.append(_violation(name, "data_type_check",
                                             f"Data type match requirement is not met: expected {kind} for "
                                             f"{threshold:.1%} of the values, found {share:.1%} "
                                             f"(observed type {current_features[name]['inferred_type']})"))
        completeness = float(constraint.get("completeness", 0.0))
        observed = len(present) / len(values) if values else 0.0
        if observed < completeness - 1e-9:
            violations.append(_violation(name, "completeness_check",
                                         f"Data completeness requirement is not met: expected {completeness:.1%} "
                                         f"of the values present, found {observed:.1%}"))
        domains = (constraint.get("string_constraints") or {}).get("domains")
        if kind == "String" and domains and present:
            inside = sum(v in set(domains) for v in present) / len(present)
            threshold = float(config.get("domain_content_threshold", 1.0))
            if inside < threshold:
                unknown = sorted({v for v in present if v not in set(domains)})[:5]
                violations.append(_violation(name, "categorical_values_check",
                                             f"{1 - inside:.1%} of the values are outside the baseline's domain "
                                             f"(e.g. {unknown}); at most {1 - threshold:.1%} may be"))
        distribution = config["distribution_constraints"]
        if distribution.get("perform_comparison", "Enabled") == "Enabled" and name in baseline_features:
            gap = distance(baseline_features[name], current_features[name])
            key = "comparison_threshold" if kind in NUMERIC else "categorical_comparison_threshold"
            threshold = float(distribution.get(key, distribution.get("comparison_threshold", 0.1)))
            if gap is not None and gap > threshold:
                violations.append(_violation(name, "baseline_drift_check",
                                             f"Baseline drift distance {gap:.4f} exceeds the threshold "
                                             f"{threshold:g} ({'Kolmogorov-Smirnov' if kind in NUMERIC else 'L-infinity'})"))
    return current_stats, {"violations": violations}
