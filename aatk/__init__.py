"""aatk: Adversarial Asymmetric Training for robustness disentanglement (Wang et al., 2020).

A three-way Keras model ([`ThreeWayModel`][aatk.model.ThreeWayModel]) trained with AAT/AAT++ through
plain ``fit``, the PGD attacks it needs ([`PGD`][aatk.attacks.pgd.PGD]), the attacks that check it
([`APGD`][aatk.attacks.apgd.APGD], [`SquareAttack`][aatk.attacks.square.SquareAttack]) and the evaluation of
disentanglement ([`evaluate`][aatk.evaluation.evaluate]), worst case over attacks included. The exact theory of the paper's toy problem
lives in the sibling package `theory`.

``import aatk`` is quick: it imports neither Keras nor a backend. The first use of any of
its names (``aatk.ThreeWayModel``, ``aatk.evaluate``, ``aatk.datasets`` …) imports them all,
which also registers every Keras class of aatk for ``keras.models.load_model``; a
submodule (``aatk.model``, ``aatk.baselines`` …) imported directly registers its own.
"""

import importlib as _importlib
import sys as _sys
import typing as _typing

__version__ = "0.1.0"

_NAMES: dict[str, str] = {
    "L_AN": "aatk.objectives",
    "L_AR": "aatk.objectives",
    "L_AS": "aatk.objectives",
    "L_ST": "aatk.objectives",
    "METHODS": "aatk.objectives",
    "TERMS": "aatk.objectives",
    "PGD": "aatk.attacks",
    "APGD": "aatk.attacks",
    "SquareAttack": "aatk.attacks",
    "WAYS": "aatk.ways",
    "ThreeWayModel": "aatk.model",
    "EvaluationReport": "aatk.evaluation",
    "evaluate": "aatk.evaluation",
}
"""Public name of the package → the module that defines it."""

_SUBPACKAGES = ("analysis", "backbones", "baselines", "datasets", "detector", "initializers", "masking", "optim")
"""Modules that ``import aatk`` has always made available as attributes."""

__all__ = [
    "APGD",
    "L_AN",
    "L_AR",
    "L_AS",
    "L_ST",
    "METHODS",
    "PGD",
    "SquareAttack",
    "TERMS",
    "WAYS",
    "EvaluationReport",
    "ThreeWayModel",
    "analysis",
    "backbones",
    "baselines",
    "datasets",
    "detector",
    "evaluate",
    "initializers",
    "load_model",
    "masking",
    "optim",
]

if _typing.TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load on first use
    from aatk import analysis, backbones, baselines, datasets, detector, initializers, masking, optim
    from aatk.attacks import APGD, PGD, SquareAttack
    from aatk.evaluation import EvaluationReport, evaluate
    from aatk.model import ThreeWayModel
    from aatk.ways import WAYS
    from aatk.objectives import L_AN, L_AR, L_AS, L_ST, METHODS, TERMS


def _load_everything() -> None:
    """Imports every public name and module at once, as ``import aatk`` did before it was lazy.

    All at once, so that every Keras class of aatk (the model, the attack, the optimiser
    and schedule, the baselines' models) is registered for ``keras.models.load_model``
    as soon as anything of the package is used.
    """
    namespace = globals()
    for name in _SUBPACKAGES:
        namespace[name] = _importlib.import_module(f"aatk.{name}")
    for name, module in _NAMES.items():
        namespace[name] = getattr(_importlib.import_module(module), name)


def __getattr__(name: str) -> object:
    """The public names, imported on first use (PEP 562): ``import aatk`` itself is instant."""
    if name in _NAMES or name in _SUBPACKAGES:
        _load_everything()
        return globals()[name]
    raise AttributeError(f"module 'aatk' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_model(path, **kwargs):
    """Loads a saved aatk model (``.keras``): ``keras.models.load_model`` with every Keras
    class of aatk registered first.

    ``keras.models.load_model`` alone finds aatk's classes only once they are registered,
    which happens at the first use of any aatk name (or when Keras was imported before
    aatk); this function does not depend on that.

    Args:
        path: The ``.keras`` file.
        **kwargs: Passed on to ``keras.models.load_model`` (e.g. ``compile=False``).

    Returns:
        The model: a [`ThreeWayModel`][aatk.model.ThreeWayModel] for runs of ``aatk train``.
    """
    _load_everything()
    import keras

    return keras.models.load_model(path, **kwargs)


if "keras" in _sys.modules:  # Keras is loaded already: registering aatk's classes now costs little
    _load_everything()
