"""Attacks on any way of a model: PGD, APGD and the Square Attack, in ℓ∞ and ℓ2.

* [`PGD`][aatk.attacks.pgd.PGD]: projected gradient descent (Madry et al., 2018), the
  paper's attack (Eq. 2, Table 4a) and the training attack of AAT.
* [`APGD`][aatk.attacks.apgd.APGD]: Auto-PGD (Croce & Hein, 2020) with the
  cross-entropy or the (targeted) DLR loss: AutoAttack's white-box attacks.
* [`SquareAttack`][aatk.attacks.square.SquareAttack]: a gradient-free random search
  (Andriushchenko et al., 2020), the black-box check for gradient masking.

All share [`Attack`][aatk.attacks.base.Attack]: called as ``attack(model, x, y, way=...)``
on a [`ThreeWayModel`][aatk.model.ThreeWayModel], a
[`CombinedOneWay`][aatk.baselines.CombinedOneWay] or any Keras classifier, and
graph-friendly through ``attack.run(logits_fn, x, y)`` inside compiled code.
"""

from aatk.attacks.apgd import APGD
from aatk.attacks.base import Attack, way_logits_function
from aatk.attacks.norms import NORMS, L2Ball, LinfBall
from aatk.attacks.pgd import PGD
from aatk.attacks.square import SquareAttack

__all__ = ["APGD", "Attack", "L2Ball", "LinfBall", "NORMS", "PGD", "SquareAttack", "way_logits_function"]
