# %% [markdown]
# # Baselines and analyses: ST+AT, pseudo-inputs, the ablation, detection, gradients, inversion
#
# The paper's argument rests on comparisons and pictures as much as on Table 3: the
# baselines of Section 3.1 (one-way ST and AT, their combination ST+AT, and PI, the
# pseudo-input method of Ilyas et al.), the ablation of Fig. 2b, detection and calibration
# (Table 4b), and the qualitative analyses of Appendix D. Each is one `aatk` command that
# writes a table or a figure, and one Python function in `aatk.experiments` behind it.
#
# This tutorial runs every one of them on **tiny** settings — a thousand MNIST images,
# one epoch, a hundred test images — so that it executes in minutes on a CPU. The figures below therefore show the
# *workflow*; the same commands on real runs, and what they found, are on the
# [Results](../../results.md) page.

# %%
import csv
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib import image as mpimg

from aatk import experiments
from aatk.ablation import run_ablation
from aatk.configs import load_config
from aatk.training import evaluate_run, train


def repository_root() -> Path:
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists() and (folder / "configs").exists():
            return folder
    raise FileNotFoundError("run this tutorial from inside the aatk repository")


logging.getLogger("tensorflow").setLevel(logging.ERROR)  # quiet tf.function retracing notes
ROOT = repository_root()
DATA = os.environ.get("AATK_DATA_DIR") or str(ROOT.parent / "shared" / "data")
if not (Path(DATA) / "mnist").is_dir():
    DATA = None  # no local copy: tensorflow-datasets downloads MNIST (needs network)
WORK = Path(tempfile.mkdtemp())
FIGURES = WORK / "figures"


def draw(path: Path, width: float = 9.0) -> None:
    """Draws a PNG written by one of the commands into a new figure, to be shown next."""
    pixels = mpimg.imread(path)
    height = width * pixels.shape[0] / pixels.shape[1]
    plt.figure(figsize=(width, height))
    plt.imshow(pixels)
    plt.axis("off")


# %% [markdown]
# ## 1. Three tiny runs
#
# One-way ST trains only the non-robust way on clean images, one-way AT only the robust way
# (half clean, half adversarial: Table 3's AT row, `mnist_at_half`), AAT++ all three ways with
# Eq. 11. These are the shipped configurations of Table 3 with these overrides: 1,024 training
# images, three epochs of 32 batches of 32, a learning rate of 0.05 from the first step (Table
# 5's 0.1 comes with a 75-step warm-up, most of this whole run), no per-epoch attack monitor,
# and one test attack, YOPO's PGD-40 (the shipped configurations also run Table 4a's two
# literal readings). A hundred steps make models that are far from trained (the clean
# accuracies printed below, on 1,024 test images): the figures of this page show the workflow,
# not the paper's results.

# %%
OVERRIDES = {
    "training.subset": 1024, "training.epochs": 3, "training.batch_size": 32,
    "training.learning_rate": 0.05, "training.warmup_steps": 0,
    "monitor.subset": 0, "attack.test": ["mnist-linf-pgd40"],
}
runs = {}
for name, configuration in (("st", "mnist_st"), ("at", "mnist_at_half"), ("aat++", "mnist_aat++")):
    config = load_config(ROOT / "configs" / f"{configuration}.toml", overrides=OVERRIDES)
    runs[name] = WORK / configuration
    train(config, out=runs[name], data_dir=DATA, verbose=0)
    with (runs[name] / "log.csv").open() as log:
        last = list(csv.DictReader(log))[-1]
    clean = {way: f"{float(last[f'test_acc_{short}']):.0%}" for way, short in (("S", "s"), ("R", "r"), ("N", "n"))}
    print(f"{configuration}: method {config.method}, clean test accuracy {clean} (one-way runs train one way)")

# %% [markdown]
# ## 2. ST+AT: two one-way models evaluated as one
#
# "The simplest solution to extract robust and non-robust representations would be to combine
# a standard and robust classifier" (Sec. 3.1). `aatk combine` (or
# `experiments.combine_runs`) evaluates the AT model's robust way and the ST model's
# non-robust way as the two ways of one model, so DIA and the detection rule apply. It has
# no standard way of its own; ours is the ensemble of the two, and tables leave its S out.
# Its output folder names the two runs (`combined.json`), so `aatk analyze masking --run` and
# `aatk analyze detector --runs` take it as the ST+AT model.

# %%
for run in (runs["st"], runs["at"]):
    evaluate_run(run, data_dir=DATA, subset=100, adaptive=False)
combined = experiments.combine_runs(runs["st"], runs["at"], out=WORK / "mnist_st+at", data_dir=DATA, subset=100)
result = subprocess.run(
    [sys.executable, "-m", "aatk", "report", "--runs", str(runs["st"]), str(runs["at"]), str(WORK / "mnist_st+at")],
    capture_output=True, text=True, cwd=ROOT,
)
print(result.stdout if result.returncode == 0 else result.stderr[-2000:])

