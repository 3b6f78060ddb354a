"""aatk: Adversarial Asymmetric Training for robustness disentanglement (Wang et al., 2020).

The Keras 3 three-way model, its attacks and its evaluation are built on top of
the exact theory of the toy problem in the sibling package :mod:`theory`.
"""

__version__ = "0.1.0"
