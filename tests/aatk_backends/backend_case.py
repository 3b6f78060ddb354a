"""Trains one tiny ThreeWayModel and saves its per-epoch losses and final weights.

Run as a script in a fresh process, because the Keras backend and the devices are
fixed when a process starts::

    KERAS_BACKEND=jax python backend_case.py OUT.npz --method aat++ --distribution data_parallel

The initial weights come from NumPy with a fixed seed, so every backend and device
set-up starts from the same point; nothing random happens during training (no
dropout, no random start), so the runs must agree up to floating-point rounding.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--method", default="aat++")
    parser.add_argument("--distribution", choices=("none", "mirrored", "data_parallel"), default="none")
    parser.add_argument("--devices", type=int, default=2, help="logical CPU devices to create")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    backend_name = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend_name == "jax":
        os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.devices}"
    import keras
    import numpy as np

    strategy = None
    if backend_name == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.devices)
        if args.distribution == "mirrored":
            strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(args.devices)])
    elif args.distribution == "data_parallel":
        import jax

        devices = jax.devices()
        assert len(devices) == args.devices, devices
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    if args.distribution == "mirrored" and backend_name != "tensorflow":
        raise SystemExit("mirrored needs the TensorFlow backend")

    import aatk

    rng = np.random.default_rng(0)
    x = rng.random((64, 6), dtype=np.float32)
    y = (x[:, :3].sum(axis=1) > x[:, 3:].sum(axis=1)).astype(np.int32) + (x[:, 0] > 0.8).astype(np.int32)

    def build():
        def encoder():
            return keras.Sequential(
                [keras.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(8, activation="relu")]
            )

        model = aatk.ThreeWayModel(encoder(), encoder(), num_classes=3)
        weights = [rng_weights.normal(0.0, 0.5, size=w.shape).astype(np.float32) for w in model.get_weights()]
        model.set_weights(weights)
        attack = aatk.PGD(norm="linf", eps=0.15, step_size=0.05, steps=3, bounds=(0.0, 1.0))
        model.compile(optimizer=keras.optimizers.SGD(0.2, momentum=0.9), method=args.method, attack=attack)
        return model

    rng_weights = np.random.default_rng(1)
    if strategy is not None:
        with strategy.scope():
            model = build()
    else:
        model = build()
    history = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, shuffle=False, verbose=0)
    arrays = {f"history_{key}": np.asarray(value, dtype=np.float64) for key, value in history.history.items()}
    arrays.update({f"weight_{i}": np.asarray(w) for i, w in enumerate(model.get_weights())})
    np.savez(args.out, **arrays)


if __name__ == "__main__":
    main()
