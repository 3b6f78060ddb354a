"""aatk's APGD against an independent implementation: IBM ART's AutoProjectedGradientDescent.

Attacks one way of a saved model with both on the same test images and the same budget
(ℓ∞, ε, 100 iterations, one random start, cross-entropy; ART's initial step 2·eps_step = 2ε,
Croce & Hein's), and prints and writes both robust accuracies, their 95% intervals and the
per-example agreement. A validation, not a test: ART is not a dependency of aatk
(``pip install adversarial-robustness-toolbox``), and a run takes minutes.

Usage (TensorFlow backend; ART wraps a Keras 3 model's way through its TensorFlowV2Classifier)::

    AATK_DATA_DIR=../shared/data python validation/apgd_vs_art.py \\
        --model runs/table3/mnist_at_half/model.keras --way robust --samples 1000 --out validation/results

The two differ in their random starts (and in how they break ties in the step-size rule), so
per-example results differ a little; the accuracies should agree within sampling noise.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a saved aatk model (.keras)")
    parser.add_argument("--way", default="robust", choices=("standard", "robust", "non_robust"), help="the way attacked")
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "cifar10"), help="its test set")
    parser.add_argument("--samples", type=int, default=1000, help="first N test images")
    parser.add_argument("--eps", type=float, default=0.3, help="l-infinity radius")
    parser.add_argument("--steps", type=int, default=100, help="iterations of both attacks")
    parser.add_argument("--data-dir", help="folder of the original dataset files (default AATK_DATA_DIR)")
    parser.add_argument("--out", help="write apgd-vs-art-<way>.json and .md here")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf
    from art.attacks.evasion import AutoProjectedGradientDescent
    from art.estimators.classification import TensorFlowV2Classifier

    import aatk
    from aatk import datasets
    from theory.simulation import estimate_from_counts

    model = aatk.load_model(args.model, compile=False)
    x, y = datasets.load_arrays(args.dataset, "test", data_dir=args.data_dir, subset=args.samples)

    def way_logits(inputs, training=False):
        del training  # always inference mode: dropout off, as aatk's attacks run the model
        return model.way_logits(inputs, ways=(args.way,), training=False)[args.way]

    def accuracy_of(adversarial):
        predictions = np.concatenate([
            np.argmax(keras.ops.convert_to_numpy(way_logits(adversarial[i : i + 500])), axis=-1)
            for i in range(0, len(adversarial), 500)
        ])
        return predictions == y

    results = {}
    start = time.perf_counter()
    aatk_attack = aatk.APGD(norm="linf", eps=args.eps, steps=args.steps, loss="ce", seed=0)
    ours = np.concatenate([np.asarray(aatk_attack(model, x[i : i + 250], y[i : i + 250], way=args.way))
                           for i in range(0, len(x), 250)])
    results["aatk.APGD"] = (accuracy_of(ours), time.perf_counter() - start, float(np.abs(ours - x).max()))

    classifier = TensorFlowV2Classifier(
        model=tf.function(way_logits), nb_classes=int(model.num_classes), input_shape=tuple(x.shape[1:]),
        loss_object=tf.keras.losses.CategoricalCrossentropy(from_logits=True), clip_values=(0.0, 1.0),
    )
    art_attack = AutoProjectedGradientDescent(
        classifier, norm=np.inf, eps=args.eps, eps_step=args.eps, max_iter=args.steps, targeted=False,
        nb_random_init=1, batch_size=250, loss_type="cross_entropy", verbose=False,
    )
    start = time.perf_counter()
    theirs = art_attack.generate(x=x, y=keras.utils.to_categorical(y, int(model.num_classes)))
    results["ART AutoProjectedGradientDescent"] = (accuracy_of(theirs.astype("float32")), time.perf_counter() - start,
                                                  float(np.abs(theirs - x).max()))

    clean = accuracy_of(x)
    lines = [
        f"{args.way} way of {args.model}, first {len(y)} {args.dataset} test images; clean accuracy "
        f"{100 * clean.mean():.1f}%. APGD-CE, l-inf eps {args.eps:g}, {args.steps} iterations, one random start.",
        "",
        "| implementation | robust accuracy % | 95% interval | largest perturbation | seconds |",
        "|---|---|---|---|---|",
    ]
    record = {"model": args.model, "way": args.way, "samples": int(len(y)), "eps": args.eps, "steps": args.steps,
              "clean": float(clean.mean()), "results": {}}
    for name, (correct, seconds, largest) in results.items():
        estimate = estimate_from_counts(int(correct.sum()), int(correct.size), confidence=0.95)
        lines.append(f"| {name} | {100 * correct.mean():.1f} | [{100 * estimate.lower:.1f}, {100 * estimate.upper:.1f}] "
                     f"| {largest:.4f} | {seconds:.0f} |")
        record["results"][name] = {"accuracy": float(correct.mean()), "interval_95": [estimate.lower, estimate.upper],
                                   "largest_perturbation": largest, "seconds": seconds}
    (a, _, _), (b, _, _) = results.values()
    agreement = float(np.mean(a == b))
    lines += ["", f"The two agree on {100 * agreement:.1f}% of the images (robust under both or fooled by both)."]
    record["agreement"] = agreement
    text = "\n".join(lines)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"apgd-vs-art-{args.way}.json").write_text(json.dumps(record, indent=2))
        (out / f"apgd-vs-art-{args.way}.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
