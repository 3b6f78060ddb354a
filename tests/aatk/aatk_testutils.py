"""Helpers for the aatk tests: tiny three-way models and numpy references.

(A plain module beside the tests; the directory has no ``__init__.py``, so pytest
puts it on ``sys.path``. The name is prefixed so it cannot clash with tests/theory.)
"""

from __future__ import annotations

import math

import keras
import numpy as np

from aatk import ThreeWayModel
from aatk.attacks import PGD


def check_feasible(x, x_adv, attack) -> None:
    """Asserts that ``x_adv`` lies in ``attack``'s ε-ball around ``x`` and within its bounds.

    The ℓ2 tolerance is ε(1 + 1e-5) plus the float32 rounding of x + δ (≤ ½ ulp per coordinate, |x| ≤ 2).
    """
    x = np.asarray(x, np.float64)
    x_adv = np.asarray(x_adv, np.float64)
    assert x_adv.shape == x.shape
    assert np.isfinite(x_adv).all()
    delta = (x_adv - x).reshape(len(x), -1)
    if attack.norm == "linf":
        assert np.abs(delta).max(initial=0.0) <= attack.eps + 1e-6
    else:
        norms = np.linalg.norm(delta, axis=1)
        assert norms.max(initial=0.0) <= attack.eps * (1 + 1e-5) + 2.4e-7 * math.sqrt(delta.shape[1])
    if attack.bounds is not None:
        assert x_adv.min() >= attack.bounds[0]
        assert x_adv.max() <= attack.bounds[1]


def mlp_encoder(input_dim: int = 6, width: int = 4, *, extra=(), name=None) -> keras.Sequential:
    """Input → Dense(width, relu) → extra layers."""
    return keras.Sequential(
        [keras.Input((input_dim,)), keras.layers.Dense(width, activation="relu"), *extra], name=name
    )


def conv_encoder(shape=(4, 4, 1), width: int = 4) -> keras.Sequential:
    """A 4×4×c image → Conv(3×3) → global average pool → vector of ``width``."""
    return keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Conv2D(width, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )


def tiny_model(input_dim: int = 6, width: int = 4, num_classes: int = 3) -> ThreeWayModel:
    return ThreeWayModel(mlp_encoder(input_dim, width), mlp_encoder(input_dim, width), num_classes=num_classes)


def briefly_trained(*, seed: int, samples: int, method: str, batch_size: int = 16) -> tuple[ThreeWayModel, np.ndarray, np.ndarray]:
    """A tiny model (width 8) trained for two epochs by ``method`` on ``samples`` examples in [0, 1]⁶
    whose three classes depend on the first three features; returns it with its training data."""
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(samples, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 1.0).astype("int32") + (x[:, 2] > 0.7).astype("int32")
    model = tiny_model(width=8)
    model.compile(optimizer=keras.optimizers.Adam(0.05), method=method, attack=PGD(eps=0.1, step_size=0.05, steps=2))
    model.fit(x, y, epochs=2, batch_size=batch_size, verbose=0)
    return model, x, y


def linear_encoder(input_dim: int, width: int) -> keras.Sequential:
    """z = x @ W (single Dense, no bias, linear activation)."""
    return keras.Sequential([keras.Input((input_dim,)), keras.layers.Dense(width, use_bias=False)])


def hand_model(w_r, w_n, w1, b1, w2, b2) -> ThreeWayModel:
    """A ThreeWayModel with linear encoders z_r = x W_r, z_n = x W_n and the head's weights set by hand."""
    w_r, w_n = np.asarray(w_r, "float32"), np.asarray(w_n, "float32")
    input_dim, width = w_r.shape
    model = ThreeWayModel(
        linear_encoder(input_dim, width), linear_encoder(input_dim, w_n.shape[1]),
        num_classes=np.shape(b2)[0], hidden=np.shape(b1)[0],
    )
    model.encoder_r.layers[0].set_weights([w_r])
    model.encoder_n.layers[0].set_weights([w_n])
    model.head_hidden.set_weights([np.asarray(w1, "float32"), np.asarray(b1, "float32")])
    model.head_logits.set_weights([np.asarray(w2, "float32"), np.asarray(b2, "float32")])
    return model


# --- numpy references -------------------------------------------------------------------


def np_head(z_r, z_n, w1, b1, w2, b2):
    hidden = np.maximum(np.concatenate([z_r, z_n], axis=-1) @ w1 + b1, 0.0)
    return hidden @ w2 + b2


def np_three_ways(x, w_r, w_n, w1, b1, w2, b2) -> dict:
    """Eq. 4–5 in float64: logits of the standard, robust and non-robust way."""
    x = np.asarray(x, np.float64)
    z_r, z_n = x @ w_r, x @ w_n
    return {
        "standard": np_head(z_r, z_n, w1, b1, w2, b2),
        "robust": np_head(z_r, np.zeros_like(z_n), w1, b1, w2, b2),
        "non_robust": np_head(np.zeros_like(z_r), z_n, w1, b1, w2, b2),
    }


def np_cross_entropy(logits, labels):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return -log_softmax[np.arange(len(labels)), np.asarray(labels)]


def weight_gradients(model: ThreeWayModel, loss_fn) -> tuple[list, object]:
    """∇ of ``loss_fn() → (scalar loss, aux)`` w.r.t. ``model.trainable_variables``, and aux.

    Under TensorFlow a weight the loss does not reach gets ``None``; under JAX, zeros.
    The JAX path maps every model variable into a StatelessScope, as a train step does.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss, aux = loss_fn()
        return tape.gradient(loss, model.trainable_variables), aux
    from aatk.backend import jax as glue

    variables = model.variables
    with glue._scope(variables, [v.value for v in variables]):
        _, aux, gradients = glue.value_and_weight_gradients(loss_fn, model.trainable_variables)
    return gradients, aux


def leaky_input_gradient(loss_fn, x):
    """∇_x of ``sum(loss_fn(x))`` that stays differentiable with respect to the weights.

    The gradient aatk's attacks must NOT use (they stop it); tests build it to show
    that the difference would be visible.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(loss_fn(x))
        return tape.gradient(loss, x)
    import jax
    import jax.numpy as jnp

    return jax.grad(lambda points: jnp.sum(loss_fn(points)))(x)
