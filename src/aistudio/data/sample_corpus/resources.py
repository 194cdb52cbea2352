"""The corpus generator's vocabulary and templates: YAML files in resources/, read once on first use."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml


def _frozen(value: Any) -> Any:
    # Tuples, so no generator function can change a shared table by accident.
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    return value


@cache
def load_resource(name: str) -> Any:
    """resources/<name>.yaml as tuples and dicts."""
    text = resources.files(__package__).joinpath("resources", f"{name}.yaml").read_text(encoding="utf-8")
    return _frozen(yaml.load(text, Loader=yaml.CSafeLoader))


class Table:
    """Attribute access to one resource file's top-level keys: `VOCABULARY.first_names`."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, key: str) -> Any:
        try:
            return load_resource(self._name)[key]
        except KeyError:
            raise AttributeError(f"resources/{self._name}.yaml has no key '{key}'") from None


VOCABULARY = Table("vocabulary")
PHRASES = Table("phrases")
CODE = Table("code")
ANALYSIS = Table("analysis")
ARTICLES = Table("articles")
CREATIVE = Table("creative")
