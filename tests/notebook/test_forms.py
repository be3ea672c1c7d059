"""TrainingForm driven through its widgets (`.value`, the Launch button's `.click()`), launching real jobs."""
from __future__ import annotations

from html import escape, unescape

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
    assert form.launch_button.disabled and "channel 'train' is required" in unescape(form.message.value)
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


def test_in_a_kernel_launch_returns_at_once_and_the_output_follows_the_job(tmp_path, session):
    """The monitor runs as callbacks on the kernel's own loop: the cell ends, the Output keeps updating."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    cells = [
        "import asyncio, pandas as pd\n"
        "from sklearn.datasets import load_breast_cancer\n"
        "from nbsage.widgets import TrainingForm\n"
        "bc = load_breast_cancer(as_frame=True)\n"
        "df = pd.concat([bc.target, bc.data], axis=1)\n"
        "form = TrainingForm('linear-learner')\n"
        "form.sources['train'].value = 'df'\n"
        "form.fields['predictor_type'].widget.value = 'binary_classifier'\n"
        "form.fields['epochs'].widget.value = 2\n"
        "form.fields['num_models'].widget.value = '2'\n"
        "form.launch_button.click()\n"
        "print('launched', form.job.status)",
        "for _ in range(600):\n"
        "    shown = form.output.outputs[-1]['data']['text/plain'] if form.output.outputs else ''\n"
        "    if ': Completed' in shown:\n"
        "        break\n"
        "    await asyncio.sleep(0.1)\n"
        "print(shown.splitlines()[0]); print(sorted(form.output.outputs[-1]['data']))",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert nb.cells[0].outputs[0].text.strip() == "launched InProgress"
    printed = nb.cells[1].outputs[0].text
    assert ": Completed in" in printed and "'image/png'" in printed and "'text/plain'" in printed


def test_widgets_module_is_the_public_name():
    import nbsage.widgets
    from nbsage.notebook.forms import TrainingForm as Form
    assert nbsage.widgets.TrainingForm is Form
