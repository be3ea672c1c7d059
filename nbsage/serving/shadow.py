"""Shadow tests: how a shadow variant compares with production, and promoting it.

The endpoint's front (nbsage.serving.front) sends the shadow a sampled copy of live traffic after the
caller has its answer, and keeps counts plus a bounded sample of production-vs-shadow pairs in
`shadow.json`. SageMaker's shadow tests compare latency and errors; this report also compares the
predictions: for a classifier, how often the labels agree and the confusion between the two; for a
regressor, the mean and largest absolute difference (and a scatter). `promote_shadow` makes the
shadow the production variant with an update that drops no request.
"""
from __future__ import annotations

import base64
import html
import io
import json

from nbsage.errors import EndpointError, ValidationError

MAX_CLASSES = 50  # more distinct integer predictions than this is a regressor's (counts, say)


def _first(item):
    if isinstance(item, dict):
        for key in ("predicted_label", "label", "score", "prediction"):
            if key in item:
                return _first(item[key])
        return _first(next(iter(item.values()))) if item else None
    if isinstance(item, (list, tuple)):
        return _first(item[0]) if item else None
    return item


def prediction_values(text: str | None) -> list | None:
    """The per-record predictions in a response body: JSON (a list, {"predictions": [...]}, SageMaker's
    built-in shapes) or CSV/lines (first field of each line); numbers where they parse."""
    if text is None:
        return None
    text = text.strip()
    if not text:
        return []
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
        items = [line.split(",", 1)[0].strip() for line in text.splitlines() if line.strip()]
    if parsed is not None:
        if isinstance(parsed, dict) and "predictions" in parsed:
            parsed = parsed["predictions"]
        items = [_first(x) for x in parsed] if isinstance(parsed, list) else [_first(parsed)]
    out = []
    for item in items:
        if isinstance(item, str):
            for kind in (int, float):  # "1" is a label, "1.0" a score
                try:
                    item = kind(item)
                    break
                except ValueError:
                    pass
        out.append(item)
    return out


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p90": None, "p99": None}
    ordered = sorted(values)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)  # noqa: E731
    return {"p50": pick(0.50), "p90": pick(0.90), "p99": pick(0.99)}


def _is_label(value) -> bool:
    """A class label as models write them: a string or an integer (a float, even 9.0, is a score)."""
    return isinstance(value, (str, int))


class ShadowReport:
    """A production-vs-shadow comparison: `summary` (per variant), `agreement`, `pairs` compared."""

    def __init__(self, endpoint_name: str, production: str, shadow: str, summary: dict, agreement: dict,
                 pairs: list[tuple]):
        self.endpoint_name, self.production, self.shadow = endpoint_name, production, shadow
        self.summary, self.agreement, self.pairs = summary, agreement, pairs

    @property
    def problem_type(self) -> str | None:
        return self.agreement.get("ProblemType")

    def to_dict(self) -> dict:
        return {"EndpointName": self.endpoint_name, "ProductionVariant": self.production,
                "ShadowVariant": self.shadow, "Variants": self.summary, "Agreement": self.agreement}

    def __repr__(self) -> str:
        lines = [f"ShadowReport(endpoint={self.endpoint_name!r}, production={self.production!r}, "
                 f"shadow={self.shadow!r})"]
        for name, s in self.summary.items():
            lines.append(f"  {name}: {s['Invocations']} invocations, {s['Errors']} errors, latency ms "
                         f"p50={s['LatencyP50']} p90={s['LatencyP90']} p99={s['LatencyP99']}")
        lines.append("  agreement: " + ", ".join(f"{k}={v}" for k, v in self.agreement.items() if k != "Confusion"))
        return "\n".join(lines)

    def plot(self, ax=None):
        """A scatter of shadow against production predictions (regressor) or their confusion (classifier),
        on `ax` or a new pyplot figure; returns the figure."""
        if ax is None:
            import matplotlib.pyplot as plt
            fig, ax = plt.subplots(figsize=(4.2, 3.6))
        self._draw(ax)
        return ax.figure

    def _draw(self, ax) -> None:
        fig = ax.figure
        if self.problem_type == "classification":
            labels = sorted({str(a) for a, _ in self.pairs} | {str(b) for _, b in self.pairs})
            index = {label: i for i, label in enumerate(labels)}
            grid = [[0] * len(labels) for _ in labels]
            for a, b in self.pairs:
                grid[index[str(a)]][index[str(b)]] += 1
            ax.imshow(grid, cmap="Blues")
            for i, row in enumerate(grid):
                for j, n in enumerate(row):
                    ax.text(j, i, str(n), ha="center", va="center")
            ax.set_xticks(range(len(labels)), labels)
            ax.set_yticks(range(len(labels)), labels)
            ax.set_xlabel(f"shadow ({self.shadow})")
            ax.set_ylabel(f"production ({self.production})")
            ax.set_title("label confusion")
        else:
            xs = [float(a) for a, _ in self.pairs]
            ys = [float(b) for _, b in self.pairs]
            ax.scatter(xs, ys, s=8, alpha=0.6)
            if xs:
                lo, hi = min(xs + ys), max(xs + ys)
                ax.plot([lo, hi], [lo, hi], color="gray", linewidth=1, linestyle="--")
            ax.set_xlabel(f"production ({self.production})")
            ax.set_ylabel(f"shadow ({self.shadow})")
            ax.set_title("predictions")
        fig.tight_layout()

    def _plot_png(self) -> str | None:
        """The plot as a base64 PNG, drawn on a Figure of its own: pyplot's state and backend (a
        notebook's inline one) are left alone."""
        if not self.pairs:
            return None
        try:
            from matplotlib.figure import Figure
        except ImportError:
            return None
        fig = Figure(figsize=(4.2, 3.6))
        self._draw(fig.subplots())
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80)
        return base64.b64encode(buffer.getvalue()).decode()

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("Variant", "Role", "Invocations", "Errors", "Latency p50 (ms)",
                                                  "p90", "p99"))
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{s['Role']}</td><td>{s['Invocations']}</td><td>{s['Errors']}</td>"
            f"<td>{s['LatencyP50']}</td><td>{s['LatencyP90']}</td><td>{s['LatencyP99']}</td></tr>"
            for name, s in self.summary.items())
        agreement = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                            for k, v in self.agreement.items() if k != "Confusion")
        png = self._plot_png()
        image = f'<img src="data:image/png;base64,{png}"/>' if png else ""
        return (f"<div><b>Shadow test of endpoint {html.escape(self.endpoint_name)}</b>"
                f"<table><tr>{head}</tr>{rows}</table><table>{agreement}</table>{image}</div>")


