"""Training runs from a configuration: resumable, reproducible, logged.

A run lives in one folder: the resolved configuration (``config.json``), a
checkpoint written atomically at the end of every epoch (``checkpoint.keras``
plus ``state.json``), the per-epoch log (``log.csv``) and, at the end, the
trained model (``model.keras``). Starting the same command again resumes from
the last finished epoch and ends with the same weights as an uninterrupted run:
the data order and augmentation of every epoch are derived from (seed, epoch)
alone, the optimizer state and the layers' random-number state are part of the
checkpoint, and TensorFlow runs with deterministic ops.

Without TensorFlow (``KERAS_BACKEND=jax`` on a machine that has only JAX) MNIST
still trains, from NumPy arrays, each epoch's order drawn by :func:`epoch_order`;
that order differs from the ``tf.data`` one, so such a run is reproducible but
not batch-for-batch identical to a run where TensorFlow is installed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

import keras
import numpy as np

from aatk import backbones, backend, datasets
from aatk.configs import PSEUDO_INPUT_METHOD, Config
from aatk.model import ThreeWayModel

__all__ = ["build_model", "build_optimizer", "epoch_batches", "epoch_order", "evaluate_run", "load_run_config", "train", "RunError"]


class RunError(ValueError):
    """A run folder cannot be used (it holds a different configuration, or is damaged)."""


def build_model(config: Config) -> ThreeWayModel:
    """Two encoders of the configured backbone, combined into a :class:`ThreeWayModel`."""
    meta = datasets.info(config.dataset)
    encoders = [backbones.get(config.backbone, input_shape=meta.image_shape, name=name) for name in ("encoder_r", "encoder_n")]
    return ThreeWayModel(*encoders, num_classes=meta.num_classes)


def build_optimizer(config: Config, *, steps_per_epoch: int) -> keras.optimizers.SGD:
    """SGD with momentum, weight decay and a piecewise-constant learning rate (Table 5).

    The rate is multiplied by ``gamma`` at each milestone epoch. Keras applies weight
    decay decoupled from the gradient (w ← w − lr·wd·w), where PyTorch's SGD adds
    wd·w to the gradient before momentum; with momentum 0.9 the two differ slightly.
    """
    boundaries = [m * steps_per_epoch for m in config.milestones]
    values = [config.learning_rate * config.gamma**i for i in range(len(boundaries) + 1)]
    schedule = (
        keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values) if boundaries else config.learning_rate
    )
    return keras.optimizers.SGD(
        learning_rate=schedule, momentum=config.momentum, weight_decay=config.weight_decay or None
    )


def _tensorflow_or_none():
    try:
        import tensorflow as tf
    except ImportError:
        return None
    return tf


def epoch_order(count: int, *, seed: int, epoch: int) -> np.ndarray:
    """The order of the training examples in one epoch when TensorFlow is absent: a
    permutation drawn from NumPy's generator seeded with (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(count)


def epoch_batches(
    x: np.ndarray, y: np.ndarray, *, epochs: range, batch_size: int, seed: int, augment: bool
):
    """The training batches of the given epochs (a ``tf.data.Dataset``), each epoch's order
    a function of (seed, epoch).

    Because nothing depends on earlier epochs, a resumed run sees exactly the batches an
    uninterrupted run would.
    """
    import tensorflow as tf

    x_tensor, y_tensor = tf.constant(x), tf.constant(y, dtype=tf.int32)
    count = int(x.shape[0])

    def one_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(count), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        indices = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
        batches = indices.map(lambda idx: (tf.gather(x_tensor, idx), tf.gather(y_tensor, idx)))
        if augment:
            batches = batches.enumerate().map(
                lambda step, batch: (
                    datasets.pad_crop_flip(batch[0], seed=tf.stack([epoch * 100_003 + step, tf.cast(seed, tf.int64) + 1])),
                    batch[1],
                )
            )
        return batches

    return tf.data.Dataset.from_tensor_slices(tf.constant(list(epochs), dtype=tf.int64)).flat_map(one_epoch).prefetch(2)


