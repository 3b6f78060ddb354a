"""Figures of the paper's analyses, written as PNG files.

Each function draws on its own `matplotlib.figure.Figure` with an Agg
canvas, so nothing here touches pyplot's global state or backend: it works
headless and inside notebooks alike. matplotlib is imported only when a figure
is drawn. Every function validates its inputs first (nothing is clipped or
dropped silently), writes the PNG at ``path`` (creating the parent folder) and
returns its `pathlib.Path`.

Paper: Figure 2a (representations), Figure 2b (ablation), Figures 3–4 (gradients
and inversions, Appendix D), Table 4b (detection).
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from aatk.model import WAYS

__all__ = ["image_grid", "plot_accuracy_vs_eps", "plot_ablation", "plot_roc", "plot_training_curves"]

_DPI = 120

WAY_STYLES = {
    "standard": {"color": "tab:blue", "marker": "o", "label": "standard way"},
    "robust": {"color": "tab:green", "marker": "s", "label": "robust way"},
    "non_robust": {"color": "tab:red", "marker": "^", "label": "non-robust way"},
}
"""Fixed colour, marker and legend label of each way in every plot."""

ABLATION_KEYS = ("S", "R", "N", "R_adv", "N_adv", "DIA")
"""The figures [`plot_ablation`][aatk.analysis.plots.plot_ablation] draws, in this order (those of Fig. 2b)."""

_ABLATION_STYLES = {
    "S": {"label": "S (std)", "color": "tab:blue", "hatch": None},
    "R": {"label": "R (std)", "color": "tab:green", "hatch": None},
    "N": {"label": "N (std)", "color": "tab:red", "hatch": None},
    "R_adv": {"label": "R (adv)", "color": "#98df8a", "hatch": "//"},
    "N_adv": {"label": "N (adv)", "color": "#ff9896", "hatch": "//"},
    "DIA": {"label": "DIA", "color": "tab:purple", "hatch": None},
}

_NORM_NAMES = {"linf": "ℓ∞", "l2": "ℓ2"}
_ROC_COLORS = {"naive": "tab:blue", "adaptive": "tab:red"}


# --- helpers -------------------------------------------------------------------------------


def _png_path(path) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png (a PNG is written), got {str(path)!r}")
    return path


def _check_title(title) -> str | None:
    if title is not None and not isinstance(title, str):
        raise ValueError(f"title must be a string or None, got {type(title).__name__}")
    return title


def _new_figure(width: float, height: float, *, layout: str | None = None):
    """A Figure with its own Agg canvas: no pyplot, no global backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=_DPI, bbox_inches="tight", pad_inches=0.1)
    return path


def _real_array(value, what: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{what} must be real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    finite = np.isfinite(array)
    if not finite.all():
        raise ValueError(f"{what} holds {int((~finite).sum())} non-finite value(s) (NaN or inf)")
    return array


def _non_empty_mapping(value, what: str, example: str) -> Mapping:
    if not isinstance(value, Mapping) or not value:
        raise ValueError(f"{what} must be a non-empty dict, e.g. {example}; got {value!r:.80}")
    for key in value:
        if not isinstance(key, str):
            raise ValueError(f"the keys of {what} must be strings (labels), got {key!r}")
    return value


# --- image grid ----------------------------------------------------------------------------


def _checked_images(label: str, images) -> np.ndarray:
    array = _real_array(images, f"row {label!r}")
    if array.ndim == 4 and array.shape[-1] in (1, 3):
        pass
    elif array.ndim == 3:
        array = array[..., np.newaxis]
    else:
        raise ValueError(
            f"row {label!r} must have shape (N, H, W) or (N, H, W, C) with C in {{1, 3}}, got {array.shape}"
        )
    if min(array.shape[:3]) == 0:
        raise ValueError(f"row {label!r} has no images or empty images: shape {array.shape}")
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"row {label!r} has values in [{low:g}, {high:g}] but images must lie in [0, 1] "
            "(nothing is clipped; map gradients with aatk.analysis.gradient_image)"
        )
    return array


