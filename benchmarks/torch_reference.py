"""A plain PyTorch reference for the speed of one-way PGD adversarial training.

Measures the seconds (and so images/s) of one train step of standard PGD adversarial
training (Madry et al., 2018) on MNIST-shaped inputs, written the usual PyTorch way
(as in Madry's and the robustness library's code), so that other benchmarks can put
the speed of our Keras implementation next to a well-known baseline on the same CPU.

One train step is:

1. the attack, in eval mode (dropout off): L-inf PGD with eps = 0.3, step size 0.01,
   5 steps (the preset ``mnist-linf-train`` of :mod:`aatk.configs`), started from a
   uniform point of the eps-ball; each step moves by ``step_size * sign(grad)`` of the
   cross-entropy summed over the batch, projects onto the eps-ball and clips to
   [0, 1]; gradients are taken with respect to the inputs only
   (``torch.autograd.grad``), never accumulated into the parameters' ``.grad``;
2. the update, in train mode: mean cross-entropy on the adversarial batch with the
   true labels, then SGD (learning rate 0.1, momentum 0.9).

The model has exactly the shapes of ours, so both do the same floating-point work:
the encoder is the small CNN of TRADES/YOPO (:func:`aatk.backbones.small_cnn`:
unpadded 3x3 convolutions, 28 -> 26 -> 24 -> 12 -> 10 -> 8 -> 4 pixels, 4*4*64 = 1024
features, then Dense 200, Dropout 0.5, Dense 200), and the head is the two-layer head
of :class:`aatk.ThreeWayModel` (Dense 200 ReLU, Dense 10) applied to the 400-vector
``[z, 0]``: the one-way ("robust way") output of our two-encoder model sets the other
encoder's 200-d half to zeros, and this module computes that same concatenation.
Tensors are channels-first (N, C, H, W), PyTorch's native layout, so the baseline is
PyTorch at its usual best rather than a port of Keras' channels-last layout.

Inputs are random images in [0, 1] with random labels: speed does not depend on the
pixel values. Run ``python benchmarks/torch_reference.py [--batch-size 128]
[--steps 20] [--threads N]``; importing the module does no work.
"""

from __future__ import annotations

import argparse
import math
import time
from numbers import Integral, Real

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ATTACK_STEPS",
    "EPS",
    "LEARNING_RATE",
    "MOMENTUM",
    "STEP_SIZE",
    "OneWayNet",
    "build_model",
    "pgd_at_seconds_per_step",
    "pgd_linf",
    "torch_version",
    "train_step",
]

# The training attack (aatk.configs.ATTACK_PRESETS["mnist-linf-train"]) and optimizer.
EPS = 0.3
STEP_SIZE = 0.01
ATTACK_STEPS = 5
LEARNING_RATE = 0.1
MOMENTUM = 0.9

NUM_CLASSES = 10
HIDDEN = 200
IMAGE_SHAPE = (1, 28, 28)


def _check_int(name: str, value: object, *, minimum: int) -> int:
    """``value`` as an int if it is an integer (not a bool) ≥ ``minimum``, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)


def _check_float(name: str, value: object, *, positive: bool) -> float:
    """``value`` as a float if it is a finite real > 0 (``positive``) or ≥ 0, else ValueError."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):  # type: ignore[operator]
        expected = "a positive finite number" if positive else "a non-negative finite number"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


class OneWayNet(nn.Module):
    """The small CNN encoder and the two-layer head of the robust way of our model.

    ``forward(x)`` is ``head(cat([encoder(x), zeros], dim=1))``: the head sees a
    400-vector whose second half (the other encoder's output in our two-encoder
    model) is zero, as in the one-way output of :class:`aatk.ThreeWayModel`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 3),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, HIDDEN),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(HIDDEN, HIDDEN),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Linear(2 * HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, NUM_CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, 10) for images of shape (batch, 1, 28, 28) in [0, 1]."""
        z = self.encoder(x)
        return self.head(torch.cat([z, torch.zeros_like(z)], dim=1))


def build_model() -> nn.Module:
    """A freshly initialized :class:`OneWayNet` (PyTorch's default initialization).

    Returns:
        The model, on the CPU, in train mode; it maps (batch, 1, 28, 28) float32
        images to (batch, 10) logits.
    """
    return OneWayNet()


