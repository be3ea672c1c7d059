"""Following a tuning job: the trials table, the best so far, the objective over trials.

In a Jupyter kernel (also under papermill) one output is updated in place (`display_id`), and the
final one keeps a plot of the objective of each trial and the best so far; elsewhere a line is
printed each time a trial changes status. Every bundle has a text/plain form.
"""
from __future__ import annotations

import base64
import html
import sys
import time

POLL_SECONDS = 0.5


def _value(t: dict) -> float | None:
    metric = t.get("FinalHyperParameterTuningJobObjectiveMetric")
    return metric["Value"] if metric else None


def _rows(trials: list[dict]) -> tuple[list[str], list[list[str]]]:
    names = []
    for t in trials:
        names += [n for n in t["TunedHyperParameters"] if n not in names]
    header = ["#", "Training job", "Status", "Objective", *names, "Seconds", "Reason"]
    rows = []
    for i, t in enumerate(trials, 1):
        value = _value(t)
        rows.append([str(i), t["TrainingJobName"], t["TrainingJobStatus"], "" if value is None else f"{value:.6g}",
                     *[_short(t["TunedHyperParameters"].get(n, "")) for n in names],
                     f"{t.get('nbsage:Elapsed', 0):.1f}", (t.get("FailureReason") or "")[:120]])
    return header, rows


def _short(text: str) -> str:
    try:
        number = float(text)
    except ValueError:
        return text
    return f"{number:.4g}"


SLICES = 4  # at most this many hyperparameters get a slice plot in the final figure


def objective_plot_png(trials: list[dict], maximize: bool, metric: str, slices: bool = False) -> bytes | None:
    """Each trial's objective and the best so far (matplotlib, Agg); with `slices`, also the objective
    against each tuned hyperparameter (a slice plot). None without values."""
    points = [(i, _value(t)) for i, t in enumerate(trials, 1) if _value(t) is not None]
    if not points:
        return None
    import io

    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    names = []
    for t in trials:
        names += [n for n in t["TunedHyperParameters"] if n not in names]
    names = names[:SLICES] if slices else []
    fig = Figure(figsize=(6 + 3 * len(names), 3))
    axes = fig.subplots(1, 1 + len(names), squeeze=False)[0]
    ax = axes[0]
    for slice_ax, name in zip(axes[1:], names):
        xs = [t["TunedHyperParameters"].get(name) for t in trials if _value(t) is not None]
        try:
            xs = [float(x) for x in xs]
        except (TypeError, ValueError):
            pass  # categorical: matplotlib places the values as categories
        slice_ax.scatter(xs, [_value(t) for t in trials if _value(t) is not None], s=14)
        slice_ax.set_xlabel(name)
    xs, ys = zip(*points)
    best, so_far = None, []
    for y in ys:
        best = y if best is None or (y > best if maximize else y < best) else best
        so_far.append(best)
    ax.scatter(xs, ys, s=14, label="trial")
    ax.step(xs, so_far, where="post", color="tab:orange", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def tuning_bundle(desc: dict, trials: list[dict], plot: bool, png: bytes | None = None) -> dict:
    """A display bundle of a tuning job: text/plain and text/html (and the plot when asked, or `png`)."""
    name, status = desc["HyperParameterTuningJobName"], desc["HyperParameterTuningJobStatus"]
    metric = desc["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]
    kind = desc["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["Type"]
    counters = ", ".join(f"{k} {v}" for k, v in desc["TrainingJobStatusCounters"].items() if v) or "no trials yet"
    best = desc.get("BestTrainingJob")
    best_line = (f"best so far: {best['TrainingJobName']} {metric}={_value(best):.6g}" if best
                 else "best so far: none yet")
    head = f"Tuning job {name}: {status} ({counters}); {kind.lower()} {metric}; {best_line}"
    if desc.get("FailureReason"):
        head += f"\n{desc['FailureReason']}"
    header, rows = _rows(trials)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    text = "\n".join([head, "  ".join(h.ljust(w) for h, w in zip(header, widths)),
                      *("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)])
    cells = "".join("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in r) + "</tr>"
                    for r in rows)
    table = ("<table><tr>" + "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in header)
             + f"</tr>{cells}</table>")
    page = f"<div><b>{html.escape(head)}</b>{table}"
    bundle = {"text/plain": text}
    if plot or png:
        png = png or objective_plot_png(trials, kind == "Maximize", metric)
        if png:
            bundle["image/png"] = base64.b64encode(png).decode()
            page += f"<img src='data:image/png;base64,{bundle['image/png']}'/>"
    bundle["text/html"] = page + "</div>"
    return bundle


class TuningWatcher:
    """Follows a TuningJob until it ends (live=False: quietly)."""

    def __init__(self, job, live: bool = True, stream=None):
        self.job, self.live = job, live
        self.stream = stream or sys.stdout

    def run(self) -> dict:
        from nbsage.store.metadata import TERMINAL
        from nbsage.watch import in_notebook_kernel
        kernel = self.live and in_notebook_kernel()
        handle, seen, png, plotted = None, {}, None, None
        while True:
            desc = self.job.describe()
            trials = self.job.trials()
            done = desc["HyperParameterTuningJobStatus"] in TERMINAL
            if kernel:
                from IPython.display import display
                values = [_value(t) for t in trials if t["TrainingJobStatus"] in TERMINAL]
                if values != plotted:  # the objective over trials, drawn again only when a trial ended
                    cfg = desc["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
                    png = objective_plot_png([t for t in trials if t["TrainingJobStatus"] in TERMINAL],
                                             cfg["Type"] == "Maximize", cfg["MetricName"])
                    plotted = values
                if done:  # the final figure adds the objective against each hyperparameter
                    cfg = desc["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
                    png = objective_plot_png(trials, cfg["Type"] == "Maximize", cfg["MetricName"], slices=True)
                bundle = tuning_bundle(desc, trials, plot=done, png=png)
                if handle is None:
                    handle = display(bundle, raw=True, display_id=True)
                else:
                    handle.update(bundle, raw=True)
            elif self.live:
                for t in trials:
                    state = (t["TrainingJobStatus"], _value(t) if t["TrainingJobStatus"] in TERMINAL else None)
                    if seen.get(t["TrainingJobName"]) != state:
                        seen[t["TrainingJobName"]] = state
                        value = "" if state[1] is None else f" objective={state[1]:.6g}"
                        reason = f" ({t['FailureReason']})" if t.get("FailureReason") and state[0] != "InProgress" else ""
                        print(f"{time.strftime('%H:%M:%S')} {t['TrainingJobName']}: {state[0]}{value}{reason}",
                              file=self.stream, flush=True)
            if done:
                if self.live and not kernel:
                    print(tuning_bundle(desc, trials, plot=False)["text/plain"].splitlines()[0], file=self.stream,
                          flush=True)
                return desc
            time.sleep(POLL_SECONDS)
