"""What the notebook face shows: the live training monitor and the rich forms of what magics return.

The monitor follows a job by polling the store and publishing one MIME bundle that it updates in
place (`display(..., display_id=True)` / `update`), so the executed notebook — papermill's included —
keeps the final state: the metric curve, the final metrics and the artifact location, or the failure
reason. Every bundle carries text/plain. It never writes to a widget from another thread: it runs
in the calling thread, or, for a form, as callbacks on the kernel's own event loop.

Importing this module registers the monitor with `nbsage.watch`, so `Estimator.fit(wait=True)` uses
it inside a Jupyter kernel. matplotlib is imported only when a plot is drawn.
"""
from __future__ import annotations

import base64
import io
import json
import os
import time
from html import escape

from nbsage.reasons import short_reason
from nbsage.watch import in_notebook_kernel, register

TERMINAL = ("Completed", "Failed", "Stopped")
POLL_SECONDS = 0.3   # at most ~3 updates a second
PLOT_SECONDS = 1.0   # redraw the metric plot at most once a second while the job runs
LOG_LINES = 8
MAX_PLOTTED_METRICS = 8
AXIS_GREY = "#888888"  # readable on JupyterLab's light and dark backgrounds


def _duration(seconds: float | int | None) -> str:
    seconds = int(seconds or 0)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def _is_protocol_line(line: str) -> bool:
    """nbsage's own metric/progress lines: data for the monitor, noise for a reader."""
    return line.startswith("#metric ") or line.startswith("#progress ")


def _when(iso_time: str | None) -> str:
    return iso_time.replace("T", " ")[:19] if iso_time else ""


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th style='text-align:left'>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---- the live monitor ----------------------------------------------------------------------------
def plotted_metrics(metrics) -> list[str]:
    """The metric names drawn as curves: those with two or more values, in the order first seen.

    A metric reported once (DeepAR's test:RMSE, Linear Learner's validation and `:final` metrics,
    anything computed at the end of training) has no curve: it is a final value, shown in the
    table only, not a dot at step 0 on the loss axis.
    """
    counts = metrics["name"].value_counts()
    return [n for n in dict.fromkeys(metrics["name"]) if counts[n] > 1][:MAX_PLOTTED_METRICS]


def metric_plot_png(metrics) -> bytes | None:
    """PNG of the metric curves from TrainingJob.metrics(); None when no metric has a curve yet.

    The background is transparent and the axes a mid grey, so the plot reads in light and dark
    themes alike; the legend sits to the right of the axes, never over the curves.
    """
    if metrics is None or len(metrics) == 0:
        return None
    names = plotted_metrics(metrics)
    if not names:
        return None
    # the object-oriented API with the Agg canvas: no pyplot, so the user's backend is untouched
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.2, 3.0), dpi=80)
    fig.patch.set_alpha(0.0)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_facecolor("none")
    for name in names:
        series = metrics[metrics["name"] == name]
        steps = series["step"]
        x = list(range(len(series))) if steps.isna().any() else steps.astype(int).tolist()
        ax.plot(x, series["value"].tolist(), marker="o" if len(series) < 20 else None, markersize=3, label=name)
    ax.set_xlabel("step", color=AXIS_GREY)
    ax.set_ylabel(names[0] if len(names) == 1 else "value", color=AXIS_GREY)
    ax.tick_params(colors=AXIS_GREY)
    for spine in ax.spines.values():
        spine.set_color(AXIS_GREY)
    ax.grid(True, alpha=0.3, color=AXIS_GREY)
    if len(names) > 1:
        legend = ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                           frameon=False)
        for text in legend.get_texts():
            text.set_color(AXIS_GREY)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", transparent=True)
    return buf.getvalue()


REDRAW_SECONDS = 0.25  # the live display's shortest interval between redraws


