"""The training objectives of the paper, one function per equation.

Every function returns *per-example* losses (shape (batch,)); the train step
averages their sum over the batch. Labels are integer class indices. Adversarial
inputs and adversarial labels enter as constants: they are produced by an attack
outside the gradient computation (Algorithm 1), and [`adversarial_labels`][aatk.objectives.adversarial_labels]
stops any gradient through the argmax.

Paper: Section 2.3, Eq. 6–11, Algorithm 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from keras import ops

Tensor = Any
"""A backend tensor or array (``keras.ops`` accepts both)."""

__all__ = [
    "TERMS",
    "METHODS",
    "cross_entropy",
    "KEEP_RULES",
    "adversarial_labels",
    "L_ST",
    "L_AS",
    "L_AR",
    "L_AN",
    "resolve_method",
    "resolve_weights",
    "L_one_way",
    "BASELINES",
    "ONE_WAY_TERMS",
]

TERMS = ("st", "as", "ar", "an")
"""The four loss terms: L_ST (Eq. 6), L_AS (Eq. 7), L_AR (Eq. 9), L_AN (Eq. 10)."""

METHODS = {
    "st": ("st",),  # Eq. 6: standard training of the three ways
    "aat": ("st", "as"),  # Eq. 8
    "aat++": ("st", "as", "ar", "an"),  # Eq. 11
}
"""Named methods as sets of terms."""

ONE_WAY_TERMS = ("st_r", "st_n")
"""Clean cross-entropy of the robust way alone (l(h_r(x), y)) or the non-robust way alone."""

BASELINES = {
    "1way-st": {"st_n": 1.0},  # Sec. 3.1: standard training of the non-robust way only
    "1way-at": {"ar": 1.0},  # Sec. 3.1: Madry's AT of the robust way only (Eq. 3 = Eq. 9)
    # Footnote 2: half-half AT, a clean and an adversarial cross-entropy per example. Summed, not
    # averaged, as YOPO's training loop does (it back-propagates both losses before one SGD step).
    "1way-at-half": {"st_r": 1.0, "ar": 1.0},
}
"""One-way baselines in the three-way framework, as weighted terms (Sec. 3.1)."""


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """l(h(x), y): the per-example cross-entropy of logits against integer labels."""
    return ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)


KEEP_RULES = ("misclassified", "flipped")
"""Which adversarial examples make pseudo-pairs: every misclassified one (Algorithm 1), or
only those of inputs the attacked way classified correctly
([`adversarial_labels`][aatk.objectives.adversarial_labels])."""


def adversarial_labels(
    adversarial_logits: Tensor, labels: Tensor, *, clean_logits: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """ŷ = argmax h(x_adv) and the mask of examples kept by Algorithm 1 (ŷ ≠ y).

    Both are constants for the objective: ŷ is an argmax and the mask a comparison,
    and neither passes a gradient.

    With ``clean_logits`` (h(x) of the same way on the clean inputs), an example is kept
    only if the attack *flipped* it: h(x) predicted y and h(x_adv) does not. Algorithm 1
    keeps every misclassified x_adv, including those of inputs the way already got
    wrong; early in training that is nearly all of them, and the non-robust way is then
    taught its own wrong, near-constant predictions (see ``docs/results.md``).

    Paper: Eq. 7 (ŷ_s), Eq. 10 (ŷ_n), Algorithm 1 ("if x_adv is misclassified").

    Returns:
        ``(predicted, kept)``: int32 labels ŷ and a float32 mask, both shape (batch,).

    Examples:
        >>> from keras import ops
        >>> adv = ops.convert_to_tensor([[0.0, 2.0], [3.0, 0.0], [0.0, 1.0]])
        >>> clean = ops.convert_to_tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
        >>> y = ops.convert_to_tensor([0, 0, 0])
        >>> predicted, kept = adversarial_labels(adv, y)
        >>> tuple(ops.convert_to_numpy(predicted).tolist()), tuple(ops.convert_to_numpy(kept).tolist())
        ((1, 0, 1), (1.0, 0.0, 1.0))
        >>> tuple(ops.convert_to_numpy(adversarial_labels(adv, y, clean_logits=clean)[1]).tolist())
        (1.0, 0.0, 0.0)
    """
    labels = ops.cast(labels, "int32")
    predicted = ops.stop_gradient(ops.cast(ops.argmax(adversarial_logits, axis=-1), "int32"))
    kept = ops.not_equal(predicted, labels)
    if clean_logits is not None:
        kept = ops.logical_and(kept, ops.equal(ops.cast(ops.argmax(clean_logits, axis=-1), "int32"), labels))
    return predicted, ops.stop_gradient(ops.cast(kept, "float32"))


def L_ST(standard_logits: Tensor, robust_logits: Tensor, non_robust_logits: Tensor, labels: Tensor) -> Tensor:
    """Standard training of the three ways on natural data.

    L_ST = l(h_s(x), y) + l(h_r(x), y) + l(h_n(x), y)

    Paper: Eq. 6.
    """
    return (
        cross_entropy(standard_logits, labels)
        + cross_entropy(robust_logits, labels)
        + cross_entropy(non_robust_logits, labels)
    )


def L_AS(
    robust_logits_adv_s: Tensor,
    non_robust_logits_adv_s: Tensor,
    labels: Tensor,
    adversarial_labels_s: Tensor,
    kept_s: Tensor,
) -> Tensor:
    """The adversarial asymmetric loss on a standard-way adversarial example x_adv^s.

    L_AS = l(h_r(x_adv^s), y) + l(h_n(x_adv^s), ŷ_s), counted only where ŷ_s ≠ y:
    the robust way keeps the true label, the non-robust way learns the label the
    attack pushed the standard way to.

    Paper: Eq. 7 and Algorithm 1.

    Args:
        robust_logits_adv_s: h_r(x_adv^s).
        non_robust_logits_adv_s: h_n(x_adv^s).
        labels: True labels y.
        adversarial_labels_s: ŷ_s = argmax h_s(x_adv^s) (a constant).
        kept_s: 1 where ŷ_s ≠ y, else 0 (a constant).
    """
    return kept_s * (
        cross_entropy(robust_logits_adv_s, labels)
        + cross_entropy(non_robust_logits_adv_s, adversarial_labels_s)
    )


def L_AR(robust_logits_adv_r: Tensor, labels: Tensor) -> Tensor:
    """Adversarial training of the robust way on its own adversarial example x_adv^r.

    L_AR = l(h_r(x_adv^r), y). Eq. 9 is robust optimisation (Eq. 3) of the robust
    way and, unlike Eq. 7 and Eq. 10, keeps every example: its label is the true
    one, so an attack that failed still gives a valid (if easy) training pair.

    Paper: Eq. 9.
    """
    return cross_entropy(robust_logits_adv_r, labels)


def L_AN(non_robust_logits_adv_n: Tensor, adversarial_labels_n: Tensor, kept_n: Tensor) -> Tensor:
    """The non-robust way learns the label of its own adversarial example x_adv^n.

    L_AN = l(h_n(x_adv^n), ŷ_n), counted only where ŷ_n ≠ y.

    Paper: Eq. 10.
    """
    return kept_n * cross_entropy(non_robust_logits_adv_n, adversarial_labels_n)


def L_one_way(logits: Tensor, labels: Tensor) -> Tensor:
    """One way trained alone on natural data: l(h(x), y) (the one-way ST baseline of Sec. 3.1)."""
    return cross_entropy(logits, labels)


def resolve_weights(method: str | Iterable[str]) -> dict[str, float]:
    """The terms of a method with their weights in the total loss.

    Paper methods and subsets of [`TERMS`][aatk.objectives.TERMS] weigh every term 1 (Eq. 8, Eq. 11);
    the one-way baselines of [`BASELINES`][aatk.objectives.BASELINES] are weighted sums of their own terms.

    Raises:
        ValueError: As [`resolve_method`][aatk.objectives.resolve_method].

    Examples:
        >>> resolve_weights("1way-at-half")
        {'st_r': 1.0, 'ar': 1.0}
    """
    if isinstance(method, str) and method.lower() in BASELINES:
        return dict(BASELINES[method.lower()])
    return {term: 1.0 for term in resolve_method(method)}


def resolve_method(method: str | Iterable[str]) -> tuple[str, ...]:
    """The loss terms of a method name or of an explicit subset of [`TERMS`][aatk.objectives.TERMS].

    Args:
        method: ``"st"``, ``"aat"``, ``"aat++"``, or an iterable of term names such
            as ``("st", "as", "an")`` (for ablations, Fig. 2b).

    Returns:
        The terms in canonical order.

    Raises:
        ValueError: On an unknown method or term, an empty subset, ``None``, or a dict
            of weighted terms (not supported: every term weighs 1).

    Examples:
        >>> resolve_method("aat++")
        ('st', 'as', 'ar', 'an')
        >>> resolve_method(["an", "st"])
        ('st', 'an')
    """
    valid = f"one of {sorted(METHODS) + sorted(BASELINES)} or a subset of {TERMS}"
    if isinstance(method, str):
        key = method.lower()
        if key in BASELINES:
            return tuple(BASELINES[key])
        if key not in METHODS:
            raise ValueError(f"method must be {valid}, got {method!r}")
        return METHODS[key]
    if isinstance(method, Mapping):
        # Iterating a dict gives its keys: {"st": 2.0} would silently train with weight 1.
        raise ValueError(
            f"method must be {valid}, got the weighted terms {dict(method)!r}; weighted terms are not "
            "supported: every term of a method weighs 1 (Eq. 8, Eq. 11), so pass a name or a list of terms"
        )
    if isinstance(method, bytes) or not isinstance(method, Iterable):
        raise ValueError(f"method must be {valid}, got {method!r}")
    terms = [str(t).lower() for t in method]
    unknown = [t for t in terms if t not in TERMS]
    if unknown or not terms or len(set(terms)) != len(terms):
        raise ValueError(
            f"a method given as terms must be a non-empty subset of {TERMS} without repeats, got {list(method)}"
        )
    return tuple(t for t in TERMS if t in terms)
