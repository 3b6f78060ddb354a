"""aatk: Adversarial Asymmetric Training for robustness disentanglement (Wang et al., 2020).

A three-way Keras model (:class:`ThreeWayModel`) trained with AAT/AAT++ through
plain ``fit``, the PGD attacks it needs (:class:`PGD`) and the evaluation of
disentanglement (:func:`evaluate`). The exact theory of the paper's toy problem
lives in the sibling package :mod:`theory`.
"""

from aatk import analysis
from aatk import backbones
from aatk import baselines
from aatk import datasets
from aatk import initializers
from aatk import optim
from aatk.attacks import PGD
from aatk.evaluation import EvaluationReport, evaluate
from aatk.model import WAYS, ThreeWayModel
from aatk.objectives import L_AN, L_AR, L_AS, L_ST, METHODS, TERMS

__version__ = "0.1.0"

__all__ = [
    "L_AN",
    "L_AR",
    "L_AS",
    "L_ST",
    "METHODS",
    "PGD",
    "TERMS",
    "WAYS",
    "EvaluationReport",
    "ThreeWayModel",
    "analysis",
    "backbones",
    "baselines",
    "datasets",
    "evaluate",
    "initializers",
    "optim",
]
