"""The paper's numerics: PyTorch's SGD, the warm-up schedule, PyTorch/YOPO initialisation."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aatk import ThreeWayModel, backbones
from aatk.initializers import conv_kwargs, dense_kwargs
from aatk.optim import PiecewiseConstantWithWarmup, TorchSGD

# --- TorchSGD ------------------------------------------------------------------------------------


def _torch_sgd_reference(w0, gradients, rates, *, momentum, weight_decay):
    """torch.optim.SGD's update (dampening 0, no Nesterov), written out in NumPy."""
    w, buffer, path = np.array(w0, dtype=np.float64), None, []
    for g, lr in zip(gradients, rates):
        d = np.asarray(g, dtype=np.float64) + weight_decay * w
        buffer = d if buffer is None else momentum * buffer + d
        w = w - lr * buffer
        path.append(w.copy())
    return path


def test_torch_sgd_follows_pytorchs_update_across_a_rate_change():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 2)).astype("float32")
    gradients = [rng.normal(size=(3, 2)).astype("float32") for _ in range(6)]
    schedule = PiecewiseConstantWithWarmup(boundaries=[3], values=[0.1, 0.01])
    rates = [0.1, 0.1, 0.1, 0.01, 0.01, 0.01]
    variable = keras.Variable(w0)
    optimizer = TorchSGD(learning_rate=schedule, momentum=0.9, weight_decay=5e-4)
    expected = _torch_sgd_reference(w0, gradients, rates, momentum=0.9, weight_decay=5e-4)
    for g, want in zip(gradients, expected):
        optimizer.apply([keras.ops.convert_to_tensor(g)], [variable])
        np.testing.assert_allclose(np.asarray(variable.numpy()), want, rtol=1e-5, atol=1e-6)


def test_coupled_decay_is_about_ten_times_kerass_at_momentum_0_9():
    """With a zero loss gradient only the decay moves a weight: after many steps PyTorch's
    coupled decay has shrunk it by lr·wd/(1 − μ) per step, Keras's decoupled one by lr·wd."""
    steps, lr, wd = 200, 0.1, 5e-4
    torch_like, keras_like = keras.Variable([1.0]), keras.Variable([1.0])
    coupled = TorchSGD(learning_rate=lr, momentum=0.9, weight_decay=wd)
    decoupled = keras.optimizers.SGD(learning_rate=lr, momentum=0.9, weight_decay=wd)
    zero = [keras.ops.convert_to_tensor([0.0])]
    for _ in range(steps):
        coupled.apply(zero, [torch_like])
        decoupled.apply(zero, [keras_like])
    torch_decay = -math.log(float(torch_like.numpy()[0])) / steps
    keras_decay = -math.log(float(keras_like.numpy()[0])) / steps
    assert keras_decay == pytest.approx(lr * wd, rel=1e-3)
    assert 8.5 < torch_decay / keras_decay < 10.0  # → 10 as the momentum buffer fills


def test_torch_sgd_matches_torch_itself():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(4,)).astype("float32")
    gradients = [rng.normal(size=(4,)).astype("float32") for _ in range(5)]
    parameter = torch.nn.Parameter(torch.tensor(w0))
    reference = torch.optim.SGD([parameter], lr=0.05, momentum=0.9, weight_decay=5e-4)
    variable = keras.Variable(w0)
    optimizer = TorchSGD(learning_rate=0.05, momentum=0.9, weight_decay=5e-4)
    for g in gradients:
        parameter.grad = torch.tensor(g)
        reference.step()
        optimizer.apply([keras.ops.convert_to_tensor(g)], [variable])
        np.testing.assert_allclose(np.asarray(variable.numpy()), parameter.detach().numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"momentum": 1.0}, "momentum must be in"),
        ({"momentum": -0.1}, "momentum must be in"),
        ({"weight_decay": -1e-4}, "weight_decay must be"),
        ({"weight_decay": float("nan")}, "weight_decay must be"),
    ],
)
def test_torch_sgd_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TorchSGD(learning_rate=0.1, **kwargs)


