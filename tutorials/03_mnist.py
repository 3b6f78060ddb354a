# %% [markdown]
# # AAT on MNIST, from the command line and from Python
#
# This tutorial trains the paper's three-way model on real MNIST twice: once with the
# `aatk` command line and a configuration file, once with the Python API. To run in
# minutes on a CPU it uses a few hundred training images and one epoch; the full schedule
# of Table 5 is the same commands without `--subset` and `--epochs` (see
# [Results](../../results.md) for what that costs and gives).
#
# The MNIST files are read from a local copy of the original distribution
# (`$AATK_DATA_DIR`, or `../shared/data` next to the repository); without one, `aatk`
# falls back to tensorflow-datasets, which downloads MNIST.

# %%
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import keras

import aatk
from aatk import backbones, datasets


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
DATA_ARGS = ["--data-dir", DATA] if DATA else []
print("configurations:", sorted(p.name for p in (ROOT / "configs").glob("mnist_*.toml")))
print("data:", DATA or "tensorflow-datasets")

# %% [markdown]
# ## 1. The command line
#
# A configuration holds one row of Table 3: backbone, method, the optimiser of Table 5 with the
# numerics of the paper's PyTorch code, the training attack, the test attacks and a small
# attacked evaluation after every epoch. `configs/mnist_aat++.toml` extends `configs/_mnist.toml`:

# %%
print((ROOT / "configs" / "_mnist.toml").read_text())

# %% [markdown]
# `aatk train` writes a run folder with the resolved configuration, a checkpoint after every
# epoch, a CSV log (with each epoch's learning rate and time), the attacked monitor
# (`monitor.csv`: clean S, R, N and R_adv, N_adv, DIA on the first test images after every
# epoch) and the final model. Run the same command again after an interruption and it
# resumes from the last finished epoch, to the same weights as an uninterrupted run. One
# process at a time works in a run folder (a second `aatk train` there stops at once,
# naming the first one's pid), and `--out` never writes into a folder that holds anything
# but a run of the same configuration unless you add `--overwrite` (the Reliability page
# lists every guarantee). Here: 512 training images, one epoch (two optimiser steps, still
# inside the 75-step warm-up), and the monitor on 100 test images.

# %%
run = Path(tempfile.mkdtemp()) / "mnist_aat++"
small = Path(tempfile.mkdtemp()) / "mnist_aat++_small_monitor.toml"
small.write_text(f'extends = "{ROOT / "configs" / "mnist_aat++.toml"}"\n[monitor]\nsubset = 100\n')
command = [sys.executable, "-m", "aatk", "train", "--config", str(small),
           *DATA_ARGS, "--subset", "512", "--epochs", "1", "--out", str(run), "--verbose", "0"]
print(" ".join(command[2:]))
result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
if result.returncode != 0:
    raise RuntimeError(result.stderr[-2000:])
print(result.stdout)
print(sorted(p.name for p in run.iterdir()))
print((run / "log.csv").read_text())
print((run / "monitor.csv").read_text())

# %% [markdown]
# `aatk evaluate` attacks the trained model with every test attack of its configuration —
# YOPO's PGD-40 (the attack Table 3 is compared under) and both literal readings of Table
# 4a's MNIST attack — and writes one JSON and one Markdown file per attack; `aatk report`
# gathers run folders into a table laid out like Table 3.

# %%
for args in (["evaluate", "--run", str(run), *DATA_ARGS, "--subset", "100", "--no-adaptive"],
             ["report", "--runs", str(run)]):
    result = subprocess.run([sys.executable, "-m", "aatk", *args], capture_output=True, text=True, cwd=ROOT)
    print(result.stdout if result.returncode == 0 else result.stderr[-2000:])

# %%
print(json.dumps(json.loads((run / "eval-mnist-linf-pgd40.json").read_text())["figures"], indent=1)[:600])

# %% [markdown]
# ## 2. The same from Python
#
# `aatk.datasets.load` gives a `tf.data.Dataset` of float images in [0, 1] and integer
# labels; `aatk.backbones.small_cnn` is the paper's MNIST encoder (the small CNN of YOPO and
# TRADES without its last layer). Attacks work in pixel space, which is why any
# normalisation lives inside the encoders.

