"""Training runs from a configuration: resumable, reproducible, logged.

A run lives in one folder ([`aatk.runs`][aatk.runs] describes it and what is guaranteed): the
resolved configuration (``config.json``), a checkpoint written atomically at the end of
every epoch (``checkpoints/epoch-NNNN.keras`` with its record; ``state.json`` names the
newest), the per-epoch log (``log.csv``) and, at the end, the trained model
(``model.keras``). One process at a time works in a folder (a lock), and a folder that
is not a run of the same configuration is refused. Starting the same command again
resumes from the last finished epoch and ends with the same weights as an uninterrupted run:
the data order and augmentation of every epoch are derived from (seed, epoch)
alone, the optimizer state and the layers' random-number state are part of the
checkpoint, and TensorFlow runs with deterministic ops.

Without TensorFlow (``KERAS_BACKEND=jax`` on a machine that has only JAX) both
datasets still train, from NumPy arrays, each epoch's order drawn by
[`epoch_order`][aatk.training.epoch_order] and CIFAR-10's augmentation by
[`aatk.datasets.pad_crop_flip_numpy`][aatk.datasets.pad_crop_flip_numpy]; those
draws differ from the ``tf.data`` ones, so such a run is reproducible but not
batch-for-batch identical to a run where TensorFlow is installed.

Besides ``log.csv`` (the Keras metrics of every epoch plus its ``learning_rate`` — the
rate of its last step — and ``epoch_seconds``), a configuration with
``monitor.subset`` writes ``monitor.csv``: the clean accuracy of each way and the
attacked R_adv, N_adv and DIA on the first test images after every few epochs, the
curves that show whether a long run has converged.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import time
from pathlib import Path

import keras
import numpy as np

from aatk import backbones, backend, datasets
from aatk.attacks import PGD
from aatk.configs import (
    ATTACK_PRESETS,
    PSEUDO_INPUT_METHOD,
    Config,
    attack_from_spec,
    attack_settings,
    build_attack,
)
from aatk.model import ThreeWayModel
from aatk.optim import PiecewiseConstantWithWarmup, TorchSGD
from aatk.progress import Progress
from aatk.runs import (
    TENSORBOARD_DIR,
    RunError,
    atomic_write,
    check_run_folder,
    config_fingerprint,
    latest_checkpoint,
    load_model_file,
    locked,
    read_json_file,
    remove_run_files,
    trim_epoch_rows,
    write_checkpoint,
)

__all__ = [
    "MONITOR_FIELDS",
    "RunError",
    "attacked_accuracies",
    "build_model",
    "build_optimizer",
    "chosen_test_attacks",
    "dtype_policy",
    "epoch_batches",
    "epoch_order",
    "evaluate_run",
    "load_run_config",
    "train",
    "with_dtype_policy",
]


@contextlib.contextmanager
def dtype_policy(name: str):
    """Layers created inside the block compute in ``name`` (e.g. ``"mixed_bfloat16"``);
    the global policy is restored afterwards. A saved model keeps each layer's policy."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def with_dtype_policy(model: keras.Model, name: str) -> keras.Model:
    """A copy of ``model`` (same weights) whose every layer computes in the dtype policy ``name``.

    E.g. a model trained under ``"mixed_bfloat16"`` evaluated and attacked in ``"float32"``:
    the weights of a mixed-precision model are float32 already, so nothing is lost.

    Raises:
        ValueError: If ``name`` is not a dtype policy Keras knows.
    """
    try:
        keras.dtype_policies.get(name)
    except (ValueError, TypeError):
        raise ValueError(f"unknown dtype policy {name!r}; e.g. 'float32' or 'mixed_bfloat16'") from None

    def recast(node):
        if isinstance(node, dict):
            if node.get("class_name") == "DTypePolicy" and isinstance(node.get("config"), dict):
                return {**node, "config": {**node["config"], "name": name}}
            return {key: recast(value) for key, value in node.items()}
        if isinstance(node, list):
            return [recast(value) for value in node]
        return node

    config = recast(keras.saving.serialize_keras_object(model))
    with dtype_policy(name):  # for layers whose configuration holds no policy
        copy = keras.saving.deserialize_keras_object(config)
    copy.set_weights(model.get_weights())
    return copy


