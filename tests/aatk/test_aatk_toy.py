"""The toy job of aatk.toy: AAT++ on the Proposition 1 distribution disentangles.

Note: with ``train_samples=2000`` (8 steps of 256 per epoch) two epochs are too few
for the adversarial terms to kick in (R_adv = N_adv, DIA = 0 for seed 0), so the
job runs on 20 000 samples (~79 steps per epoch, about 12 s on 2 CPU cores).
"""

from __future__ import annotations

import math

import pytest

import aatk
from aatk import toy


@pytest.fixture(scope="module")
def result():
    return toy.run(epochs=2, train_samples=20_000, test_samples=500)


def test_toy_job_disentangles(result):
    report = result["report"]
    assert isinstance(report, aatk.EvaluationReport) and report.samples == 500
    assert report["R_adv"] > report["N_adv"] + 0.1
    assert report["DIA"] == pytest.approx(report["R_adv"] - report["N_adv"])
    # The standard way is not far from the Bayes-optimal accuracy; no way beats it by much.
    bayes = float(result["optima"]["bayes_standard"])
    assert 0.5 < bayes < 1
    assert report["S"] > bayes - 0.1
    for key in ("S", "R", "N"):
        assert report[key] <= bayes + 0.05  # 500 test samples: a few standard errors
    assert set(result["history"]) >= {"loss", "l_st", "l_as", "l_ar", "l_an", "kept_s", "kept_n"}
    assert all(len(v) == 2 for v in result["history"].values())


def test_toy_reliance_shares(result):
    shares = result["reliance"]
    assert set(shares) == {"z_r", "z_n"}
    for name, groups in shares.items():
        assert set(groups) == {"robust", "non_robust"}
        assert all(0.0 <= v <= 1.0 for v in groups.values()), name
        assert math.isclose(sum(groups.values()), 1.0, abs_tol=1e-9), name
    # The robust representation leans less on the non-robust coordinates than the non-robust one.
    assert shares["z_r"]["non_robust"] < shares["z_n"]["non_robust"]
    assert sorted(result["groups"]["robust"] + result["groups"]["non_robust"]) == list(range(7))


def test_toy_format_result(result):
    text = toy.format_result(result)
    assert "DIA = R_adv - N_adv" in text and "z_r" in text and "z_n" in text


def test_toy_rejects_bad_arguments(capsys):
    with pytest.raises(ValueError, match="method must be one of"):
        toy.run(method="pgd")
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        toy.run(epochs=0)
    assert toy.main(["--train-samples", "0"]) == 2
    assert "train_samples must be >= 1" in capsys.readouterr().err
