# %% [markdown]
# # Proposition 1, exactly
#
# Appendix A.2 of the paper builds a toy distribution on which the trade-off between
# accuracy and robustness can be computed by hand, and states **Proposition 1** about it.
# This tutorial recomputes every figure of that proposition with `theory/`:
#
# 1. the distribution (Eq. 16) and its sampler;
# 2. the two classifiers h₀ (Eq. 17) and h₁ (Eq. 18), and their worst-case attack;
# 3. exact accuracies by enumerating every sign pattern in rational arithmetic;
# 4. the Bayes-optimal classifier (Eq. 20–21) and the best possible robust accuracy;
# 5. Monte Carlo estimates beside every exact figure;
# 6. accuracy against the attack radius ε, for each classifier;
# 7. the Gaussian example of Tsipras et al. (Eq. 13) that the paper starts from.
#
# The same checks run from the command line as `python -m theory.prop1`.

# %%
from fractions import Fraction

import matplotlib.pyplot as plt
import numpy as np

import theory
from theory import exact, simulation

# %% [markdown]
# ## 1. The distribution
#
# The label y is ±1 with equal probability. Each of the d features is
# xᵢ = +ηᵢ·y with probability p and −ηᵢ·y otherwise, independently (Eq. 16).
# Proposition 1 takes p = 0.8, d = 7 and η = (0.01, 0.01, 0.01, 0.01, 1, 1, 1), and an
# ℓ∞ adversary with ε = 0.02. Parameters are stored as exact fractions: `0.8` means 4/5.

# %%
dist = theory.PROPOSITION_1
eps = theory.PROPOSITION_1_EPS
print("p =", dist.p, " eta =", [str(e) for e in dist.eta], " eps =", eps)

x, y = dist.sample(5, seed=0)
print(np.column_stack([x, y]))

# %% [markdown]
# Every feature is equally *reliable* — it agrees with the label with probability 0.8 —
# but not equally *robust*: an ℓ∞ perturbation of size 0.02 can turn +0.01 into −0.01,
# while it cannot turn +1 into −1. The first four features are useful but non-robust, the
# last three useful and robust.
#
# ## 2. Two classifiers and their worst-case attack
#
# h₀ = sign(Σᵢ xᵢ/ηᵢ) votes with all seven re-scaled features (Eq. 17);
# h₁ votes with the three robust ones only (Eq. 18). Against any sign-linear classifier
# sign(w·x) the worst ℓ∞ perturbation is δ* = −ε·y·sign(w): it lowers the margin y·w·x by
# exactly ε‖w‖₁, and no other point of the ε-ball lowers it more. A brute-force search
# over a grid of the ball (all its vertices included) agrees:

# %%
h0 = theory.h0(dist)
h1 = theory.h1(dist, eps=eps)
print("w0 =", [str(w) for w in h0.weights])
print("w1 =", [str(w) for w in h1.weights])

small = theory.SignLinearClassifier(weights=[3, -1, 2])
point, label = [Fraction(1, 2), Fraction(1, 4), Fraction(-1, 10)], 1
delta = theory.worst_case_perturbation(small, np.array([[float(v) for v in point]]), np.array([label]), eps=0.1)
# y·w·(x + δ*) = y·w·x − ε‖w‖₁, computed exactly
closed_form = label * sum(w * xi for w, xi in zip(small.weights, point)) - Fraction(1, 10) * sum(abs(w) for w in small.weights)
best_delta, brute_force = theory.brute_force_perturbation(small, point, label, eps="0.1", levels=5)
print("closed form: delta* =", delta[0], " margin", closed_form)
print("brute force: delta  =", [str(v) for v in best_delta], " margin", brute_force)

# %% [markdown]
# ## 3. Exact accuracies
#
# With d = 7 there are only 2⁷ sign patterns per label. `theory.exact` enumerates all of
# them, computes the margin under the worst-case attack in integer arithmetic, and sums
# the exact probabilities pᵏ(1 − p)ᵈ⁻ᵏ of the patterns it gets right.

# %%
figures = {
    "h0 standard": exact.standard_accuracy(h0, dist),
    "h0 robust": exact.robust_accuracy(h0, dist, eps=eps),
    "h1 standard": exact.standard_accuracy(h1, dist),
    "h1 robust": exact.robust_accuracy(h1, dist, eps=eps),
}
for name, value in figures.items():
    print(f"{name:12s} {str(value):>12s} = {float(value):.6f}")