# %%
train = datasets.load("mnist", "train", data_dir=DATA, subset=512, batch_size=64, seed=0)
test_x, test_y = datasets.load_arrays("mnist", "test", data_dir=DATA, subset=200)
images, labels = next(iter(train))
print(images.shape, images.dtype, float(images.numpy().min()), float(images.numpy().max()), labels[:10].numpy())

keras.utils.set_random_seed(0)
model = aatk.ThreeWayModel(
    backbones.small_cnn(init="pytorch", name="g_r"), backbones.small_cnn(init="pytorch", name="g_n"),
    num_classes=10, init="pytorch",  # YOPO's initialisation of the encoders, nn.Linear's of the head
)
steps_per_epoch = 512 // 64
schedule = aatk.optim.PiecewiseConstantWithWarmup(  # Table 5: lr 0.1, ×0.1 at epochs 50 and 55
    boundaries=[50 * steps_per_epoch, 55 * steps_per_epoch], values=[0.1, 0.01, 0.001], warmup_steps=4
)
model.compile(
    optimizer=aatk.optim.TorchSGD(schedule, momentum=0.9, weight_decay=5e-4),  # torch.optim.SGD's update
    method="aat++",
    attack=aatk.PGD(norm="linf", eps=0.3, step_size=0.1, steps=5, random_start=True),  # reaches eps 0.3
)
history = model.fit(train, epochs=1, verbose=0)
print({k: round(v[-1], 3) for k, v in history.history.items()})

# %%
pgd40 = aatk.PGD(norm="linf", eps=0.3, step_size=0.01, steps=40, random_start=True, seed=0)  # YOPO's test attack
report = aatk.evaluate(model, (test_x, test_y), pgd40, adaptive=False)
print(report)

# %% [markdown]
# After one epoch on 512 images (eight optimiser steps at batch 64) the model is still far
# from trained: the point here is the workflow, not the figures. The measured MNIST runs,
# their commands and what they found are on the [Results](../../results.md) page.
#
# ## 3. The paper's training recipe, and why the warm-up
#
# The paper trained with PyTorch and YOPO's settings (Appendix B.2, Table 5). Three numerics
# differ between that code and Keras's defaults, and aatk follows the paper's by default in
# the configurations that reproduce it:
#
# * **Initialisation.** Keras draws every kernel Glorot-uniform; YOPO's small CNN draws its
#   convolutions from N(0, 2/fan_in) and its dense layers, like every `nn.Linear`, from
#   U(±1/√fan_in). `init="pytorch"` (`aatk.initializers`) gives those.
# * **Weight decay.** `torch.optim.SGD` adds wd·w to the gradient *before* momentum, so the
#   decay builds up in the momentum buffer; Keras subtracts lr·wd·w once per step.
#   `aatk.optim.TorchSGD` is PyTorch's update:

# %%
keras_like, torch_like = keras.Variable([1.0]), keras.Variable([1.0])
decoupled = keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=5e-4)
coupled = aatk.optim.TorchSGD(0.1, momentum=0.9, weight_decay=5e-4)
for _ in range(100):  # a weight with zero loss gradient: only the decay moves it
    decoupled.apply([keras.ops.zeros((1,))], [keras_like])
    coupled.apply([keras.ops.zeros((1,))], [torch_like])
print(f"after 100 steps: Keras SGD {float(keras_like.numpy()[0]):.4f}, PyTorch SGD {float(torch_like.numpy()[0]):.4f}")

# %% [markdown]
# * **The learning rate.** Table 5's peak rate of 0.1 is at the edge of stability for the
#   three-way model, whose loss sums three (L_ST) to seven (AAT++) cross-entropies through one
#   shared head: within its first tens of steps most ReLU units of one encoder or of the head
#   can stop firing on every input, and the model then predicts one class. A linear warm-up
#   over the first 75 steps (`PiecewiseConstantWithWarmup(..., warmup_steps=75)`, not in the
#   paper) is aatk's remedy; `aatk analyze dead-relus` measures it, and the
#   [Results](../../results.md) page shows the figure for three recipes. The tool counts, layer
#   by layer, the units that output zero on every probe input:

# %%
from aatk.analysis.dead_relus import dead_unit_shares

shares = dead_unit_shares(model, test_x[:128])
print({name: f"{100 * share:.0f}%" for name, share in shares.items()})
