"""The command line ``python -m theory.prop1``: its table, its JSON and its handling of bad input."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction as F
from pathlib import Path

import pytest

from theory import SignFlipDistribution, bayes_accuracy, best_robust_accuracy, h0, h1
from theory.exact import robust_accuracy, standard_accuracy
from theory.prop1 import main

ROOT = Path(__file__).resolve().parents[2]
FAST = ("--samples", "20000")

DEFAULT = ()  # the paper's instance with the default 1,000,000 samples
PAPER_JSON = ("--json", *FAST)
CUSTOM_JSON = ("--p", "0.9", "--eta", "0.5,0.5,0.5,2,2", "--eps", "0.5", "--json", *FAST)
CUSTOM_TABLE = ("--p", "3/4", "--eta", "1", "--d", "3", "--eps", "0", "--samples", "2000")

BAD_INPUT = [
    # (arguments, words the one-line message must contain)
    (("--p", "1.5"), "p must lie in [0, 1]"),
    (("--p", "-0.1"), "p must lie in [0, 1]"),
    (("--eta", "0.01,-1"), "eta[1] must be >= 0"),
    (("--eta", ""), "entry 1 is empty"),
    (("--eta", "0.01,,1"), "entry 2 is empty"),
    (("--eta", "abc"), "malformed --eta 'abc'"),
    (("--eps", "-0.1"), "eps must be >= 0"),
    (("--d", "0"), "--d must be >= 1"),
    (("--samples", "0"), "--samples must be >= 2"),
    (("--seed", "-1"), "--seed must be >= 0"),
    (("--d", "3", "--eta", "1,2"), "--d 3 does not match the 2 values of --eta"),
    (("--no-such-flag",), "unrecognized arguments: --no-such-flag"),
]
# More bad input, checked in-process through theory.prop1.main (no interpreter start-up).
MORE_BAD_INPUT = [
    (("--p", "nan"), "p must be a finite number"),
    (("--p", "abc"), "p must be a finite number"),
    (("--p", "inf"), "p must be a finite number"),
    (("--eta", "1/0"), "malformed --eta '1/0'"),
    (("--samples", "abc"), "--samples"),
    (("--confidence", "1"), "--confidence must lie in (0, 1)"),
    (("--confidence", "nan"), "--confidence must lie in (0, 1)"),
    (("--eta", "0,1"), "h0 needs every eta_i > 0"),  # h0 is undefined
    (("--eta", "0.01", "--eps", "0.02"), "h1 needs a feature with eta_i > eps"),  # h1 is undefined
    (("--eta", "1", "--d", "21"), "exact enumeration is limited to d <= 20"),
]


def _with_fast_samples(args: tuple[str, ...]) -> tuple[str, ...]:
    return args if "--samples" in args else (*args, *FAST)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "theory.prop1", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def runs() -> dict[tuple[str, ...], subprocess.CompletedProcess[str]]:
    """Every command line of this module, run once each, concurrently (start-up dominates)."""
    commands = [DEFAULT, PAPER_JSON, CUSTOM_JSON, CUSTOM_TABLE]
    commands += [_with_fast_samples(args) for args, _ in BAD_INPUT]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda args: run_cli(*args), commands))
    return dict(zip(commands, results))


@pytest.fixture(scope="module")
def default_run(runs) -> subprocess.CompletedProcess[str]:
    return runs[DEFAULT]


@pytest.fixture(scope="module")
def paper_json(runs) -> dict:
    result = runs[PAPER_JSON]
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# --- the paper's instance ---------------------------------------------------------------------


def test_default_output_is_the_table_with_verdicts(default_run) -> None:
    assert default_run.returncode == 0, default_run.stderr
    assert default_run.stderr == ""
    out = default_run.stdout
    assert out.startswith("Proposition 1 (Appendix A.2) on the paper's instance")
    assert "p = 0.8, d = 7, eta = (0.01, 0.01, 0.01, 0.01, 1, 1, 1)" in out
    assert "eps = 0.02" in out
    assert "1,000,000 samples" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("#"))
    for column in ("claim", "paper", "exact", "Monte Carlo", "verdict"):
        assert column in header

    def row(number: int) -> str:
        return next(line for line in lines if line.startswith(f"{number} "))

    # h0 standard: the paper says 0.944, the exact 7-vote majority is 15104/15625.
    assert "0.944" in row(1) and "15104/15625 (= 0.966656)" in row(1) and "differs" in row(1)
    assert "confirmed" in row(3)  # h0 is Bayes-optimal
    assert "0.000" in row(4) and "confirmed" in row(4)  # h0 robust accuracy 0
    assert "0.880" in row(6) and "112/125 (= 0.896)" in row(6) and "differs" in row(6)
    assert "1/5 (= 0.2)" in row(12) and "confirmed" in row(12)  # Eq. 22
    assert "refuted" in row(13)  # Eq. 20 as printed
    assert "Notes" in lines
    # Six figures are exact matches or holding statements, six differ from the union bounds, Eq. 20 fails.
    assert "13 claims: 6 confirmed, 6 differs, 1 refuted." in out
    assert "Traceback" not in out


def test_json_on_the_paper_instance(paper_json) -> None:
    data = paper_json
    assert data["instance"]["is_paper_instance"] is True
    assert data["instance"]["p"] == "4/5" and data["instance"]["eps"] == "1/50"
    assert data["instance"]["eta"] == ["1/100"] * 4 + ["1"] * 3
    assert data["instance"]["samples"] == 20000
    assert data["h0"]["weights"] == ["100"] * 4 + ["1"] * 3
    assert data["h1"]["weights"] == ["0"] * 4 + ["1"] * 3
    expected = {
        ("h0", "standard"): ("15104/15625", 0.944),
        ("h0", "robust"): ("0", 0.0),
        ("h1", "standard"): ("112/125", 0.88),
        ("h1", "robust"): ("112/125", 0.88),
    }
    for (name, kind), (exact, paper) in expected.items():
        figure = data[name][kind]
        assert figure["exact"] == exact
        assert figure["exact_float"] == float(F(exact))
        assert figure["paper"] == paper
        assert isinstance(figure["monte_carlo"], float)
        assert abs(figure["monte_carlo"] - float(F(exact))) < 0.01
    assert data["bayes_optimal"]["standard"]["exact"] == "15104/15625"
    assert data["best_robust"]["exact"] == "112/125"
    verdicts = {claim["key"]: claim["verdict"] for claim in data["claims"]}
    assert verdicts["h0_standard"] == "differs"
    assert verdicts["h0_robust"] == "confirmed"
    assert verdicts["h0_bayes_optimal"] == "confirmed"
    assert verdicts["h1_robust_optimal"] == "confirmed"
    assert verdicts["eq20_as_printed"] == "refuted"
    claims = {claim["key"]: claim for claim in data["claims"]}
    assert claims["eq22_posterior"]["exact"] == "1/5"
    assert claims["accuracy_cost"]["exact"] == str(F(15104, 15625) - F(112, 125))
    # The paper's 0.944 is reproduced from the union bound 1 - C(7,4)(1-p)^4.
    assert F(claims["h0_standard"]["paper_formula"]["value"]) == 1 - 35 * F(1, 5) ** 4 == F(944, 1000)


def test_json_is_reproducible_for_a_seed(capsys) -> None:
    outputs = []
    for _ in range(2):
        assert main(["--json", "--samples", "3000", "--seed", "4"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0])["instance"]["seed"] == 4
    assert main(["--json", "--samples", "3000", "--seed", "5"]) == 0
    assert capsys.readouterr().out != outputs[0]


# --- a custom instance ------------------------------------------------------------------------


def test_custom_instance(runs) -> None:
    result = runs[CUSTOM_JSON]
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["instance"]["is_paper_instance"] is False
    assert data["instance"]["eta"] == ["1/2", "1/2", "1/2", "2", "2"]

    dist = SignFlipDistribution(p=F(9, 10), eta=[F(1, 2)] * 3 + [F(2)] * 2)
    eps = F(1, 2)
    expected = {
        ("h0", "standard"): standard_accuracy(h0(dist), dist),
        ("h0", "robust"): robust_accuracy(h0(dist), dist, eps=eps),
        ("h1", "standard"): standard_accuracy(h1(dist, eps=eps), dist),
        ("h1", "robust"): robust_accuracy(h1(dist, eps=eps), dist, eps=eps),
    }
    # By hand: h0 is a 5-vote majority; under attack its margins (votes) drop by 0.5·7 = 3.5,
    # so only unanimity survives. h1 reads the two eta = 2 features: right when both agree.
    p = F(9, 10)
    assert expected["h0", "standard"] == sum(math.comb(5, k) * p ** (5 - k) * (1 - p) ** k for k in range(3))
    assert expected["h0", "robust"] == p**5
    assert expected["h1", "standard"] == expected["h1", "robust"] == p**2
    for (name, kind), exact in expected.items():
        figure = data[name][kind]
        assert figure["paper"] is None
        assert figure["verdict"] == "not in paper"
        assert figure["exact"] == str(exact)
        assert abs(figure["monte_carlo"] - float(exact)) < 0.01
    assert data["bayes_optimal"]["standard"]["exact"] == str(bayes_accuracy(dist))
    # The best robust classifier reads the two eta = 2 features and breaks their ties optimally.
    assert data["best_robust"]["exact"] == str(best_robust_accuracy(dist, eps=eps)) == str(p)
    assert all(claim["paper"] is None for claim in data["claims"])


def test_custom_instance_table(runs) -> None:
    result = runs[CUSTOM_TABLE]
    assert result.returncode == 0, result.stderr
    assert "on a custom instance" in result.stdout
    assert "p = 0.75, d = 3, eta = (1, 1, 1)" in result.stdout
    assert "27/32" in result.stdout  # the 3-vote majority at p = 3/4
    assert "not in paper" in result.stdout


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "words"), BAD_INPUT, ids=[" ".join(args) or "empty" for args, _ in BAD_INPUT])
def test_bad_input_is_one_line_naming_the_parameter_and_status_2(runs, args, words) -> None:
    result = runs[_with_fast_samples(args)]
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), result.stderr
    assert lines[0].startswith("theory.prop1: error: ")
    assert words in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "words"), MORE_BAD_INPUT, ids=[" ".join(a) for a, _ in MORE_BAD_INPUT])
def test_more_bad_input_in_process(capsys, args, words) -> None:
    assert main([*args, "--samples", "200"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("theory.prop1: error: ")
    assert words in lines[0]


@pytest.mark.parametrize("eta", ["1e400", "1e-400"])
def test_values_beyond_the_float_range_are_bad_input_not_a_crash(capsys, eta: str) -> None:
    """``--eta 1e400`` (and ``--eta 1e-400``, which would become 0 in floating point) are
    rejected with a one-line error and status 2, not an OverflowError traceback."""
    assert main(["--eta", eta, "--eps", "0", "--samples", "200"]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["--samples", "1"], r"--samples\b"),
        (["--p", "1"], r"(--p\b|\bp\b)"),
        (["--p", "0"], r"(--p\b|\bp\b)"),
    ],
    ids=["samples=1", "p=1", "p=0"],
)
def test_documented_valid_values_run_or_are_rejected_by_name(capsys, args, name) -> None:
    """Edge values run or are rejected by name, never deep inside ``verify``:
    ``--samples 1`` is rejected naming --samples (a paired difference needs two samples);
    ``--p 1`` and ``--p 0`` run (Eq. 22's input then has probability 0 and is reported as such).
    """
    status = main(args if "--samples" in args else [*args, "--samples", "200"])
    err = capsys.readouterr().err
    assert status == 0 or re.search(name, err), err
