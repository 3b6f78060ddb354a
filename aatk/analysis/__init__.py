"""Analyses of a trained three-way model: what each way looks at, and how it breaks.

* Input gradients ([`input_gradients`][aatk.analysis.gradients.input_gradients],
  [`gradient_image`][aatk.analysis.gradients.gradient_image]): the gradient of
  each way's loss with respect to a clean image, clipped to ±3 standard
  deviations and rescaled to [0, 1] (Appendix D.1, Figure 3). The robust way's
  gradient should be perceptually aligned, the non-robust way's noise-like.
* Accuracy against the attack radius
  ([`accuracy_vs_eps`][aatk.analysis.curves.accuracy_vs_eps]): each way under a PGD
  attack on its own loss, for a range of ε. The robust way should hold while the
  non-robust way collapses (Section 2.5; R and N of Tables 1–3 are one ε of it).
* Detection ([`roc_curve`][aatk.analysis.detection.roc_curve],
  [`detection_curves`][aatk.analysis.detection.detection_curves]): ROC curves of
  the disagreement of the two ways as a detector of adversarial inputs, on Table
  4b's mixture of natural and adversarial examples (Eq. 12, Section 3.3).
* Representation inversion
  ([`invert_representation`][aatk.analysis.inversion.invert_representation]): an
  input optimised from noise until its robust (or non-robust) representation
  matches a target's (Appendix D.2, Figures 2a and 4); also the construction of
  Ilyas et al.'s robust dataset
  ([`aatk.baselines.robust_dataset`][aatk.baselines.robust_dataset]).
* Figures ([`image_grid`][aatk.analysis.plots.image_grid],
  [`plot_accuracy_vs_eps`][aatk.analysis.plots.plot_accuracy_vs_eps],
  [`plot_ablation`][aatk.analysis.plots.plot_ablation],
  [`plot_roc`][aatk.analysis.plots.plot_roc]): PNGs in the style of Figures 2–4,
  drawn without pyplot.

Paper: Section 3.3 "Further Analysis" (ablation, detection, visualisation),
Figure 2, Appendix D.
"""

from aatk.analysis.curves import accuracy_vs_eps
from aatk.analysis.detection import detection_curves, roc_curve
from aatk.analysis.gradients import gradient_image, input_gradients
from aatk.analysis.inversion import InversionResult, invert_representation
from aatk.analysis.plots import image_grid, plot_ablation, plot_accuracy_vs_eps, plot_roc

__all__ = [
    "InversionResult",
    "accuracy_vs_eps",
    "detection_curves",
    "gradient_image",
    "image_grid",
    "input_gradients",
    "invert_representation",
    "plot_ablation",
    "plot_accuracy_vs_eps",
    "plot_roc",
    "roc_curve",
]