def test_torch_sgd_and_the_schedule_survive_save_and_load(tmp_path):
    keras.utils.set_random_seed(0)
    model = ThreeWayModel(
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu")]),
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu")]),
        num_classes=2,
        init="pytorch",
    )
    schedule = PiecewiseConstantWithWarmup(boundaries=[2], values=[0.1, 0.01], warmup_steps=2)
    model.compile(optimizer=TorchSGD(learning_rate=schedule, momentum=0.9, weight_decay=5e-4), method="st")
    x = np.random.default_rng(0).random((16, 4), dtype=np.float32)
    y = np.arange(16) % 2
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, TorchSGD) and loaded.init == "pytorch"
    assert loaded.optimizer.get_config()["weight_decay"] == 5e-4
    assert loaded.optimizer._learning_rate.get_config() == schedule.get_config()
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a.numpy()), np.asarray(b.numpy()))
    # The next step is the same in both.
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


# --- the schedule --------------------------------------------------------------------------------


@given(
    peak=st.floats(1e-4, 1.0),
    warmup=st.integers(0, 50),
    boundaries=st.lists(st.integers(1, 200), max_size=3, unique=True).map(sorted),
    gamma=st.floats(0.05, 0.5),
)
def test_schedule_is_piecewise_constant_after_a_linear_warm_up(peak, warmup, boundaries, gamma):
    values = [peak * gamma**i for i in range(len(boundaries) + 1)]
    schedule = PiecewiseConstantWithWarmup(boundaries=boundaries, values=values, warmup_steps=warmup)
    steps = np.arange(0, 220)
    rates = np.array([float(schedule(int(s))) for s in steps])
    plain = np.array([values[sum(b <= s for b in boundaries)] for s in steps])
    factor = np.minimum(1.0, (steps + 1) / warmup) if warmup else np.ones_like(rates)
    np.testing.assert_allclose(rates, plain * factor, rtol=1e-5)
    assert rates.max() <= peak * (1 + 1e-6)
    if warmup:
        assert rates[warmup - 1] == pytest.approx(plain[warmup - 1], rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"boundaries": [3, 2], "values": [1, 2, 3]}, "boundaries must be increasing"),
        ({"boundaries": [0], "values": [1, 2]}, "boundaries must be increasing"),
        ({"boundaries": [2], "values": [1]}, "one more entry"),
        ({"boundaries": [], "values": [0.0]}, "finite rates > 0"),
        ({"boundaries": [], "values": [0.1], "warmup_steps": -1}, "warmup_steps must be"),
        ({"boundaries": [], "values": [0.1], "warmup_steps": 2.5}, "warmup_steps must be"),
    ],
)
def test_schedule_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PiecewiseConstantWithWarmup(**kwargs)


# --- initialisation ------------------------------------------------------------------------------


def _layer(model, name):
    return model.get_layer(name)


def test_small_cnn_pytorch_init_is_yopos():
    keras.utils.set_random_seed(0)
    encoder = backbones.small_cnn(init="pytorch")
    for name, fan_in in (("conv1", 9), ("conv2", 9 * 32), ("conv3", 9 * 32), ("conv4", 9 * 64)):
        kernel = np.asarray(_layer(encoder, name).kernel.numpy())
        # kaiming_normal_: N(0, 2/fan_in), not truncated (values beyond 2σ occur).
        assert kernel.std() == pytest.approx(math.sqrt(2 / fan_in), rel=0.1 if kernel.size > 5000 else 0.3)
        assert np.abs(kernel).max() > 2 * math.sqrt(2 / fan_in)
        assert not np.asarray(_layer(encoder, name).bias.numpy()).any()
    for name, fan_in in (("fc1", 1024), ("fc2", 200)):
        layer = _layer(encoder, name)
        bound = 1 / math.sqrt(fan_in)
        for weights in (np.asarray(layer.kernel.numpy()), np.asarray(layer.bias.numpy())):
            assert np.abs(weights).max() <= bound
            assert np.abs(weights).max() > 0.9 * bound  # uniform up to the bound
        assert np.asarray(layer.kernel.numpy()).std() == pytest.approx(bound / math.sqrt(3), rel=0.05)


