"""The Square Attack: a score-based black-box random search, in ℓ∞ and ℓ2.

A gradient-free attack: it only queries the logits of the attacked way, never a
gradient, so a model that masks its gradients (a saturated, shattered or
stochastic gradient) cannot hide from it. Robust accuracy under PGD far above the
accuracy under the Square Attack is the classic sign of gradient masking.

Every iteration proposes, for each example, a change of the current perturbation
inside one random square window (ℓ∞: the window set to ±ε per channel; ℓ2: mass
moved from a second window into the first, keeping ‖δ‖₂ = ε), queries the model
once on the whole batch, and keeps a proposal only where it lowers the margin
z_y − max over i ≠ y of z_i. The side of the squares shrinks along the piecewise-constant
schedule [`square_fraction`][aatk.attacks.square.square_fraction].

Paper: Andriushchenko, Croce, Flammarion & Hein (2020), "Square Attack: a
query-efficient black-box adversarial attack via random search" (ECCV),
Algorithm 1 (random search), Algorithm 2 (ℓ∞ sampling), Algorithm 3 (ℓ2 sampling).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import keras
import numpy as np
from keras import ops

from aatk.attacks.base import Attack, finite_number, positive_int
from aatk.attacks.norms import per_example_norm
from aatk.objectives import Tensor

__all__ = ["SquareAttack", "square_fraction", "margin_loss", "DEFAULT_P_INIT"]

DEFAULT_P_INIT = {"linf": 0.05, "l2": 0.1}
"""The paper's p_init for standard (not adversarially trained) models (Section 4; the reference
code's defaults). AutoAttack runs the Square Attack with p_init = 0.8, and the paper attacks
adversarially trained models with 0.3–0.8."""

# Schedule of p (the reference code's p_selection): p halves when the iteration, rescaled to a
# 10,000-query budget, passes each of these points.
_HALVING_POINTS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)

# ℓ∞: candidate sign vectors drawn per proposal; the first one that changes the image is used
# (the reference code resamples until the window changes; see SquareAttack's notes).
_SIGN_DRAWS = 16

# Tolerance under which a coordinate of the window counts as unchanged (the reference code's 1e-7).
_UNCHANGED = 1e-7

_TINY = 1e-12


def _halving_iterations(queries: int) -> tuple[int, ...]:
    """The first iteration at which p is halved for the k-th time, k = 1..9, for a budget of ``queries``.

    The reference halves p once ``floor(it · 10000 / queries)`` exceeds T for each T of
    ``_HALVING_POINTS``; floor(v) > T ⟺ v ≥ T + 1 ⟺ it ≥ ⌈(T + 1) · queries / 10000⌉,
    computed here in exact integer arithmetic.
    """
    return tuple(-(-(point + 1) * queries // 10_000) for point in _HALVING_POINTS)


def square_fraction(p_init: float, iteration: int | Tensor, queries: int) -> float | Tensor:
    """The fraction p of the image a square covers at ``iteration``: the paper's schedule.

    p starts at ``p_init`` and halves at iterations 10, 50, 200, 500, 1000, 2000, 4000,
    6000 and 8000 of a 10,000-query run; other budgets rescale the iteration to 10,000
    queries (``floor(iteration · 10000 / queries)``, as the reference code and AutoAttack
    do), so that p reaches p_init / 512 for the last fifth of any budget.

    Paper: Section 3 ("the schedule of p") and Appendix, the reference code's ``p_selection``.

    Args:
        p_init: p at the start, in (0, 1].
        iteration: The iteration (0-based), a Python int or an integer tensor (any shape).
        queries: The query budget the schedule is stretched over, ≥ 1.

    Returns:
        A Python float for an int ``iteration``, else a float32 tensor of its shape.

    Raises:
        ValueError: If ``p_init`` is not in (0, 1] or ``queries`` < 1.

    Examples:
        >>> square_fraction(0.05, 0, 5000), square_fraction(0.05, 26, 5000)  # 26 → 52 of 10,000
        (0.05, 0.0125)
        >>> square_fraction(0.8, 4500, 5000)  # the last fifth: p_init / 512
        0.0015625
    """
    p_init = _check_p_init(p_init)
    queries = positive_int(queries, "queries")
    boundaries = _halving_iterations(queries)
    if isinstance(iteration, (int, np.integer)) and not isinstance(iteration, bool):
        halvings = sum(int(iteration) >= b for b in boundaries)
        return p_init / 2**halvings
    iteration = ops.convert_to_tensor(iteration, dtype="int32")
    halvings = ops.zeros_like(iteration)
    for boundary in boundaries:
        halvings = halvings + ops.cast(ops.greater_equal(iteration, boundary), "int32")
    table = ops.convert_to_tensor([p_init / 2**k for k in range(len(boundaries) + 1)], dtype="float32")
    return ops.take(table, halvings)


def margin_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """The margin z_y − max over i ≠ y of z_i of every example: negative iff the example is misclassified.

    The loss the untargeted Square Attack minimises (Section 3 of the paper).

    Args:
        logits: Logits (batch, C), C ≥ 2.
        labels: Integer labels (batch,).

    Returns:
        The margins, shape (batch,), in the dtype of ``logits``.

    Examples:
        >>> logits = np.array([[2.0, 1.0, 0.5], [0.0, 3.0, 1.0]], "float32")
        >>> np.asarray(margin_loss(logits, np.array([0, 0]))).tolist()
        [1.0, -3.0]
    """
    logits = ops.convert_to_tensor(logits)
    labels = ops.cast(ops.convert_to_tensor(labels), "int32")
    true = ops.take_along_axis(logits, ops.expand_dims(labels, -1), axis=-1)[:, 0]
    is_label = ops.one_hot(labels, ops.shape(logits)[-1], dtype="bool")
    lowest = ops.cast(float("-inf"), logits.dtype)
    others = ops.max(ops.where(is_label, lowest, logits), axis=-1)
    return true - others


def _check_p_init(p_init) -> float:
    p_init = finite_number(p_init, "p_init")
    if not 0.0 < p_init <= 1.0:
        raise ValueError(f"p_init must be in (0, 1], got {p_init}")
    return p_init


def _image_layout(shape) -> tuple[int, int, int]:
    """(height, width, channels) of one input, or ValueError naming the layouts accepted."""
    shape = tuple(shape)
    dims = shape[1:]
    if len(shape) == 2:
        dims = (1, shape[1], 1)
    elif len(shape) != 4:
        raise ValueError(
            "SquareAttack expects images of shape (batch, height, width, channels) (channels-last) "
            f"or vectors of shape (batch, features); got inputs of shape {shape}"
        )
    if any(d is None for d in dims):
        raise ValueError(f"SquareAttack needs the height, width and channels of the inputs to be known, got {shape}")
    if min(dims) < 1:
        raise ValueError(f"SquareAttack needs non-empty images, got inputs of shape {shape}")
    return tuple(int(d) for d in dims)


# --- the ℓ2 "meta-pattern" of the paper ---------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _pattern_tables(size: int) -> tuple[list[float], list[float], list[float]]:
    """Constants of the ℓ2 pattern for squares of side 0..size (Python lists, from static shapes).

    The pattern of a rectangle of x rows and y columns (the reference's pseudo-Gaussian
    bump) has the value the sum of 1/(k+1)² over k = d, …, K−1 at a cell at Chebyshev distance d from its
    centre (x//2, y//2), with K = max(x//2, y//2) + 1: the rectangles of half-side k around
    the centre each add 1/(k+1)². With T[n] the sum of 1/(k+1)² over k < n that is T[K] − T[d].

    Returns:
        (T, top, bottom): T[n] for n = 0..size//2+1; top[s] and bottom[s] the factors that
        make the two halves of the s×s meta-pattern unit vectors and the whole a unit vector
        with the bottom half negated (0 for an empty top half, s = 1).
    """
    cumulative = [0.0]
    for k in range(size // 2 + 2):
        cumulative.append(cumulative[-1] + 1.0 / (k + 1) ** 2)
    table = np.asarray(cumulative)

    def rect_norm(rows: int, cols: int) -> float:
        if rows == 0:
            return 0.0
        a = np.abs(np.arange(rows)[:, None] - rows // 2)
        b = np.abs(np.arange(cols)[None, :] - cols // 2)
        values = table[max(rows // 2, cols // 2) + 1] - table[np.maximum(a, b)]
        return float(np.sqrt(np.sum(values**2)))

    top, bottom = [0.0], [0.0]
    for s in range(1, size + 1):
        norm_top, norm_bottom = rect_norm(s // 2, s), rect_norm(s - s // 2, s)
        parts = 2 if norm_top > 0 else 1
        top.append(1.0 / (norm_top * math.sqrt(parts)) if norm_top > 0 else 0.0)
        bottom.append(-1.0 / (norm_bottom * math.sqrt(parts)))
    return cumulative, top, bottom


def _meta_pattern(a, b, side, tables):
    """The unit s×s meta-pattern of the paper at window coordinates (a, b) (int tensors), s = ``side``.

    The top s//2 rows hold a bump, the bottom rows a negated bump, each of unit norm before
    the whole is normalised (Section 3, ℓ2 sampling; Figure 2). Values outside [0, s)² are
    meaningless and must be masked by the caller.
    """
    cumulative, top_scale, bottom_scale = (ops.convert_to_tensor(t, dtype="float32") for t in tables)
    last = len(tables[0]) - 1
    side = ops.cast(side, "int32")
    half = side // 2
    top = ops.less(a, half)
    rows = ops.where(top, half, side - half)
    a = ops.where(top, a, a - half)
    distance = ops.maximum(ops.abs(a - rows // 2), ops.abs(b - side // 2))
    reach = ops.maximum(rows // 2, side // 2) + 1
    values = ops.take(cumulative, ops.clip(reach, 0, last)) - ops.take(cumulative, ops.clip(distance, 0, last))
    scale = ops.where(top, ops.take(top_scale, side), ops.take(bottom_scale, side))
    return values * scale


@keras.saving.register_keras_serializable(package="aatk")
class SquareAttack(Attack):
    """The Square Attack (untargeted, margin loss), ℓ∞ or ℓ2: a black-box check for gradient masking.

    Random search on the margin m(x') = z_y(x') − max over i ≠ y of z_i(x') of the attacked way:

    1. one query at the clean input: examples already misclassified (m ≤ 0) are frozen
       and returned unchanged;
    2. the initialisation, one query (ℓ∞: vertical stripes, one random ±ε per column and
       channel; ℓ2: a grid of meta-pattern squares of side max(min(H, W)//5, 1), a random
       sign per square and channel, scaled to ‖δ‖₂ = ε), accepted as in the paper;
    3. ``queries − 1`` iterations (or fewer: the loop stops when every example of the
       batch has m ≤ 0), each one query of the whole batch. At iteration i a square of
       side s is drawn at a uniform position per example, with p =
       [`square_fraction`][aatk.attacks.square.square_fraction](p_init, i, queries):

       * ℓ∞: s = max(round(√(p·H·W)), 1), and δ is set to a random ±ε per channel
         inside the square (Algorithm 2);
       * ℓ2: s = max(round(√(p·H·W)), 3), made odd; a second square of the same side is
         emptied and its mass, plus any budget ε² − ‖δ‖² left unused (by clipping), moves
         into the first square along a random ± meta-pattern plus the square's old
         content (Algorithm 3);

       s is at most min(H, W). A proposal is kept, per example, only if it lowers that
       example's margin; examples with m ≤ 0 are never changed again.

    What holds for the returned point of each example: it is the clean input if that is
    misclassified; otherwise the one, among the clean input, the initialisation and the
    accepted proposals, of lowest margin (ties go to the clean input). So its margin is at
    most the clean margin and at most the initialisation's, and no point with m ≤ 0 is
    ever given up. It lies in the ε-ball (the norm's projection is applied as a final
    guarantee; it changes nothing but float rounding) and within ``bounds``. The attack
    evaluates the model only: no gradient is ever computed.

    Inputs are channels-last images (batch, H, W, C), Keras's default; vectors (batch, D)
    are searched as 1×D single-channel images (squares of side 1, single coordinates).

    Differences from the paper and the reference code (github.com/max-andr/square-attack,
    AutoAttack's ``square.py``), for graph mode or fidelity:

    * every iteration evaluates the whole batch, frozen examples included (compiled
      code has fixed shapes); the cost is therefore (iterations run) × batch forward
      passes, plus two, and only stopping early when all are fooled saves time;
    * a square's position and signs, and the ℓ2 pattern's random transposition, are drawn
      per example (AutoAttack draws one position per iteration for the whole batch);
      positions are uniform on {0, …, H − s} as in the paper (the reference code never
      draws the last one);
    * ℓ∞: the original code redraws the signs until the window changes the image; here
      16 candidate sign vectors are drawn and the first that changes the image is used (an
      exact rejection sampler, truncated: with C channels a proposal is wasted with
      probability ≤ 2^(−16C)). AutoAttack does not redraw;
    * ℓ2 initialisation: only whole squares are placed, centred, which is the reference's
      grid for 28×28, 32×32 and 224×224 images; smaller images get 1×1 squares;
    * the schedule of p uses exact integer arithmetic (see ``square_fraction``);
    * the budget counts the initialisation as one query and runs ``queries − 1``
      iterations (the original code; AutoAttack runs ``n_queries`` after it); the clean
      query (the reference attacks only the correctly classified points) is extra;
    * one run, no restarts.

    Paper: Andriushchenko et al. (2020), Algorithm 1 (random search on the margin loss),
    Algorithm 2 (ℓ∞) and Algorithm 3 (ℓ2); the schedule of p and the initialisations of
    Section 3.

    Args:
        norm: ``"linf"`` or ``"l2"``.
        eps: Radius ε ≥ 0 of the ball.
        queries: Query budget ≥ 1: the initialisation and ``queries − 1`` iterations.
        p_init: The initial fraction of the image a square covers, in (0, 1]; default
            [`DEFAULT_P_INIT`][aatk.attacks.square.DEFAULT_P_INIT]: 0.05 for ℓ∞ and 0.1
            for ℓ2, the paper's values for standard models. For adversarially trained
            models the paper uses 0.3–0.8 and AutoAttack 0.8.
        bounds: ``(low, high)`` of valid inputs (default images in [0, 1]), or ``None``.
        seed: Seed of the random search.

    Raises:
        ValueError: On an unknown norm, ε < 0, bad bounds, ``queries`` < 1 or ``p_init``
            not in (0, 1]; at call time, on inputs that are neither (batch, H, W, C) nor
            (batch, D).

    Examples:
        >>> attack = SquareAttack(norm="linf", eps=0.1, queries=20, seed=0)
        >>> attack
        SquareAttack(norm='linf', eps=0.1, queries=20, p_init=0.05, bounds=(0.0, 1.0))
        >>> model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
        >>> x = np.full((2, 4, 4, 1), 0.5, "float32")
        >>> x_adv = np.asarray(attack(model, x, np.array([0, 1])))
        >>> x_adv.shape, bool(np.abs(x_adv - x).max() <= 0.1 + 1e-6)
        ((2, 4, 4, 1), True)
    """

    name = "Square"
    uses_gradients = False  # forward passes only: the black-box check for gradient masking

    def __init__(
        self,
        *,
        norm: str = "linf",
        eps: float,
        queries: int = 5000,
        p_init: float | None = None,
        bounds: tuple[float, float] | None = (0.0, 1.0),
        seed: int | None = None,
    ) -> None:
        super().__init__(norm=norm, eps=eps, bounds=bounds, seed=seed, random=True)
        self.queries = positive_int(queries, "queries")
        self.p_init = DEFAULT_P_INIT[norm] if p_init is None else _check_p_init(p_init)

    def get_config(self) -> dict:
        """Keras serialisation config (the constructor's arguments)."""
        return {
            "norm": self.norm,
            "eps": self.eps,
            "queries": self.queries,
            "p_init": self.p_init,
            "bounds": None if self.bounds is None else list(self.bounds),
            "seed": self.seed,
        }

    def __call__(self, model: keras.Model, x: Tensor, y: Tensor, *, way: str = "standard") -> Tensor:
        """Attacks one way of a model (see [`Attack.__call__`][aatk.attacks.base.Attack.__call__]).

        Raises:
            ValueError: As the base class, and on inputs that are neither images
                (batch, H, W, C) nor vectors (batch, D).
        """
        _image_layout(np.shape(x))
        return super().__call__(model, x, y, way=way)

    # --- the search ----------------------------------------------------------------------------

    def run(self, logits_fn: Callable[[Tensor], Tensor], x: Tensor, y: Tensor) -> Tensor:
        """The random search on the margin of the way ``logits_fn`` computes (see [`Attack.run`][aatk.attacks.base.Attack.run]).

        Graph-friendly: one ``while_loop`` whose random draws thread the seed generator's
        state through the loop (a JAX loop body cannot assign a variable).
        """
        x = ops.stop_gradient(ops.convert_to_tensor(x, dtype="float32"))
        y = ops.cast(ops.convert_to_tensor(y), "int32")
        height, width, channels = _image_layout(x.shape)
        original_shape = ops.shape(x)
        flat = len(x.shape) == 2
        image = ops.reshape(x, (-1, height, width, channels)) if flat else x

        def margin(points):
            inputs = ops.reshape(points, original_shape) if flat else points
            return margin_loss(ops.cast(logits_fn(inputs), "float32"), y)

        generator = self._seed_generator
        margin_clean = margin(image)
        init = self._into_ball(image, self._initial_point(image, generator))
        margin_init = margin(init)
        attacked = ops.greater(margin_clean, 0.0)
        best = ops.where(attacked[:, None, None, None], init, image)
        margin_best = ops.where(attacked, margin_init, margin_clean)

        def searching(iteration, best, margin_best, state):
            return ops.logical_and(ops.less(iteration, self.queries - 1), ops.any(ops.greater(margin_best, 0.0)))

        def step(iteration, best, margin_best, state):
            with keras.StatelessScope(state_mapping=[(generator.state, state)]) as scope:
                proposal = self._proposal(image, best, iteration, generator)
                state = scope.get_current_value(generator.state)
            proposal = self._into_ball(image, proposal)
            margin_new = margin(proposal)
            better = ops.logical_and(ops.greater(margin_best, 0.0), ops.less(margin_new, margin_best))
            best = ops.where(better[:, None, None, None], proposal, best)
            margin_best = ops.where(better, margin_new, margin_best)
            return iteration + 1, best, margin_best, state

        loop_vars = (ops.convert_to_tensor(0, dtype="int32"), best, margin_best, generator.state.value)
        _, best, margin_best, state = ops.while_loop(searching, step, loop_vars)
        generator.state.assign(state)
        keep_clean = ops.less_equal(margin_clean, margin_best)
        x_adv = self._into_ball(image, ops.where(keep_clean[:, None, None, None], image, best))
        return ops.stop_gradient(ops.reshape(x_adv, original_shape) if flat else x_adv)

    def _into_ball(self, x, x_adv):
        """``x_adv`` projected onto the ε-ball around ``x`` where it leaves it, then clipped to bounds.

        Points already inside are kept bit for bit, so a point's margin as the search
        measured it is the margin of the point returned.
        """
        delta = x_adv - x
        if self.norm == "linf":
            inside = ops.less_equal(ops.abs(delta), self.eps)
        else:
            inside = ops.less_equal(per_example_norm(delta), self.eps)
        x_adv = ops.where(inside, x_adv, x + self._hooks.project(delta, self.eps))
        return self.clip_to_bounds(x_adv)

    @staticmethod
    def _signs(uniform):
        """±1 from uniform draws on [0, 1): −1 below ½ (one random draw per proposal keeps the graph small)."""
        return ops.where(ops.less(uniform, 0.5), -1.0, 1.0)

    def _initial_point(self, image, generator):
        batch = ops.shape(image)[0]
        height, width, channels = image.shape[1:]
        if self.norm == "linf":  # vertical stripes: one sign per column and channel
            stripes = self._signs(keras.random.uniform((batch, 1, width, channels), seed=generator))
            return self.clip_to_bounds(image + self.eps * stripes)
        side = max(min(height, width) // 5, 1)
        counts = (height // side, width // side)
        offsets = ((height - counts[0] * side) // 2, (width - counts[1] * side) // 2)
        draws = keras.random.uniform((batch, counts[0], counts[1], channels + 1), seed=generator)
        signs, flips = self._signs(draws[..., :channels]), ops.greater(draws[..., channels:], 0.5)
        rows = ops.arange(height, dtype="int32") - offsets[0]
        cols = ops.arange(width, dtype="int32") - offsets[1]
        row_square = ops.clip(rows // side, 0, counts[0] - 1)
        col_square = ops.clip(cols // side, 0, counts[1] - 1)
        inside = ops.logical_and(
            ops.logical_and(ops.greater_equal(rows, 0), ops.less(rows, counts[0] * side))[:, None],
            ops.logical_and(ops.greater_equal(cols, 0), ops.less(cols, counts[1] * side))[None, :],
        )[None, :, :, None]
        signs = ops.take(ops.take(signs, row_square, axis=1), col_square, axis=2)
        flips = ops.take(ops.take(flips, row_square, axis=1), col_square, axis=2)
        a = ops.reshape(rows % side, (1, height, 1, 1))
        b = ops.reshape(cols % side, (1, 1, width, 1))
        pattern = _meta_pattern(ops.where(flips, b, a), ops.where(flips, a, b), side, _pattern_tables(side))
        delta = ops.where(inside, pattern, 0.0) * signs
        delta = delta * (self.eps / ops.maximum(per_example_norm(delta), _TINY))
        return self.clip_to_bounds(image + delta)

    @staticmethod
    def _window(side, uniform, height, width):
        """A square of side ``side`` per example, at a uniform position given uniform draws (batch, 2).

        Returns:
            Its mask (batch, H, W, 1) and the coordinates of every pixel relative to its corner.
        """
        corner = []
        for column, extent in enumerate((height, width)):
            positions = ops.cast(extent - side + 1, "float32")
            draw = ops.reshape(uniform[:, column], (-1, 1, 1, 1))
            corner.append(ops.minimum(ops.cast(ops.floor(draw * positions), "int32"), extent - side))
        rows = ops.reshape(ops.arange(height, dtype="int32"), (1, height, 1, 1))
        cols = ops.reshape(ops.arange(width, dtype="int32"), (1, 1, width, 1))
        in_rows = ops.logical_and(ops.greater_equal(rows, corner[0]), ops.less(rows, corner[0] + side))
        in_cols = ops.logical_and(ops.greater_equal(cols, corner[1]), ops.less(cols, corner[1] + side))
        return ops.logical_and(in_rows, in_cols), rows - corner[0], cols - corner[1]

    def _proposal(self, image, best, iteration, generator):
        """One candidate per example: the current best changed inside random squares (Algorithm 2 / 3)."""
        height, width, channels = image.shape[1:]
        p = square_fraction(self.p_init, iteration, self.queries)
        side = ops.cast(ops.round(ops.sqrt(p * float(height * width))), "int32")
        if self.norm == "linf":
            side = ops.clip(side, 1, min(height, width))
            return self._linf_proposal(image, best, side, generator)
        side = ops.maximum(side, 3)
        side = side + 1 - side % 2
        side = ops.minimum(side, min(height, width))
        return self._l2_proposal(image, best, side, generator)

    def _linf_proposal(self, image, best, side, generator):
        batch = ops.shape(image)[0]
        height, width, channels = image.shape[1:]
        draws = keras.random.uniform((batch, 2 + _SIGN_DRAWS * channels), seed=generator)
        window, _, _ = self._window(side, draws[:, :2], height, width)
        up, down = self.clip_to_bounds(image + self.eps), self.clip_to_bounds(image - self.eps)

        def unchanged(target):  # (batch, C): the window of that channel would stay as it is
            moved = ops.logical_and(window, ops.greater_equal(ops.abs(target - best), _UNCHANGED))
            return ops.logical_not(ops.any(moved, axis=(1, 2)))

        candidates = self._signs(ops.reshape(draws[:, 2:], (-1, _SIGN_DRAWS, channels)))
        same = ops.where(ops.greater(candidates, 0.0), unchanged(up)[:, None, :], unchanged(down)[:, None, :])
        changes = ops.logical_not(ops.all(same, axis=-1))  # (batch, draws)
        first = ops.argmax(ops.cast(changes, "int32"), axis=1)  # the first that changes, else the first
        chosen = ops.one_hot(first, _SIGN_DRAWS, dtype="float32")[:, :, None]
        signs = ops.reshape(ops.sum(candidates * chosen, axis=1), (-1, 1, 1, channels))
        return ops.where(window, ops.where(ops.greater(signs, 0.0), up, down), best)

    def _l2_proposal(self, image, best, side, generator):
        batch = ops.shape(image)[0]
        height, width, channels = image.shape[1:]
        delta = best - image
        draws = keras.random.uniform((batch, 5 + channels), seed=generator)
        first, a, b = self._window(side, draws[:, 0:2], height, width)
        second, _, _ = self._window(side, draws[:, 2:4], height, width)
        first_f = ops.cast(first, "float32")
        both = ops.cast(ops.logical_or(first, second), "float32")

        def channel_norm(t):  # (batch, 1, 1, C)
            return ops.sqrt(ops.sum(ops.square(t), axis=(1, 2), keepdims=True))

        unused = ops.maximum(self.eps**2 - ops.sum(ops.square(delta), axis=(1, 2, 3), keepdims=True), 0.0)
        available = ops.sqrt(unused / channels + ops.square(channel_norm(delta * both)))
        old = delta * first_f
        old = old / (channel_norm(old) + _TINY)
        flip = ops.greater(ops.reshape(draws[:, 4], (-1, 1, 1, 1)), 0.5)
        tables = _pattern_tables(min(height, width))
        pattern = _meta_pattern(ops.where(flip, b, a), ops.where(flip, a, b), side, tables) * first_f
        new = pattern * ops.reshape(self._signs(draws[:, 5:]), (-1, 1, 1, channels)) + old
        new = new / ops.maximum(channel_norm(new), _TINY) * available
        delta = delta * (1.0 - both) + new
        delta = delta * (self.eps / ops.maximum(per_example_norm(delta), _TINY))
        return self.clip_to_bounds(image + delta)
