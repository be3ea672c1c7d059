"""TrainingForm driven through its widgets (`.value`, the Launch button's `.click()`), launching real jobs."""
from __future__ import annotations

from html import escape, unescape

import time

import ipywidgets as widgets
import pandas as pd
import pytest

from nbsage import algorithms
from nbsage.widgets import TrainingForm
from support import loadable_algorithms



@pytest.fixture
def data():
    from sklearn.datasets import load_breast_cancer
    bc = load_breast_cancer(as_frame=True)
    return pd.concat([bc.target, bc.data], axis=1)  # label in column 0


def ready_form(session, data) -> TrainingForm:
    form = TrainingForm("linear-learner", session=session, namespace={"bc": data})
    form.sources["train"].value = "bc"
    form.fields["predictor_type"].widget.value = "binary_classifier"
    return form


def test_every_field_comes_from_the_declaration(session):
    form = TrainingForm("linear-learner", session=session)
    declaration = algorithms.get("linear-learner")
    assert list(form.fields) == [hp.name for hp in declaration.hyperparameters]
    assert all(f.widget.description == name for name, f in form.fields.items())
    assert isinstance(form.fields["predictor_type"].widget, widgets.Dropdown)
    assert "binary_classifier" in form.fields["predictor_type"].widget.options[0]
    assert "required" in form.fields["predictor_type"].help.value
    assert form.fields["epochs"].widget.value == 15 and isinstance(form.fields["epochs"].widget, widgets.IntText)
    assert form.fields["learning_rate"].widget.value == "auto"  # `auto` allowed: a Text
    assert isinstance(form.fields["use_bias"].widget, widgets.Checkbox) and form.fields["use_bias"].widget.value
    hp = declaration.hyperparameter("epochs")
    assert hp.help in form.fields["epochs"].widget.tooltip
    assert escape(hp.describe()) in form.fields["epochs"].help.value
    accordion = next(c for c in form.children if isinstance(c, widgets.Accordion))
    folded = {box.children[0].children[0].description for box in accordion.children[0].children}
    assert folded == {hp.name for hp in declaration.hyperparameters if hp.advanced}
    assert list(form.sources) == [c.name for c in declaration.channels]
    assert form.content_type.options == declaration.channel("train").content_types


@pytest.mark.parametrize("name", loadable_algorithms())
def test_the_form_of_every_algorithm_starts_valid_except_what_is_required(session, name):
    form = TrainingForm(name, session=session)
    declaration = algorithms.get(name)
    assert set(form.fields) == {hp.name for hp in declaration.hyperparameters}
    required = {hp.name for hp in declaration.hyperparameters if hp.required}
    required |= {c.name for c in declaration.channels if c.required}
    assert set(form.errors()) == required, "every declared default is accepted by its own field"


def test_values_are_the_required_and_the_changed_hyperparameters(session, data):
    form = ready_form(session, data)
    form.fields["epochs"].widget.value = 4
    form.fields["num_models"].widget.value = " 2 "
    assert form.values() == {"predictor_type": "binary_classifier", "epochs": 4, "num_models": 2}
    assert form.errors() == {} and not form.launch_button.disabled


def test_an_invalid_value_disables_launch_and_names_the_problem(session, data):
    form = ready_form(session, data)
    form.fields["epochs"].widget.value = 0
    assert form.launch_button.disabled
    assert "'epochs' = 0 is not valid" in form.errors()["epochs"]
    assert "expected an integer in > 0" in unescape(form.fields["epochs"].error.value)
    form.launch_button.click()
    assert form.job is None
    form.fields["epochs"].widget.value = 2
    assert not form.launch_button.disabled and form.fields["epochs"].error.value == ""


def test_a_rule_across_fields_is_shown_on_the_field_it_names(session, data):
    form = ready_form(session, data)
    form.fields["predictor_type"].widget.value = "multiclass_classifier"
    assert form.launch_button.disabled
    assert "num_classes" in form.fields["num_classes"].error.value
    form.fields["num_classes"].widget.value = "3"
    assert not form.launch_button.disabled


def test_launch_needs_a_train_source_that_exists(session, data):
    form = TrainingForm("linear-learner", session=session, namespace={"bc": data})
    form.fields["predictor_type"].widget.value = "regressor"
    assert form.launch_button.disabled and "to launch, fill in <b>train</b>" in form.message.value
    form.launch()  # pressed anyway (e.g. from code): the channel then says what it needs
    assert "channel 'train' is required" in unescape(form.source_errors["train"].value)
    form.sources["train"].value = "bcc"
    assert form.launch() is None
    assert "no variable 'bcc' in the notebook; did you mean 'bc'?" in unescape(form.message.value)
    assert session.list_training_jobs() == []


def test_launch_button_starts_a_job_that_completes_and_shows_it_below(session, data):
    form = ready_form(session, data)
    form.fields["epochs"].widget.value = 2
    form.fields["num_models"].widget.value = "2"
    form.launch_button.click()  # outside a kernel the form follows the job to its end
    assert form.job is not None and form.job.status == "Completed"
    assert form.job.hyperparameters["epochs"] == "2"
    shown = form.output.outputs[-1]["data"]
    assert f"{form.job.name}: Completed" in shown["text/plain"] and "image/png" in shown
    assert form.job.name in form.message.value