def test_keras_init_is_unchanged_and_head_init_follows_nn_linear():
    keras.utils.set_random_seed(0)
    encoder = backbones.small_cnn()
    conv2 = np.asarray(_layer(encoder, "conv2").kernel.numpy())
    glorot_limit = math.sqrt(6 / (9 * 32 + 9 * 32))
    assert np.abs(conv2).max() <= glorot_limit and not np.asarray(_layer(encoder, "fc1").bias.numpy()).any()
    model = ThreeWayModel(backbones.small_cnn(name="r"), backbones.small_cnn(name="n"), num_classes=10, init="pytorch")
    for layer, fan_in in ((model.head_hidden, 400), (model.head_logits, 200)):
        bound = 1 / math.sqrt(fan_in)
        assert 0.95 * bound < np.abs(np.asarray(layer.kernel.numpy())).max() <= bound
        assert 0 < np.abs(np.asarray(layer.bias.numpy())).max() <= bound
    assert np.abs(np.asarray(model.head_hidden.bias.numpy())).max() > 0.9 / math.sqrt(400)  # 200 draws


def test_resnet_pytorch_init_is_nn_conv2ds_default():
    keras.utils.set_random_seed(0)
    encoder = backbones.preact_resnet18(init="pytorch")
    for name, fan_in in (("stem_conv", 27), ("stage2_block1_shortcut", 64), ("stage4_block2_conv2", 9 * 512)):
        kernel = np.asarray(_layer(encoder, name).kernel.numpy())
        assert 0.95 / math.sqrt(fan_in) < np.abs(kernel).max() <= 1 / math.sqrt(fan_in)


@pytest.mark.parametrize("build", [
    lambda: backbones.small_cnn(init="torch"),
    lambda: backbones.preact_resnet18(init="Pytorch"),
    lambda: dense_kwargs("glorot", fan_in=3),
    lambda: conv_kwargs("", fan_in=3),
    lambda: ThreeWayModel(keras.layers.Dense(2), keras.layers.Dense(2), num_classes=2, init="he"),
])
def test_unknown_init_is_refused(build):
    with pytest.raises(ValueError, match="init must be one of"):
        build()


# --- dead ReLUs, seeds, dtype policies -------------------------------------------------------------


def test_dead_unit_shares_count_units_that_never_fire():
    from aatk.analysis.dead_relus import dead_unit_shares, relu_layer_names

    from aatk_testutils import mlp_encoder

    model = ThreeWayModel(mlp_encoder(2, 4), mlp_encoder(2, 4), num_classes=2, hidden=5)
    x = np.random.default_rng(0).uniform(0, 1, size=(20, 2)).astype("float32")  # positive inputs
    # encoder_r: units 0 and 3 dead (negative bias, non-positive weights), 1 and 2 alive
    kernel = np.array([[-1, 1, 1, 0], [-1, 1, 0, -1]], "float32")
    model.encoder_r.layers[0].set_weights([kernel, np.array([-0.1, 0.1, 0.1, -0.5], "float32")])
    # encoder_n: every unit alive
    model.encoder_n.layers[0].set_weights([np.ones((2, 4), "float32"), np.ones(4, "float32")])
    # head: units 0..2 alive (positive bias), 3 and 4 dead on every way (z ≥ 0, weights ≤ 0, bias < 0)
    w1 = np.zeros((8, 5), "float32")
    w1[:, 3:] = -1.0
    model.head_hidden.set_weights([w1, np.array([1, 1, 1, -1, -1], "float32")])
    shares = dead_unit_shares(model, x, batch_size=7)  # batches must combine, not overwrite
    names = relu_layer_names(model)
    assert list(shares) == names and len(names) == 3
    assert shares[names[0]] == pytest.approx(0.5)
    assert shares[names[1]] == 0.0
    assert shares["head/head_hidden"] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="x is empty"):
        dead_unit_shares(model, x[:0])


