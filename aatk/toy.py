"""AAT on the toy distribution of Proposition 1, where the truth is known exactly.

``python -m aatk.toy`` samples the distribution of Eq. 16 (p = 0.8, d = 7,
η = (0.01 ×4, 1 ×3)) from `theory`, trains a [`ThreeWayModel`][aatk.model.ThreeWayModel]
with small MLP encoders by AAT++ against an ℓ∞ PGD with ε = 0.02 (unbounded
inputs), evaluates it with [`aatk.evaluate`][aatk.evaluation.evaluate], and prints the measured figures
beside the exact optima computed by [`theory.exact`][theory.exact]:

* the standard way should approach the Bayes-optimal accuracy (h₀'s, Eq. 17);
* the robust way under attack should approach the best robust accuracy (h₁'s);
* the non-robust way under attack should fall to 0.

Here we also know which coordinates are robust (η_i > ε: x5..x7), so the program
measures how strongly each representation relies on each group of coordinates:
the share of ``E‖∂z/∂x_i‖₂ · η_i`` (sensitivity to a feature, scaled by the size of
the feature) that falls on the robust coordinates.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import keras
import numpy as np

import theory
from aatk import backend
from aatk.attacks import PGD
from aatk.evaluation import EvaluationReport, evaluate
from aatk.model import ThreeWayModel
from aatk.objectives import METHODS
from theory import exact
from theory.simulation import estimate_from_counts

__all__ = ["mlp_encoder", "reliance", "run", "main"]


def mlp_encoder(input_dim: int, width: int = 32, *, name: str | None = None) -> keras.Sequential:
    """A small MLP encoder: Dense(width) → ReLU → Dense(width) → ReLU."""
    return keras.Sequential(
        [
            keras.Input((input_dim,)),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(width, activation="relu"),
        ],
        name=name,
    )


def reliance(model: ThreeWayModel, x: np.ndarray, scales: Sequence[float], groups: dict[str, list[int]]) -> dict:
    """Share of each representation's input sensitivity that falls on each group of coordinates.

    For a representation z and coordinate i, the sensitivity is E_x ‖∂z/∂x_i‖₂ · s_i,
    where s_i is the natural scale of the coordinate (η_i in Eq. 16: moving x_i by
    its own scale is what flips the feature). Shares sum to 1 over the groups.

    Returns:
        ``{"z_r": {group: share}, "z_n": {group: share}}``.
    """
    x = np.asarray(x, dtype=np.float32)
    scales = np.asarray(scales, dtype=np.float64)
    result = {}
    for name, encoder in (("z_r", model.encoder_r), ("z_n", model.encoder_n)):
        jacobian = np.asarray(backend.batch_jacobian(lambda v, e=encoder: e(v, training=False), x))
        sensitivity = np.linalg.norm(jacobian, axis=1).mean(axis=0) * scales  # (d,)
        total = sensitivity.sum()
        result[name] = {
            group: float(sensitivity[idx].sum() / total) if total > 0 else float("nan")
            for group, idx in groups.items()
        }
    return result


def run(
    *,
    method: str = "aat++",
    epochs: int = 8,
    train_samples: int = 20_000,
    test_samples: int = 5_000,
    batch_size: int = 256,
    seed: int = 0,
    verbose: int = 0,
) -> dict:
    """Trains and evaluates one three-way model on the Proposition 1 distribution.

    Returns:
        A dict with the instance, the training history, the evaluation report, the
        exact optima and the reliance shares (see the module docstring).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    for name, value in (("epochs", epochs), ("train_samples", train_samples), ("test_samples", test_samples)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    dist, eps = theory.PROPOSITION_1, theory.PROPOSITION_1_EPS
    x_train, y_train = dist.sample(train_samples, seed=seed)
    x_test, y_test = dist.sample(test_samples, seed=seed + 1)
    x_train, x_test = x_train.astype("float32"), x_test.astype("float32")
    y_train, y_test = theory.labels_to_indices(y_train), theory.labels_to_indices(y_test)

    keras.utils.set_random_seed(seed)
    model = ThreeWayModel(mlp_encoder(dist.d, name="encoder_r"), mlp_encoder(dist.d, name="encoder_n"), num_classes=2)
    # ε = 0.02 with 10 steps of 0.005: the ℓ∞ budget of Proposition 1, inputs unbounded.
    attack = PGD(norm="linf", eps=float(eps), step_size=float(eps) / 4, steps=10, bounds=None)
    # Gaussian inputs, not images: the model's default input range [0, 1] does not apply.
    model.compile(optimizer=keras.optimizers.Adam(1e-2), method=method, attack=attack, input_range=None)
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=verbose)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    report = evaluate(model, (x_test, y_test), attack, batch_size=1000)
    eval_seconds = time.perf_counter() - start

    h0, h1 = theory.h0(dist), theory.h1(dist, eps=eps)
    optima = {
        "bayes_standard": exact.bayes_accuracy(dist),
        "best_robust": exact.best_robust_accuracy(dist, eps=eps),
        "h0_robust": exact.robust_accuracy(h0, dist, eps=eps),
        "h1_standard": exact.standard_accuracy(h1, dist),
    }
    robust_coordinates = exact.robust_features(dist, eps=eps)
    groups = {
        "non_robust": [i for i in range(dist.d) if i not in robust_coordinates],
        "robust": robust_coordinates,
    }
    shares = reliance(model, x_test[:1000], [float(e) for e in dist.eta], groups)
    return {
        "method": method,
        "epochs": epochs,
        "train_samples": train_samples,
        "test_samples": test_samples,
        "seed": seed,
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "history": {k: [float(v) for v in values] for k, values in history.history.items()},
        "report": report,
        "optima": optima,
        "reliance": shares,
        "groups": groups,
    }


