# %% [markdown]
# # Two backends, several devices, and a fast step
#
# aatk runs on Keras's **TensorFlow** and **JAX** backends. The model, the objectives,
# the attacks and the evaluation are written once with `keras.ops`; only the glue in
# `aatk/backend/` differs: how a gradient with respect to the *inputs* is taken (for
# PGD), how the weights' gradient is taken, and how a stateful train step becomes the
# functional step JAX compiles. Choose the backend before Keras is imported:
#
# ```bash
# KERAS_BACKEND=jax aatk train --config configs/mnist_aat.toml --out runs/mnist_aat_jax
# ```
#
# This page runs under whichever backend the documentation was built with (the test
# suite builds the site under TensorFlow and runs this page as a script under JAX). It shows:
#
# 1. the same training on one device and on two, through the backend's own
#    distribution engine (`tf.distribute.MirroredStrategy` or
#    `keras.distribution.DataParallel`), giving the same weights;
# 2. the multi-worker set-up for a cluster;
# 3. what the train step does to be fast, and mixed precision on a GPU.
#
# Devices must be declared before TensorFlow or JAX starts, so this comes first: two
# logical devices carved out of the CPU, which is all a laptop has.

# %%
import os

BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
if BACKEND == "jax":
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
else:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from pathlib import Path

import keras
import numpy as np

import aatk
from aatk import datasets

print("Keras backend:", keras.backend.backend())


def repository_root() -> Path:
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists() and (folder / "configs").exists():
            return folder
    raise FileNotFoundError("run this tutorial from inside the aatk repository")


ROOT = repository_root()
DATA = os.environ.get("AATK_DATA_DIR") or str(ROOT.parent / "shared" / "data")
if not (Path(DATA) / "mnist").is_dir():
    DATA = None  # no local copy: tensorflow-datasets downloads MNIST (needs network)

# %% [markdown]
# ## 1. One device or two: the same training
#
# A small three-way model on 512 MNIST images, trained with AAT++ for one epoch of
# 8 steps of 64 images. To compare the runs exactly we take randomness out: the same
# initial weights (copied), no dropout, and PGD without random start.

# %%
x, y = datasets.load_arrays("mnist", "train", data_dir=DATA, subset=512)


def encoder():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu"),
    ])


def build_and_compile(initial_weights=None):
    model = aatk.ThreeWayModel(encoder(), encoder(), num_classes=10)
    if initial_weights is not None:
        model.set_weights(initial_weights)
    attack = aatk.PGD(norm="linf", eps=0.3, step_size=0.1, steps=3, bounds=(0.0, 1.0))
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), method="aat++", attack=attack)
    return model


keras.utils.set_random_seed(0)
one_device = build_and_compile()
initial = one_device.get_weights()
one_device.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)

# %% [markdown]
# Now on two devices. Under TensorFlow, build and compile inside a
# `MirroredStrategy`'s scope: each device gets half of every batch of 64 and the
# optimizer sums the two halves' gradients (aatk divides each replica's loss by the
# number of replicas, so the sum is the gradient of the whole batch's mean). Under
# JAX, set a `keras.distribution.DataParallel`: the batch is sharded across the
# devices and XLA inserts the all-reduce itself.

# %%
if BACKEND == "jax":
    import jax

    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    two_devices = build_and_compile(initial)
    print("devices:", jax.devices())
else:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        two_devices = build_and_compile(initial)
    print("replicas:", strategy.num_replicas_in_sync)
two_devices.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
if BACKEND == "jax":
    keras.distribution.set_distribution(None)

difference = max(float(np.abs(a - b).max()) for a, b in zip(one_device.get_weights(), two_devices.get_weights()))
moved = max(float(np.abs(a - b).max()) for a, b in zip(initial, one_device.get_weights()))
print(f"largest weight change in training: {moved:.3f}; largest difference between the runs: {difference:.1e}")
assert difference < 1e-4 * max(1.0, moved)

