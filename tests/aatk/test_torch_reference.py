"""benchmarks/torch_reference.py: the PyTorch PGD-AT baseline has our model's shapes and works.

``benchmarks`` is not a package, so the file is loaded by path.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "torch_reference.py"


@pytest.fixture(scope="module")
def ref():
    spec = importlib.util.spec_from_file_location("torch_reference", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_shapes_and_parameter_count(ref):
    model = ref.build_model().eval()
    logits = model(torch.rand(3, 1, 28, 28))
    assert tuple(logits.shape) == (3, 10)
    expected = (
        1024 * 200 + 200
        + 200 * 200 + 200
        + 32 * 9 + 32
        + 32 * 32 * 9 + 32
        + 32 * 64 * 9 + 64
        + 64 * 64 * 9 + 64
        + 400 * 200 + 200
        + 200 * 10 + 10
    )  # fmt: skip
    assert sum(p.numel() for p in model.parameters()) == expected


def test_pgd_stays_in_the_ball_and_the_box(ref):
    generator = torch.Generator().manual_seed(0)
    model = ref.build_model().eval()
    x = torch.rand((4, 1, 28, 28), generator=generator)
    y = torch.randint(0, 10, (4,), generator=generator)
    eps = 0.3
    x_adv = ref.pgd_linf(model, x, y, eps=eps, step_size=0.01, steps=3, generator=generator)
    assert x_adv.shape == x.shape
    assert not x_adv.requires_grad
    assert float((x_adv - x).abs().max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert not torch.equal(x_adv, x)
    assert all(p.grad is None for p in model.parameters())


def test_rejects_a_zero_batch_size(ref):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        ref.pgd_at_seconds_per_step(batch_size=0)


def test_times_a_step(ref):
    seconds = ref.pgd_at_seconds_per_step(batch_size=8, steps=1, warmup=1)
    assert isinstance(seconds, float)
    assert seconds > 0 and math.isfinite(seconds)
