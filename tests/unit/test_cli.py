from __future__ import annotations

import pytest

from aistudio.cli import selected_models
from aistudio.errors import UserError


def test_no_request_selects_every_model_in_params_order() -> None:
    assert selected_models({"phi2": 1, "t5_small": 2}, None) == ["phi2", "t5_small"]


def test_an_unknown_model_is_one_clear_line() -> None:
    with pytest.raises(UserError) as caught:
        selected_models({"phi2": 1}, ["phi3", "phi2"])
    assert caught.value.problems == ["--model ['phi3'] is not in params.yaml models ['phi2']"]


def test_params_without_models_is_an_error() -> None:
    with pytest.raises(UserError, match="models has no entry"):
        selected_models({}, None)