# %% [markdown]
# The weights moved by a few tenths and the two runs agree to float32 rounding:
# splitting the batch over devices changed nothing but where the work ran. (With
# BatchNorm in the encoders the two would differ slightly: each replica normalises by
# its own half-batch's statistics, as in any data-parallel training.) The test suite
# checks the same equality for both backends, and that TensorFlow and JAX give the
# same losses from the same initial weights (`tests/aatk_backends`).
#
# ## 2. Several machines
#
# On a cluster the same code runs on every worker; only the set-up differs.
#
# **TensorFlow**: every worker gets a `TF_CONFIG` naming the cluster and its own
# index, and the model is built in a `MultiWorkerMirroredStrategy`'s scope:
#
# ```python
# # On worker i of n: TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
# #                                "task": {"type": "worker", "index": i}}'
# import tensorflow as tf
# import aatk
# from aatk import training
# from aatk.configs import load_config
#
# strategy = tf.distribute.MultiWorkerMirroredStrategy()
# config = load_config("configs/mnist_aat.toml")
# with strategy.scope():
#     model = training.build_model(config)
#     model.compile(optimizer=training.build_optimizer(config, steps_per_epoch=469),
#                   method=config.method, attack=config.make_train_attack())
# train = aatk.datasets.load("mnist", "train", batch_size=128 * strategy.num_replicas_in_sync)
# model.fit(train, epochs=config.epochs)  # the global batch is split across all workers' devices
# ```
#
# **JAX**: every process calls `jax.distributed.initialize` with the coordinator's
# address, then lays the data out over *all* processes' devices:
#
# ```python
# # On process i of n (KERAS_BACKEND=jax):
# import jax
# jax.distributed.initialize(coordinator_address="host0:1234", num_processes=n, process_id=i)
# import keras
# keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
# # ...then build, compile and fit exactly as on one device; each process feeds its own
# # shard of every global batch (keras.distribution.distribute_dataset does it for tf.data).
# ```
#
# Keep the global batch the paper's (128 on MNIST) if you want its results: more
# devices then means fewer images per device, not a different optimisation.
#
# ## 3. A step that does no avoidable work
#
# `ThreeWayModel.train_step` is Algorithm 1, and it is organised so that the hardware
# does only what the algorithm needs:
#
# * **one attack for all ways.** AAT++ attacks the standard, robust and non-robust ways.
#   In inference mode each example's loss depends on that example alone, so the three
#   attacks run as one PGD on the batch repeated three times, and each encoder runs
#   once per PGD step instead of once per attacked way;
# * **one forward pass for all batches.** The clean batch and the adversarial batches
#   go through each encoder together (`ThreeWayModel.many_way_logits`), and the
#   three ways share one pass of the head. This is exact when no layer mixes the
#   examples of a batch; with BatchNorm in training mode the batches run one by one,
#   as the paper's training does;
# * **no host round trips.** Input checks are in the graph (TensorFlow) or before
#   training (JAX), metrics are updated on the device, and nothing is converted to
#   NumPy inside an epoch;
# * **compilation by measurement.** `aatk.backend.JIT_TRAIN_STEP` is what `aatk train`
#   passes as `jit_compile`: off for TensorFlow on CPU, where XLA made the attack loop
#   slower, and on for JAX, whose speed comes from jitting the whole step.
#
# `benchmarks/train_step_speed.py` measures each method under each backend and the
# ratio of an AAT step to the parts no implementation can avoid (the attack, and one
# training pass over the clean and adversarial images), beside a plain PyTorch loop;
# the figures are in [Development](../../development/).
#
# **Mixed precision on a GPU.** Set a policy before building the model; the heavy
# layers then compute in bfloat16 while the weights stay float32. aatk casts the
# logits to float32, so the losses and the attack's gradients keep their precision.
# bfloat16 needs no loss scaling (float16 would):
#
# ```python
# keras.mixed_precision.set_global_policy("mixed_bfloat16")
# model = aatk.ThreeWayModel(...)  # built after the policy is set
# ```
#
# `gpu/table3.py` does this for the full-length MNIST runs of Table 3 on one GPU. On a CPU
# the same policy (`aatk train --dtype mixed_bfloat16`) pays only where oneDNN has bfloat16
# kernels (AVX512-BF16 or AMX): there a train step ran 1.8–3.8× faster; on a CPU without them one
# three-way step took 8× longer than in float32 (`benchmarks/precision_speed.py`, figures in
# [Development](../../development/)).

# %%
keras.mixed_precision.set_global_policy("mixed_bfloat16")
mixed = aatk.ThreeWayModel(encoder(), encoder(), num_classes=10)
logits = mixed(x[:4], way="robust")
print("layer compute dtype:", mixed.encoder_r.layers[0].compute_dtype, "| logits:", logits.dtype,
      "| weights:", mixed.encoder_r.layers[0].kernel.dtype)
keras.mixed_precision.set_global_policy("float32")