class LiveMonitor:
    """Follows a training job in a notebook cell, updating one display in place until the job ends.

    `publish(bundle)` receives each new MIME bundle; the default shows the first one with
    `IPython.display.display(..., display_id=True)` and updates that display afterwards.
    `run()` blocks (the watcher contract of `nbsage.watch`); `step()` is one poll, for callers that
    schedule polls themselves (see `follow`).
    """

    def __init__(self, job, logs: bool = True, publish=None, interval: float = POLL_SECONDS, results: bool = True):
        self.job = job
        self.logs = logs
        self.results = results  # False: the caller shows the final metrics, artifact and reason itself
        self.publish = publish or DisplayUpdater()
        self.interval = interval
        self._last_key = None
        self._png: bytes | None = None
        self._plotted_rows = 0
        self._plotted_at = 0.0

    def run(self) -> dict:
        """Poll and redraw until the job ends; returns its final description."""
        from nbsage.watch import store_changes
        # woken by the store's writes rather than a fixed poll, but redrawn at most ~4 times a second:
        # a job that writes non-stop would otherwise flood the notebook with display updates
        with store_changes(self.job, min_seconds=REDRAW_SECONDS) as changes:
            while True:
                desc = self.step()
                if desc["TrainingJobStatus"] in TERMINAL:
                    return desc
                changes.wait(self.interval)

    def step(self) -> dict:
        """Read the job once; publish a new bundle when anything visible changed."""
        desc = self.job.describe()
        done = desc["TrainingJobStatus"] in TERMINAL
        lines = [line for line in self.job.logs() if not _is_protocol_line(line)] if self.logs else []
        metrics = self.job.metrics()
        now = time.monotonic()
        if len(metrics) != self._plotted_rows and (done or now - self._plotted_at >= PLOT_SECONDS):
            self._png = metric_plot_png(metrics)
            self._plotted_rows, self._plotted_at = len(metrics), now
        key = (desc["TrainingJobStatus"], desc["SecondaryStatus"], tuple(desc["nbsage:Progress"]),
               len(lines), self._plotted_rows, desc["TrainingTimeInSeconds"])
        if key != self._last_key:
            self._last_key = key
            self.publish(training_bundle(desc, lines[-LOG_LINES:], self._png, results=self.results))
        return desc


JOB_KINDS = (("ProcessingJobName", "Processing job"), ("TransformJobName", "Transform job"),
             ("HyperParameterTuningJobName", "Tuning job"))


def job_title(desc: dict) -> str:
    """What the job is called in a display: a watched processing job carries DescribeTrainingJob's
    keys too (nbsage.watch reads every kind that way), so its own name key decides."""
    return next((title for key, title in JOB_KINDS if key in desc), "Training job")


def stopped_early(desc: dict) -> bool:
    """A job that completed before its last step: the algorithm's early stopping ended it."""
    step, total = desc.get("nbsage:Progress") or (None, None)
    return desc.get("TrainingJobStatus") == "Completed" and bool(total) and (step or 0) < total


def _not_in_reason(lines: list[str], reason: str | None) -> list[str]:
    """Log lines, less the trailing ones the failure reason already quotes (the script's last words)."""
    lines = list(lines)
    while reason and lines and lines[-1].strip() and lines[-1].strip() in reason:
        lines.pop()
    return lines


