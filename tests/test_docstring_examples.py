"""The Example sections of the docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "theory._rational",
    "theory.distributions",
    "theory.classifiers",
    "theory.exact",
    "aatk.objectives",
    "aatk.attacks.pgd",
    "aatk.attacks.apgd",
    "aatk.attacks.square",
    "aatk.detector",
    "aatk.ways",
    "aatk.model",
    "aatk.backbones",
    "aatk.baselines",
    "aatk.ablation",
    "aatk.experiments",
    "aatk.progress",
    "aatk.provenance",
    "aatk.analysis.gradients",
    "aatk.analysis.curves",
    "aatk.analysis.detection",
    "aatk.analysis.inversion",
    "aatk.analysis.plots",
    "aatk.analysis.dead_relus",
    "aatk.optim",
    "aatk.initializers",
    "aatk.datasets",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    extra = {"np": importlib.import_module("numpy"), "keras": importlib.import_module("keras")}
    result = doctest.testmod(module, extraglobs=extra, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed"
