"""aatk.analysis.plots: every function writes a valid PNG of sensible size and rejects bad input."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import image as mpimg

from aatk.analysis import image_grid, plot_ablation, plot_accuracy_vs_eps, plot_roc


def _read_png(path):
    assert path.is_file() and path.stat().st_size > 0
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 50 and pixels.shape[1] > 50
    assert pixels[..., :3].std() > 0  # something was drawn
    return pixels


def _curve(values_r, values_n, eps=(0.0, 0.1, 0.2, 0.3)):
    return {
        "eps": np.array(eps),
        "accuracy": {
            "standard": np.array(values_n) * 0.9 + 0.05,
            "robust": np.array(values_r),
            "non_robust": np.array(values_n),
        },
        "norm": "linf",
        "steps": 10,
        "samples": 500,
    }


ROC = {
    "naive": {"fpr": np.array([0.0, 0.1, 0.3, 1.0]), "tpr": np.array([0.0, 0.6, 0.9, 1.0]), "auc": 0.845, "rad": 0.69},
    "adaptive": {"fpr": np.array([0.0, 0.5, 1.0]), "tpr": np.array([0.0, 0.4, 1.0]), "auc": 0.45, "rad": 0.4},
}


# --- image_grid ----------------------------------------------------------------------------


def test_image_grid_writes_a_png_with_one_column_per_image(tmp_path):
    rng = np.random.default_rng(0)
    rows = {
        "natural": rng.uniform(0, 1, (4, 8, 8, 3)),
        "robust-way gradient": rng.uniform(0, 1, (4, 8, 8, 1)),
        "non-robust-way gradient": rng.uniform(0, 1, (4, 8, 8)),
    }
    path = image_grid(rows, tmp_path / "nested" / "folder" / "grid.png", column_titles=list("abcd"), title="Gradients")
    assert path == tmp_path / "nested" / "folder" / "grid.png"
    wide = _read_png(path)
    narrow = _read_png(image_grid({k: v[:1] for k, v in rows.items()}, str(tmp_path / "one.png")))
    assert wide.shape[1] > 2 * narrow.shape[1]  # four columns against one
    tall = _read_png(image_grid({"a": rows["natural"][:1], "b": rows["natural"][:1]}, tmp_path / "two.png"))
    short = _read_png(image_grid({"a": rows["natural"][:1]}, tmp_path / "single.png"))
    assert tall.shape[0] > 1.5 * short.shape[0]  # two rows against one


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        ({}, {}, "non-empty dict"),
        ([np.zeros((1, 4, 4))], {}, "non-empty dict"),
        ({1: np.zeros((1, 4, 4))}, {}, "strings"),
        ({"a": np.full((1, 4, 4), 1.5)}, {}, r"\[0, 1\]"),
        ({"a": np.full((1, 4, 4), -0.1)}, {}, r"\[0, 1\]"),
        ({"a": np.full((1, 4, 4), np.nan)}, {}, "non-finite"),
        ({"a": np.zeros((1, 4, 4, 2))}, {}, "C in"),
        ({"a": np.zeros((4, 4))}, {}, "shape"),
        ({"a": np.zeros((0, 4, 4))}, {}, "no images"),
        ({"a": np.zeros((1, 4, 4), bool)}, {}, "real numbers"),
        ({"a": np.zeros((2, 4, 4)), "b": np.zeros((3, 4, 4))}, {}, "same number of images"),
        ({"a": np.zeros((2, 4, 4))}, {"column_titles": ["x"]}, "1 titles for 2 columns"),
        ({"a": np.zeros((2, 4, 4))}, {"column_titles": "xy"}, "sequence of strings"),
        ({"a": np.zeros((2, 4, 4))}, {"title": 3}, "title"),
    ],
)
def test_image_grid_rejects_bad_input(tmp_path, rows, kwargs, message):
    with pytest.raises(ValueError, match=message):
        image_grid(rows, tmp_path / "bad.png", **kwargs)
    assert not (tmp_path / "bad.png").exists()


@pytest.mark.parametrize("path", ["figure.pdf", "figure", 3])
def test_paths_must_name_a_png(tmp_path, path):
    target = tmp_path / path if isinstance(path, str) else path
    with pytest.raises(ValueError, match="path"):
        image_grid({"a": np.zeros((1, 4, 4))}, target)
    with pytest.raises(ValueError, match="path"):
        plot_roc(ROC, target)


# --- plot_accuracy_vs_eps -------------------------------------------------------------------


def test_accuracy_vs_eps_one_panel_or_one_per_name(tmp_path):
    aat = _curve([0.9, 0.85, 0.8, 0.7], [0.92, 0.2, 0.0, 0.0])
    st = _curve([0.9, 0.3, 0.05, 0.0], [0.93, 0.25, 0.0, 0.0])
    single = _read_png(plot_accuracy_vs_eps(aat, tmp_path / "single.png", title="AAT++"))
    double = _read_png(plot_accuracy_vs_eps({"ST": st, "AAT++": aat}, tmp_path / "double.png"))
    assert double.shape[1] > 1.6 * single.shape[1]
    partial = {"eps": [0.0, 0.5], "accuracy": {"robust": [1.0, 0.5]}}  # one way, no metadata
    _read_png(plot_accuracy_vs_eps(partial, tmp_path / "partial.png"))


@pytest.mark.parametrize(
    ("curves", "message"),
    [
        ({}, "non-empty dict"),
        ({"AAT": {"eps": [0.0]}}, "accuracy_vs_eps"),
        ({"eps": [0.0, 0.1], "accuracy": {}}, "non-empty dict"),
        ({"eps": [0.0, 0.1], "accuracy": {"sideways": [1.0, 0.5]}}, "unknown way"),
        ({"eps": [0.0, 0.1], "accuracy": {"robust": [1.0]}}, "shape"),
        ({"eps": [0.0, 0.1], "accuracy": {"robust": [100.0, 50.0]}}, r"\[0, 1\]"),
        ({"eps": [0.0, np.nan], "accuracy": {"robust": [1.0, 0.5]}}, "non-finite"),
        ({"eps": [], "accuracy": {"robust": []}}, "non-empty 1-D"),
        ({"eps": [0.0, 0.1], "accuracy": {"robust": [1.0, np.nan]}}, "non-finite"),
    ],
)
def test_accuracy_vs_eps_rejects_bad_input(tmp_path, curves, message):
    with pytest.raises(ValueError, match=message):
        plot_accuracy_vs_eps(curves, tmp_path / "bad.png")


# --- plot_ablation -------------------------------------------------------------------------

ABLATION = {
    "ST": {"S": 0.94, "R": 0.93, "N": 0.93, "R_adv": 0.02, "N_adv": 0.03, "DIA": -0.01},
    "ST+AS": {"S": 0.91, "R": 0.85, "N": 0.88, "R_adv": 0.45, "N_adv": 0.10, "DIA": 0.35},
    "ST+AS+AR": {"S": 0.88, "R": 0.82, "N": 0.86, "R_adv": 0.60, "N_adv": 0.12, "DIA": 0.48},
    "ST+AS+AR+AN": {"S": 0.86, "R": 0.80, "N": 0.84, "R_adv": 0.64, "N_adv": 0.0, "DIA": 0.64},
}


def test_ablation_with_negative_dia_and_partial_groups(tmp_path):
    _read_png(plot_ablation(ABLATION, tmp_path / "ablation.png", title="Ablation (Fig. 2b)"))
    partial = {"ST": {"S": 0.9, "DIA": -0.3}, "AAT": {"R_adv": 0.5}}
    _read_png(plot_ablation(partial, tmp_path / "partial.png"))


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ({}, "non-empty dict"),
        ({"ST": {}}, "non-empty dict"),
        ({"ST": {"S": 0.9, "AUC": 0.5}}, "unknown figure"),
        ({"ST": {"S": 93.0}}, "fraction"),
        ({"ST": {"S": -0.1}}, "fraction"),
        ({"ST": {"DIA": -1.5}}, "fraction"),
        ({"ST": {"R": float("nan")}}, "fraction"),
        ({"ST": {"R": "high"}}, "number"),
        ({"ST": {"R": True}}, "number"),
        ({"ST": [0.9]}, "non-empty dict"),
    ],
)
def test_ablation_rejects_bad_input(tmp_path, results, message):
    with pytest.raises(ValueError, match=message):
        plot_ablation(results, tmp_path / "bad.png")


# --- plot_roc ------------------------------------------------------------------------------


def test_roc_overlays_curves(tmp_path):
    _read_png(plot_roc(ROC, tmp_path / "roc.png", title="Detection"))
    no_auc = {"mine": {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]}}  # area computed, no RAD
    _read_png(plot_roc(no_auc, tmp_path / "no_auc.png"))


@pytest.mark.parametrize(
    ("curves", "message"),
    [
        ({}, "non-empty dict"),
        ({"naive": {"fpr": [0.0, 1.0]}}, "'fpr' and 'tpr'"),
        ({"naive": {"fpr": [0.0, 1.0], "tpr": [0.0, 0.5, 1.0]}}, "same length"),
        ({"naive": {"fpr": [0.0], "tpr": [0.0]}}, "same length >= 2"),
        ({"naive": {"fpr": [0.0, 1.5], "tpr": [0.0, 1.0]}}, r"\[0, 1\]"),
        ({"naive": {"fpr": [0.0, 0.6, 0.5], "tpr": [0.0, 0.5, 1.0]}}, "non-decreasing"),
        ({"naive": {"fpr": [0.0, 1.0], "tpr": [0.0, np.nan]}}, "non-finite"),
        ({"naive": {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0], "auc": 1.2}}, "auc"),
        ({"naive": {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0], "rad": "good"}}, "rad"),
    ],
)
def test_roc_rejects_bad_input(tmp_path, curves, message):
    with pytest.raises(ValueError, match=message):
        plot_roc(curves, tmp_path / "bad.png")


# --- training curves (monitor.csv) and dead ReLUs -------------------------------------------------


def test_training_curves_plot_runs_side_by_side_and_reject_bad_input(tmp_path):
    from aatk.analysis.plots import plot_training_curves

    curves = {
        "AAT++": {"epoch": [1, 2, 3], "S": [0.9, 0.95, 0.97], "R_adv": [0.3, 0.6, 0.8], "N_adv": [0.1, 0.0, 0.0],
                  "DIA": [0.2, 0.6, 0.8], "subtitle": "PGD-40, 500 images"},
        "one-way ST": {"epoch": [1, 2, 3], "N": [0.9, 0.95, 0.99], "N_adv": [0.2, 0.1, None]},
        "collapsed": {"epoch": [1], "R_adv": [0.0], "N_adv": [0.5], "DIA": [-0.5]},
    }
    _read_png(plot_training_curves(curves, tmp_path / "curves.png", title="curves"))
    with pytest.raises(ValueError, match="non-empty 'epoch'"):
        plot_training_curves({"x": {"epoch": [], "S": []}}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="2 values for 3 epochs"):
        plot_training_curves({"x": {"epoch": [1, 2, 3], "S": [0.5, 0.6]}}, tmp_path / "b.png")
    with pytest.raises(ValueError, match="outside"):
        plot_training_curves({"x": {"epoch": [1], "R_adv": [1.5]}}, tmp_path / "c.png")
    with pytest.raises(ValueError, match="outside"):
        plot_training_curves({"x": {"epoch": [1], "DIA": [-1.5]}}, tmp_path / "d.png")
    with pytest.raises(ValueError, match=r"\.png"):
        plot_training_curves(curves, tmp_path / "e.jpg")


def test_monitor_figure_reads_run_folders(tmp_path):
    import json

    from aatk.experiments import monitor_figure

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"experiment": {"name": "st", "method": "1way-st"}, "training": {"epochs": 56}}))
    with pytest.raises(ValueError, match="no monitor.csv"):
        monitor_figure([run], out=tmp_path / "out")
    (run / "monitor.csv").write_text("epoch,attack,samples,S,R,N,R_adv,N_adv,DIA\n")
    with pytest.raises(ValueError, match="no epoch yet"):
        monitor_figure([run], out=tmp_path / "out")
    (run / "monitor.csv").write_text("epoch,attack,samples,S,R,N,R_adv,N_adv,DIA\n"
                                     "1,pgd,500,0.1,0.1,0.9,,0.3,\n2,pgd,500,0.1,0.1,0.95,,0.2,\n")
    _read_png(monitor_figure([run], out=tmp_path / "out"))
    curves = json.loads((tmp_path / "out" / "monitor.json").read_text())
    # A one-way ST run shows its non-robust way only (N, N_adv), and where it stands.
    assert set(curves["st"]) == {"epoch", "N", "N_adv", "subtitle"}
    assert curves["st"]["N_adv"] == [0.3, 0.2] and "2/56 epochs" in curves["st"]["subtitle"]
    with pytest.raises(ValueError, match="at least one run"):
        monitor_figure([], out=tmp_path / "out")


def test_dead_relu_plot_checks_its_input(tmp_path):
    from aatk.analysis.dead_relus import plot_dead_relus

    trajectory = {"steps": [0, 5], "shares": {"r/conv1": [0.0, 0.5], "n/conv1": [0.1, 0.2], "head/head_hidden": [0.0, 1.0]},
                  "accuracy": {"standard": 0.1, "robust": 0.1, "non_robust": 0.1}}
    _read_png(plot_dead_relus({"recipe": {"0": trajectory, "1": trajectory}}, tmp_path / "dead.png", title="t"))
    with pytest.raises(ValueError, match="recipe → seed"):
        plot_dead_relus({}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="needs 'steps' and 'shares'"):
        plot_dead_relus({"recipe": {"0": {"steps": [0]}}}, tmp_path / "y.png")
