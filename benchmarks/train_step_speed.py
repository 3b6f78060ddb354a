"""Speed of the train step on the MNIST small CNN: ST, AT, AAT, AAT++ (images/s).

Also measures, in the same run, the two parts of an AAT step that cannot be avoided —
one PGD attack on the standard way and one three-way ST step — and reports the ratio
of an AAT step to their sum (1.0 would mean AAT costs nothing beyond them).

Run ``python benchmarks/train_step_speed.py [--batch-size 128] [--steps 20]``; it prints
a Markdown table. Inputs are random images of MNIST's shape: speed does not depend on
the pixel values. The training attack is Table 4a's (5 steps). Figures are recorded in
docs/development.md with the machine they came from.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import aatk  # noqa: E402
from aatk import backbones  # noqa: E402
from aatk.configs import ATTACK_PRESETS  # noqa: E402
from aatk.objectives import cross_entropy  # noqa: E402

METHODS = {"ST (three-way, Eq. 6)": "st", "AT (one-way, Madry)": "1way-at", "AAT (Eq. 8)": "aat", "AAT++ (Eq. 11)": "aat++"}


def _model(method: str, attack: aatk.PGD) -> aatk.ThreeWayModel:
    keras.utils.set_random_seed(0)
    model = aatk.ThreeWayModel(backbones.small_cnn(), backbones.small_cnn(), num_classes=10)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), method=method, attack=attack if method != "st" else None)
    return model


def _time_fit(model: aatk.ThreeWayModel, x: np.ndarray, y: np.ndarray, batch_size: int, steps: int) -> float:
    """Seconds per train step, after a warm-up that traces the step."""
    warm = 3 * batch_size
    model.fit(x[:warm], y[:warm], batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
    count = steps * batch_size
    start = time.perf_counter()
    model.fit(x[:count], y[:count], batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
    return (time.perf_counter() - start) / steps


def _time_attack(model: aatk.ThreeWayModel, attack: aatk.PGD, x: np.ndarray, y: np.ndarray, batch_size: int, steps: int) -> float:
    """Seconds per PGD attack on the standard way of one batch (inference mode)."""

    @tf.function(reduce_retracing=True)
    def run(inputs, labels):
        return attack.perturb(lambda v: cross_entropy(model(v, training=False), labels), inputs)

    batches = [(tf.constant(x[i * batch_size : (i + 1) * batch_size]), tf.constant(y[i * batch_size : (i + 1) * batch_size])) for i in range(steps)]
    run(*batches[0]).numpy()
    start = time.perf_counter()
    for batch in batches:
        run(*batch).numpy()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = (args.steps + 3) * args.batch_size
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, size=n).astype(np.int32)
    attack = aatk.PGD(**ATTACK_PRESETS["mnist-linf-train"])

    seconds = {label: _time_fit(_model(method, attack), x, y, args.batch_size, args.steps) for label, method in METHODS.items()}
    attack_seconds = _time_attack(_model("st", attack), attack, x, y, args.batch_size, args.steps)
    parts = seconds["ST (three-way, Eq. 6)"] + attack_seconds

    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, Keras {keras.__version__}; "
          f"batch {args.batch_size}, {args.steps} timed steps; training attack: PGD linf 5 steps")
    print()
    print("| train step | ms / step | images / s |")
    print("|---|---|---|")
    for label, value in seconds.items():
        print(f"| {label} | {1e3 * value:.1f} | {args.batch_size / value:,.0f} |")
    print(f"| one PGD attack on the standard way (5 steps) | {1e3 * attack_seconds:.1f} | {args.batch_size / attack_seconds:,.0f} |")
    print()
    print(f"AAT step / (PGD attack + three-way ST step) = {seconds['AAT (Eq. 8)'] / parts:.2f}")


if __name__ == "__main__":
    main()