def image_grid(
    rows: dict[str, np.ndarray],
    path: str | os.PathLike,
    *,
    column_titles: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """A grid of images, one labelled row per entry of ``rows``.

    Like the paper's Figures 2a, 3 and 4: e.g. rows ``"natural"``, ``"robust-way
    gradient"``, ``"non-robust-way gradient"`` with one column per example.
    One-channel images are drawn in grey (0 black, 1 white); axes carry no ticks.

    Paper: Figure 2a, Figure 3 (Appendix D.1), Figure 4 (Appendix D.2).

    Args:
        rows: Row label → images of shape (N, H, W, C) with C in {1, 3}, or (N, H, W),
            with values in [0, 1]. Every row must hold the same number N of images.
        path: Where to write the PNG (must end in ``.png``).
        column_titles: N titles, one above each column.
        title: Title of the figure.

    Returns:
        The path of the written PNG.

    Raises:
        ValueError: On an empty ``rows``, a non-string label, a wrong shape, values
            outside [0, 1] or non-finite, rows of different lengths, the wrong number
            of column titles, or a path not ending in ``.png``.

    Examples:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> images = np.linspace(0, 1, 2 * 4 * 4).reshape(2, 4, 4)
        >>> image_grid({"natural": images, "inverted": 1 - images}, folder / "grid.png").name
        'grid.png'
    """
    path = _png_path(path)
    title = _check_title(title)
    rows = _non_empty_mapping(rows, "rows", "{'natural': images}")
    checked = {label: _checked_images(label, images) for label, images in rows.items()}
    counts = {label: images.shape[0] for label, images in checked.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"every row must hold the same number of images, got {counts}")
    columns = next(iter(counts.values()))
    if column_titles is not None:
        if isinstance(column_titles, str) or not all(isinstance(t, str) for t in column_titles):
            raise ValueError("column_titles must be a sequence of strings, one per column")
        if len(column_titles) != columns:
            raise ValueError(f"column_titles has {len(column_titles)} titles for {columns} columns")

    cell = 1.3
    # Room above the images for the column titles and the figure title, so that they never overlap.
    top_margin = 0.1 + (0.3 if column_titles else 0.0) + (0.3 if title else 0.0)
    height = cell * len(checked) + top_margin + 0.1
    figure = _new_figure(cell * columns + 1.6, height)
    axes = figure.subplots(
        len(checked), columns, squeeze=False,
        gridspec_kw={"wspace": 0.06, "hspace": 0.08, "top": 1.0 - top_margin / height, "bottom": 0.1 / height},
    )
    for r, (label, images) in enumerate(checked.items()):
        for c in range(columns):
            ax = axes[r, c]
            image = images[c]
            if image.shape[-1] == 1:
                ax.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            else:
                ax.imshow(image, vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and column_titles is not None:
                ax.set_title(column_titles[c], fontsize=9)
        axes[r, 0].set_ylabel(
            textwrap.fill(label, 16), rotation=0, ha="right", va="center", fontsize=10, labelpad=6
        )
    if title:
        figure.suptitle(title, fontsize=11)
    return _save(figure, path)


# --- accuracy against ε --------------------------------------------------------------------


def _checked_curve(name: str, result) -> dict:
    if not isinstance(result, Mapping) or "eps" not in result or "accuracy" not in result:
        raise ValueError(
            f"curve {name!r} must be a result of aatk.analysis.accuracy_vs_eps "
            "(a dict with 'eps' and 'accuracy')"
        )
    eps = _real_array(result["eps"], f"curve {name!r}: eps")
    if eps.ndim != 1 or eps.size == 0:
        raise ValueError(f"curve {name!r}: eps must be a non-empty 1-D array, got shape {eps.shape}")
    accuracy = result["accuracy"]
    if not isinstance(accuracy, Mapping) or not accuracy:
        raise ValueError(f"curve {name!r}: accuracy must be a non-empty dict from way to accuracies")
    checked = {}
    for way, values in accuracy.items():
        if way not in WAYS:
            raise ValueError(f"curve {name!r}: unknown way {way!r}; expected one of {WAYS}")
        values = _real_array(values, f"curve {name!r}: accuracy[{way!r}]")
        if values.shape != eps.shape:
            raise ValueError(
                f"curve {name!r}: accuracy[{way!r}] has shape {values.shape} but eps has shape {eps.shape}"
            )
        if values.min() < 0.0 or values.max() > 1.0:
            raise ValueError(f"curve {name!r}: accuracy[{way!r}] must be fractions in [0, 1], got {values.tolist()}")
        checked[way] = values
    return {
        "eps": eps,
        "accuracy": checked,
        "norm": result.get("norm"),
        "steps": result.get("steps"),
        "samples": result.get("samples"),
    }


def plot_accuracy_vs_eps(curves: dict, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Accuracy (%) of each way against the attack radius ε.

    One line per way, with fixed colours and markers (standard blue circles, robust
    green squares, non-robust red triangles). ``curves`` is one result of
    [`aatk.analysis.accuracy_vs_eps`][aatk.analysis.curves.accuracy_vs_eps], or a
    dict from a name (e.g. a training method) to such results: then one panel per
    name, side by side, sharing the accuracy axis.

    Paper: Section 2.5 and Tables 1–3 (R, N at one ε); the curve goes beyond them.

    Args:
        curves: A result of ``accuracy_vs_eps`` or a dict name → result.
        path: Where to write the PNG (must end in ``.png``).
        title: Title of the figure.

    Returns:
        The path of the written PNG.

    Raises:
        ValueError: On an empty dict, a result without ``eps``/``accuracy``, an
            unknown way, lengths that differ from ``eps``, accuracies outside
            [0, 1] or non-finite, or a path not ending in ``.png``.

    Examples:
        >>> import tempfile, pathlib
        >>> result = {"eps": np.array([0.0, 0.1, 0.2]), "norm": "linf",
        ...           "accuracy": {"robust": np.array([0.9, 0.8, 0.7]), "non_robust": np.array([0.9, 0.1, 0.0])}}
        >>> plot_accuracy_vs_eps(result, pathlib.Path(tempfile.mkdtemp()) / "eps.png").suffix
        '.png'
    """
    path = _png_path(path)
    title = _check_title(title)
    if isinstance(curves, Mapping) and "eps" in curves and "accuracy" in curves:
        panels = {"": _checked_curve("curves", curves)}
    else:
        curves = _non_empty_mapping(curves, "curves", "{'AAT++': accuracy_vs_eps(...)}")
        panels = {name: _checked_curve(name, result) for name, result in curves.items()}

    figure = _new_figure(4.2 * len(panels), 3.6, layout="constrained")
    axes = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (name, curve) in zip(axes, panels.items()):
        for way in WAYS:  # fixed order: the legend reads the same in every panel
            if way in curve["accuracy"]:
                style = WAY_STYLES[way]
                ax.plot(
                    curve["eps"], 100.0 * curve["accuracy"][way], color=style["color"], marker=style["marker"],
                    label=style["label"], linewidth=1.6, markersize=5,
                )
        norm = curve["norm"]
        ax.set_xlabel(f"ε ({_NORM_NAMES.get(norm, norm)})" if norm else "ε")
        facts = []
        if norm and curve["steps"]:
            facts.append(f"{_NORM_NAMES.get(norm, norm)} PGD-{curve['steps']}")
        if curve["samples"]:
            facts.append(f"{curve['samples']} examples")
        panel_title = "\n".join(part for part in (name, ", ".join(facts)) if part)
        if panel_title:
            ax.set_title(panel_title, fontsize=10)
        ax.set_ylim(-3.0, 103.0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    axes[0].set_ylabel("accuracy (%)")
    if title:
        figure.suptitle(title, fontsize=11)
    return _save(figure, path)


# --- ablation (Fig. 2b) --------------------------------------------------------------------


def _checked_figures(label: str, figures) -> dict[str, float]:
    if not isinstance(figures, Mapping) or not figures:
        raise ValueError(f"results[{label!r}] must be a non-empty dict of figures among {ABLATION_KEYS}")
    unknown = [key for key in figures if key not in ABLATION_KEYS]
    if unknown:
        raise ValueError(
            f"results[{label!r}] has unknown figure(s) {unknown}; expected keys among {ABLATION_KEYS} "
            "(select them from a report: {k: report[k] for k in ('S', 'R', 'N', 'R_adv', 'N_adv', 'DIA')})"
        )
    checked = {}
    for key in ABLATION_KEYS:
        if key not in figures:
            continue
        value = figures[key]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"results[{label!r}][{key!r}] must be a number, got {value!r}")
        value = float(value)
        low = -1.0 if key == "DIA" else 0.0
        if not math.isfinite(value) or not low <= value <= 1.0:
            raise ValueError(
                f"results[{label!r}][{key!r}] = {value} must be a fraction in [{low:g}, 1] (not a percentage)"
            )
        checked[key] = value
    return checked


def plot_ablation(results: dict[str, dict[str, float]], path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Grouped bar chart of an ablation, like the paper's Figure 2b.

    One group of bars per label (e.g. ``"ST"``, ``"ST+AS"``, ``"ST+AS+AR+AN"``), one
    bar per figure present among S, R, N (clean accuracies), R_adv, N_adv
    (accuracies under each way's own attack) and DIA = R_adv − N_adv, drawn in
    percent with its value printed above the bar (below it when negative: DIA can
    be negative, and the axis then extends below zero). A figure missing from a
    label leaves its slot in that group empty.

    Paper: Figure 2b and Section 3.3 (ablation of the four losses of AAT++, Eq. 11).

    Args:
        results: Label → dict of figures in [0, 1] (DIA in [−1, 1]) with keys among
            ``("S", "R", "N", "R_adv", "N_adv", "DIA")``.
        path: Where to write the PNG (must end in ``.png``).
        title: Title of the figure.

    Returns:
        The path of the written PNG.

    Raises:
        ValueError: On an empty ``results`` or an empty entry, an unknown figure name
            (e.g. a whole evaluation report: select the six keys), a value that is
            not a number, non-finite, or out of range, or a path not ending in ``.png``.

    Examples:
        >>> import tempfile, pathlib
        >>> results = {"ST": {"S": 0.93, "R_adv": 0.01, "N_adv": 0.02, "DIA": -0.01},
        ...            "ST+AS": {"S": 0.9, "R_adv": 0.5, "N_adv": 0.1, "DIA": 0.4}}
        >>> plot_ablation(results, pathlib.Path(tempfile.mkdtemp()) / "ablation.png").name
        'ablation.png'
    """
    path = _png_path(path)
    title = _check_title(title)
    results = _non_empty_mapping(results, "results", "{'ST': {'S': 0.93, 'DIA': 0.0}}")
    checked = {label: _checked_figures(label, figures) for label, figures in results.items()}
    keys = [key for key in ABLATION_KEYS if any(key in figures for figures in checked.values())]
    values = [100.0 * v for figures in checked.values() for v in figures.values()]
    width = 0.8 / len(keys)

    figure = _new_figure(max(5.0, 0.42 * len(keys) * len(checked) + 1.6), 3.8, layout="constrained")
    ax = figure.subplots()
    for j, key in enumerate(keys):
        style = _ABLATION_STYLES[key]
        positions = [i + (j - (len(keys) - 1) / 2) * width for i, figures in enumerate(checked.values()) if key in figures]
        heights = [100.0 * figures[key] for figures in checked.values() if key in figures]
        bars = ax.bar(
            positions, heights, width=width * 0.92, color=style["color"], hatch=style["hatch"],
            edgecolor="0.25", linewidth=0.5, label=style["label"],
        )
        for bar, height in zip(bars, heights):
            x = bar.get_x() + bar.get_width() / 2
            offset = 1.0 if height >= 0 else -1.0
            ax.text(
                x, height + offset, f"{height:.1f}", ha="center", va="bottom" if height >= 0 else "top",
                fontsize=7, rotation=90 if len(keys) * len(checked) > 16 else 0,
            )
    low = min(0.0, min(values) - 14.0)
    ax.set_ylim(low, 114.0)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(checked)))
    ax.set_xticklabels(list(checked))
    ax.set_xlim(-0.6, len(checked) - 0.4)
    ax.set_ylabel("%")
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(keys), fontsize=8, frameon=False)
    if title:
        figure.suptitle(title, fontsize=11)
    return _save(figure, path)