def training_bundle(desc: dict, log_lines: list[str], png: bytes | None, results: bool = True) -> dict:
    """The MIME bundle (text/plain, text/html, image/png when there are curves) of a job's state.

    Each fact is shown once. With `results=False` the ended job's final metrics, artifact and
    failure reason are left out: the caller shows them itself (`%%sm_train` returns the job, whose
    table lists them; a failed job's error line states the reason).
    """
    name, status, secondary = desc["TrainingJobName"], desc["TrainingJobStatus"], desc["SecondaryStatus"]
    title = job_title(desc)
    done = status in TERMINAL
    elapsed = _duration(desc["TrainingTimeInSeconds"])
    step, total = desc.get("nbsage:Progress") or (None, None)
    metrics = (desc.get("FinalMetricDataList") or []) if results else []
    artifact = (desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts") if results else None
    reason = desc.get("FailureReason")
    show_logs = _not_in_reason(log_lines, reason) if (not done or status != "Completed") else []
    reason = reason if results else None
    early = stopped_early(desc)
    early_words = f"stopped early: early stopping ended training before step {total}" if early else ""

    headline = f"{title} {name}: {status}" + (f" ({secondary})" if secondary and secondary != status else "")
    headline += f" in {elapsed}" if done else f", {elapsed} elapsed"
    text = [headline]
    if total:
        filled = int(20 * step / total) if step else 0
        text.append(f"[{'#' * filled}{'-' * (20 - filled)}] {step or 0}/{total}"
                    + (f" {early_words}" if early else ""))
    if reason:
        text.append(f"Failure reason: {reason}")
    text += [f"  {line}" for line in show_logs]
    if done and metrics:
        text += [f"  {m['MetricName']} = {m['Value']:.6g}" for m in metrics]
    if artifact:
        text.append(f"Model artifact: {artifact}")

    colour = {"Completed": "#2e7d32", "Failed": "#c62828", "Stopped": "#ef6c00"}.get(status, "#1565c0")
    html = [f"<div><b>{escape(title)} {escape(name)}</b> &mdash; <b style='color:{colour}'>{escape(status)}</b>"
            + (f" ({escape(secondary)})" if secondary and secondary != status else "")
            + f" &mdash; {escape(elapsed)}{'' if done else ' elapsed'}</div>"]
    if total:
        pct = min(100, int(100 * (step or 0) / total))
        label = f"{step or 0}/{total} ({pct}%)" + (f" &mdash; <b>{escape(early_words)}</b>" if early else "")
        html.append("<div style='display:flex;align-items:center;gap:8px;margin:4px 0'>"
                    "<div style='width:320px;height:10px;background:#9e9e9e66;border-radius:3px'>"
                    f"<div style='width:{pct}%;height:10px;background:{colour};border-radius:3px'></div></div>"
                    f"<span>{label}</span></div>")
    if reason:
        html.append(f"<div style='color:#c62828'><b>Failure reason:</b> {escape(reason)}</div>")
    if show_logs:
        html.append("<pre style='font-size:11px;line-height:1.3;margin:4px 0;max-height:12em;overflow:auto'>"
                    + escape("\n".join(show_logs)) + "</pre>")
    bundle = {"text/plain": "\n".join(text)}
    if png:
        encoded = base64.b64encode(png).decode("ascii")
        bundle["image/png"] = encoded
        html.append(f"<img src='data:image/png;base64,{encoded}' alt='metrics of {escape(name)}'/>")
    if done and metrics:
        html.append(_html_table(["Metric", "Final value"], [[m["MetricName"], f"{m['Value']:.6g}"] for m in metrics]))
    if artifact:
        html.append(f"<div><b>Model artifact:</b> <code>{escape(artifact)}</code></div>")
    bundle["text/html"] = "\n".join(html)
    return bundle


class DisplayUpdater:
    """publish() for a notebook cell: the first bundle is displayed, later ones replace it in place."""

    def __init__(self):
        self.handle = None

    def __call__(self, bundle: dict) -> None:
        from IPython.display import display
        if self.handle is None:
            self.handle = display(bundle, raw=True, display_id=True)
        else:
            self.handle.update(bundle, raw=True)


def output_widget_publisher(output):
    """publish() that shows each bundle as the only output of an ipywidgets Output widget.

    Call it from the kernel's thread only (ipywidgets 8 Output is not thread-safe).
    """
    def publish(bundle: dict) -> None:
        output.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)
    return publish