# %% [markdown]
# The paper states 94.4% for h₀ and 88.0% for h₁. The exact figures are **96.6656%** and
# **89.6%**. The paper's numbers come from 1 − C(7,4)(1 − p)⁴ (Eq. 19) and
# 1 − C(3,2)(1 − p)² (Eq. 23), which count the ways to pick the wrong votes but forget
# that the remaining votes must be right with probability p each, and ignore the cases with
# more wrong votes: they are union bounds, i.e. lower bounds on the accuracy. A majority of
# d votes is right when at most ⌊d/2⌋ of them are wrong:

# %%
from math import comb

p = dist.p
majority = lambda d: sum(comb(d, k) * (1 - p) ** k * p ** (d - k) for k in range(d // 2 + 1))
union_bound = lambda d: 1 - comb(d, d // 2 + 1) * (1 - p) ** (d // 2 + 1)
for d in (7, 3):
    print(f"d = {d}: exact {majority(d)} = {float(majority(d)):.6f};  paper's formula {float(union_bound(d)):.3f}")

# %% [markdown]
# The qualitative claims all hold: h₀ falls to 0% under attack — and attacking only the
# four non-robust features already suffices — while h₁ keeps the same accuracy under
# attack as without it.

# %%
print("h0 robust, attack on x1..x4 only:", exact.robust_accuracy(h0, dist, eps=eps, attacked=[0, 1, 2, 3]))

# %% [markdown]
# ## 4. Bayes-optimal and best robust accuracy
#
# The posterior P(Y = y | X = x) follows from Bayes' rule (Eq. 20, with the normalising
# sum over y outside the product, as Eq. 22 writes it); the Bayes-optimal classifier
# predicts +1 when that posterior is at least ½ (Eq. 21). Its accuracy is the best standard
# accuracy of any classifier, and h₀ reaches it:

# %%
bayes = exact.bayes_accuracy(dist)
print("Bayes-optimal accuracy:", bayes, "=", float(bayes), "| h0 is Bayes-optimal:", bayes == figures["h0 standard"])

against_four = [-0.01, -0.01, -0.01, -0.01, 1, 1, 1]  # 4 of 7 features vote against y = +1
print("Eq. 22 posterior:", exact.posterior(dist, against_four, y=1))

# %% [markdown]
# Eq. 22's "≈ 0.2" is exactly 1 − p = 1/5. Eq. 20 *as printed*, however, divides each
# feature's factor by its own sum over y, which is p + (1 − p) = 1 — so the printed
# product is the likelihood P(x | y), not the posterior, and Eq. 21 applied to it would
# predict −1 for every input:

# %%
all_agree = [0.01] * 4 + [1] * 3
print("printed Eq. 20 at an input where all features say +1:", exact.posterior_as_printed(dist, all_agree, y=1))
print("correct posterior at the same input:               ", exact.posterior(dist, all_agree, y=1))

# %% [markdown]
# Under attack, a feature with ηᵢ ≤ ε can be moved to 0 from either sign, so the
# adversary can erase it; a feature with ηᵢ > ε keeps its sign. The best robust accuracy
# of *any* classifier is therefore the Bayes accuracy of the robust features alone — and h₁
# reaches it, so h₁ is optimal under attack:

# %%
best = exact.best_robust_accuracy(dist, eps=eps)
print("best robust accuracy:", best, "| h1 reaches it:", best == figures["h1 robust"])

# %% [markdown]
# ## 5. Monte Carlo beside every exact figure
#
# An independent simulation draws a million samples, applies the closed-form attack in
# floating point and counts correct predictions. The exact figure should sit inside the
# 95% Clopper–Pearson interval (and will, 19 times out of 20).

# %%
bayes_classifier = exact.BayesOptimalClassifier(dist)
runs = {
    "h0 standard": (h0, 0),
    "h0 robust": (h0, eps),
    "h1 standard": (h1, 0),
    "h1 robust": (h1, eps),
}
for name, (classifier, radius) in runs.items():
    estimate = simulation.monte_carlo_accuracy(classifier, dist, eps=radius, samples=1_000_000, seed=1)
    print(f"{name:12s} exact {float(figures[name]):.6f}   MC {estimate}   inside: {estimate.contains(figures[name])}")
estimate = simulation.monte_carlo_accuracy(bayes_classifier, dist, samples=1_000_000, seed=1)
print(f"{'Bayes':12s} exact {float(bayes):.6f}   MC {estimate}   inside: {estimate.contains(bayes)}")

# %% [markdown]
# ## 6. Accuracy against the attack radius
#
# Sweeping ε shows the trade-off at a glance: h₀ is the most accurate classifier on clean
# data and collapses as soon as ε reaches a fraction of the non-robust scale 0.01; h₁ gives
# up 7 points of clean accuracy and keeps them until ε reaches the robust scale. The dashed
# line is the best robust accuracy any classifier can have; dots are Monte Carlo estimates.

# %%
radii = np.unique(np.concatenate([[0.0], np.geomspace(1e-4, 2.0, 220), [0.01, 1 / 3, 1.0]]))
exact_curves = {
    "h0": [float(exact.robust_accuracy(h0, dist, eps=r)) for r in radii],
    "h1": [float(exact.robust_accuracy(h1, dist, eps=r)) for r in radii],
    "best possible": [float(exact.best_robust_accuracy(dist, eps=r)) for r in radii],
}
checks = [0.001, 0.005, 0.02, 0.1, 0.5, 1.5]

fig, ax = plt.subplots(figsize=(7.5, 4.2))
styles = {"h0": ("C0", "-"), "h1": ("C1", "-"), "best possible": ("0.3", "--")}
for name, values in exact_curves.items():
    color, line = styles[name]
    ax.step(np.maximum(radii, 1e-4), values, where="post", color=color, linestyle=line, label=f"{name} (exact)")
for name, classifier in (("h0", h0), ("h1", h1)):
    estimates = [simulation.monte_carlo_accuracy(classifier, dist, eps=r, samples=50_000, seed=2) for r in checks]
    ax.plot(checks, [e.value for e in estimates], "o", color=styles[name][0], label=f"{name} (Monte Carlo)")
ax.axvline(float(eps), color="0.6", linewidth=0.8)
ax.annotate("ε = 0.02", (float(eps), 0.05), xytext=(4, 0), textcoords="offset points", color="0.4")
ax.set_xscale("log")
ax.set_xlim(1e-4, 2.0)
ax.set_ylim(-0.02, 1.02)
ax.set_xlabel("ℓ∞ attack radius ε (log scale)")
ax.set_ylabel("accuracy under the worst-case attack")
ax.set_title("Proposition 1: accuracy against attack radius")
ax.legend(loc="lower left", fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# The curves also show a limit of Proposition 1's wording: h₁ is optimal under attack at
# ε = 0.02, but not at every ε. From ε = 1/3 on, the adversary can shift all three robust
# features by enough to outweigh a single vote of the linear sum, and h₁ drops to p³ = 0.512;
# a classifier that reads only the *signs* of the robust features (the dashed optimum) is
# unaffected until ε reaches their scale η = 1.
#
# ## 7. The Gaussian example of Tsipras et al. (Eq. 13)
#
# The paper's example is a variant of this one: a robust feature x₁ = ±y (reliable with
# probability p) and d weak features N(ηy, 1). Here sign-linear classifiers have closed-form
# accuracies in the normal CDF Φ — floating-point numbers, not exact fractions. With
# η = 3/√d, f_avg (Eq. 14) is 99.87% accurate on clean data and 0.13% under an ℓ∞ attack of
# size ε = 2η, whatever d; f_rob (Eq. 15) keeps accuracy p under attack as long as ε < 1.
# The Bayes-optimal classifier is itself sign-linear: it adds the robust feature, weighted by
# its log-odds, to the average — and is as fragile as f_avg under attack.

# %%
for d in (49, 100, 1000):
    gauss = theory.TsiprasDistribution(p=0.9, eta=3 / np.sqrt(d), d=d)
    attack = 2 * gauss.eta
    for classifier in (theory.f_avg(d), theory.f_rob(d), exact.tsipras_bayes_classifier(gauss)):
        clean = exact.tsipras_accuracy(classifier, gauss)
        robust = exact.tsipras_accuracy(classifier, gauss, eps=attack)
        mc = simulation.monte_carlo_accuracy(classifier, gauss, eps=attack, samples=20_000, seed=3)
        print(f"d={d:5d} {classifier.name:6s} clean {clean:.4f}  robust {robust:.4f}  (MC robust {mc})")
