"""Each place declares its options once (nbsage.backends.options.PlaceOption); every place refuses
any other, naming it and the accepted ones, and the faces' flags come from the same declarations."""
from __future__ import annotations

import pytest

from nbsage import backends, places
from nbsage.errors import ValidationError
from nbsage.estimator import Estimator
from nbsage.session import Session


@pytest.fixture
def script(tmp_path):
    (tmp_path / "train.py").write_text("print('trained')\n")
    (tmp_path / "train.csv").write_text("1,2\n")
    return tmp_path


@pytest.mark.parametrize("place", backends.names())
def test_a_misspelt_option_is_refused_on_every_place_naming_the_accepted_ones(place, script):
    session = Session()
    est = Estimator(entry_point="train.py", source_dir=str(script), backend=place, gatewy="http://gpu-box:8888",
                    sagemaker_session=session)
    with pytest.raises(ValidationError) as info:
        est.fit(str(script / "train.csv"), wait=False)
    message = str(info.value)
    accepted = [o.name for o in places.options(place)]
    assert message.startswith(f"'gatewy' is not an option of the {place} place; ")
    assert (f"its options are {', '.join(accepted)}" if accepted else "it takes no options") in message
    if "gateway" in accepted:
        assert message.endswith("did you mean 'gateway'?")
    assert session.list_training_jobs() == []  # refused before anything was recorded


def test_an_option_of_another_place_says_which_place_has_it():
    with pytest.raises(ValidationError, match="'scheduler' is not an option of the kernel place; its options are "
                                              "gateway, .*; it is an option of the dask place"):
        backends.get("kernel", Session(), scheduler="tcp://host:8786")


def test_every_declared_option_is_a_flag_of_the_cli_and_the_magic():
    from nbsage import arguments
    from nbsage.cli import build_parser
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    cli_flags = {s for a in train._actions for s in a.option_strings}
    magic_flags = {flags[0] for flags, _ in arguments.place_arguments()}
    for place in places.names():
        for option in places.options(place):
            assert option.option_string in cli_flags and option.option_string in magic_flags
            assert option.help
