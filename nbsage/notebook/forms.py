"""TrainingForm: an ipywidgets form for a built-in algorithm's training job.

Every field comes from the algorithm's declaration (`nbsage.algorithms.base`): one widget per
hyperparameter, built by its kind (`Hyperparameter.widget`), with the default filled in, the help and
valid values on a line below, required ones marked and advanced ones folded into an Accordion.
Values are checked as they change with `Hyperparameter.parse` (and the algorithm's cross-field
rules), so a bad value is shown next to the field its error names (`HyperparameterError.hyperparameter`)
and Launch stays disabled until it is fixed.
"""
from __future__ import annotations

from html import escape

import ipywidgets as widgets

from nbsage import algorithms
from nbsage.errors import HyperparameterError, NBSageError

_WIDTH = {"description_width": "260px"}
_LAYOUT = {"width": "520px"}


def _error_html(message: str | None) -> str:
    return f"<span style='color:#c62828'>{escape(message)}</span>" if message else ""


class HyperparameterField:
    """One hyperparameter's widget, its help line and its error, kept together."""

    def __init__(self, hp):
        self.hp = hp
        self.widget = hp.widget(description=hp.name, tooltip=f"{hp.help} ({hp.describe()})", style=_WIDTH,
                                layout=_LAYOUT)
        self.initial = self.widget.value
        self.error = widgets.HTML()
        marker = "<b style='color:#c62828'>required</b> &middot; " if hp.required else ""
        self.help = widgets.HTML(f"<small style='color:#555'>{marker}{escape(hp.help)} "
                                 f"&mdash; {escape(hp.describe())}</small>",
                                 layout={"margin": "0 0 6px 264px"})
        self.box = widgets.VBox([widgets.HBox([self.widget, self.error]), self.help])

    @property
    def raw(self):
        """The widget's value, None when the field is left empty."""
        value = self.widget.value
        return (value.strip() or None) if isinstance(value, str) else value

    @property
    def changed(self) -> bool:
        return self.widget.value != self.initial

    def parse(self):
        """The typed value (None when unset); raises HyperparameterError."""
        if self.raw is None:
            if self.hp.required:
                raise self.hp.missing()
            return None
        return self.hp.parse(self.raw)