def _interval(value: float, samples: int) -> str:
    estimate = estimate_from_counts(round(value * samples), samples)
    return f"{100 * value:5.1f} [{100 * estimate.lower:4.1f}, {100 * estimate.upper:5.1f}]"


def format_result(result: dict) -> str:
    """The comparison table printed by ``python -m aatk.toy``."""
    report: EvaluationReport = result["report"]
    optima = result["optima"]
    n = result["test_samples"]
    rows = [
        ("S   standard way, clean", report["S"], optima["bayes_standard"], "Bayes-optimal accuracy (= h0, Eq. 17)"),
        ("R   robust way, clean", report["R"], optima["h1_standard"], "h1's accuracy (Eq. 18)"),
        ("R_adv  robust way under attack", report["R_adv"], optima["best_robust"], "best robust accuracy (= h1)"),
        ("N_adv  non-robust way under attack", report["N_adv"], optima["h0_robust"], "h0 under attack"),
        ("S_adv_s  standard way under attack", report["S_adv_s"], optima["h0_robust"], "h0 under attack"),
    ]
    group_names = {
        key: ", ".join(f"x{i + 1}" for i in idx) for key, idx in result["groups"].items()
    }
    lines = [
        f"{result['method'].upper()} on the Proposition 1 distribution (Eq. 16: p = 0.8, d = 7, "
        f"linf eps = 0.02, unbounded inputs)",
        f"{result['train_samples']:,} training samples, {result['epochs']} epochs in "
        f"{result['train_seconds']:.1f} s; {n:,} test samples evaluated in {result['eval_seconds']:.1f} s",
        "",
        f"{'figure':38s} {'measured % [95% CI]':22s} {'exact optimum %':16s} reference",
    ]
    for label, measured, optimum, reference in rows:
        lines.append(f"{label:38s} {_interval(measured, n):22s} {100 * float(optimum):8.3f}         {reference}")
    lines.append(
        f"{'DIA = R_adv - N_adv':38s} {100 * report['DIA']:5.1f}{'':17s} "
        f"{100 * float(optima['best_robust'] - optima['h0_robust']):8.3f}         best possible"
    )
    lines += [
        "",
        "Reliance of each representation on the coordinates (share of E||dz/dx_i||*eta_i):",
        f"{'':8s} non-robust ({group_names['non_robust']})   robust ({group_names['robust']})",
    ]
    for name in ("z_r", "z_n"):
        shares = result["reliance"][name]
        lines.append(f"{name:8s} {100 * shares['non_robust']:10.1f}%{'':17s} {100 * shares['robust']:8.1f}%")
    lines += ["", "Full evaluation (aatk.evaluate):", str(report)]
    return "\n".join(lines)


def _to_json(result: dict) -> dict:
    out = dict(result)
    out["report"] = dict(result["report"])
    out["optima"] = {k: {"exact": str(v), "float": float(v)} for k, v in result["optima"].items()}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m aatk.toy``); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m aatk.toy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="aat++", choices=sorted(METHODS))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--train-samples", type=int, default=20_000)
    parser.add_argument("--test-samples", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--verbose", type=int, default=0, help="Keras verbosity during fit (0, 1 or 2)")
    args = parser.parse_args(argv)
    try:
        result = run(
            method=args.method,
            epochs=args.epochs,
            train_samples=args.train_samples,
            test_samples=args.test_samples,
            seed=args.seed,
            verbose=args.verbose,
        )
    except ValueError as error:
        print(f"aatk.toy: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(_to_json(result), indent=2) if args.json else format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
