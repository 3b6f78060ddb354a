"""Exact theory of the toy distributions of Appendix A.2 (Wang et al., 2020).

Samplers for Eq. 13 and Eq. 16, sign-linear classifiers with their closed-form
worst-case attacks, exact accuracies by enumeration in rational arithmetic, and
Monte Carlo estimates with confidence intervals. ``python -m theory.prop1``
verifies Proposition 1.
"""

from theory.classifiers import (
    SignLinearClassifier,
    brute_force_perturbation,
    f_avg,
    f_rob,
    h0,
    h1,
    worst_case_perturbation,
)
from theory.distributions import (
    PROPOSITION_1,
    PROPOSITION_1_EPS,
    SignFlipDistribution,
    TsiprasDistribution,
    indices_to_labels,
    labels_to_indices,
)
from theory.exact import (
    BayesOptimalClassifier,
    accuracy,
    bayes_accuracy,
    best_robust_accuracy,
    posterior,
    robust_accuracy,
    standard_accuracy,
    tsipras_accuracy,
    tsipras_bayes_classifier,
)
from theory.simulation import MonteCarloEstimate, monte_carlo_accuracy

__all__ = [
    "PROPOSITION_1",
    "PROPOSITION_1_EPS",
    "BayesOptimalClassifier",
    "MonteCarloEstimate",
    "SignFlipDistribution",
    "SignLinearClassifier",
    "TsiprasDistribution",
    "accuracy",
    "bayes_accuracy",
    "best_robust_accuracy",
    "brute_force_perturbation",
    "f_avg",
    "f_rob",
    "h0",
    "h1",
    "indices_to_labels",
    "labels_to_indices",
    "monte_carlo_accuracy",
    "posterior",
    "robust_accuracy",
    "standard_accuracy",
    "tsipras_accuracy",
    "tsipras_bayes_classifier",
    "worst_case_perturbation",
]
