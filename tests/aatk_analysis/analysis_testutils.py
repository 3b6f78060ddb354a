"""Helpers for the aatk.analysis tests: tiny three-way models with hand-set weights, numpy references.

(A plain module beside the tests; the folder has no ``__init__.py``, so pytest puts
it on ``sys.path``. Its name is unique so it cannot clash with other test folders.)
"""

from __future__ import annotations


import keras
import numpy as np

from aatk import ThreeWayModel


def linear_encoder(input_dim: int, width: int) -> keras.Sequential:
    """z = x @ W (one Dense, no bias, no activation)."""
    return keras.Sequential([keras.Input((input_dim,)), keras.layers.Dense(width, use_bias=False)])


def mlp_encoder(input_dim: int = 4, width: int = 4) -> keras.Sequential:
    return keras.Sequential([keras.Input((input_dim,)), keras.layers.Dense(width, activation="relu")])


def conv_encoder(shape=(4, 4, 1), width: int = 3) -> keras.Sequential:
    return keras.Sequential(
        [keras.Input(shape), keras.layers.Conv2D(width, 3, padding="same", activation="relu"),
         keras.layers.GlobalAveragePooling2D()]
    )


def tiny_model(input_dim: int = 4, width: int = 4, num_classes: int = 3) -> ThreeWayModel:
    return ThreeWayModel(mlp_encoder(input_dim, width), mlp_encoder(input_dim, width), num_classes=num_classes)


def affine_model(w_r, w_n, w1, w2, b2, *, bias: float = 10.0) -> ThreeWayModel:
    """A three-way model whose every way is affine on the inputs it will see.

    Linear encoders z_r = x W_r, z_n = x W_n; the head's hidden bias is ``bias`` for
    every unit, large enough that the ReLU never cuts (for weights ≤ 0.5 and inputs
    near [0, 1] with the default), so each way's logits are x A_way + b2 with
    A_way = W_way W1[rows of the way] W2 (see :func:`affine_parts`); the output bias
    absorbs ``bias``·W2.
    """
    w_r, w_n, w1, b2 = np.asarray(w_r), np.asarray(w_n), np.asarray(w1), np.asarray(b2)
    model = ThreeWayModel(
        linear_encoder(w_r.shape[0], w_r.shape[1]), linear_encoder(w_n.shape[0], w_n.shape[1]),
        num_classes=b2.shape[0], hidden=w1.shape[1],
    )
    return set_affine_weights(model, w_r, w_n, w1, w2, b2, bias=bias)


def set_affine_weights(model: ThreeWayModel, w_r, w_n, w1, w2, b2, *, bias: float = 10.0) -> ThreeWayModel:
    """Sets the weights of a model built by :func:`affine_model` (same shapes); returns it."""
    w_r, w_n, w1, w2 = (np.asarray(a, "float32") for a in (w_r, w_n, w1, w2))
    b2 = np.asarray(b2, np.float64)
    model.encoder_r.layers[0].set_weights([w_r])
    model.encoder_n.layers[0].set_weights([w_n])
    model.head_hidden.set_weights([w1, np.full(w1.shape[1], bias, "float32")])
    model.head_logits.set_weights([w2, (b2 - bias * w2.astype(np.float64).sum(axis=0)).astype("float32")])
    return model


def affine_parts(w_r, w_n, w1, w2, b2) -> dict:
    """float64 (A, c) with logits = x A + c for each way of :func:`affine_model`."""
    w_r, w_n, w1, w2, b2 = (np.asarray(a, np.float64) for a in (w_r, w_n, w1, w2, b2))
    h_r = w_r.shape[1]
    c = b2
    a_r = w_r @ w1[:h_r] @ w2
    a_n = w_n @ w1[h_r:] @ w2
    return {"standard": (a_r + a_n, c), "robust": (a_r, c), "non_robust": (a_n, c)}


def np_softmax(logits):
    logits = np.asarray(logits, np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)
