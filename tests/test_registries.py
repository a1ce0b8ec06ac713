"""Every list of names agrees with the registry it comes from."""

from __future__ import annotations

import importlib

from memctl import config
from memctl.launch.backends import BACKENDS, get_backend
from memctl.metrics.features import EXTRACTORS
from memctl.peft import _spaces, registry
from memctl.peft._method import Method
from memctl.train.mitigations import MITIGATIONS


def test_config_choices_are_the_registries_names():
    assert tuple(registry.METHODS) == config.METHODS
    assert tuple(registry.SPACES) == config.SPACES
    assert set(config.EXECUTORS) == set(BACKENDS)
    assert ("none", *MITIGATIONS) == config.MITIGATIONS


def test_every_method_module_defines_its_method_under_its_name():
    for name in registry.METHODS:
        cls = registry.method_class(name)
        assert issubclass(cls, Method) and cls.name == name


def test_every_space_has_a_layout():
    assert tuple(_spaces.SPACES) == registry.SPACES
    assert set(_spaces.NOMINAL_BITS) == set(registry.SPACES)


def test_every_backend_extractor_and_mitigation_module_defines_its_class_under_its_name():
    for name, module in MITIGATIONS.items():
        assert importlib.import_module(module).MITIGATION.name == name
    for name in BACKENDS:
        assert get_backend(name).name == name
    for name, module in EXTRACTORS.items():
        assert importlib.import_module(module).EXTRACTOR.name == name


def test_search_help_lists_the_registries_names():
    from click.testing import CliRunner

    from memctl.cli import main

    out = CliRunner().invoke(main, ["search", "--help"]).output
    names = (*config.SEARCHABLE, *registry.SPACES, *BACKENDS)
    assert [name for name in names if name not in out] == []
    assert set(registry.METHODS) - set(config.SEARCHABLE) == {"freeze"}  # nothing to search