def _kernel_loop():
    """The running kernel's event loop (ipykernel), or None outside a kernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    kernel = getattr(get_ipython(), "kernel", None)
    return getattr(kernel, "io_loop", None)


def follow(job, publish, logs: bool = True) -> bool:
    """Keep `publish` showing `job` until it ends without blocking the notebook.

    In a kernel the polls run as callbacks on the kernel's event loop (its main thread), so the
    user keeps working while the display updates. Elsewhere (a terminal, tests) the job is followed
    to the end before returning. Returns True when following goes on in the background.

    The first poll is handed to that loop with `add_callback`, the one call of it that is safe from
    another thread: JupyterLab sends widget messages on a kernel subshell, and ipykernel runs a
    widget's handler (the form's Launch button) in that subshell's thread once the widget has
    published anything while handling such a message. A `call_later` made there reaches the main
    loop without waking it, so the monitor stayed empty until another cell ran.
    """
    monitor = LiveMonitor(job, logs=logs, publish=publish)
    loop = _kernel_loop()
    if loop is None:
        monitor.run()
        return False

    def tick():
        try:
            desc = monitor.step()
        except Exception as e:  # a callback has nobody to raise to: say it where the user looks
            publish({"text/plain": f"stopped following {job.name}: {e}",
                     "text/html": f"<div style='color:#c62828'>stopped following {escape(job.name)}: {escape(str(e))}</div>"})
            return
        if desc["TrainingJobStatus"] not in TERMINAL:
            loop.call_later(monitor.interval, tick)

    loop.add_callback(tick)  # thread-safe; later polls are scheduled from the loop itself
    return True


def _monitor_in_kernels(job, logs: bool = True):
    """The watcher factory registered with nbsage.watch: the live monitor in a Jupyter kernel.

    NBSAGE_MONITOR=text keeps plain log lines (e.g. for papermill runs whose log you read).
    """
    if os.environ.get("NBSAGE_MONITOR", "").strip().lower() == "text" or not in_notebook_kernel():
        return None
    return LiveMonitor(job, logs=logs)


register(_monitor_in_kernels)


# ---- rich forms of what the magics return ------------------------------------------------------
def _headline_metric(metrics: list[dict]) -> str:
    """One metric for a table cell: a validation metric if there is one, else the first."""
    if not metrics:
        return ""
    best = next((m for m in metrics if m["MetricName"].startswith("validation:")), metrics[0])
    return f"{best['MetricName']}={best['Value']:.4g}"


class JobList(list):
    """Training jobs (TrainingJob handles, newest first), shown as a table."""

    header = ["Name", "Status", "Algorithm", "Created", "Duration", "Final metric", "Failure reason"]

    def __init__(self, jobs):
        super().__init__(jobs)
        self.rows = []
        for job in self:
            desc = job.describe()
            spec = desc["AlgorithmSpecification"]
            program = desc["HyperParameters"].get("sagemaker_program")
            algorithm = json.loads(program) if program else spec.get("TrainingImage", "")
            self.rows.append([job.name, desc["TrainingJobStatus"], algorithm, _when(desc["CreationTime"]),
                              _duration(desc["TrainingTimeInSeconds"]), _headline_metric(desc["FinalMetricDataList"]),
                              short_reason(desc.get("FailureReason"))])

    def __repr__(self) -> str:
        return _text_table(self.header, self.rows) if self.rows else "no training jobs"

    def _repr_html_(self) -> str:
        return _html_table(self.header, self.rows) if self.rows else "<i>no training jobs</i>"


class EndpointList(list):
    """Endpoints (DescribeEndpoint records), shown as a table."""

    header = ["Name", "Status", "Created", "URL"]

    def __init__(self, endpoints):
        super().__init__(endpoints)
        self.rows = [[e.get("EndpointName", ""), e.get("EndpointStatus", ""), _when(str(e.get("CreationTime") or "")),
                      e.get("nbsage:Url") or e.get("Url") or ""] for e in self]

    def __repr__(self) -> str:
        return _text_table(self.header, self.rows) if self.rows else "no endpoints"

    def _repr_html_(self) -> str:
        return _html_table(self.header, self.rows) if self.rows else "<i>no endpoints</i>"


class ModelList(list):
    """Models (nbsage.model_list's DescribeModel records), shown as a table."""

    header = ["Name", "Algorithm", "Created", "Endpoints", "Model data"]

    def __init__(self, models):
        super().__init__(models)
        self.rows = [[m["ModelName"], m["PrimaryContainer"].get("Image") or "", _when(m.get("CreationTime")),
                      ", ".join(m.get("nbsage:Endpoints") or []), m["PrimaryContainer"].get("ModelDataUrl") or ""]
                     for m in self]

    NONE = "no models (a completed training job makes one)"

    def __repr__(self) -> str:
        return _text_table(self.header, self.rows) if self.rows else self.NONE

    def _repr_html_(self) -> str:
        return _html_table(self.header, self.rows) if self.rows else f"<i>{self.NONE}</i>"


class JobLogs(list):
    """A job's log lines, shown as preformatted text."""

    def __init__(self, job_name: str, lines):
        super().__init__(lines)
        self.job_name = job_name

    def __repr__(self) -> str:
        return "\n".join(self) if self else f"no log lines for {self.job_name} yet"

    def _repr_html_(self) -> str:
        return ("<pre style='font-size:11px;line-height:1.3;max-height:30em;overflow:auto'>"
                + escape(repr(self)) + "</pre>")


class JobDescription(dict):
    """DescribeTrainingJob's answer, shown as indented JSON."""

    def __repr__(self) -> str:
        return json.dumps(self, indent=2, default=str)

    def _repr_html_(self) -> str:
        rows = []
        for key, value in self.items():
            shown = json.dumps(value, indent=1, default=str) if isinstance(value, (dict, list, tuple)) else str(value)
            rows.append(f"<tr><th style='text-align:left;vertical-align:top'>{escape(key)}</th>"
                        f"<td style='text-align:left'><pre style='margin:0'>{escape(shown)}</pre></td></tr>")
        return f"<table>{''.join(rows)}</table>"
