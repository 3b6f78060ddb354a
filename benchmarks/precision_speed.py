"""Train-step speed in float32 and in Keras's mixed_bfloat16 policy, per method (MNIST small CNN).

``python benchmarks/precision_speed.py [--batch-size 256] [--steps 5] [--repeats 3]``

Each method of Table 3 is trained with the shipped MNIST recipe (PyTorch initialisation,
``aatk.optim.TorchSGD``, training attack ``mnist-linf-pgd5``) on random MNIST-shaped
inputs, under TensorFlow (the CPU backend), once per dtype policy. Each figure is the
best of ``--repeats`` windows of ``--steps`` steps after a warm-up that compiles the step:
images/s from the fastest window's wall time, and the least process CPU time per step
(summed over threads), which another process on the machine disturbs far less.
bfloat16 is fast on a CPU only where oneDNN has bf16 kernels for it (AVX512-BF16 or AMX);
elsewhere it can be slower than float32. Prints a Markdown table (docs/development.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

METHODS = {
    "st": "ST (three-way, Eq. 6)",
    "1way-at-half": "AT (one-way, half-half)",
    "aat": "AAT (Eq. 8)",
    "aat++": "AAT++ (Eq. 11)",
}
DTYPES = ("float32", "mixed_bfloat16")


def measure(*, method: str, dtype: str, batch_size: int, steps: int, repeats: int) -> tuple[float, float]:
    """(wall, CPU) seconds per train step of ``method`` under the dtype policy ``dtype``."""
    import keras
    import numpy as np

    import aatk
    from aatk import backbones
    from aatk.configs import ATTACK_PRESETS
    from aatk.optim import TorchSGD
    from aatk.training import dtype_policy

    keras.utils.set_random_seed(0)
    with dtype_policy(dtype):
        model = aatk.ThreeWayModel(
            backbones.small_cnn(init="pytorch", name="r"), backbones.small_cnn(init="pytorch", name="n"),
            num_classes=10, init="pytorch",
        )
    model.compile(
        optimizer=TorchSGD(learning_rate=0.01, momentum=0.9, weight_decay=5e-4),
        method=method,
        attack=aatk.PGD(**ATTACK_PRESETS["mnist-linf-pgd5"], seed=0),
    )
    rng = np.random.default_rng(0)
    x = rng.random((steps * batch_size, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, size=steps * batch_size).astype(np.int32)
    model.fit(x[: 2 * batch_size], y[: 2 * batch_size], batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
    windows = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
        windows.append(((time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps))
    return min(w for w, _ in windows), min(c for _, c in windows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    args = parser.parse_args(argv)
    for name in ("batch_size", "steps", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    rows = []
    for method in args.methods:
        timings = {
            dtype: measure(method=method, dtype=dtype, batch_size=args.batch_size, steps=args.steps, repeats=args.repeats)
            for dtype in DTYPES
        }
        f32, bf16 = timings["float32"], timings["mixed_bfloat16"]
        rows.append(
            f"| {METHODS[method]} | {args.batch_size / f32[0]:,.0f} | {args.batch_size / bf16[0]:,.0f} "
            f"| {f32[0] / bf16[0]:.2f} | {1e3 * f32[1]:,.0f} | {1e3 * bf16[1]:,.0f} | {f32[1] / bf16[1]:.2f} |"
        )
        print(f"{method}: {timings}", flush=True)
    print(
        f"\nMachine: {platform.machine()}, {os.cpu_count()} CPU cores; Keras {keras.__version__}, "
        f"TensorFlow {tf.__version__}. Batch {args.batch_size}, best of {args.repeats} windows of {args.steps} steps.\n"
    )
    print("| train step | float32 (images/s) | mixed_bfloat16 (images/s) | speed-up (wall) "
          "| float32 (ms CPU/step) | mixed_bfloat16 (ms CPU/step) | speed-up (CPU) |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