# --- training curves (monitor.csv) -----------------------------------------------------------

_CURVE_STYLES = {
    "S": {"color": "tab:blue", "linestyle": ":", "label": "S (clean)"},
    "R": {"color": "tab:green", "linestyle": ":", "label": "R (clean)"},
    "N": {"color": "tab:red", "linestyle": ":", "label": "N (clean)"},
    "R_adv": {"color": "tab:green", "linestyle": "-", "marker": "s", "label": "R_adv"},
    "N_adv": {"color": "tab:red", "linestyle": "-", "marker": "^", "label": "N_adv"},
    "DIA": {"color": "tab:purple", "linestyle": "-", "marker": "o", "label": "DIA"},
}


def plot_training_curves(curves: dict, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Accuracy of each way after every monitored epoch, one panel per run.

    Args:
        curves: Run name → ``{"epoch": [...], key: [...]}`` with keys among S, R, N
            (clean accuracies), R_adv, N_adv (attacked) and DIA, fractions in [0, 1]
            (DIA in [−1, 1]); a value may be None where a run does not measure it
            (a one-way run's other way). Each run may add ``"subtitle"``.
        path: Where to write the PNG (must end in ``.png``).
        title: Title of the figure.

    Returns:
        The path of the written PNG.

    Raises:
        ValueError: On an empty mapping, a run without epochs, a list whose length is not
            the number of epochs, or a value out of range.

    Examples:
        >>> import tempfile, pathlib
        >>> curves = {"AAT++": {"epoch": [1, 2], "R_adv": [0.5, 0.7], "N_adv": [0.1, 0.0], "DIA": [0.4, 0.7]}}
        >>> plot_training_curves(curves, pathlib.Path(tempfile.mkdtemp()) / "curves.png").suffix
        '.png'
    """
    path = _png_path(path)
    title = _check_title(title)
    curves = _non_empty_mapping(curves, "curves", "{'AAT++': {'epoch': [1, 2], 'DIA': [0.4, 0.7]}}")
    panels = {}
    for name, curve in curves.items():
        if not isinstance(curve, Mapping) or not curve.get("epoch"):
            raise ValueError(f"curves[{name!r}] needs a non-empty 'epoch' list")
        epochs = _real_array(curve["epoch"], f"curves[{name!r}]['epoch']")
        series = {}
        for key in _CURVE_STYLES:
            if key not in curve:
                continue
            values = [np.nan if v is None else v for v in curve[key]]
            if len(values) != len(epochs):
                raise ValueError(f"curves[{name!r}][{key!r}] has {len(values)} values for {len(epochs)} epochs")
            array = np.asarray(values, dtype=np.float64)
            low = -1.0 if key == "DIA" else 0.0
            if np.any((array < low) | (array > 1.0)):
                raise ValueError(f"curves[{name!r}][{key!r}] has values outside [{low:g}, 1]")
            if not np.all(np.isnan(array)):
                series[key] = array
        panels[name] = (epochs, series, curve.get("subtitle"))
    columns = min(len(panels), 3)
    rows = math.ceil(len(panels) / columns)
    figure = _new_figure(4.0 * columns + 1.4, 3.1 * rows + 0.4, layout="constrained")
    axes = figure.subplots(rows, columns, sharey=True, squeeze=False).ravel()
    from matplotlib.ticker import MaxNLocator

    lowest = min((float(np.nanmin(v)) for _, series, _ in panels.values() for v in series.values()), default=0.0)
    for ax, (name, (epochs, series, subtitle)) in zip(axes, panels.items()):
        for key, values in series.items():
            style = dict(_CURVE_STYLES[key])
            ax.plot(epochs, 100.0 * values, linewidth=1.4, markersize=3, **style)
        ax.set_title(name if not subtitle else f"{name}\n{subtitle}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(min(-5.0, 100.0 * lowest - 5.0), 103.0)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for row in range(rows):
        axes[row * columns].set_ylabel("%")
    handles = {}
    for ax in axes[: len(panels)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    figure.legend(list(handles.values()), list(handles), loc="outside right center", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=11)
    return _save(figure, path)


# --- ROC (detection) -----------------------------------------------------------------------


def _checked_roc(name: str, entry) -> dict:
    if not isinstance(entry, Mapping) or "fpr" not in entry or "tpr" not in entry:
        raise ValueError(f"curve {name!r} must be a dict with 'fpr' and 'tpr' (and 'auc'), as from detection_curves")
    fpr = _real_array(entry["fpr"], f"curve {name!r}: fpr")
    tpr = _real_array(entry["tpr"], f"curve {name!r}: tpr")
    if fpr.ndim != 1 or fpr.shape != tpr.shape or fpr.size < 2:
        raise ValueError(
            f"curve {name!r}: fpr and tpr must be 1-D of the same length >= 2, got shapes {fpr.shape} and {tpr.shape}"
        )
    for what, rates in (("fpr", fpr), ("tpr", tpr)):
        if rates.min() < 0.0 or rates.max() > 1.0:
            raise ValueError(f"curve {name!r}: {what} must lie in [0, 1]")
        if (np.diff(rates) < 0).any():
            raise ValueError(f"curve {name!r}: {what} must be non-decreasing (a ROC curve)")
    if "auc" in entry:
        auc = entry["auc"]
        if isinstance(auc, bool) or not isinstance(auc, (int, float, np.integer, np.floating)):
            raise ValueError(f"curve {name!r}: auc must be a number, got {auc!r}")
        auc = float(auc)
        if not (math.isfinite(auc) and 0.0 <= auc <= 1.0):
            raise ValueError(f"curve {name!r}: auc must lie in [0, 1], got {auc}")
    else:
        auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    rad = entry.get("rad")
    if rad is not None:
        if isinstance(rad, bool) or not isinstance(rad, (int, float, np.integer, np.floating)):
            raise ValueError(f"curve {name!r}: rad must be a number or None, got {rad!r}")
        rad = float(rad) if math.isfinite(float(rad)) else None  # NaN: the report had no RAD
    return {"fpr": fpr, "tpr": tpr, "auc": auc, "rad": rad}


def plot_roc(curves: dict, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """ROC curves of adversarial detection, overlaid, with their AUC in the legend.

    ``curves`` is the output of
    [`aatk.analysis.detection_curves`][aatk.analysis.detection.detection_curves]
    (``"naive"``: natural + standard-way adversarial, Table 4b's setting;
    ``"adaptive"``: natural + adaptive adversarial) or any dict name →
    ``{"fpr", "tpr"[, "auc"][, "rad"]}``. The dashed diagonal is a detector that
    guesses. Without ``"auc"`` the area is computed by the trapezoidal rule; an
    entry's ``"rad"`` (Eq. 12's accuracy on the mixture) is shown in the legend when
    present.

    Paper: Section 3.3, Table 4b (beyond the paper: the whole curve of the
    continuous score rather than Eq. 12's single rule).

    Args:
        curves: Name → ROC curve.
        path: Where to write the PNG (must end in ``.png``).
        title: Title of the figure.

    Returns:
        The path of the written PNG.

    Raises:
        ValueError: On an empty dict, an entry without ``fpr``/``tpr``, rates of
            different lengths, outside [0, 1] or decreasing, an AUC outside [0, 1],
            or a path not ending in ``.png``.

    Examples:
        >>> import tempfile, pathlib
        >>> curve = {"fpr": np.array([0.0, 0.2, 1.0]), "tpr": np.array([0.0, 0.7, 1.0]), "auc": 0.75}
        >>> plot_roc({"naive": curve}, pathlib.Path(tempfile.mkdtemp()) / "roc.png").name
        'roc.png'
    """
    path = _png_path(path)
    title = _check_title(title)
    curves = _non_empty_mapping(curves, "curves", "detection_curves(report)")
    checked = {name: _checked_roc(name, entry) for name, entry in curves.items()}

    figure = _new_figure(4.6, 4.4)
    ax = figure.subplots()
    ax.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="0.6", linewidth=1.0, label="chance (AUC 0.500)")
    for name, curve in checked.items():
        label = f"{name}: AUC {curve['auc']:.3f}"
        if curve["rad"] is not None:
            label += f", RAD {100.0 * curve['rad']:.1f}%"
        ax.plot(curve["fpr"], curve["tpr"], linewidth=1.8, color=_ROC_COLORS.get(name), label=label)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false-positive rate (natural inputs flagged)")
    ax.set_ylabel("true-positive rate (adversarial inputs flagged)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=11)
    return _save(figure, path)