def test_changing_the_algorithm_rebuilds_the_fields(session, data):
    form = ready_form(session, data)
    form.algorithm_picker.value = "xgboost"
    assert "num_round" in form.fields and "epochs" not in form.fields
    assert form.sources["train"].value == "bc", "data pickers keep what was typed"
    assert form.content_type.options == algorithms.get("xgboost").channel("train").content_types


def test_a_fresh_form_names_what_to_fill_in_without_errors_before_anything_is_touched(session):
    form = TrainingForm(session=session)  # BlazingText: `mode` and the train channel are required
    assert form.algorithm.name == "blazingtext" and form.launch_button.disabled
    assert all(f.error.value == "" for f in form.fields.values())
    assert all(e.value == "" for e in form.source_errors.values())
    assert "to launch, fill in <b>mode</b>, <b>train</b>" in form.message.value
    assert "is required" not in form.message.value, "each problem once, in a few words beside Launch"
    form.fields["mode"].widget.value = "supervised"
    form.fields["epochs"].widget.value = 0
    assert "'epochs' = 0 is not valid" in unescape(form.fields["epochs"].error.value), "a touched field explains"
    assert "fix <b>epochs</b>" in form.message.value and "not valid" not in form.message.value


def test_labels_fit_the_longest_name_and_help_takes_the_theme_colour(session):
    form = TrainingForm("linear-learner", session=session)
    longest = "binary_classifier_model_selection_criteria"
    field = form.fields[longest]
    label_px = int(field.widget.style.description_width.removesuffix("px"))
    assert label_px >= 8 * len(longest), "the label is not cut"
    assert form.sources["train"].style.description_width == field.widget.style.description_width
    assert "color:" not in field.help.value and "opacity" in field.help.value
    assert form.launch_button.layout.min_width == "110px", "Launch keeps its width beside the message"


def test_in_jupyterlab_a_launch_handled_in_a_subshell_thread_still_updates_the_output_live(tmp_path):
    """Launch returns at once and the Output follows the job on the kernel's loop, also as JupyterLab
    drives it: JupyterLab sends widget messages on a kernel subshell, and once typing in a field has
    made the Launch button publish from such a message, ipykernel runs its click handler in the
    subshell's thread; the monitor must still reach the main loop (it stayed empty until another
    cell ran)."""
    import os
    import queue
    from jupyter_client.manager import start_new_kernel
    km, kc = start_new_kernel(kernel_name="python3", env=dict(os.environ), cwd=str(tmp_path))
    try:
        def execute(code):
            msg_id, printed = kc.execute(code), ""
            while True:
                m = kc.get_iopub_msg(timeout=120)
                if m["parent_header"].get("msg_id") == msg_id:
                    assert m["msg_type"] != "error", m["content"]
                    printed += m["content"]["text"] if m["msg_type"] == "stream" else ""
                    if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                        return printed
        train, button, output = execute(
            "import pandas as pd\nfrom nbsage.widgets import TrainingForm\n"
            # enough rows and epochs that the job still runs when Launch returns (a job forked from the
            # pre-warmed runtime can otherwise finish first)
            "df = pd.DataFrame({'label': [0, 1, 0, 1] * 50000, 'x': [1.0, 2.0, 3.0, 4.0] * 50000})\n"
            "form = TrainingForm('linear-learner')\n"
            "form.fields['predictor_type'].widget.value = 'binary_classifier'\n"
            "form.fields['epochs'].widget.value = 10\n"
            "print(form.sources['train'].model_id, form.launch_button.model_id, form.output.model_id)").split()
        kc.control_channel.send(kc.session.msg("create_subshell_request", {}))
        subshell = kc.control_channel.get_msg(timeout=60)["content"]["subshell_id"]

        def send(comm_id, data) -> str:
            msg = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
            msg["header"]["subshell_id"] = subshell
            kc.shell_channel.send(msg)
            return msg["header"]["msg_id"]

        handled = set()  # the messages whose handler has returned (their `idle` status came)

        def next_update(comm_id, deadline_s=60):
            deadline = time.monotonic() + deadline_s
            while time.monotonic() < deadline:
                try:
                    m = kc.get_iopub_msg(timeout=1)
                except queue.Empty:
                    continue
                if m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                    handled.add(m["parent_header"].get("msg_id"))
                if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id:
                    return m["content"]["data"].get("state", {})
            return None

        send(train, {"method": "update", "state": {"value": "df"}, "buffer_paths": []})  # typing 'df'
        assert next_update(button) == {"disabled": False}, "Launch is enabled by the typing"
        click = send(button, {"method": "custom", "content": {"event": "click"}})
        shown, returned_while_running = "", False
        while ": Completed in" not in shown:  # nothing else is sent to the kernel meanwhile
            state = next_update(output)
            assert state is not None, f"the Output stopped updating; last shown: {shown[:80]!r}"
            shown = state["outputs"][0]["data"]["text/plain"] if state.get("outputs") else shown
            returned_while_running |= click in handled and ": InProgress" in shown
        assert returned_while_running, "Launch returned while the job ran; the Output kept following it"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_widgets_module_is_the_public_name():
    import nbsage.widgets
    from nbsage.notebook.forms import TrainingForm as Form
    assert nbsage.widgets.TrainingForm is Form