def _fingerprint(config: Config) -> str:
    """Identifies a run's configuration. The epoch count is left out so that a finished
    run can be trained further with a larger ``--epochs`` (the milestones are absolute)."""
    described = config.as_dict()
    described.pop("source", None)
    described["training"].pop("epochs", None)
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def _atomic_write(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.chmod(temporary, 0o644)  # mkstemp creates 0600; these are ordinary result files
    os.replace(temporary, path)


def _seed_generators(model: ThreeWayModel) -> dict[str, keras.random.SeedGenerator]:
    """Every random-number generator of a model (dropout layers, the attack's random start).

    Keras saves a SeedGenerator's state with the weights but re-seeds it on loading, so
    a resumed run must restore these states itself to draw the same dropout masks.
    """
    generators = {}
    for index, layer in enumerate(model._flatten_layers(include_self=False, recursive=True)):
        generator = getattr(layer, "seed_generator", None)
        if isinstance(generator, keras.random.SeedGenerator):
            generators[f"{index}:{layer.name}"] = generator
    if model.attack is not None and model.attack.random_start:
        generators["attack"] = model.attack_seed_generator  # the training attack's random starts
    return generators


def _rng_state(model: ThreeWayModel) -> dict[str, list[int]]:
    return {key: [int(v) for v in np.asarray(g.state.value)] for key, g in _seed_generators(model).items()}


def _restore_rng_state(model: ThreeWayModel, state: dict[str, list[int]]) -> None:
    generators = _seed_generators(model)
    if set(generators) != set(state):
        raise RunError(
            f"the checkpoint's random-number state does not match the model "
            f"({sorted(state)} vs {sorted(generators)}); delete the run folder to start over"
        )
    for key, value in state.items():
        generators[key].state.assign(np.asarray(value, dtype=generators[key].state.dtype))


class _EpochCheckpoint(keras.callbacks.Callback):
    """Saves the model and the number of finished epochs after every epoch, atomically."""

    def __init__(self, out: Path, fingerprint: str) -> None:
        super().__init__()
        self.out, self.fingerprint = out, fingerprint

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        temporary = self.out / ".checkpoint.tmp.keras"
        self.model.save(temporary)
        os.replace(temporary, self.out / "checkpoint.keras")
        state = {"epochs_done": epoch + 1, "fingerprint": self.fingerprint, "rng": _rng_state(self.model)}
        _atomic_write(self.out / "state.json", json.dumps(state, indent=2))


def train(config: Config, *, out: str | Path, data_dir: str | None = None, verbose: int | str = "auto") -> ThreeWayModel:
    """Trains (or resumes training of) the configured model in the run folder ``out``.

    Args:
        config: The validated configuration.
        out: The run folder (created if needed).
        data_dir: Folder of the original dataset files; default ``AATK_DATA_DIR`` or tfds.
        verbose: Keras progress-bar verbosity.

    Returns:
        The trained model (also saved as ``out/model.keras``).

    Raises:
        RunError: If ``out`` holds a run of a different configuration.
    """
    if config.method == PSEUDO_INPUT_METHOD:
        raise RunError(
            f"method {PSEUDO_INPUT_METHOD!r} trains on pseudo-inputs built from two trained runs: "
            "use 'aatk pseudo-inputs --config ... --st-run ... --at-run ...'"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = _fingerprint(config)
    state_path = out / "state.json"
    epochs_done = 0
    if state_path.exists():
        state = json.loads(state_path.read_text())
        if state.get("fingerprint") != fingerprint:
            raise RunError(
                f"{out} holds a run of a different configuration (fingerprint {state.get('fingerprint')}, "
                f"this one {fingerprint}); choose another --out or delete the folder"
            )
        epochs_done = int(state["epochs_done"])
        rng_state = state.get("rng", {})
    _atomic_write(out / "config.json", json.dumps(config.as_dict(), indent=2))

    keras.utils.set_random_seed(config.seed)
    tf = _tensorflow_or_none()
    if tf is not None:
        tf.config.experimental.enable_op_determinism()
    elif config.dataset == "cifar10":
        raise RunError("CIFAR-10 training augments its batches in a tf.data pipeline: it needs TensorFlow installed")
    x, y = datasets.load_arrays(config.dataset, "train", data_dir=data_dir, subset=config.subset or None)
    steps_per_epoch = math.ceil(len(x) / config.batch_size)
    if epochs_done:
        model = keras.models.load_model(out / "checkpoint.keras")
        _restore_rng_state(model, rng_state)
    else:
        model = build_model(config)
        model.compile(
            optimizer=build_optimizer(config, steps_per_epoch=steps_per_epoch),
            method=config.method,
            attack=config.train_pgd(),  # unused by methods without adversarial terms
            jit_compile=backend.JIT_TRAIN_STEP,  # per backend, by measurement (benchmarks/)
        )
    # Clean validation on the test split after every epoch (cheap: no attack); the attacks
    # are for ``aatk evaluate``.
    x_val, y_val = datasets.load_arrays(
        config.dataset, "test", data_dir=data_dir, subset=min(config.subset, 10_000) or None
    )
    callbacks = [keras.callbacks.CSVLogger(str(out / "log.csv"), append=True), _EpochCheckpoint(out, fingerprint)]
    if epochs_done == 0 and (out / "log.csv").exists():
        (out / "log.csv").unlink()  # a run killed during its first epoch starts over
    for epoch in range(epochs_done, config.epochs):
        # One fit call per epoch, with that epoch's batches: what the model sees never depends
        # on how Keras reuses iterators across epochs, so resuming reproduces the batches exactly.
        if tf is not None:
            batches = epoch_batches(
                x, y, epochs=range(epoch, epoch + 1), batch_size=config.batch_size,
                seed=config.seed, augment=config.dataset == "cifar10",
            )
            data = {"x": batches}
        else:  # NumPy only (e.g. JAX on a GPU machine): the same kind of order, from NumPy's generator
            order = epoch_order(len(x), seed=config.seed, epoch=epoch)
            data = {"x": x[order], "y": y[order], "batch_size": config.batch_size}
        model.fit(
            **data,
            epochs=epoch + 1,
            initial_epoch=epoch,
            steps_per_epoch=steps_per_epoch,
            validation_data=(x_val, y_val),
            validation_batch_size=500,
            shuffle=False,  # the order is epoch_batches'
            callbacks=callbacks,
            verbose=verbose,
        )
    temporary = out / ".model.tmp.keras"
    model.save(temporary)
    os.replace(temporary, out / "model.keras")
    return model


def load_run_config(run: str | Path) -> Config:
    """The validated configuration of a run folder written by :func:`train`.

    Raises:
        RunError: If the folder has no ``config.json`` or no finished ``model.keras``.
    """
    from aatk.configs import validate

    run = Path(run)
    if not (run / "config.json").exists():
        raise RunError(f"{run} is not a run folder (no config.json): run 'aatk train' first")
    if not (run / "model.keras").exists():
        raise RunError(f"{run} has no model.keras: run 'aatk train' to the end first")
    resolved = json.loads((run / "config.json").read_text())
    resolved.pop("source", None)
    return validate(resolved, source=str(run / "config.json"))


def evaluate_run(
    run: str | Path,
    *,
    data_dir: str | None = None,
    subset: int | None = None,
    attacks: list[str] | None = None,
    batch_size: int = 500,
    adaptive: bool = True,
) -> dict[str, dict]:
    """Evaluates a finished run under its configuration's test attacks and writes the results.

    For every attack ``name`` it writes ``eval-<name>.json`` (the figures, the attack's
    configuration and the number of test examples) and ``eval-<name>.md`` in the run folder.

    Args:
        run: The run folder.
        data_dir: Folder of the original dataset files (default ``AATK_DATA_DIR`` or tfds).
        subset: Evaluate on the first N test examples (default: all).
        attacks: Names of the test attacks to run (default: all of the configuration's).
        batch_size: Evaluation batch size.
        adaptive: Also run the adaptive attack on the detector.

    Returns:
        attack name → the record written to ``eval-<name>.json``, plus the
        :class:`~aatk.EvaluationReport` under ``"report"``.

    Raises:
        RunError: If ``run`` is not a finished run folder.
        ValueError: If an attack is not one of the run's test attacks.
    """
    from aatk.evaluation import evaluate

    run = Path(run)
    config = load_run_config(run)
    configured = config.test_pgds()
    if attacks:
        unknown = sorted(set(attacks) - set(configured))
        if unknown:
            raise ValueError(f"attack {unknown[0]!r} is not a test attack of this run; known: {sorted(configured)}")
        configured = {name: configured[name] for name in attacks}
    model = keras.models.load_model(run / "model.keras")
    x, y = datasets.load_arrays(config.dataset, "test", data_dir=data_dir, subset=subset)
    records = {}
    for name, attack in configured.items():
        report = evaluate(model, (x, y), attack, batch_size=batch_size, adaptive=adaptive)
        record = {
            "run": config.name,
            "method": config.method if isinstance(config.method, str) else list(config.method),
            "attack": name,
            "attack_config": attack.get_config(),
            "samples": report.samples,
            "epochs": config.epochs,
            "figures": dict(report),
        }
        _atomic_write(run / f"eval-{name}.json", json.dumps(record, indent=2))
        _atomic_write(run / f"eval-{name}.md", f"# {config.name} under {name}\n\n{report.to_markdown()}\n")
        records[name] = {**record, "report": report}
    return records
