"""The drift report: a monitoring execution's data against its baseline, shown inline in a notebook.

Built from the files alone (the baseline's statistics.json, the execution's statistics.json and
constraint_violations.json), so a report can be made for any execution, SageMaker's included. Per
feature: the two distributions drawn over each other (numbers: histograms of the statistics'
sketches on shared bins; strings: value frequencies), the distribution distance and its threshold;
then the violations table. matplotlib is imported only when the report is drawn.
"""
from __future__ import annotations

import base64
import html
import io

from nbsage.serving.monitor.statistics import NUMERIC, _categories, _sketch_of, distance


class DriftReport:
    """Baseline vs captured data of one monitoring execution; `_repr_html_` draws it in a notebook."""

    def __init__(self, baseline_statistics: dict, statistics: dict, violations: dict, constraints: dict | None = None,
                 title: str = "Drift report"):
        self.baseline_statistics = baseline_statistics
        self.statistics = statistics
        self.violations = list((violations or {}).get("violations", []))
        self.constraints = constraints or {}
        self.title = title

    def features(self) -> list[dict]:
        """One row per baseline feature: name, type, distance to the baseline, threshold, drifted."""
        current = {f["name"]: f for f in self.statistics.get("features", [])}
        config = (self.constraints.get("monitoring_config") or {}).get("distribution_constraints") or {}
        drifted = {v["feature_name"] for v in self.violations if v["constraint_check_type"] == "baseline_drift_check"}
        rows = []
        for feature in self.baseline_statistics.get("features", []):
            name, kind = feature["name"], feature["inferred_type"]
            other = current.get(name)
            key = "comparison_threshold" if kind in NUMERIC else "categorical_comparison_threshold"
            rows.append({"name": name, "inferred_type": kind,
                         "current_type": other["inferred_type"] if other else None,
                         "distance": distance(feature, other) if other else None,
                         "threshold": config.get(key, config.get("comparison_threshold", 0.1)),
                         "drifted": name in drifted})
        return rows

    def __repr__(self) -> str:
        lines = [f"{self.title}: {len(self.violations)} violation(s)"]
        for row in self.features():
            gap = "n/a" if row["distance"] is None else f"{row['distance']:.3f}"
            lines.append(f"  {row['name']}: {row['inferred_type']}, distance {gap}"
                         + (" DRIFT" if row["drifted"] else ""))
        lines += [f"  [{v['constraint_check_type']}] {v['feature_name']}: {v['description']}" for v in self.violations]
        return "\n".join(lines)

    def _plot(self, baseline: dict, current: dict | None) -> str:
        """A PNG (base64) of one feature's two distributions."""
        import numpy as np
        from matplotlib.figure import Figure
        fig = Figure(figsize=(3.2, 1.8), dpi=80)
        ax = fig.subplots()
        if baseline["inferred_type"] in NUMERIC:
            a = _sketch_of(baseline)
            b = _sketch_of(current) if current and current["inferred_type"] in NUMERIC else np.array([])
            both = np.concatenate([a, b])
            if len(both):
                bins = np.linspace(both.min(), both.max() if both.max() > both.min() else both.min() + 1, 21)
                ax.hist(a, bins=bins, density=True, alpha=0.55, label="baseline", color="#4c72b0")
                if len(b):
                    ax.hist(b, bins=bins, density=True, alpha=0.55, label="captured", color="#dd8452")
        else:
            p = _categories(baseline)
            q = _categories(current) if current else {}
            values = sorted(set(p) | set(q), key=lambda v: -(p.get(v, 0) + q.get(v, 0)))[:12]
            x = np.arange(len(values))
            ax.bar(x - 0.2, [p.get(v, 0) for v in values], 0.4, label="baseline", color="#4c72b0")
            ax.bar(x + 0.2, [q.get(v, 0) for v in values], 0.4, label="captured", color="#dd8452")
            ax.set_xticks(x, [str(v)[:8] for v in values], fontsize=6)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return base64.b64encode(buffer.getvalue()).decode("ascii")

    def _repr_html_(self) -> str:
        current = {f["name"]: f for f in self.statistics.get("features", [])}
        baseline = {f["name"]: f for f in self.baseline_statistics.get("features", [])}
        cells = []
        for row in self.features():
            gap = "n/a" if row["distance"] is None else f"{row['distance']:.3f}"
            color = "#cf222e" if row["drifted"] else "#1a7f37"
            image = self._plot(baseline[row["name"]], current.get(row["name"]))
            cells.append(f'<div style="display:inline-block;margin:4px;text-align:center">'
                         f'<b>{html.escape(row["name"])}</b> <span style="color:{color}">distance {gap}'
                         f' (threshold {row["threshold"]:g})</span><br>'
                         f'<img src="data:image/png;base64,{image}" alt="{html.escape(row["name"])}"></div>')
        if self.violations:
            body = "".join(f"<tr><td>{html.escape(v['feature_name'])}</td><td><code>"
                           f"{html.escape(v['constraint_check_type'])}</code></td>"
                           f"<td style='text-align:left'>{html.escape(v['description'])}</td></tr>"
                           for v in self.violations)
            table = (f"<table><tr><th>feature</th><th>check</th><th>description</th></tr>{body}</table>")
        else:
            table = "<p>No violations.</p>"
        items = self.statistics.get("dataset", {}).get("item_count", 0)
        return (f"<div><h4>{html.escape(self.title)}</h4><p>{items} captured records against the baseline's "
                f"{self.baseline_statistics.get('dataset', {}).get('item_count', 0)}; "
                f"{len(self.violations)} violation(s)</p>{''.join(cells)}{table}</div>")