def pgd_linf(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """L-inf PGD from a uniform random start, maximizing the summed cross-entropy.

    The model is used in whatever mode it is in: call ``model.eval()`` first for
    the standard recipe (dropout off). Only the input gradient is computed
    (``torch.autograd.grad``); the parameters' ``.grad`` are left untouched.

    Args:
        model: Maps images to logits.
        x: Clean images in [0, 1], shape (batch, 1, 28, 28).
        y: True labels, int64 of shape (batch,).
        eps: Radius of the L-inf ball around ``x`` (≥ 0).
        step_size: Size of each signed-gradient step (> 0).
        steps: Number of steps (≥ 0; 0 returns the clipped random start).
        generator: Source of the random start.

    Returns:
        The adversarial images, detached, with ``|x_adv - x| <= eps`` and values in
        [0, 1].

    Raises:
        ValueError: If ``eps``, ``step_size`` or ``steps`` is out of range.
    """
    eps = _check_float("eps", eps, positive=False)
    step_size = _check_float("step_size", step_size, positive=True)
    steps = _check_int("steps", steps, minimum=0)
    x = x.detach()
    lower, upper = x - eps, x + eps
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    x_adv = (x + (2 * noise - 1) * eps).clamp_(0.0, 1.0)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
        with torch.no_grad():
            x_adv = x_adv + step_size * grad.sign()
            x_adv = torch.minimum(torch.maximum(x_adv, lower), upper).clamp_(0.0, 1.0)
    return x_adv.detach()


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    generator: torch.Generator,
) -> float:
    """One step of one-way PGD adversarial training (Madry et al.).

    Attacks in eval mode with :func:`pgd_linf` (eps :data:`EPS`, step size
    :data:`STEP_SIZE`, :data:`ATTACK_STEPS` steps), then, in train mode, takes one
    optimizer step on the mean cross-entropy of the adversarial batch.

    Args:
        model: The model to train (e.g. from :func:`build_model`).
        optimizer: Its optimizer (the benchmark uses SGD, lr 0.1, momentum 0.9).
        x: Clean images in [0, 1], shape (batch, 1, 28, 28).
        y: True labels, int64 of shape (batch,).
        generator: Source of the attack's random start.

    Returns:
        The training loss on the adversarial batch, before the update.
    """
    model.eval()
    x_adv = pgd_linf(model, x, y, eps=EPS, step_size=STEP_SIZE, steps=ATTACK_STEPS, generator=generator)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x_adv), y)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def pgd_at_seconds_per_step(
    *,
    batch_size: int = 128,
    steps: int = 20,
    warmup: int = 3,
    threads: int | None = None,
    seed: int = 0,
) -> float:
    """Seconds per one-way PGD-AT train step (mean over `steps` timed steps after `warmup` untimed ones).

    Every step gets its own batch of random images in [0, 1] and random labels,
    drawn beforehand from a ``torch.Generator`` seeded with ``seed``; the model is
    initialized under ``torch.manual_seed(seed)`` without touching the caller's
    global random state. The step runs synchronously on the CPU, so the wall clock
    (``time.perf_counter``) around the timed loop measures it.

    Args:
        batch_size: Images per step (positive).
        steps: Number of timed steps (positive).
        warmup: Number of untimed steps run first (≥ 0).
        threads: Intra-op threads (``torch.set_num_threads``) during the measurement,
            restored afterwards; ``None`` keeps PyTorch's current setting.
        seed: Seed of the data, the model's initialization and the attack (≥ 0).

    Returns:
        The mean wall-clock seconds of one train step; ``batch_size`` divided by it
        is the throughput in images/s.

    Raises:
        ValueError: If an argument is not an integer in its range.
    """
    batch_size = _check_int("batch_size", batch_size, minimum=1)
    steps = _check_int("steps", steps, minimum=1)
    warmup = _check_int("warmup", warmup, minimum=0)
    if threads is not None:
        threads = _check_int("threads", threads, minimum=1)
    seed = _check_int("seed", seed, minimum=0)

    generator = torch.Generator().manual_seed(seed)
    total = warmup + steps
    images = torch.rand((total, batch_size, *IMAGE_SHAPE), generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (total, batch_size), generator=generator)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)

    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        for i in range(warmup):
            train_step(model, optimizer, images[i], labels[i], generator=generator)
        start = time.perf_counter()
        for i in range(warmup, total):
            train_step(model, optimizer, images[i], labels[i], generator=generator)
        elapsed = time.perf_counter() - start
    finally:
        if threads is not None:
            torch.set_num_threads(previous_threads)
    return elapsed / steps


def torch_version() -> str:
    """The installed PyTorch version, e.g. ``"2.13.0+cpu"``."""
    return str(torch.__version__)


def main(argv: list[str] | None = None) -> None:
    """Command line: time the step and print ms/step and images/s."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=128, help="images per step (default 128)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: PyTorch's)")
    args = parser.parse_args(argv)
    try:
        seconds = pgd_at_seconds_per_step(batch_size=args.batch_size, steps=args.steps, threads=args.threads)
    except ValueError as error:
        parser.error(str(error))
    version = torch_version().split("+")[0]
    print(f"PyTorch {version} one-way PGD-AT ({ATTACK_STEPS}-step L-inf): {1e3 * seconds:.1f} ms/step, {args.batch_size / seconds:,.0f} images/s")


if __name__ == "__main__":
    main()