# %% [markdown]
# ## 3. PI: the pseudo-input baseline
#
# Ilyas et al. (2019) build a *robust* dataset — each training image's robust representation,
# inverted from another image with the AT model — and a *non-robust* one — targeted
# adversarial examples of the ST model, labelled with their target. The paper trains the robust
# way on the first and the non-robust way on the second (the standard way, on which it is
# silent, trains here on the natural images). `aatk pseudo-inputs` builds both sets (cached in
# the run folder) and trains; inversion takes 200 steps by default, 20 here.

# %%
pi_config = load_config(ROOT / "configs" / "mnist_pi.toml", overrides=OVERRIDES)
pi_run = WORK / "mnist_pi"
experiments.pseudo_input_run(pi_config, st_run=runs["st"], at_run=runs["at"], out=pi_run, data_dir=DATA,
                             inversion_steps=20, verbose=0)
print(json.loads((pi_run / "pseudo_inputs.json").read_text()))
print(evaluate_run(pi_run, data_dir=DATA, subset=100, adaptive=False)["mnist-linf-pgd40"]["report"])

# %% [markdown]
# What the two pseudo-input sets look like: a robust pseudo-input keeps what the AT model's
# representation sees of its target, a non-robust one is a natural image of one class with a
# label of another.

# %%
import numpy as np  # noqa: E402

from aatk.analysis import image_grid  # noqa: E402
from aatk.datasets import load_arrays  # noqa: E402

natural, labels = load_arrays("mnist", "train", data_dir=DATA, subset=1024)
with np.load(pi_run / "pseudo_inputs.npz") as parts:
    path = image_grid(
        {"natural": natural[:8], "robust pseudo-input": parts["x_robust"][:8],
         "non-robust pseudo-input": parts["x_non_robust"][:8]},
        FIGURES / "pseudo_inputs.png",
        column_titles=[f"{y}→{t}" for y, t in zip(labels[:8], parts["y_non_robust"][:8])],
        title="Pseudo-inputs (column title: true label → non-robust label)",
    )
draw(path)
plt.show()

# %% [markdown]
# ## 4. The ablation of Fig. 2b
#
# `aatk ablation` trains one run per combination of the four terms of Eq. 11 (all fifteen by
# default; here two) from one base configuration, evaluates each under one test attack, and
# writes a table, a JSON file and a grouped bar chart. Started again, it skips what is done.

# %%
base = load_config(ROOT / "configs" / "mnist_aat++.toml", overrides=OVERRIDES)
results = run_ablation(base, out=WORK / "ablation", combinations=[("st",), ("st", "as")], eval_subset=100,
                       data_dir=DATA, verbose=0)
print((WORK / "ablation" / "ablation.md").read_text())
draw(WORK / "ablation" / "ablation.png", width=7)
plt.show()

# %% [markdown]
# ## 5. Detection and calibration (Table 4b), naive and adaptive
#
# Eq. 12 flags an input when the robust and non-robust ways disagree. On the equal mixture of
# natural and standard-way adversarial test images, `aatk analyze detection` reports RAD, the
# standard way's accuracy (raw), the accuracy when flagged inputs go to the robust way
# (calibrated), the ROC AUC of the continuous score (the Jensen–Shannon divergence of the two
# ways) — and the same figures under an *adaptive* attack that pushes both ways to the same
# wrong class, the attack a detector has to survive.

# %%
path = experiments.detection_figure([runs["aat++"]], out=FIGURES, data_dir=DATA, subset=100)
print(path.read_text())
draw(FIGURES / "roc-mnist_aat++.png", width=8)
plt.show()

# %% [markdown]
# ## 6. Accuracy against ε, one curve per way
#
# The most direct picture of disentanglement: attack each way on its own loss with growing
# budgets. A disentangled model keeps its robust way up while its non-robust way falls.

# %%
path = experiments.eps_curve_figure([runs["st"], runs["at"], runs["aat++"]], out=FIGURES, norm="linf",
                                    data_dir=DATA, subset=100, eps_values=[0.0, 0.1, 0.2, 0.3], steps=5)
print(json.loads((FIGURES / "eps-linf.json").read_text())["runs"]["mnist_aat++"])
draw(path, width=10)
plt.show()

# %% [markdown]
# ## 7. Gradients and inversion (Appendix D)
#
# Appendix D.1 shows the input gradient of each way's loss on a clean image, clipped to ±3
# standard deviations and rescaled to [0, 1]; D.2 optimises an image from noise until its
# robust (or non-robust) representation matches a target's. In a well-trained model the
# robust way's pictures look like digits and the non-robust way's like noise. The command-line
# form of both:

# %%
for analysis, extra in (("gradients", []), ("inversion", ["--steps", "100"])):
    command = [sys.executable, "-m", "aatk", "analyze", analysis, "--run", str(runs["aat++"]),
               "--out", str(FIGURES), *(["--data-dir", DATA] if DATA else []), *extra]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    print(" ".join(command[2:6]), "→", result.stdout.strip() if result.returncode == 0 else result.stderr[-2000:])
draw(FIGURES / "gradients.png")
plt.show()
draw(FIGURES / "inversion.png")
plt.show()