class TrainingForm(widgets.VBox):
    """A form that starts a training job of a built-in algorithm and follows it below.

    `values()` are the hyperparameters the form would send, `errors()` what is wrong now,
    `launch()` (the Launch button) starts the job, kept as `job`.
    """

    def __init__(self, algorithm: str | None = None, session=None, namespace: dict | None = None):
        super().__init__()
        from nbsage.session import Session
        self.session = session or Session.default()
        self.namespace = namespace
        self.job = None
        self.fields: dict[str, HyperparameterField] = {}
        self.sources: dict[str, widgets.Text] = {}
        name = algorithms.canonical_name(algorithm) if algorithm else algorithms.names()[0]
        if name is None:
            algorithms.get(algorithm)  # raises, naming the built-ins
        self.algorithm_picker = widgets.Dropdown(options=algorithms.names(), value=name, description="algorithm",
                                                 style=_WIDTH, layout=_LAYOUT)
        self.content_type = widgets.Dropdown(description="content type", style=_WIDTH, layout=_LAYOUT)
        self.launch_button = widgets.Button(description="Launch", button_style="primary", icon="play",
                                            tooltip="start the training job")
        self.message = widgets.HTML()
        self.output = widgets.Output()
        self.algorithm_picker.observe(self._on_algorithm, names="value")
        self.launch_button.on_click(lambda _button: self.launch())
        self._build(name)

    # ---- building ----------------------------------------------------------------------------------
    def _on_algorithm(self, change) -> None:
        try:
            self._build(change["new"])
        except (NBSageError, ImportError) as e:  # an algorithm module that cannot load: say so, keep the form
            self.algorithm_picker.value = change["old"]
            self.message.value = _error_html(f"{change['new']}: {e}")

    def _build(self, name: str) -> None:
        """(Re)build every field from the declaration of algorithm `name`."""
        self.algorithm = algorithms.get(name)
        kept = {ch: w.value for ch, w in self.sources.items()}
        self.sources = {}
        for channel in self.algorithm.channels:
            self.sources[channel.name] = widgets.Text(
                value=kept.get(channel.name, ""), description=channel.name, style=_WIDTH, layout=_LAYOUT,
                placeholder="path, URL or DataFrame name" + (" (required)" if channel.required else ""),
                tooltip=channel.help or f"the {channel.name} channel")
        train = next((c for c in self.algorithm.channels if c.name == "train"), self.algorithm.channels[0])
        self.content_type.options = train.content_types
        self.content_type.value = train.default_content_type
        self.fields = {hp.name: HyperparameterField(hp) for hp in self.algorithm.hyperparameters}
        for widget in [*self.sources.values(), *(f.widget for f in self.fields.values())]:
            widget.observe(lambda _change: self._refresh(), names="value")
        basic = [f.box for f in self.fields.values() if not f.hp.advanced]
        advanced = [f.box for f in self.fields.values() if f.hp.advanced]
        folded = widgets.Accordion(children=[widgets.VBox(advanced)],
                                   titles=(f"Advanced hyperparameters ({len(advanced)})",),
                                   selected_index=None) if advanced else widgets.HTML()
        self.children = [
            widgets.HTML(f"<b>{escape(self.algorithm.title)}</b>: {escape(self.algorithm.description)}"),
            self.algorithm_picker,
            widgets.HTML("<b>Data</b>"), *self.sources.values(), self.content_type,
            widgets.HTML("<b>Hyperparameters</b>"), *basic, folded,
            widgets.HBox([self.launch_button, self.message]),
            self.output,
        ]
        self._refresh()

    # ---- state ---------------------------------------------------------------------------------------
    def values(self) -> dict:
        """The hyperparameters to send: the required ones and every one changed from its default."""
        out = {}
        for name, field in self.fields.items():
            if field.hp.required or field.changed:
                try:
                    value = field.parse()
                except NBSageError:
                    value = field.raw
                if value is not None:
                    out[name] = value
        return out

    def errors(self) -> dict[str, str]:
        """What is wrong now: {hyperparameter or channel name: message}; empty when ready to launch."""
        problems = {}
        for name, field in self.fields.items():
            try:
                field.parse()
            except NBSageError as e:
                problems[name] = str(e)
        if not problems:
            try:
                self.algorithm.validate(self.values())  # rules across hyperparameters
            except NBSageError as e:  # shown at the field the error names, else below the form
                named = e.hyperparameter if isinstance(e, HyperparameterError) else None
                problems[named or "hyperparameters"] = str(e)
        for channel in self.algorithm.channels:
            if channel.required and not self.sources[channel.name].value.strip():
                problems[channel.name] = (f"channel {channel.name!r} is required: give a path, a URL or the name "
                                          "of a DataFrame, array or (X, y) tuple")
        return problems

    def _refresh(self) -> None:
        problems = self.errors()
        for name, field in self.fields.items():
            field.error.value = _error_html(problems.get(name))
        self.launch_button.disabled = bool(problems)
        self.message.value = _error_html("; ".join(problems.values())) if problems else ""

    def _namespace(self) -> dict:
        if self.namespace is not None:
            return self.namespace
        from IPython import get_ipython
        shell = get_ipython()
        return shell.user_ns if shell is not None else {}

    # ---- launching -------------------------------------------------------------------------------------
    def launch(self):
        """Start the job (Estimator(...).fit(wait=False)) and follow it in the output area below.

        Returns the TrainingJob, or None when the form has errors (they are shown next to the fields).
        """
        from nbsage.estimator import Estimator
        from nbsage.inputs import TrainingInput
        from nbsage.notebook.display import follow, output_widget_publisher
        from nbsage.notebook.magics import resolve_source
        self._refresh()
        if self.launch_button.disabled:
            return None
        try:
            inputs = {}
            for channel in self.algorithm.channels:
                text = self.sources[channel.name].value.strip()
                if text:
                    ct = self.content_type.value if self.content_type.value in channel.content_types else None
                    inputs[channel.name] = TrainingInput(resolve_source(text, self._namespace(), channel.name),
                                                         content_type=ct)
            estimator = Estimator(self.algorithm.name, self.values(), sagemaker_session=self.session)
            self.job = estimator.fit(inputs, wait=False)
        except NBSageError as e:
            self.message.value = _error_html(str(e))
            return None
        self.message.value = f"started <code>{escape(self.job.name)}</code>"
        follow(self.job, output_widget_publisher(self.output))
        return self.job