def build_model(config: Config) -> ThreeWayModel:
    """Two encoders of the configured backbone, combined into a [`ThreeWayModel`][aatk.model.ThreeWayModel],
    initialised as ``training.init`` says and computing in ``training.dtype``."""
    meta = datasets.info(config.dataset)
    with dtype_policy(config.dtype):
        encoders = [
            backbones.get(config.backbone, input_shape=meta.image_shape, init=config.init, name=name)
            for name in ("encoder_r", "encoder_n")
        ]
        return ThreeWayModel(*encoders, num_classes=meta.num_classes, init=config.init)


def build_optimizer(config: Config, *, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """SGD with momentum, weight decay and a piecewise-constant learning rate (Table 5).

    The rate is multiplied by ``gamma`` at the first step of each milestone epoch
    (PyTorch's ``MultiStepLR``), after a linear warm-up over ``training.warmup_steps``
    steps if there is one
    ([`aatk.optim.PiecewiseConstantWithWarmup`][aatk.optim.PiecewiseConstantWithWarmup]).
    ``training.optimizer = "sgd-pytorch"`` is ``torch.optim.SGD``'s update, weight decay
    added to the gradient before momentum ([`aatk.optim.TorchSGD`][aatk.optim.TorchSGD]), as
    the paper's code ran; ``"sgd-keras"`` is ``keras.optimizers.SGD``, whose decoupled weight
    decay (w ← w − lr·wd·w) is about ten times weaker at momentum 0.9.
    ``training.clipnorm`` > 0 rescales a step's gradient to that global norm when it is longer
    (``torch.nn.utils.clip_grad_norm_``'s rule; not in the paper), before the decay is added.
    """
    boundaries = [m * steps_per_epoch for m in config.milestones]
    values = [config.learning_rate * config.gamma**i for i in range(len(boundaries) + 1)]
    schedule = (
        PiecewiseConstantWithWarmup(boundaries=boundaries, values=values, warmup_steps=config.warmup_steps)
        if boundaries or config.warmup_steps
        else config.learning_rate
    )
    clipping = {"global_clipnorm": config.clipnorm} if config.clipnorm else {}
    if config.optimizer == "sgd-pytorch":
        return TorchSGD(learning_rate=schedule, momentum=config.momentum, weight_decay=config.weight_decay, **clipping)
    return keras.optimizers.SGD(
        learning_rate=schedule, momentum=config.momentum, weight_decay=config.weight_decay or None, **clipping
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


def _numpy_epoch_batches(
    x: np.ndarray, y: np.ndarray, *, epochs: range, batch_size: int, seed: int, augment: bool
):
    """The batches of the given epochs without TensorFlow: a generator over NumPy arrays,
    each epoch's order from [`epoch_order`][aatk.training.epoch_order] and CIFAR-10's
    augmentation drawn from (seed, epoch), so that, as with
    [`epoch_batches`][aatk.training.epoch_batches], a resumed run sees exactly the batches an
    uninterrupted one would."""
    for epoch in epochs:
        order = epoch_order(len(x), seed=seed, epoch=epoch)
        x_epoch, y_epoch = x[order], y[order]
        if augment:
            x_epoch = datasets.pad_crop_flip_numpy(x_epoch, rng=np.random.default_rng([seed, epoch, 1]))
        for start in range(0, len(x_epoch), batch_size):
            yield x_epoch[start : start + batch_size], y_epoch[start : start + batch_size]


def _say(verbose: int | str, message: str) -> None:
    """Prints a line about the run unless Keras's progress output is off (``verbose=0``)."""
    if verbose not in (0, "0"):
        print(message, flush=True)


def _tensorboard_callback(log_dir: Path) -> keras.callbacks.Callback:
    """Keras's TensorBoard callback, continuing a resumed run's step count.

    Keras's callback writes through ``tf.summary``, which needs TensorFlow and the
    ``tensorboard`` package whatever the backend: without them, a clear error before
    training starts rather than a crash after the first epoch.
    """
    try:
        import importlib

        importlib.import_module("tensorboard")  # tf.summary's writers live in this package
        import tensorflow as tf

        tf.summary.create_file_writer  # noqa: B018  (an AttributeError without tensorboard)
    except (ImportError, AttributeError):
        raise RunError(
            "TensorBoard logging needs the tensorflow and tensorboard packages "
            "(pip install tensorflow tensorboard); train without --tensorboard, or install them"
        ) from None
    # Per-epoch summaries only: their step is the epoch number, which a resumed fit
    # continues (initial_epoch), so the curves of a resumed run join up.
    return keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False, update_freq="epoch")


class _TestSplitAccuracy(keras.callbacks.Callback):
    """Adds the clean test-split figures of every way (``test_acc_s``, ``test_acc_r``,
    ``test_acc_n``, ``test_loss`` …) to each epoch's logs, hence to ``log.csv``.

    Not Keras's ``validation_data``: it would log the test split as ``val_*``, a name that
    promises a held-out validation split these runs do not have.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, *, batch_size: int = 500) -> None:
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        figures = self.model.evaluate(self.x, self.y, batch_size=self.batch_size, verbose=0, return_dict=True)
        logs.update({f"test_{key}": float(value) for key, value in figures.items()})


LEGACY_TEST_PREFIX = "val_"
"""The prefix of the test-split columns in ``log.csv`` files of runs started before they
were named ``test_*``; a resumed run renames them."""


class _EpochLog(keras.callbacks.Callback):
    """Writes every finished epoch's logs to ``log.csv`` (one row per epoch, ``epoch``
    counted from 0 as Keras does, then the logs' keys in sorted order).

    Unlike ``keras.callbacks.CSVLogger`` in append mode, it rewrites the whole file with
    the union of the columns, so a resumed run whose logs gained or renamed a column (the
    legacy ``val_*`` test-split columns) still gives one consistent table.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        rows = [
            {(f"test_{key[len(LEGACY_TEST_PREFIX):]}" if key.startswith(LEGACY_TEST_PREFIX) else key): value
             for key, value in row.items()}
            for row in _read_csv(self.path)
            if int(row["epoch"]) < epoch
        ]
        rows.append({"epoch": epoch, **{key: _csv_value(value) for key, value in (logs or {}).items()}})
        keys = sorted({key for row in rows for key in row} - {"epoch"})
        _write_csv(self.path, rows, ("epoch", *keys))


def _csv_value(value) -> str:
    """A log value as ``log.csv`` stores it: a float's shortest exact decimal (as
    ``keras.callbacks.CSVLogger`` wrote it), anything else as text."""
    array = np.asarray(value)
    if array.ndim == 0 and np.issubdtype(array.dtype, np.number):
        return repr(float(array))
    return str(value)


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


class _EpochFacts(keras.callbacks.Callback):
    """Adds the epoch's learning rate and wall time to fit's logs (hence to ``log.csv``).

    ``learning_rate`` is the rate of the epoch's last optimizer step, so a warm-up that
    ends inside the first epoch shows as the full rate there.
    """

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        optimizer = self.model.optimizer
        rate = optimizer._learning_rate  # a float or a schedule of the step index
        if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
            last_step = max(int(np.asarray(optimizer.iterations.value)) - 1, 0)
            rate = rate(last_step)
        logs["learning_rate"] = float(np.asarray(rate))
        logs["epoch_seconds"] = round(time.perf_counter() - self._start, 3)


MONITOR_FIELDS = ("epoch", "attack", "samples", "S", "R", "N", "R_adv", "N_adv", "DIA")
"""Columns of a run's ``monitor.csv``; a way the run does not train is left empty."""


def attacked_accuracies(
    model: ThreeWayModel, x: np.ndarray, y: np.ndarray, attack: PGD, *, ways: tuple[str, ...], batch_size: int = 500
) -> dict[str, float]:
    """Clean accuracy of every way and attacked accuracy of ``ways``, each way under an
    attack on its own loss: the S, R, N, R_adv, N_adv and DIA of Tables 1–3, without the
    standard-way and detector attacks of [`aatk.evaluate`][aatk.evaluation.evaluate] (cheap enough to run
    after every epoch).

    Returns:
        ``S``, ``R``, ``N`` and, for the attacked ways, ``R_adv`` / ``N_adv``; ``DIA``
        when both are there. Fractions in [0, 1].
    """
    from aatk.model import WAYS

    correct = {key: 0 for key in WAYS}
    attacked = {way: 0 for way in ways}
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        logits = model.way_logits(xb, ways=WAYS, training=False)
        for way in WAYS:
            correct[way] += int(np.sum(np.argmax(np.asarray(logits[way]), axis=-1) == yb))
        for way in ways:
            adversarial = attack(model, xb, yb, way=way)
            predicted = np.argmax(np.asarray(model(adversarial, training=False, way=way)), axis=-1)
            attacked[way] += int(np.sum(predicted == yb))
    count = len(x)
    figures = {"S": correct["standard"] / count, "R": correct["robust"] / count, "N": correct["non_robust"] / count}
    short = {"robust": "R_adv", "non_robust": "N_adv", "standard": "S_adv"}
    figures.update({short[way]: attacked[way] / count for way in ways})
    if "R_adv" in figures and "N_adv" in figures:
        figures["DIA"] = figures["R_adv"] - figures["N_adv"]
    return figures


class _AttackMonitor(keras.callbacks.Callback):
    """After every ``monitor.every`` epochs (and the last), R_adv, N_adv and DIA on the first
    ``monitor.subset`` test images under ``monitor.attack``, appended to ``monitor.csv``.

    The attack restarts from the same random state at every evaluation (seeded by the
    run's seed), so the curves differ only by what training changed; rows of epochs
    beyond the checkpoint (a run killed mid-way) are replaced when the run resumes.
    """

    def __init__(self, out: Path, config: Config, x: np.ndarray, y: np.ndarray) -> None:
        from aatk.experiments import _trained_ways

        super().__init__()
        self.path, self.config, self.x, self.y = out / "monitor.csv", config, x, y
        spec = dict(config.test_attacks[config.monitor_attack])
        spec["seed"] = config.seed
        self.attack = build_attack(spec)
        self.ways = tuple(w for w in _trained_ways(config) if w != "standard")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        done = epoch + 1
        if done % self.config.monitor_every and done != self.config.epochs:
            return
        if self.attack.variables:  # the same random draws at every epoch
            self.attack.reset_seed(self.config.seed)
        figures = attacked_accuracies(self.model, self.x, self.y, self.attack, ways=self.ways)
        row = {"epoch": done, "attack": self.config.monitor_attack, "samples": len(self.y)}
        row.update({key: f"{value:.4f}" for key, value in figures.items()})
        rows = [r for r in _read_csv(self.path) if int(r["epoch"]) < done] + [row]
        _write_csv(self.path, rows, MONITOR_FIELDS)


def _read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


def _write_csv(path: Path, rows: list[dict], fields: tuple[str, ...]) -> None:
    lines = [",".join(fields)] + [",".join(str(row.get(field, "")) for field in fields) for row in rows]
    atomic_write(path, "\n".join(lines) + "\n")


class _EpochCheckpoint(keras.callbacks.Callback):
    """Saves the model after every epoch with its record ([`aatk.runs.write_checkpoint`][aatk.runs.write_checkpoint])."""

    def __init__(self, out: Path, fingerprint: str, *, data_order: str) -> None:
        super().__init__()
        self.out, self.fingerprint, self.data_order = out, fingerprint, data_order

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        write_checkpoint(self.model, self.out, epochs_done=epoch + 1, fingerprint=self.fingerprint,
                         rng=_rng_state(self.model), data_order=self.data_order)


def train(
    config: Config,
    *,
    out: str | Path,
    data_dir: str | None = None,
    verbose: int | str = "auto",
    overwrite: bool = False,
    tensorboard: str | Path | bool | None = None,
) -> ThreeWayModel:
    """Trains (or resumes training of) the configured model in the run folder ``out``.

    The folder is locked for the whole call ([`aatk.runs.locked`][aatk.runs.locked]). A run of the same
    configuration there is resumed from its newest usable checkpoint, its ``log.csv`` and
    ``monitor.csv`` cut back to that checkpoint's epochs.

    Args:
        config: The validated configuration.
        out: The run folder (created if needed): new, empty, or a run of this configuration.
        data_dir: Folder of the original dataset files; default ``AATK_DATA_DIR`` or tfds.
        verbose: Keras progress-bar verbosity.
        overwrite: Start over in ``out`` even if it holds other files or another run:
            aatk's run files there ([`aatk.runs.RUN_FILES`][aatk.runs.RUN_FILES]) are deleted first; other
            files are left alone.
        tensorboard: Also write TensorBoard event files (every epoch's losses, accuracies,
            test-split figures and learning rate): ``True`` for ``out/tensorboard``, or a
            folder. Needs the ``tensorflow`` and ``tensorboard`` packages.

    Returns:
        The trained model (also saved as ``out/model.keras``).

    Raises:
        RunError: If ``out`` is not empty and not a run of this configuration, another
            process works in it, it cannot be written, or it has checkpoints but none usable.

    Examples:
        >>> from aatk.configs import load_config
        >>> config = load_config("configs/mnist_aat.toml", overrides={"training.subset": 512})
        >>> model = train(config, out="runs/mnist_aat_small")  # doctest: +SKIP
    """
    if config.method == PSEUDO_INPUT_METHOD:
        raise RunError(
            f"method {PSEUDO_INPUT_METHOD!r} trains on pseudo-inputs built from two trained runs: "
            "use 'aatk pseudo-inputs --config ... --st-run ... --at-run ...'"
        )
    out = Path(out)
    check_run_folder(out, config, overwrite=overwrite)  # before anything is written there
    out.mkdir(parents=True, exist_ok=True)
    with locked(out, command="aatk train"):
        check_run_folder(out, config, overwrite=overwrite)  # again: another process may have written meanwhile
        if overwrite:
            remove_run_files(out)
        if tensorboard is True:
            tensorboard = out / TENSORBOARD_DIR
        elif tensorboard is False:
            tensorboard = None
        return _train_locked(config, out=out, data_dir=data_dir, verbose=verbose, tensorboard=tensorboard)


def _train_locked(
    config: Config, *, out: Path, data_dir: str | None, verbose: int | str, tensorboard: str | Path | None
) -> ThreeWayModel:
    fingerprint = config_fingerprint(config)
    keras.utils.set_random_seed(config.seed)
    tf = _tensorflow_or_none()
    if tf is not None:
        tf.config.experimental.enable_op_determinism()
    x, y = datasets.load_arrays(config.dataset, "train", data_dir=data_dir, subset=config.subset or None)
    # Written once the data is there: a run that cannot load its data leaves no run behind.
    atomic_write(out / "config.json", json.dumps(config.as_dict(), indent=2))
    steps_per_epoch = math.ceil(len(x) / config.batch_size)
    checkpoint = latest_checkpoint(out, fingerprint=fingerprint, steps_per_epoch=steps_per_epoch,
                                   load=lambda path: load_model_file(path, expected=ThreeWayModel))
    epochs_done = checkpoint.epochs_done if checkpoint else 0
    # tf.data and NumPy draw different epoch orders: a run resumed in the other kind of
    # environment would silently go on with other batches than it started with.
    data_order = "numpy" if tf is None else "tf.data"
    if checkpoint and checkpoint.data_order not in (None, data_order):
        raise RunError(
            f"{out} was trained with {checkpoint.data_order} batches, but this environment "
            + ("has no TensorFlow" if tf is None else "has TensorFlow")
            + f" and would draw {data_order} ones: resume it where it started "
            + ("(install tensorflow)" if tf is None else "(or start over with --overwrite)")
        )
    # Rows of epochs after the checkpoint (a run killed between its log row and its
    # checkpoint, or a damaged newest checkpoint) are trained again: drop them.
    trim_epoch_rows(out / "log.csv", keep=lambda epoch: epoch < epochs_done)  # Keras counts from 0
    trim_epoch_rows(out / "monitor.csv", keep=lambda epoch: epoch <= epochs_done)  # counted from 1
    if checkpoint:
        model = checkpoint.model
        _restore_rng_state(model, checkpoint.rng)
    else:
        model = build_model(config)
        model.compile(
            optimizer=build_optimizer(config, steps_per_epoch=steps_per_epoch),
            method=config.method,
            attack=config.make_train_attack(),  # unused by methods without adversarial terms
            attack_warmup_steps=config.attack_warmup_steps,
            keep=config.keep,
            jit_compile=backend.JIT_TRAIN_STEP,  # per backend, by measurement (benchmarks/)
        )
    if checkpoint and epochs_done < config.epochs:
        _say(verbose, f"aatk: resuming {out} after epoch {epochs_done} of {config.epochs} "
                      f"({checkpoint.path.name})")
    elif checkpoint:
        _say(verbose, f"aatk: {out} has finished all {config.epochs} epochs; nothing to train")
    # Clean accuracy on the test split after every epoch (cheap: no attack), logged as
    # test_*: it is the test split, not a held-out validation split. The attacks are for
    # ``aatk evaluate`` and the monitor.
    x_test, y_test = datasets.load_arrays(
        config.dataset, "test", data_dir=data_dir, subset=min(config.subset, 10_000) or None
    )
    callbacks = [_EpochFacts(), _TestSplitAccuracy(x_test, y_test), _EpochLog(out / "log.csv")]
    if config.monitor_subset:
        x_monitor, y_monitor = datasets.load_arrays(config.dataset, "test", data_dir=data_dir, subset=config.monitor_subset)
        callbacks.append(_AttackMonitor(out, config, x_monitor, y_monitor))
    if tensorboard is not None:
        callbacks.append(_tensorboard_callback(Path(tensorboard)))
    callbacks.append(_EpochCheckpoint(out, fingerprint, data_order=data_order))
    if epochs_done < config.epochs:
        # One fit over every remaining epoch. Each epoch's batches are a function of (seed,
        # epoch) alone and the data holds exactly steps_per_epoch batches per epoch, so a
        # resumed run sees the batches an uninterrupted one would (Keras keeps one iterator
        # across epochs when steps_per_epoch is given).
        remaining = range(epochs_done, config.epochs)
        augment = config.dataset == "cifar10"
        if tf is not None:
            data = epoch_batches(x, y, epochs=remaining, batch_size=config.batch_size, seed=config.seed,
                                 augment=augment)
        else:  # NumPy only (e.g. JAX on a GPU machine): the same kind of order, from NumPy's generator
            data = _numpy_epoch_batches(x, y, epochs=remaining, batch_size=config.batch_size, seed=config.seed,
                                        augment=augment)
        model.fit(
            data,
            epochs=config.epochs,
            initial_epoch=epochs_done,
            steps_per_epoch=steps_per_epoch,
            shuffle=False,  # the order is the data's own, a function of (seed, epoch)
            callbacks=callbacks,
            verbose=verbose,
        )
    temporary = out / ".model.tmp.keras"
    model.save(temporary)
    with temporary.open("rb") as stream:
        os.fsync(stream.fileno())
    os.replace(temporary, out / "model.keras")
    return model


def _unfinished_run_advice(run: Path) -> str:
    """What to do with a run folder whose training has not written ``model.keras`` yet."""
    done = _epochs_trained(run)
    if done is None:  # no state yet, or a damaged one: training will say
        return "run 'aatk train' to the end first"
    return (f"its training stopped after epoch {done}; run 'aatk train' to the end first, or evaluate epoch "
            f"{done} in a copy of the folder finished there ('aatk train --config ... --epochs {done} --out <copy>')")


def load_run_config(run: str | Path) -> Config:
    """The validated configuration of a run folder written by [`train`][aatk.training.train].

    Raises:
        RunError: If the folder has no ``config.json`` or no finished ``model.keras``.
    """
    from aatk.configs import ConfigError, validate

    run = Path(run)
    if not run.is_dir():
        raise RunError(f"{run} is not a folder" if run.exists() else f"{run} does not exist")
    if not (run / "config.json").exists():
        raise RunError(f"{run} is not a run folder (no config.json): run 'aatk train' first")
    if not (run / "model.keras").exists():
        raise RunError(f"{run} has no model.keras: {_unfinished_run_advice(run)}")
    resolved = read_json_file(run / "config.json", what="the run's configuration")
    if not isinstance(resolved, dict):
        raise RunError(f"{run / 'config.json'} (the run's configuration) is damaged: not a JSON object")
    resolved.pop("source", None)
    try:
        return validate(resolved, source=str(run / "config.json"))
    except ConfigError as error:
        raise RunError(f"{run / 'config.json'} is not a configuration this aatk can read: {error}") from None


def evaluate_run(
    run: str | Path,
    *,
    data_dir: str | None = None,
    subset: int | None = None,
    attacks: list[str] | None = None,
    batch_size: int = 500,
    adaptive: bool = True,
    dtype: str | None = None,
    progress: bool | Progress = False,
) -> dict[str, dict]:
    """Evaluates a finished run under its configuration's test attacks and writes the results.

    For every attack ``name`` it writes ``eval-<name>.json`` and ``eval-<name>.md`` in the run
    folder; with a ``dtype`` other than the training one, ``eval-<name>.<dtype>.json`` and ``.md``.
    The JSON record holds the figures and their 95% intervals, the attack's configuration,
    the number of test examples, the epochs configured (``epochs``) and trained
    (``epochs_trained``, from ``state.json``), the seed, and under ``"provenance"`` where the
    result comes from (``aatk.provenance.environment``: aatk's
    version and git commit, the libraries' versions, the Keras backend, the date, the device
    and the dtype policy).

    Each evaluation saves its progress in ``eval-<name>.partial.npz`` after every batch: run
    again after an interruption, it resumes there (the same figures as an uninterrupted
    evaluation; see [`aatk.evaluate`][aatk.evaluation.evaluate]'s ``checkpoint``). The file
    is removed when the evaluation finishes; one left by an evaluation with other weights,
    test examples or attack settings (e.g. another ``subset``) stops the command with its
    name, to be removed by hand.

    Args:
        run: The run folder.
        data_dir: Folder of the original dataset files (default ``AATK_DATA_DIR`` or tfds).
        subset: Evaluate on the first N test examples (default: all).
        attacks: Names of the attacks to run: test attacks of the run's configuration or any
            preset of [`ATTACK_PRESETS`][aatk.configs.ATTACK_PRESETS], such as ``"mnist-strong"``
            (default: all of the configuration's test attacks). An ensemble is evaluated as its
            per-example worst case; the adaptive attack on the detector is skipped for an
            attack that cannot maximise any loss.
        batch_size: Evaluation batch size.
        adaptive: Also run the adaptive attack on the detector.
        dtype: Evaluate (and attack) the model in this dtype policy, e.g. ``"float32"``
            for a run trained in ``"mixed_bfloat16"`` (default: the training one).
        progress: Show a progress bar per attack on standard error (``True``, ``False`` or a
            ``aatk.progress.Progress``); see [`aatk.evaluate`][aatk.evaluation.evaluate].

    Returns:
        attack name → the record written to ``eval-<name>.json``, plus the
        [`EvaluationReport`][aatk.evaluation.EvaluationReport] under ``"report"``.

    Raises:
        RunError: If ``run`` is not a finished run folder, its model file is damaged, another
            process works in it, or it cannot be written (checked before any attack runs).
        ValueError: If an attack is neither one of the run's test attacks nor a preset, or an
            ``eval-<name>.partial.npz`` is damaged or was left by another evaluation.
    """
    run = Path(run)
    load_run_config(run)  # a clear error before the lock file is written into a folder that is no run
    with locked(run, command="aatk evaluate"):
        return _evaluate_locked(run, data_dir=data_dir, subset=subset, attacks=attacks, batch_size=batch_size,
                                adaptive=adaptive, dtype=dtype, progress=progress)


def chosen_test_attacks(specs: dict[str, dict], names: list[str] | None, *, owner: str) -> dict[str, dict]:
    """The attack specs an evaluation runs: ``specs`` (a run's test attacks), or only ``names``.

    Args:
        specs: Test attack name → resolved spec (a configuration's ``test_attacks``).
        names: The attacks asked for, each a name of ``specs`` or any preset of
            [`ATTACK_PRESETS`][aatk.configs.ATTACK_PRESETS] (e.g. a strong evaluation the
            run's configuration predates); None or empty for all of ``specs``.
        owner: Whose test attacks ``specs`` are, for the error message (``"this run"``).

    Returns:
        Name → resolved spec, in the order asked.

    Raises:
        ValueError: If a name is neither in ``specs`` nor a preset.
    """
    if not names:
        return dict(specs)
    chosen = {}
    for name in names:
        if name in specs:
            chosen[name] = specs[name]
        elif name in ATTACK_PRESETS:
            chosen[name] = attack_from_spec(name, key=f"--attack {name}")[1]
        else:
            raise ValueError(
                f"attack {name!r} is neither a test attack of {owner} ({sorted(specs)}) nor a preset "
                f"({sorted(ATTACK_PRESETS)})"
            )
    return chosen


def _epochs_trained(run: Path) -> int | None:
    """The epochs the run's newest checkpoint record says were trained, or None if it says nothing."""
    try:
        state = read_json_file(run / "state.json", what="the run's state")
    except (RunError, OSError):
        return None
    done = state.get("epochs_done") if isinstance(state, dict) else None
    return done if isinstance(done, int) and not isinstance(done, bool) else None


def _can_attack_the_detector(attack) -> bool:
    """Whether [`aatk.evaluate`][aatk.evaluation.evaluate]'s adaptive attack can run with ``attack``
    (it needs one that maximises any loss)."""
    return any(hasattr(item, "perturb") for item in (attack if isinstance(attack, list) else [attack]))


def _evaluate_locked(run: Path, *, data_dir, subset, attacks, batch_size, adaptive, dtype,
                     progress=False) -> dict[str, dict]:
    import aatk.baselines  # noqa: F401  registers the baselines' models (a PI run's) for loading
    from aatk.evaluation import evaluate
    from aatk.progress import as_progress
    from aatk.provenance import environment

    progress = as_progress(progress)
    config = load_run_config(run)
    specs = chosen_test_attacks(config.test_attacks, attacks, owner="this run")
    model = load_model_file(run / "model.keras", expected=keras.Model)
    suffix = ""
    if dtype is not None and dtype != config.dtype:
        model, suffix = with_dtype_policy(model, dtype), f".{dtype}"
    x, y = datasets.load_arrays(config.dataset, "test", data_dir=data_dir, subset=subset)
    records = {}
    epochs_trained = _epochs_trained(run)
    for name, spec in specs.items():
        attack = build_attack(spec, seed=0)
        report = evaluate(model, (x, y), attack, batch_size=batch_size, cascade=bool(spec.get("cascade", False)),
                          adaptive=adaptive and _can_attack_the_detector(attack),
                          checkpoint=run / f"eval-{name}{suffix}.partial.npz",
                          progress=progress.within(f"{config.name} under {name}"))
        record = {
            "run": config.name + (f" [{dtype}]" if suffix else ""),
            "trained_dtype": config.dtype,
            "evaluated_dtype": dtype or config.dtype,
            "method": config.method if isinstance(config.method, str) else list(config.method),
            "attack": name,
            "attack_config": attack_settings(attack, spec),
            "samples": report.samples,
            "epochs": config.epochs,
            "epochs_trained": config.epochs if epochs_trained is None else epochs_trained,
            "seed": config.seed,
            "figures": dict(report),
            "intervals_95": {key: list(bounds) for key, bounds in report.intervals(confidence=0.95).items()},
            "provenance": environment(dtype_policy=getattr(model.dtype_policy, "name", None)),
        }
        atomic_write(run / f"eval-{name}{suffix}.json", json.dumps(record, indent=2))
        atomic_write(run / f"eval-{name}{suffix}.md", f"# {record['run']} under {name}\n\n{report.to_markdown()}\n")
        records[name] = {**record, "report": report}
    return records