def test_dead_relu_trajectory_probes_every_few_steps_and_checks_its_arguments():
    from aatk.analysis.dead_relus import dead_relu_trajectory

    from aatk_testutils import tiny_model

    model = tiny_model()
    x = np.random.default_rng(0).uniform(0, 1, size=(40, 6)).astype("float32")
    y = np.arange(40) % 3
    with pytest.raises(ValueError, match="compile the model"):
        dead_relu_trajectory(model, x, y, probe=x, steps=2, batch_size=8)
    model.compile(optimizer=TorchSGD(learning_rate=0.1), method="st")
    for bad in ({"steps": 0}, {"every": 0}, {"batch_size": True}):
        with pytest.raises(ValueError, match="must be an integer >= 1"):
            dead_relu_trajectory(model, x, y, probe=x, **{"steps": 2, "batch_size": 8, **bad})
    record = dead_relu_trajectory(model, x, y, probe=x[:10], steps=7, batch_size=16, every=3)  # wraps the data
    assert record["steps"] == [0, 3, 6, 7]
    assert all(len(v) == 4 for v in record["shares"].values())
    assert np.isnan(record["loss"][0]) and all(np.isfinite(record["loss"][1:]))
    assert record["learning_rate"][1:] == pytest.approx([0.1, 0.1, 0.1])


def test_reset_seed_replays_the_random_starts():
    from aatk import PGD

    from aatk_testutils import tiny_model

    model = tiny_model()
    x = np.random.default_rng(1).uniform(0, 1, size=(8, 6)).astype("float32")
    y = np.arange(8) % 3
    attack = PGD(norm="linf", eps=0.2, step_size=0.01, steps=1, random_start=True, seed=7)
    first = np.asarray(attack(model, x, y, way="robust"))
    second = np.asarray(attack(model, x, y, way="robust"))
    assert not np.array_equal(first, second)  # the generator moved on
    attack.reset_seed(7)
    np.testing.assert_array_equal(np.asarray(attack(model, x, y, way="robust")), first)
    fresh = PGD(norm="linf", eps=0.2, step_size=0.01, steps=1, random_start=True, seed=7)
    np.testing.assert_array_equal(np.asarray(fresh(model, x, y, way="robust")), first)
    with pytest.raises(ValueError, match="draws nothing at random"):
        PGD(norm="linf", eps=0.2, step_size=0.01, steps=1).reset_seed(0)
    with pytest.raises(ValueError, match="seed must be"):
        attack.reset_seed(-1)


def test_with_dtype_policy_recasts_every_layer_and_keeps_the_weights():
    from aatk.training import dtype_policy, with_dtype_policy

    with dtype_policy("mixed_bfloat16"):
        model = ThreeWayModel(backbones.small_cnn(name="r"), backbones.small_cnn(name="n"), num_classes=10)
    assert keras.config.dtype_policy().name == "float32"  # restored
    copy = with_dtype_policy(model, "float32")
    layers = [copy, copy.head_hidden, copy.head_logits, *copy.encoder_r.layers, *copy.encoder_n.layers]
    assert {layer.dtype_policy.name for layer in layers} == {"float32"}
    for a, b in zip(model.get_weights(), copy.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    bf16, f32 = np.asarray(model(x, way="robust")), np.asarray(copy(x, way="robust"))
    assert bf16.dtype == f32.dtype == np.float32
    np.testing.assert_allclose(bf16, f32, atol=0.1)  # bfloat16 keeps about 3 significant digits
    with pytest.raises(ValueError, match="unknown dtype policy"):
        with_dtype_policy(model, "float8")
