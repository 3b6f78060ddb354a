"""Before/after: the train step's speed of the aatk found first on ``sys.path``.

Uses only the API every version of aatk has (``ThreeWayModel``, ``compile``, ``fit``),
so the same script measures two checkouts: ``PYTHONPATH=<checkout> python
benchmarks/compare_commits.py``. Prints one JSON line per method: the best wall time
and the least process CPU time per step (TensorFlow, graph mode without XLA, batch 128,
MNIST small CNN, the 5-step training attack), over ``--repeats`` windows of ``--steps``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=["st", "1way-at", "aat", "aat++"])
    args = parser.parse_args()
    import keras
    import numpy as np

    import aatk
    from aatk import backbones
    from aatk.configs import ATTACK_PRESETS

    batch = 128
    rng = np.random.default_rng(0)
    x = rng.random((args.steps * batch, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, size=args.steps * batch).astype(np.int32)
    attack = aatk.PGD(**ATTACK_PRESETS["mnist-linf-train"])
    for method in args.methods:
        keras.utils.set_random_seed(0)
        model = aatk.ThreeWayModel(backbones.small_cnn(), backbones.small_cnn(), num_classes=10)
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), method=method,
                      attack=None if method == "st" else attack, jit_compile=False)
        model.fit(x[: 2 * batch], y[: 2 * batch], batch_size=batch, verbose=0)
        walls, cpus = [], []
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            model.fit(x, y, batch_size=batch, verbose=0, shuffle=False)
            walls.append((time.perf_counter() - wall) / args.steps)
            cpus.append((time.process_time() - cpu) / args.steps)
        print(json.dumps({"aatk": os.path.dirname(os.path.dirname(aatk.__file__)), "method": method,
                          "wall_ms": round(1e3 * min(walls), 1), "cpu_ms": round(1e3 * min(cpus), 1)}), flush=True)


if __name__ == "__main__":
    main()
