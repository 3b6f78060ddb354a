"""aatk.evaluate(checkpoint=...): an interrupted evaluation resumes and ends with the same figures."""

from __future__ import annotations

import io

import numpy as np
import pytest

import aatk
from aatk import evaluation
from aatk.attacks import APGD, PGD, SquareAttack
from aatk_testutils import briefly_trained


@pytest.fixture(scope="module")
def trained():
    """A tiny model trained briefly by AAT (read-only)."""
    return briefly_trained(seed=5, samples=36, method="aat", batch_size=12)


def random_attacks():
    """Three attacks that all draw random numbers, so that a resume must restore their state."""
    return [
        PGD(eps=0.15, step_size=0.05, steps=3, random_start=True, seed=1),
        APGD(norm="linf", eps=0.15, steps=4, seed=2),
        SquareAttack(norm="linf", eps=0.15, queries=6, seed=3),
    ]


class Interrupted(Exception):
    """Stands for a kill between two saves."""


def interrupt_after(monkeypatch, saves: int) -> None:
    """Makes the checkpoint raise right after its ``saves``-th write (the write itself lands)."""
    written = _Counter()
    original = evaluation._Checkpoint._write

    def write_then_maybe_stop(self, *args, **kwargs):
        original(self, *args, **kwargs)
        written.count += 1
        if written.count == saves:
            raise Interrupted

    monkeypatch.setattr(evaluation._Checkpoint, "_write", write_then_maybe_stop)


class _Counter:
    count = 0


def interrupted(monkeypatch, saves: int, evaluate, **kwargs) -> None:
    """Calls ``evaluate(**kwargs)`` and interrupts it right after its ``saves``-th save."""
    with monkeypatch.context() as patch:
        interrupt_after(patch, saves)
        with pytest.raises(Interrupted):
            evaluate(**kwargs)


def run(model, x, y, **kwargs):
    return aatk.evaluate(model, (x, y), random_attacks(), cascade=True, adaptive=True, batch_size=8, **kwargs)


def assert_same(resumed, whole) -> None:
    assert dict(resumed) == pytest.approx(dict(whole), nan_ok=True)
    assert resumed.per_attack == whole.per_attack
    for group in ("standard_attack", "robust_attack", "non_robust_attack", "adaptive_attack"):
        for key, value in whole.details[group].items():
            np.testing.assert_array_equal(resumed.details[group][key], value, err_msg=f"{group}/{key}")


@pytest.mark.parametrize("saves", [1, 2, 6, 13, 21])
def test_interrupted_evaluation_resumes_to_the_same_figures(trained, tmp_path, monkeypatch, saves):
    model, x, y = trained
    whole = run(model, x, y)
    path = tmp_path / "eval.partial.npz"
    interrupted(monkeypatch, saves, lambda: run(model, x, y, checkpoint=path))
    assert path.exists()
    messages = []

    class Notes(aatk.progress.Progress):
        def note(self, message):
            messages.append(message)

    resumed = run(model, x, y, checkpoint=path, progress=Notes(enabled=False))
    assert_same(resumed, whole)
    assert not path.exists(), "a finished evaluation removes its checkpoint"
    assert len(messages) == 1 and "resuming the evaluation saved in" in messages[0]
    assert "steps done" in messages[0]


def test_the_resumed_progress_counts_only_new_work_toward_the_time_left(trained, tmp_path, monkeypatch):
    """The examples read back from the checkpoint are restored on the bar, not counted as work done now."""
    model, x, y = trained
    path = tmp_path / "eval.partial.npz"
    interrupted(monkeypatch, 13, lambda: run(model, x, y, checkpoint=path))
    computed_from = []
    original = evaluation._run_batched

    def first_batch_position(function, inputs, indices, batch_size, bar, done, step, *, checkpoint=None):
        wrapped = function

        def function(*args):  # noqa: F811  the real work of a batch: where the bar stands then
            computed_from.append((bar.done, bar._restored))
            return wrapped(*args)

        return original(function, inputs, indices, batch_size, bar, done, step, checkpoint=checkpoint)

    monkeypatch.setattr(evaluation, "_run_batched", first_batch_position)
    run(model, x, y, checkpoint=path, progress=aatk.progress.Progress(stream=io.StringIO()))
    done, restored = computed_from[0]
    assert restored > 0 and done == restored, "everything before the first computed batch was restored"
    assert all(restored_now == restored for _, restored_now in computed_from), "nothing computed counts as restored"


