"""aatk.baselines.CombinedOneWay: ST+AT, two one-way models evaluated as one three-way model.

Paper: Section 3.1 ("ST+AT"), Tables 1–3.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

import aatk
from aatk import PGD
from aatk.baselines import CombinedOneWay
from baselines_testutils import tiny_model

ATTACK = PGD(norm="linf", eps=0.1, step_size=0.05, steps=2, random_start=False)


def _combined(pair):
    return CombinedOneWay(st_model=pair["st"], at_model=pair["at"])


def test_evaluate_gives_the_one_way_models_figures(one_way_pair):
    """R, R_adv come from the AT model and N, N_adv from the ST model — example by example."""
    x, y = one_way_pair["x"], one_way_pair["y"]
    combined = _combined(one_way_pair)
    report = aatk.evaluate(combined, (x, y), ATTACK, batch_size=16)
    at_report = aatk.evaluate(one_way_pair["at"], (x, y), ATTACK, batch_size=16, adaptive=False)
    st_report = aatk.evaluate(one_way_pair["st"], (x, y), ATTACK, batch_size=16, adaptive=False)
    assert report["R"] == at_report["R"] and report["R_adv"] == at_report["R_adv"]
    assert report["N"] == st_report["N"] and report["N_adv"] == st_report["N_adv"]
    assert report["DIA"] == at_report["R_adv"] - st_report["N_adv"]
    np.testing.assert_array_equal(report.details["clean"]["robust"], at_report.details["clean"]["robust"])
    np.testing.assert_array_equal(report.details["clean"]["non_robust"], st_report.details["clean"]["non_robust"])
    np.testing.assert_array_equal(
        report.details["robust_attack"]["robust"], at_report.details["robust_attack"]["robust"]
    )
    np.testing.assert_array_equal(
        report.details["non_robust_attack"]["non_robust"], st_report.details["non_robust_attack"]["non_robust"]
    )
    # The standard way is the ensemble: argmax of the averaged probabilities.
    ensemble = keras.ops.softmax(one_way_pair["at"](x, way="robust")) + keras.ops.softmax(
        one_way_pair["st"](x, way="non_robust")
    )
    assert report["S"] == pytest.approx(np.mean(np.argmax(np.asarray(ensemble), -1) == y))
    assert "RAD" in report and "AUC_adaptive" in report


def test_pgd_attacks_the_ways_of_the_combined_model(one_way_pair):
    x, y = one_way_pair["x"][:8], one_way_pair["y"][:8]
    combined = _combined(one_way_pair)
    np.testing.assert_allclose(
        np.asarray(ATTACK(combined, x, y, way="robust")), np.asarray(ATTACK(one_way_pair["at"], x, y, way="robust")),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        np.asarray(ATTACK(combined, x, y, way="non_robust")),
        np.asarray(ATTACK(one_way_pair["st"], x, y, way="non_robust")),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match=r"y must lie in \[0, 3\)"):
        ATTACK(combined, x, y + 3)


def test_interface_and_representations(one_way_pair):
    x = one_way_pair["x"][:4]
    combined = _combined(one_way_pair)
    assert combined.num_classes == 3 and combined.input_example_shape == (6,)
    logits = combined.way_logits(x, ways=("robust", "non_robust"))
    assert set(logits) == {"robust", "non_robust"}
    z_r, z_n = combined.representations(x)
    np.testing.assert_array_equal(np.asarray(z_r), np.asarray(one_way_pair["at"].encoder_r(x)))
    np.testing.assert_array_equal(np.asarray(z_n), np.asarray(one_way_pair["st"].encoder_n(x)))
    with pytest.raises(ValueError, match="per-example shape"):
        combined.validate_inputs(np.zeros((2, 5), "float32"))
    with pytest.raises(ValueError, match="way must be one of"):
        combined(x, way="both")


def test_save_and_load_round_trip(one_way_pair, tmp_path):
    x = one_way_pair["x"][:8]
    combined = _combined(one_way_pair)
    combined.save(tmp_path / "st_at.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = keras.models.load_model(tmp_path / "st_at.keras")  # safe_mode=True
    assert isinstance(loaded, CombinedOneWay)
    for way in aatk.WAYS:
        np.testing.assert_array_equal(np.asarray(loaded(x, way=way)), np.asarray(combined(x, way=way)))


def test_bad_constructions_raise(one_way_pair):
    st_model, at_model = one_way_pair["st"], one_way_pair["at"]
    with pytest.raises(ValueError, match="at_model must be an aatk.ThreeWayModel"):
        CombinedOneWay(st_model=st_model, at_model=keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)]))
    with pytest.raises(ValueError, match="same one twice"):
        CombinedOneWay(st_model=st_model, at_model=st_model)
    with pytest.raises(ValueError, match="has 3 classes but at_model has 4"):
        CombinedOneWay(st_model=st_model, at_model=tiny_model(num_classes=4))
    with pytest.raises(ValueError, match=r"st_model expects inputs \(6,\) but at_model expects \(5,\)"):
        CombinedOneWay(st_model=st_model, at_model=tiny_model(input_dim=5))
    with pytest.raises(ValueError, match="did you swap"):
        CombinedOneWay(st_model=at_model, at_model=st_model)
    with pytest.raises(TypeError):
        CombinedOneWay(st_model, at_model)  # keyword-only: the two roles cannot be swapped silently
    with pytest.raises(ValueError, match="is not trained"):
        _combined(one_way_pair).fit(one_way_pair["x"], one_way_pair["y"])
    with pytest.raises(ValueError, match="ThreeWayModel or aatk.baselines.CombinedOneWay"):
        aatk.evaluate(object(), (one_way_pair["x"], one_way_pair["y"]), ATTACK)
