"""Verifies every claim of Proposition 1 (Appendix A.2) and its proof.

Run ``python -m theory.prop1`` for a table — claim, the paper's figure, the exact
figure, a Monte Carlo estimate with its confidence interval, and a verdict — or
``python -m theory.prop1 --json`` for the same as JSON. ``--p``, ``--eta``,
``--d``, ``--eps``, ``--samples``, ``--seed`` and ``--confidence`` change the
instance; the paper's figures are shown only for the paper's own instance.

Exact figures are rational numbers from enumerating every sign pattern
([`theory.exact`][theory.exact]). Monte Carlo figures come from an independent simulation
([`theory.simulation`][theory.simulation]). Where they disagree with the paper the program says
so, reproduces the paper's number from the formula it came from, and explains
the difference.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from theory._rational import check_nonnegative, format_fraction, to_fraction
from theory.classifiers import h0, h1
from theory.distributions import PROPOSITION_1, PROPOSITION_1_EPS, SignFlipDistribution
from theory.exact import (
    BayesOptimalClassifier,
    bayes_accuracy,
    best_robust_accuracy,
    decision_rule_accuracy,
    likelihood,
    posterior,
    posterior_as_printed,
    robust_accuracy,
    standard_accuracy,
)
from theory.simulation import (
    MonteCarloEstimate,
    estimate_from_counts,
    estimate_mean_difference,
    monte_carlo_correct,
)

__all__ = ["Claim", "Instance", "verify", "main"]

PROG = "theory.prop1"


@dataclass(frozen=True)
class Instance:
    """One instance of Eq. 16 with an ℓ∞ radius, plus the simulation settings."""

    distribution: SignFlipDistribution
    eps: Fraction
    samples: int = 1_000_000
    seed: int = 0
    confidence: float = 0.95

    @property
    def is_paper_instance(self) -> bool:
        """Whether this is exactly the instance of Proposition 1 (p = 0.8, d = 7, ε = 0.02)."""
        return self.distribution == PROPOSITION_1 and self.eps == PROPOSITION_1_EPS


@dataclass
class Claim:
    """One checked statement: a figure compared with the paper, or a statement that holds or not.

    Attributes:
        key: Stable identifier, used in the JSON output.
        text: The claim, in words.
        where: Where the paper makes it.
        exact: The exact figure (a Fraction), or None for a pure statement.
        paper: The paper's figure for this instance, or None.
        tolerance: How far the exact figure may lie from the paper's printed one
            and still agree (half a unit of the paper's last printed digit).
        monte_carlo: The simulation's estimate of the same figure, or None.
        holds: For a statement, whether the exact computation confirms it.
        evidence: For a statement, the exact figures that decide it.
        note: Why the paper's figure differs, with the formula it came from.
        paper_formula: The paper's formula and its exact value on this instance.
    """

    key: str
    text: str
    where: str
    exact: Fraction | None = None
    paper: float | None = None
    tolerance: float = 0.0005
    monte_carlo: MonteCarloEstimate | None = None
    holds: bool | None = None
    evidence: str = ""
    note: str = ""
    paper_formula: dict[str, str] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """``confirmed``, ``differs`` or ``refuted``; ``not in paper`` without a paper figure."""
        if self.holds is not None:
            return "confirmed" if self.holds else "refuted"
        if self.paper is None or self.exact is None:
            return "not in paper"
        return "confirmed" if abs(float(self.exact) - self.paper) <= self.tolerance else "differs"

    @property
    def monte_carlo_agrees(self) -> bool | None:
        """Whether the exact figure lies inside the Monte Carlo interval."""
        if self.monte_carlo is None or self.exact is None:
            return None
        return self.monte_carlo.contains(float(self.exact))


def _union_bound(d: int, p: Fraction) -> tuple[int, Fraction]:
    """The paper's formula 1 − C(d, m)(1 − p)ᵐ with m = ⌊d/2⌋ + 1 (Eq. 19 and Eq. 23)."""
    m = d // 2 + 1
    return m, 1 - math.comb(d, m) * (1 - p) ** m


def _exact_majority_formula(d: int, p: Fraction) -> Fraction:
    """P(at most ⌊(d−1)/2⌋ of d independent votes are wrong), for odd d."""
    return sum(
        (math.comb(d, k) * (1 - p) ** k * p ** (d - k) for k in range((d - 1) // 2 + 1)),
        Fraction(0),
    )


def _majority_note(d: int, p: Fraction, exact: Fraction, which: str) -> tuple[str, dict[str, str]]:
    m, bound = _union_bound(d, p)
    formula = f"1 - C({d},{m})(1-p)^{m}"
    note = (
        f"The paper's {float(bound):g} for {which} is {formula}, a union bound on P(at least {m} of "
        f"{d} votes wrong) that drops the factor p^{d - m} of the other votes and the cases with more "
        f"than {m} wrong votes, so it is only a lower bound; the exact accuracy of a {d}-vote majority "
        f"is sum_(k<={m - 1}) C({d},k) (1-p)^k p^({d}-k) = {format_fraction(exact)}."
    )
    return note, {"formula": formula, "value": str(bound), "value_float": repr(float(bound))}


def verify(instance: Instance) -> list[Claim]:
    """Checks every claim of Proposition 1 and its proof on ``instance``.

    Args:
        instance: The distribution, radius and simulation settings.

    Returns:
        The claims, in the order of the paper.

    Raises:
        ValueError: If h0 or h1 is undefined on the instance (some η_i = 0, or
            no feature with η_i > ε).
    """
    dist, eps = instance.distribution, instance.eps
    paper = instance.is_paper_instance
    classifier_h0, classifier_h1 = h0(dist), h1(dist, eps=eps)
    bayes = BayesOptimalClassifier(dist)
    mc = dict(samples=instance.samples, seed=instance.seed)

    def estimate(correct: np.ndarray) -> MonteCarloEstimate:
        return estimate_from_counts(int(correct.sum()), correct.size, confidence=instance.confidence)

    correct_h0 = monte_carlo_correct(classifier_h0, dist, **mc)
    correct_h1 = monte_carlo_correct(classifier_h1, dist, **mc)
    correct_h0_attacked = monte_carlo_correct(classifier_h0, dist, eps=eps, **mc)
    correct_h1_attacked = monte_carlo_correct(classifier_h1, dist, eps=eps, **mc)
    correct_bayes = monte_carlo_correct(bayes, dist, **mc)

    h0_standard = standard_accuracy(classifier_h0, dist)
    h0_robust = robust_accuracy(classifier_h0, dist, eps=eps)
    h1_standard = standard_accuracy(classifier_h1, dist)
    h1_robust = robust_accuracy(classifier_h1, dist, eps=eps)
    bayes_standard = bayes_accuracy(dist)
    best_robust = best_robust_accuracy(dist, eps=eps)
    informative = [i for i, e in enumerate(dist.eta) if e > 0]
    robust_count = sum(1 for w in classifier_h1.weights if w != 0)

    claims: list[Claim] = []

    claim = Claim(
        key="h0_standard",
        text="h0 standard accuracy",
        where="Prop. 1(1), Eq. 17, 19",
        exact=h0_standard,
        paper=0.944 if paper else None,
        monte_carlo=estimate(correct_h0),
    )
    if dist.d % 2 == 1:
        claim.note, claim.paper_formula = _majority_note(dist.d, dist.p, h0_standard, "h0")
    claims.append(claim)

    claims.append(
        Claim(
            key="bayes_standard",
            text="Bayes-optimal standard accuracy",
            where="Proof of Prop. 1(1), Eq. 20-22",
            exact=bayes_standard,
            paper=0.944 if paper else None,
            monte_carlo=estimate(correct_bayes),
            note=(
                "The proof bounds the Bayes accuracy by Eq. 19's 0.944 and so inherits its union "
                "bound; the exact Bayes accuracy is sum_x max_y P(x, y) over all 2^7 inputs."
                if paper
                else ""
            ),
        )
    )
    claims.append(
        Claim(
            key="h0_bayes_optimal",
            text="h0 is Bayes-optimal",
            where="Prop. 1(1), Eq. 21",
            holds=h0_standard == bayes_standard,
            evidence=f"h0 {h0_standard} vs Bayes {bayes_standard}",
        )
    )
    claims.append(
        Claim(
            key="h0_robust",
            text=f"h0 robust accuracy (linf, eps = {_decimal(eps)})",
            where="Prop. 1(1)",
            exact=h0_robust,
            paper=0.0 if paper else None,
            monte_carlo=estimate(correct_h0_attacked),
        )
    )

    non_robust = [i for i, e in enumerate(dist.eta) if e <= eps]
    if non_robust:
        names = ", ".join(f"x{i + 1}" for i in non_robust)
        claims.append(
            Claim(
                key="h0_robust_non_robust_only",
                text=f"h0 robust accuracy, attack on {names} only",
                where="Prop. 1(1)",
                exact=robust_accuracy(classifier_h0, dist, eps=eps, attacked=non_robust),
                paper=0.0 if paper else None,
                monte_carlo=estimate(
                    monte_carlo_correct(classifier_h0, dist, eps=eps, attacked=non_robust, **mc)
                ),
            )
        )

    claim = Claim(
        key="h1_standard",
        text="h1 standard accuracy",
        where="Prop. 1(2), Eq. 18",
        exact=h1_standard,
        paper=0.880 if paper else None,
        monte_carlo=estimate(correct_h1),
    )
    if robust_count % 2 == 1 and paper:
        claim.note, claim.paper_formula = _majority_note(robust_count, dist.p, h1_standard, "h1")
    claims.append(claim)

    claim = Claim(
        key="h1_robust",
        text=f"h1 robust accuracy (linf, eps = {_decimal(eps)})",
        where="Prop. 1(2), Eq. 23",
        exact=h1_robust,
        paper=0.880 if paper else None,
        monte_carlo=estimate(correct_h1_attacked),
    )
    if robust_count % 2 == 1 and paper:
        claim.note, claim.paper_formula = _majority_note(robust_count, dist.p, h1_robust, "h1")
    claims.append(claim)

    claims.append(
        Claim(
            key="best_robust",
            text="best robust accuracy of any classifier",
            where="Prop. 1(2), proof",
            exact=best_robust,
            paper=0.880 if paper else None,
            monte_carlo=estimate(correct_h1_attacked) if h1_robust == best_robust else None,
            note=(
                "Features with eta_i <= eps can be erased by the adversary and the others cannot "
                "be flipped, so the optimum is the Bayes accuracy of the robust features alone; "
                "the paper's 0.880 is again the union bound of Eq. 23."
                if paper
                else ""
            ),
        )
    )
    claims.append(
        Claim(
            key="h1_robust_optimal",
            text="h1 is optimal under attack",
            where="Prop. 1(2)",
            holds=h1_robust == best_robust,
            evidence=f"h1 {h1_robust} vs best {best_robust}",
        )
    )
    claims.append(
        Claim(
            key="h1_standard_equals_robust",
            text="h1 standard accuracy = robust accuracy",
            where="Prop. 1(2)",
            holds=h1_standard == h1_robust,
            evidence=f"standard {h1_standard} vs robust {h1_robust}",
        )
    )

    cost = h0_standard - h1_standard
    claim = Claim(
        key="accuracy_cost",
        text="standard accuracy lost by h1 vs h0",
        where="Proof of Prop. 1(2)",
        exact=cost,
        paper=0.064 if paper else None,
        monte_carlo=estimate_mean_difference(correct_h0, correct_h1, confidence=instance.confidence),
    )
    if paper:
        claim.note = (
            "The paper's 0.064 = 0.944 - 0.880 is the difference of the two union bounds; "
            f"the exact difference is {format_fraction(h0_standard)} - {format_fraction(h1_standard)}."
        )
        claim.paper_formula = {"formula": "0.944 - 0.880", "value": "8/125", "value_float": "0.064"}
    claims.append(claim)

    # Eq. 22: the posterior of the true label when the smallest majority of votes is against it.
    votes = len(informative)
    against = votes // 2 + 1
    example = [Fraction(0)] * dist.d
    for position, i in enumerate(informative):
        example[i] = dist.eta[i] if position >= against else -dist.eta[i]
    x, y = dist.sample(instance.samples, seed=np.random.default_rng(instance.seed))
    plus_votes = (x[:, informative] > 0).sum(axis=1)
    matching = plus_votes == votes - against
    evidence = likelihood(dist, example, y=1) + likelihood(dist, example, y=-1)
    text = f"P(Y=y | X=x) with {against} of {votes} features against y"
    if evidence == 0:  # p = 0 or 1: votes never disagree, so this input cannot occur
        claims.append(
            Claim(
                key="eq22_posterior",
                text=text,
                where="Proof of Prop. 1(1), Eq. 22",
                evidence=f"undefined: such an input has probability 0 when p = {dist.p}",
            )
        )
    else:
        claims.append(
            Claim(
                key="eq22_posterior",
                text=text,
                where="Proof of Prop. 1(1), Eq. 22",
                exact=posterior(dist, example, y=1),
                paper=0.2 if paper else None,
                tolerance=0.05,  # the paper writes "≈ 0.2"
                monte_carlo=(
                    estimate_from_counts(
                        int((y[matching] == 1).sum()), int(matching.sum()), confidence=instance.confidence
                    )
                    if matching.any()
                    else None
                ),
                note=(
                    "Exactly p^3(1-p)^4 / (p^3(1-p)^4 + p^4(1-p)^3) = 1 - p = 1/5; the paper's "
                    "'approximately 0.2' is in fact exact." if paper else ""
                ),
            )
        )

    # At the input where every feature votes +1, which has positive probability for every p.
    all_positive = [e for e in dist.eta]
    printed_sum = posterior_as_printed(dist, all_positive, y=1) + posterior_as_printed(dist, all_positive, y=-1)
    printed_rule = decision_rule_accuracy(
        dist, lambda point: 1 if posterior_as_printed(dist, point, y=1) >= Fraction(1, 2) else -1
    )
    claims.append(
        Claim(
            key="eq20_as_printed",
            text="Eq. 20 as printed is the posterior",
            where="Proof of Prop. 1(1), Eq. 20-21",
            holds=printed_sum == 1 and printed_rule == bayes_standard,
            evidence=f"sums to {printed_sum} over y at x = +eta; Eq. 21 with it: accuracy {printed_rule}",
            note=(
                "Eq. 20 divides each feature's factor by its own sum over y, which is p + (1-p) = 1, "
                "so the printed product is the likelihood P(x|y), not the posterior; dividing once "
                "by the sum over y of the whole product (as Eq. 22 does) gives the posterior, and "
                "Eq. 21 needs that."
            ),
        )
    )
    return claims


# --- output ---------------------------------------------------------------------------------


def _decimal(value: Fraction) -> str:
    """``value`` as a decimal when it terminates within 12 digits, else as a/b."""
    scaled = value * 10**12
    if scaled.denominator != 1:
        return str(value)
    return f"{float(value):.12f}".rstrip("0").rstrip(".")


def _figure(value: Fraction | None) -> str:
    return "" if value is None else format_fraction(value)


def _paper_figure(claim: Claim) -> str:
    if claim.paper is None:
        return "-"
    return f"~{claim.paper:g}" if claim.key == "eq22_posterior" else f"{claim.paper:.3f}"


def format_table(instance: Instance, claims: Sequence[Claim]) -> str:
    """Renders the claims as a plain-text table with numbered notes."""
    dist = instance.distribution
    percent = f"{100 * instance.confidence:g}%"
    header = ["#", "claim", "paper", "exact", f"Monte Carlo [{percent} CI]", "MC ok", "verdict"]
    rows = []
    notes = []
    for number, claim in enumerate(claims, start=1):
        exact = _figure(claim.exact) if claim.exact is not None else claim.evidence
        mc_ok = {None: "", True: "yes", False: "NO"}[claim.monte_carlo_agrees]
        verdict = claim.verdict
        if claim.note and verdict in ("differs", "refuted", "confirmed") and instance.is_paper_instance:
            notes.append(f"[{number}] {claim.note}")
            verdict += f" [{number}]"
        rows.append(
            [str(number), f"{claim.text} ({claim.where})", _paper_figure(claim), exact,
             str(claim.monte_carlo or ""), mc_ok, verdict]
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()

    eta = ", ".join(_decimal(e) for e in dist.eta)
    title = "Proposition 1 (Appendix A.2)" + (
        " on the paper's instance" if instance.is_paper_instance else " on a custom instance"
    )
    out = [
        title,
        f"Eq. 16 with p = {_decimal(dist.p)}, d = {dist.d}, eta = ({eta}); "
        f"linf attack with eps = {_decimal(instance.eps)}",
        f"Exact: rational arithmetic over all 2^{dist.d} sign patterns and both labels. "
        f"Monte Carlo: {instance.samples:,} samples, seed {instance.seed}, "
        f"{percent} intervals (each misses the truth with probability {1 - instance.confidence:.0%}).",
        "",
        line(header),
        line(["-" * w for w in widths]),
        *[line(r) for r in rows],
    ]
    if notes:
        out += ["", "Notes", *notes]
    verdicts = [c.verdict for c in claims]
    counts = ", ".join(
        f"{verdicts.count(v)} {v}" for v in ("confirmed", "differs", "refuted", "not in paper") if v in verdicts
    )
    misses = sum(1 for c in claims if c.monte_carlo_agrees is False)
    out += [
        "",
        f"{len(claims)} claims: {counts}. Exact figures outside their Monte Carlo interval: {misses}.",
    ]
    return "\n".join(out)


def _estimate_json(estimate: MonteCarloEstimate | None) -> dict | None:
    if estimate is None:
        return None
    return {
        "value": estimate.value,
        "ci": [estimate.lower, estimate.upper],
        "confidence": estimate.confidence,
        "samples": estimate.samples,
        "method": estimate.method,
    }


def _figure_json(claim: Claim) -> dict:
    return {
        "exact": None if claim.exact is None else str(claim.exact),
        "exact_float": None if claim.exact is None else float(claim.exact),
        "paper": claim.paper,
        "monte_carlo": None if claim.monte_carlo is None else claim.monte_carlo.value,
        "monte_carlo_ci": None if claim.monte_carlo is None else [claim.monte_carlo.lower, claim.monte_carlo.upper],
        "verdict": claim.verdict,
    }


def to_json(instance: Instance, claims: Sequence[Claim]) -> dict:
    """The verification as a JSON-serialisable dict (see the module docstring)."""
    by_key = {claim.key: claim for claim in claims}
    dist = instance.distribution
    return {
        "instance": {
            "p": str(dist.p),
            "eta": [str(e) for e in dist.eta],
            "d": dist.d,
            "eps": str(instance.eps),
            "norm": "linf",
            "samples": instance.samples,
            "seed": instance.seed,
            "confidence": instance.confidence,
            "is_paper_instance": instance.is_paper_instance,
        },
        "h0": {
            "weights": [str(w) for w in h0(dist).weights],
            "standard": _figure_json(by_key["h0_standard"]),
            "robust": _figure_json(by_key["h0_robust"]),
        },
        "h1": {
            "weights": [str(w) for w in h1(dist, eps=instance.eps).weights],
            "standard": _figure_json(by_key["h1_standard"]),
            "robust": _figure_json(by_key["h1_robust"]),
        },
        "bayes_optimal": {"standard": _figure_json(by_key["bayes_standard"])},
        "best_robust": _figure_json(by_key["best_robust"]),
        "claims": [
            {
                "key": c.key,
                "claim": c.text,
                "where": c.where,
                "paper": c.paper,
                "exact": None if c.exact is None else str(c.exact),
                "exact_float": None if c.exact is None else float(c.exact),
                "holds": c.holds,
                "evidence": c.evidence or None,
                "monte_carlo": _estimate_json(c.monte_carlo),
                "monte_carlo_agrees": c.monte_carlo_agrees,
                "verdict": c.verdict,
                "note": c.note or None,
                "paper_formula": c.paper_formula or None,
            }
            for c in claims
        ],
    }


# --- command line ---------------------------------------------------------------------------


class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, without the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _ArgumentError(message)


def _parse_eta(text: str) -> list[Fraction]:
    entries = text.split(",")
    values = []
    for position, entry in enumerate(entries, start=1):
        if not entry.strip():
            raise ValueError(
                f"malformed --eta {text!r}: entry {position} is empty; "
                "expected comma-separated numbers such as 0.01,0.01,1"
            )
        try:
            values.append(to_fraction(entry, name=f"eta entry {position}"))
        except ValueError as error:
            raise ValueError(f"malformed --eta {text!r}: {error}") from None
    return values


def _parse_args(argv: Sequence[str] | None) -> tuple[Instance, bool]:
    parser = _Parser(
        prog=f"python -m {PROG}",
        description="Verify Proposition 1 of Wang et al. (2020), Appendix A.2, exactly.",
    )
    parser.add_argument("--p", default="4/5", help="feature reliability p in [0, 1] (default 4/5)")
    parser.add_argument(
        "--eta",
        default="0.01,0.01,0.01,0.01,1,1,1",
        help="comma-separated feature scales eta_i >= 0 (default: the paper's)",
    )
    parser.add_argument("--d", type=int, default=None, help="number of features; repeats a single --eta value")
    parser.add_argument("--eps", default="0.02", help="linf attack radius eps >= 0 (default 0.02)")
    parser.add_argument("--samples", type=int, default=1_000_000, help="Monte Carlo samples (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=0, help="Monte Carlo seed (default 0)")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval level (default 0.95)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)

    eta = _parse_eta(args.eta)
    if args.d is not None:
        if args.d < 1:
            raise ValueError(f"--d must be >= 1, got {args.d}")
        if len(eta) == 1:
            eta = eta * args.d
        elif len(eta) != args.d:
            raise ValueError(f"--d {args.d} does not match the {len(eta)} values of --eta")
    if args.samples < 2:
        raise ValueError(f"--samples must be >= 2 (a paired difference needs two samples), got {args.samples}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    if not 0 < args.confidence < 1:
        raise ValueError(f"--confidence must lie in (0, 1), got {args.confidence}")
    distribution = SignFlipDistribution(p=args.p, eta=eta)
    instance = Instance(
        distribution=distribution,
        eps=check_nonnegative(args.eps, name="eps"),
        samples=args.samples,
        seed=args.seed,
        confidence=args.confidence,
    )
    return instance, args.json


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 on bad input)."""
    try:
        instance, as_json = _parse_args(argv)
        claims = verify(instance)
    except (_ArgumentError, ValueError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(to_json(instance, claims), indent=2))
    else:
        print(format_table(instance, claims))
    return 0


if __name__ == "__main__":
    sys.exit(main())