def test_an_uninterrupted_evaluation_with_a_checkpoint_is_the_plain_one(trained, tmp_path):
    model, x, y = trained
    path = tmp_path / "eval.partial.npz"
    assert_same(run(model, x, y, checkpoint=path), run(model, x, y))
    assert not path.exists() and not list(tmp_path.iterdir()), "no file is left behind"


def test_resumes_twice_and_across_empty_cascade_steps(trained, tmp_path, monkeypatch):
    """An attack with no survivor to run on is a step too; interrupted twice, still the same figures."""
    model, x, y = trained
    deterministic_first = lambda: [PGD(eps=0.5, step_size=0.1, steps=6),  # noqa: E731
                                   SquareAttack(norm="linf", eps=0.5, queries=4, seed=5)]
    # Keep only the examples the deterministic first attack fools on the non-robust way: the
    # Square Attack then has no survivor to run on there.
    alone = aatk.evaluate(model, (x, y), deterministic_first()[0], adaptive=False, batch_size=8)
    fooled = alone.details["non_robust_attack"]["non_robust"] != y
    assert fooled.sum() >= 8
    x, y = x[fooled], y[fooled]

    def evaluate(**kwargs):
        return aatk.evaluate(model, (x, y), deterministic_first(), cascade=True, adaptive=False, batch_size=8,
                             **kwargs)

    whole = evaluate()
    assert not whole.details["attacks"]["Square"]["non_robust_attack"]["attacked"].any(), "a step with no survivor"
    path = tmp_path / "eval.partial.npz"
    for saves in (3, 4):
        interrupted(monkeypatch, saves, evaluate, checkpoint=path)
    assert dict(evaluate(checkpoint=path)) == pytest.approx(dict(whole), nan_ok=True)


def test_a_checkpoint_of_another_evaluation_is_refused(trained, tmp_path, monkeypatch):
    model, x, y = trained
    path = tmp_path / "eval.partial.npz"
    interrupted(monkeypatch, 2, lambda: run(model, x, y, checkpoint=path))
    saved = path.read_bytes()
    other_attacks = [PGD(eps=0.2, step_size=0.05, steps=3, random_start=True, seed=1)]
    for call in (
        lambda: run(model, x[:20], y[:20], checkpoint=path),  # other test examples
        lambda: aatk.evaluate(model, (x, y), other_attacks, batch_size=8, checkpoint=path),  # other attacks
        lambda: aatk.evaluate(model, (x, y), random_attacks(), cascade=True, batch_size=12, checkpoint=path),
    ):
        with pytest.raises(ValueError, match="written by another evaluation"):
            call()
        assert path.read_bytes() == saved, "a refused checkpoint is left as it was"


def test_other_weights_are_another_evaluation(trained, tmp_path, monkeypatch):
    model, x, y = trained
    path = tmp_path / "eval.partial.npz"
    interrupted(monkeypatch, 1, lambda: run(model, x, y, checkpoint=path))
    weights = model.get_weights()
    model.set_weights([w + 0.01 for w in weights])
    try:
        with pytest.raises(ValueError, match="other model weights"):
            run(model, x, y, checkpoint=path)
    finally:
        model.set_weights(weights)  # the fixture is shared


def test_a_damaged_checkpoint_is_named(trained, tmp_path):
    model, x, y = trained
    path = tmp_path / "eval.partial.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"cannot be read .*remove it"):
        run(model, x, y, checkpoint=path)


@pytest.mark.parametrize(
    "checkpoint, message",
    [(3, "checkpoint must be a file path"), (["a.npz"], "checkpoint must be a file path"),
     ("no/such/folder/eval.npz", "does not exist")],
)
def test_bad_checkpoint_arguments(trained, checkpoint, message):
    model, x, y = trained
    with pytest.raises(ValueError, match=message):
        aatk.evaluate(model, (x, y), PGD(eps=0.1, step_size=0.05, steps=1), checkpoint=checkpoint)
