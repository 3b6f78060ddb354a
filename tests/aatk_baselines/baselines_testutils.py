"""Helpers for the baseline tests: tiny models, toy data and numpy references.

(A plain module beside the tests; the folder has no ``__init__.py``, so pytest puts
it on ``sys.path``. The prefixed name cannot clash with the other test folders' helpers.)
"""

from __future__ import annotations

import keras
import numpy as np

from aatk import PGD, ThreeWayModel


def mlp_encoder(input_dim: int = 6, width: int = 8) -> keras.Sequential:
    """Input → Dense(width, relu)."""
    return keras.Sequential([keras.Input((input_dim,)), keras.layers.Dense(width, activation="relu")])


def linear_encoder(input_dim: int, width: int) -> keras.Sequential:
    """z = x @ W (single Dense, no bias, linear activation)."""
    return keras.Sequential([keras.Input((input_dim,)), keras.layers.Dense(width, use_bias=False)])


def tiny_model(cls=ThreeWayModel, input_dim: int = 6, width: int = 8, num_classes: int = 3):
    return cls(mlp_encoder(input_dim, width), mlp_encoder(input_dim, width), num_classes=num_classes)


def toy_data(n: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n points in [0, 1]^6, labelled by the largest of the first three features (3 classes)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(n, 6)).astype("float32")
    y = np.argmax(x[:, :3], axis=1).astype("int32")
    return x, y


def trained_one_way(method: str, x, y, *, epochs: int = 15) -> ThreeWayModel:
    """A tiny ThreeWayModel trained by a one-way baseline (a one-step attack for AT)."""
    model = tiny_model()
    attack = PGD(norm="linf", eps=0.05, step_size=0.05, steps=1) if method != "1way-st" else None
    model.compile(optimizer=keras.optimizers.Adam(0.05), method=method, attack=attack)
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0)
    return model


def np_cross_entropy(logits, labels):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return -log_softmax[np.arange(len(labels)), np.asarray(labels)]


def np_head(z_r, z_n, w1, b1, w2, b2):
    hidden = np.maximum(np.concatenate([z_r, z_n], axis=-1) @ w1 + b1, 0.0)
    return hidden @ w2 + b2


def set_hand_weights(model, w_r, w_n, w1, b1, w2, b2) -> None:
    """Weights of a model with linear encoders (see :func:`linear_encoder`) set by hand."""
    model.encoder_r.layers[0].set_weights([np.asarray(w_r, "float32")])
    model.encoder_n.layers[0].set_weights([np.asarray(w_n, "float32")])
    model.head_hidden.set_weights([np.asarray(w1, "float32"), np.asarray(b1, "float32")])
    model.head_logits.set_weights([np.asarray(w2, "float32"), np.asarray(b2, "float32")])
