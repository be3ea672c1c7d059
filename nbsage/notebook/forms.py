"""TrainingForm: an ipywidgets form for a built-in algorithm's training job.

Every field comes from the algorithm's declaration (`nbsage.algorithms.base`): one widget per
hyperparameter, built by its kind (`Hyperparameter.widget`), with the default filled in, the help and
valid values on a line below, required ones marked and advanced ones folded into an Accordion.
Values are checked as they change with `Hyperparameter.parse` (and the algorithm's cross-field
rules), so a bad value is shown next to the field its error names (`HyperparameterError.hyperparameter`)
and Launch stays disabled until it is fixed. A field says what is wrong with it once it has been
touched (or Launch was pressed): a fresh form names what is still to be filled in beside Launch, in
a few words, without a wall of red. Labels are as wide as the algorithm's longest name, and the help
text takes the theme's own colour (JupyterLab's dark theme included), dimmed.
"""
from __future__ import annotations

from html import escape

import ipywidgets as widgets

from nbsage import algorithms
from nbsage.errors import HyperparameterError, NBSageError

_FIELD_WIDTH = 260   # px for the value, right of the label
_CHAR_PX = 8         # a label character at JupyterLab's widget font size, with room to spare


def _styles(names) -> tuple[dict, dict, int]:
    """(style, layout, label width) that fit the longest of `names` without cutting it."""
    label = max(160, _CHAR_PX * max((len(n) for n in names), default=0) + 16)
    return {"description_width": f"{label}px"}, {"width": f"{label + _FIELD_WIDTH}px"}, label


def _error_html(message: str | None) -> str:
    return f"<span style='color:#e53935'>{escape(message)}</span>" if message else ""


class HyperparameterField:
    """One hyperparameter's widget, its help line and its error, kept together."""

    def __init__(self, hp, style: dict, layout: dict, label_width: int):
        self.hp = hp
        self.widget = hp.widget(description=hp.name, tooltip=f"{hp.help} ({hp.describe()})", style=style,
                                layout=layout)
        self.initial = self.widget.value
        self.touched = False  # its error is shown once the user has changed it (or pressed Launch)
        self.widget.observe(self._touch, names="value")
        self.error = widgets.HTML()
        marker = "<b>required</b> &middot; " if hp.required else ""
        self.help = widgets.HTML(f"<small style='opacity:0.8'>{marker}{escape(hp.help)} "
                                 f"&mdash; {escape(hp.describe())}</small>",
                                 layout={"margin": f"0 0 6px {label_width + 4}px"})
        self.box = widgets.VBox([widgets.HBox([self.widget, self.error]), self.help])

    def _touch(self, _change) -> None:
        self.touched = True

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
        self.algorithm_picker = widgets.Dropdown(options=algorithms.names(), value=name, description="algorithm")
        self.content_type = widgets.Dropdown(description="content type")
        self.launch_button = widgets.Button(description="Launch", button_style="primary", icon="play",
                                            tooltip="start the training job",
                                            layout={"min_width": "110px", "flex": "0 0 auto"})
        self.message = widgets.HTML(layout={"flex": "1 1 auto", "margin": "0 0 0 8px"})
        self.show_all_errors = False  # set by a Launch press: every field then says what is wrong
        self._rule_broken: str | None = None  # the field a rule across hyperparameters names
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
        style, layout, label_width = _styles([hp.name for hp in self.algorithm.hyperparameters]
                                             + [c.name for c in self.algorithm.channels] + ["content type"])
        for widget in (self.algorithm_picker, self.content_type):
            widget.style.description_width, widget.layout.width = style["description_width"], layout["width"]
        kept = {ch: w.value for ch, w in self.sources.items()}
        self.sources = {}
        self.source_errors: dict[str, widgets.HTML] = {}
        self.touched_sources: set[str] = {ch for ch, value in kept.items() if value.strip()}
        for channel in self.algorithm.channels:
            self.sources[channel.name] = widgets.Text(
                value=kept.get(channel.name, ""), description=channel.name, style=style, layout=layout,
                placeholder="path, URL or DataFrame name" + (" (required)" if channel.required else ""),
                tooltip=channel.help or f"the {channel.name} channel")
            self.sources[channel.name].observe(lambda _c, ch=channel.name: self.touched_sources.add(ch), names="value")
            self.source_errors[channel.name] = widgets.HTML()
        train = next((c for c in self.algorithm.channels if c.name == "train"), self.algorithm.channels[0])
        self.content_type.options = train.content_types
        self.content_type.value = train.default_content_type
        self.fields = {hp.name: HyperparameterField(hp, style, layout, label_width)
                       for hp in self.algorithm.hyperparameters}
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
            widgets.HTML("<b>Data</b>"),
            *(widgets.HBox([w, self.source_errors[ch]]) for ch, w in self.sources.items()), self.content_type,
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
        self._rule_broken = None
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
                self._rule_broken = named  # caused by a change elsewhere: shown once anything was touched
        for channel in self.algorithm.channels:
            if channel.required and not self.sources[channel.name].value.strip():
                problems[channel.name] = (f"channel {channel.name!r} is required: give a path, a URL or the name "
                                          "of a DataFrame, array or (X, y) tuple")
        return problems

    def _shown(self, name: str) -> bool:
        """Whether the field or channel `name` says what is wrong with it now."""
        if self.show_all_errors:
            return True
        field = self.fields.get(name)
        if field is not None and name == self._rule_broken:
            return any(f.touched for f in self.fields.values())
        return field.touched if field is not None else name in self.touched_sources

    def _refresh(self) -> None:
        """Each problem once: beside its field when the field was touched; beside Launch, the names of
        what is still to be filled in or fixed (a rule that names no field, in full)."""
        problems = self.errors()
        for name, field in self.fields.items():
            field.error.value = _error_html(problems.get(name) if self._shown(name) else None)
        for name, error in self.source_errors.items():
            error.value = _error_html(problems.get(name) if self._shown(name) else None)
        self.launch_button.disabled = bool(problems)
        self.message.value = self._summary(problems)

    def _summary(self, problems: dict[str, str]) -> str:
        if not problems:
            return ""
        missing = [n for n in problems if n not in self.fields and n in self.sources
                   or n in self.fields and self.fields[n].raw is None]
        wrong = [n for n in problems if n not in missing and n != "hyperparameters"]
        parts = []
        if missing:
            parts.append("to launch, fill in " + ", ".join(f"<b>{escape(n)}</b>" for n in missing))
        if wrong:
            parts.append("fix " + ", ".join(f"<b>{escape(n)}</b>" for n in wrong))
        text = "; ".join(parts)
        if "hyperparameters" in problems:  # a rule across fields that names none of them
            text += ("; " if text else "") + _error_html(problems["hyperparameters"])
        return f"<span style='opacity:0.85'>{text}</span>"

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
        self.show_all_errors = True
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