def _agreement(pairs: list[tuple], problem_type: str | None) -> dict:
    if not pairs:
        return {"ProblemType": problem_type, "Compared": 0}
    if problem_type is None:
        labels = all(_is_label(a) and _is_label(b) for a, b in pairs)
        distinct = {a for a, _ in pairs} | {b for _, b in pairs}
        problem_type = "classification" if labels and len(distinct) <= MAX_CLASSES else "regression"
    out = {"ProblemType": problem_type, "Compared": len(pairs)}
    if problem_type == "classification":
        same = sum(str(a) == str(b) for a, b in pairs)
        confusion: dict[str, dict[str, int]] = {}
        for a, b in pairs:
            row = confusion.setdefault(str(a), {})
            row[str(b)] = row.get(str(b), 0) + 1
        out.update({"LabelAgreement": round(same / len(pairs), 6), "Confusion": confusion})
        return out
    try:
        diffs = [float(b) - float(a) for a, b in pairs]
    except (TypeError, ValueError):
        raise ValidationError("the predictions are not numbers: give problem_type='classification'") from None
    out.update({"MeanAbsoluteDifference": round(sum(abs(d) for d in diffs) / len(diffs), 6),
                "MaxAbsoluteDifference": round(max(abs(d) for d in diffs), 6),
                "MeanDifference": round(sum(diffs) / len(diffs), 6)})
    return out


def shadow_report(session, endpoint_name: str, problem_type: str | None = None) -> ShadowReport:
    """Compare the endpoint's production variant with its shadow (counts from the front's metrics,
    latencies and predictions from its sample of pairs). The sample is read first: the front writes both
    files from one cut of its counters, metrics first, so the counts read after the sample include every
    copy in it (and every request those copies came from)."""
    from nbsage.serving.variants import shadow_record, variant_metrics
    if problem_type not in (None, "classification", "regression"):
        raise ValidationError(f"problem_type must be 'classification', 'regression' or None (guess from the "
                              f"predictions), got {problem_type!r}")
    config = session.store.get_endpoint(endpoint_name)["config"]
    shadows = config.get("ShadowProductionVariants") or []
    if not shadows:
        raise EndpointError(f"endpoint {endpoint_name!r} has no shadow variant: create it from an endpoint config "
                            "with ShadowProductionVariants")
    production, shadow = config["ProductionVariants"][0]["VariantName"], shadows[0]["VariantName"]
    record = shadow_record(session, endpoint_name)  # first: the metrics read next are at least as recent
    metrics = variant_metrics(session, endpoint_name)
    sample = [p for p in record.get("Pairs") or [] if p.get("shadow_variant") == shadow]
    summary = {}
    for name, role, key in ((production, "production", "production_ms"), (shadow, "shadow", "shadow_ms")):
        m = metrics.get(name) or {}
        latency = _percentiles([p[key] for p in sample if p.get(key) is not None])
        summary[name] = {"Role": role, "Invocations": m.get("Invocations", 0),
                         "Errors": m.get("Invocation4XXErrors", 0) + m.get("Invocation5XXErrors", 0),
                         "LatencyP50": latency["p50"], "LatencyP90": latency["p90"], "LatencyP99": latency["p99"]}
    counts = (record.get("Counts") or {}).get(shadow, {})
    summary[shadow]["Dropped"] = counts.get("Dropped", 0)
    pairs: list[tuple] = []
    for p in sample:
        if p["production_status"] >= 300 or p["shadow_status"] >= 300:
            continue
        a, b = prediction_values(p.get("production")), prediction_values(p.get("shadow"))
        if a is None or b is None or len(a) != len(b):
            continue
        pairs.extend(zip(a, b))
    return ShadowReport(endpoint_name, production, shadow, summary, _agreement(pairs, problem_type), pairs)


def promote_shadow(session, endpoint_name: str, wait: bool = True) -> dict:
    """The shadow becomes the production variant (with the production variant's instance count, at
    least its own) and the shadow test ends: an update that drops no request."""
    from nbsage.serving.variants import current_endpoint_config, update_endpoint_from
    current = current_endpoint_config(session, endpoint_name)
    shadows = current.get("ShadowProductionVariants") or []
    if not shadows:
        raise EndpointError(f"endpoint {endpoint_name!r} has no shadow variant to promote")
    shadow = dict(shadows[0])
    production = current["ProductionVariants"][0]
    shadow["InitialInstanceCount"] = max(production["InitialInstanceCount"], shadow["InitialInstanceCount"])
    shadow["InitialVariantWeight"] = 1.0
    return update_endpoint_from(session, endpoint_name, {"ProductionVariants": [shadow]}, wait=wait)
