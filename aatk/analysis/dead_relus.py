"""Dead ReLUs: units that output zero on every input, counted layer by layer during training.

With Table 5's peak learning rate (0.1) the three-way model can lose most of its
ReLU units within its first 10–20 optimizer steps: a unit whose pre-activation has
become negative on every input gets no gradient and never fires again. Once the
units behind the logits are dead, the logits carry only the bias, which learns the
class prior, and every way predicts one class (11.35% on MNIST's test set, the share
of the digit 1).
[`dead_relu_trajectory`][aatk.analysis.dead_relus.dead_relu_trajectory] measures
this on a probe batch while a model trains; ``aatk analyze dead-relus`` compares
training recipes with it.

A unit is a channel of a convolution (dead when it is zero at every position of every
probe image) or a neuron of a dense layer (dead when it is zero for every probe
input). The head's hidden units are probed on the inputs of all three ways.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import keras
import numpy as np

from aatk.model import WAYS, ThreeWayModel

__all__ = ["dead_unit_shares", "dead_relu_trajectory", "plot_dead_relus", "relu_layer_names"]


def _is_relu(layer: keras.layers.Layer) -> bool:
    if isinstance(layer, keras.layers.ReLU):
        return True
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") == "relu"


def relu_layer_names(model: ThreeWayModel) -> list[str]:
    """Names of the ReLU layers of the two encoders and the head, input to output:
    ``encoder_r/<layer>``, ``encoder_n/<layer>``, then ``head/head_hidden``."""
    names = []
    for encoder in (model.encoder_r, model.encoder_n):
        names += [f"{encoder.name}/{layer.name}" for layer in _encoder_relus(encoder)]
    return names + ["head/head_hidden"]


def _encoder_relus(encoder: keras.layers.Layer) -> list[keras.layers.Layer]:
    if not isinstance(encoder, keras.Model) or not hasattr(encoder, "inputs") or not encoder.inputs:
        raise ValueError(
            f"dead ReLUs are counted in functional encoders (built from keras.Input); {encoder.name!r} is not one"
        )
    return [layer for layer in encoder.layers if _is_relu(layer)]


def dead_unit_shares(model: ThreeWayModel, x: np.ndarray, *, batch_size: int = 256) -> dict[str, float]:
    """The share of dead units (in [0, 1]) of every ReLU layer on the probe inputs ``x``.

    Args:
        model: A built [`ThreeWayModel`][aatk.model.ThreeWayModel] with functional encoders.
        x: Probe inputs (a few hundred training images are enough).
        batch_size: Probe batch size.

    Returns:
        Layer name
            ([`relu_layer_names`][aatk.analysis.dead_relus.relu_layer_names]) →
            share of its units that output 0 on
        every probe input (run in inference mode).

    Raises:
        ValueError: If an encoder is not functional, or ``x`` is empty.

    Examples:
        >>> from aatk import backbones
        >>> model = ThreeWayModel(backbones.small_cnn(name="r"), backbones.small_cnn(name="n"), num_classes=10)
        >>> shares = dead_unit_shares(model, np.random.default_rng(0).random((8, 28, 28, 1), "float32"))
        >>> len(shares), all(0.0 <= s <= 1.0 for s in shares.values())
        (13, True)
    """
    x = np.asarray(x, dtype="float32")
    if len(x) == 0:
        raise ValueError("x is empty: give at least one probe input")
    extractors, fired = [], {}
    for encoder in (model.encoder_r, model.encoder_n):
        relus = _encoder_relus(encoder)
        outputs = [layer.output for layer in relus] + [encoder.outputs[0]]
        extractors.append((encoder.name, [layer.name for layer in relus], keras.Model(encoder.inputs[0], outputs)))
    head_fired = None
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        representations = []
        for encoder_name, names, extractor in extractors:
            outputs = extractor(batch, training=False)
            for name, activation in zip(names, outputs[:-1]):
                activation = np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(activation, "float32")))
                alive = (activation.reshape(-1, activation.shape[-1]) > 0).any(axis=0)
                key = f"{encoder_name}/{name}"
                fired[key] = alive if key not in fired else fired[key] | alive
            representations.append(outputs[-1])
        z_r, z_n = representations
        zeros_r, zeros_n = keras.ops.zeros_like(z_r), keras.ops.zeros_like(z_n)
        for left, right in ((z_r, z_n), (z_r, zeros_n), (zeros_r, z_n)):  # the three ways (Eq. 5)
            hidden = model.head_hidden(keras.ops.concatenate([left, right], axis=-1))
            alive = (np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(hidden, "float32"))) > 0).any(axis=0)
            head_fired = alive if head_fired is None else head_fired | alive
    fired["head/head_hidden"] = head_fired
    return {name: float(1.0 - np.mean(fired[name])) for name in relu_layer_names(model)}


def dead_relu_trajectory(
    model: ThreeWayModel,
    x: np.ndarray,
    y: np.ndarray,
    *,
    probe: np.ndarray,
    steps: int,
    batch_size: int,
    every: int = 5,
    seed: int = 0,
) -> dict:
    """Trains a compiled model for ``steps`` optimizer steps, counting dead units as it goes.

    Batches are drawn from (x, y) in a random order (NumPy, seeded), one
    ``train_on_batch`` per step; before the first step and after every ``every``
    steps, [`dead_unit_shares`][aatk.analysis.dead_relus.dead_unit_shares] is measured on ``probe``.

    Args:
        model: A compiled [`ThreeWayModel`][aatk.model.ThreeWayModel].
        x: Training inputs.
        y: Training labels.
        probe: The probe inputs of [`dead_unit_shares`][aatk.analysis.dead_relus.dead_unit_shares].
        steps: Optimizer steps ≥ 1.
        batch_size: Training batch size ≥ 1.
        every: Probe every that many steps (≥ 1).
        seed: Seed of the batch order.

    Returns:
        ``{"steps": [0, every, …], "shares": {layer: [share at each probed step]},
        "loss": [training loss at each probed step (NaN at step 0)],
        "learning_rate": [rate of the last step at each probed step]}``.

    Raises:
        ValueError: On steps, batch_size or every < 1, or a model that is not compiled.
    """
    for name, value in (("steps", steps), ("batch_size", batch_size), ("every", every)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not model.compiled:
        raise ValueError("compile the model (optimizer, method, attack) before tracing its dead ReLUs")
    x, y = np.asarray(x, dtype="float32"), np.asarray(y).astype("int32")
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(x)) for _ in range(-(-steps * batch_size // len(x)))])
    record = {"steps": [0], "shares": {k: [v] for k, v in dead_unit_shares(model, probe).items()},
              "loss": [float("nan")], "learning_rate": [float("nan")]}
    for step in range(1, steps + 1):
        indices = order[(step - 1) * batch_size : step * batch_size]
        logs = model.train_on_batch(x[indices], y[indices], return_dict=True)
        if step % every == 0 or step == steps:
            record["steps"].append(step)
            for key, value in dead_unit_shares(model, probe).items():
                record["shares"][key].append(value)
            record["loss"].append(float(logs["loss"]))
            rate = model.optimizer._learning_rate
            if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
                rate = rate(step - 1)
            record["learning_rate"].append(float(np.asarray(rate)))
    return record


def _layer_style(name: str, depth: int, count: int, *, robust: bool) -> dict:
    """Green shades for the robust encoder, red dashes for the non-robust one, black for the
    head; darker is deeper."""
    import matplotlib

    if name.startswith("head/"):
        return {"color": "black", "linewidth": 2.2, "linestyle": "-", "label": "head hidden"}
    cmap = matplotlib.colormaps["Greens" if robust else "Reds"]
    return {
        "color": cmap(0.35 + 0.6 * (depth + 1) / max(count, 1)),
        "linewidth": 1.3,
        "linestyle": "-" if robust else "--",
        "label": f"{'robust' if robust else 'non-robust'} {name.split('/', 1)[1]}",
    }


def plot_dead_relus(results: Mapping[str, Mapping[str, dict]], path: str | os.PathLike, *, title: str | None = None) -> Path:
    """A grid of dead-unit curves: one row per recipe, one column per seed.

    Args:
        results: Recipe label → seed label → a
            [`dead_relu_trajectory`][aatk.analysis.dead_relus.dead_relu_trajectory]
            result, optionally with ``"accuracy"`` (clean accuracy of each way,
            shown in the panel's title).
        path: Where to write the PNG (must end in ``.png``).
        title: Title of the figure.

    Returns:
        The path of the written PNG.

    Raises:
        ValueError: On an empty mapping or a result without steps and shares.
    """
    from aatk.analysis.plots import _check_title, _new_figure, _png_path, _save

    path, title = _png_path(path), _check_title(title)
    if not isinstance(results, Mapping) or not results or not all(isinstance(v, Mapping) and v for v in results.values()):
        raise ValueError("results must be a non-empty dict: recipe → seed → trajectory")
    rows = list(results)
    columns = list(dict.fromkeys(seed for runs in results.values() for seed in runs))
    figure = _new_figure(2.9 * len(columns) + 1.8, 2.4 * len(rows) + 0.6, layout="constrained")
    axes = figure.subplots(len(rows), len(columns), sharex=True, sharey=True, squeeze=False)
    handles = None
    for r, recipe in enumerate(rows):
        for c, seed in enumerate(columns):
            ax = axes[r][c]
            result = results[recipe].get(seed)
            if result is None:
                ax.set_visible(False)
                continue
            if "steps" not in result or "shares" not in result:
                raise ValueError(f"results[{recipe!r}][{seed!r}] needs 'steps' and 'shares'")
            encoders = list(dict.fromkeys(n.split("/", 1)[0] for n in result["shares"] if not n.startswith("head/")))
            for name, shares in result["shares"].items():
                encoder = name.split("/", 1)[0]
                layers = [n for n in result["shares"] if n.startswith(encoder + "/")]
                style = _layer_style(name, layers.index(name), len(layers), robust=bool(encoders) and encoder == encoders[0])
                ax.plot(result["steps"], 100.0 * np.asarray(shares, dtype=float), **style)
            facts = f"{recipe}, seed {seed}"
            accuracy = result.get("accuracy")
            if accuracy:
                facts += "\nS/R/N " + " / ".join(f"{100 * accuracy[w]:.1f}" for w in WAYS if w in accuracy) + "%"
            ax.set_title(facts, fontsize=8.5)
            ax.set_ylim(-3, 103)
            ax.grid(True, alpha=0.3)
            if r == len(rows) - 1:
                ax.set_xlabel("optimizer step")
            if c == 0:
                ax.set_ylabel("dead units (%)")
            if handles is None:
                handles = ax.get_legend_handles_labels()
    figure.legend(*handles, loc="outside right center", fontsize=7)
    if title:
        figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def _variants(text: Iterable[str]) -> list[tuple[str, dict]]:
    """Parses ``--variant "label;training.key=value;..."`` into (label, overrides)."""
    import tomllib

    variants = []
    for entry in text:
        label, *assignments = [part.strip() for part in entry.split(";")]
        if not label:
            raise ValueError(f"variant {entry!r} needs a label before the first ';'")
        overrides = {}
        for assignment in assignments:
            key, sep, value = assignment.partition("=")
            if not sep or "." not in key:
                raise ValueError(f"variant {entry!r}: expected section.key=value, got {assignment!r}")
            try:
                overrides[key.strip()] = tomllib.loads(f"v = {value.strip()}")["v"]
            except tomllib.TOMLDecodeError:
                overrides[key.strip()] = value.strip()
        variants.append((label, overrides))
    return variants
