"""Speed of the train step on the MNIST small CNN, per method and per Keras backend.

One run measures, each backend in its own process (a process has one Keras backend):

* images/s of ``fit``'s train step for ST (Eq. 6), one-way AT (Madry), AAT (Eq. 8) and
  AAT++ (Eq. 11); under TensorFlow with and without XLA (``jit_compile``), under JAX
  jitted (what Keras does; an op-by-op JAX step is not a contender);
* the parts of an AAT step that no implementation can avoid: the 5-step PGD attack on
  the standard way followed by the forward pass that reads ŷ_s off x_adv (Eq. 7), and a
  training step on the clean and the adversarial batch together (a three-way ST step on
  2B images: AAT's objective needs one forward and backward pass through both encoders
  for each of those images). ``AAT / unavoidable`` is the ratio of an AAT step to their
  sum; 1.0 would mean the step does nothing else;
* the same one-way PGD adversarial training step written the standard way in PyTorch
  (``benchmarks/torch_reference.py``), on the same CPU, if torch is installed.

Run ``python benchmarks/train_step_speed.py [--batch-size 128] [--steps 10] [--repeats 3]``;
it prints Markdown tables. Inputs are random images of MNIST's shape: speed does not
depend on pixel values. Each figure is the best of ``--repeats`` timed windows of
``--steps`` steps, after a warm-up that compiles the step. Wall-clock time on a small
shared machine varies by up to 2× between windows (whether both cores are free), so the
step-efficiency ratio is also given in process CPU time (summed over threads), which
varies far less. Figures are recorded in docs/development.md with the machine they came from.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

METHODS = {"st": "ST (three-way, Eq. 6)", "1way-at": "AT (one-way, Madry)", "aat": "AAT (Eq. 8)", "aat++": "AAT++ (Eq. 11)"}
BACKENDS = ("tensorflow", "jax")


# --- measurements, in a process of one backend ----------------------------------------------------


def _worker(backend_name: str, *, batch_size: int, steps: int, repeats: int) -> dict:
    os.environ["KERAS_BACKEND"] = backend_name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    import aatk
    from aatk import backbones, backend
    from aatk.configs import ATTACK_PRESETS
    from aatk.objectives import cross_entropy

    rng = np.random.default_rng(0)
    count = 2 * (steps + 3) * batch_size
    x = rng.random((count, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, size=count).astype(np.int32)
    attack = aatk.PGD(**ATTACK_PRESETS["mnist-linf-train"])

    def model(method: str, jit: bool) -> aatk.ThreeWayModel:
        keras.utils.set_random_seed(0)
        built = aatk.ThreeWayModel(backbones.small_cnn(), backbones.small_cnn(), num_classes=10)
        built.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            method=method,
            attack=None if method == "st" else attack,
            jit_compile=jit,
        )
        return built

    def best(run_window) -> tuple[float, float]:
        """(wall, CPU) seconds per step: the fastest window's wall time, the least CPU time."""
        windows = [run_window() for _ in range(repeats)]
        return min(w for w, _ in windows), min(c for _, c in windows)

    def clocks():
        return time.perf_counter(), time.process_time()

    def per_step(started, count):
        wall, cpu = clocks()
        return (wall - started[0]) / count, (cpu - started[1]) / count

    def time_fit(method: str, jit: bool, batch: int) -> tuple[float, float]:
        """(wall, CPU) seconds per train step of ``batch`` images."""
        trained = model(method, jit)
        trained.fit(x[: 2 * batch], y[: 2 * batch], batch_size=batch, epochs=1, verbose=0, shuffle=False)

        def window() -> tuple[float, float]:
            started = clocks()
            trained.fit(x[: steps * batch], y[: steps * batch], batch_size=batch, epochs=1, verbose=0, shuffle=False)
            return per_step(started, steps)

        return best(window)

    def time_attack() -> tuple[float, float]:
        """(wall, CPU) seconds per PGD attack on the standard way of one batch, and ŷ_s = argmax h_s(x_adv)."""
        attacked = model("st", False)

        def attack_and_labels(inputs, labels):
            x_adv = attack.perturb(lambda v: cross_entropy(attacked(v, training=False), labels), inputs)
            return keras.ops.argmax(attacked(x_adv, training=False), axis=-1)

        run = backend.compile_function(attack_and_labels, state=attacked.variables)
        batches = [(x[i * batch_size : (i + 1) * batch_size], y[i * batch_size : (i + 1) * batch_size]) for i in range(steps)]
        np.asarray(run(*batches[0]))

        def window() -> tuple[float, float]:
            started = clocks()
            for batch in batches:
                result = run(*batch)
            np.asarray(result)  # wait for the last batch
            return per_step(started, steps)

        return best(window)

    jit_modes = (False, True) if backend_name == "tensorflow" else (True,)
    seconds, cpu_seconds = {}, {}
    for jit in jit_modes:
        for method in METHODS:
            seconds[f"{method}|{jit}"], cpu_seconds[f"{method}|{jit}"] = time_fit(method, jit, batch_size)
    default_jit = backend.JIT_TRAIN_STEP
    attack_times, st_2b_times = time_attack(), time_fit("st", default_jit, 2 * batch_size)
    parts = {"attack": attack_times[0], "st_2b": st_2b_times[0]}
    cpu_parts = {"attack": attack_times[1], "st_2b": st_2b_times[1]}
    versions = {"keras": keras.__version__}
    if backend_name == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    else:
        import jax

        versions["jax"] = jax.__version__
    return {
        "backend": backend_name, "default_jit": default_jit, "versions": versions,
        "seconds": seconds, "parts": parts, "cpu_seconds": cpu_seconds, "cpu_parts": cpu_parts,
    }


def _torch_seconds(*, batch_size: int, steps: int, repeats: int) -> tuple[float, str] | None:
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    spec = importlib.util.spec_from_file_location("torch_reference", Path(__file__).with_name("torch_reference.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    seconds = min(module.pgd_at_seconds_per_step(batch_size=batch_size, steps=steps) for _ in range(repeats))
    return seconds, module.torch_version()


# --- the report ------------------------------------------------------------------------------------


def _report(results: list[dict], torch_result: tuple[float, str] | None, *, batch_size: int, steps: int, repeats: int) -> str:
    versions = ", ".join(f"{k} {v}" for r in results for k, v in r["versions"].items() if k != "keras")
    keras_version = results[0]["versions"]["keras"] if results else "?"
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores; Keras {keras_version}, {versions}"
        + (f", PyTorch {torch_result[1]}" if torch_result else "")
        + f". Batch {batch_size}, best of {repeats} windows of {steps} steps; training attack PGD ℓ∞, 5 steps.",
        "",
        "| train step | " + " | ".join(
            f"{r['backend']}{' + XLA' if jit == 'True' else ''}" for r in results for jit in sorted({k.split('|')[1] for k in r["seconds"]})
        ) + " |",
    ]
    columns = [(r, jit) for r in results for jit in sorted({k.split("|")[1] for k in r["seconds"]})]
    lines.append("|---|" + "---|" * len(columns))
    for method, label in METHODS.items():
        cells = [f"{batch_size / r['seconds'][f'{method}|{jit}']:,.0f}" for r, jit in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "images / s. Unavoidable parts of an AAT step (the backend's default compilation):", ""]
    lines += [
        "| backend, clock | PGD-5 + ŷ_s (ms) | ST step on 2B images (ms) | AAT step (ms) | AAT / unavoidable |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        for clock, seconds, parts in (("wall", r["seconds"], r["parts"]), ("CPU", r["cpu_seconds"], r["cpu_parts"])):
            attack, st_2b = parts["attack"], parts["st_2b"]
            aat = seconds[f"aat|{r['default_jit']}"]
            lines.append(
                f"| {r['backend']}, {clock} | {1e3 * attack:.1f} | {1e3 * st_2b:.1f} | {1e3 * aat:.1f} | {aat / (attack + st_2b):.2f} |"
            )
    if torch_result is not None:
        lines += ["", "One-way PGD adversarial training, the same model and attack:", ""]
        lines += ["| implementation | ms / step | images / s |", "|---|---|---|"]
        for r in results:
            value = r["seconds"][f"1way-at|{r['default_jit']}"]
            lines.append(f"| aatk, {r['backend']} (method 1way-at) | {1e3 * value:.1f} | {batch_size / value:,.0f} |")
        lines.append(f"| PyTorch {torch_result[1]}, standard loop | {1e3 * torch_result[0]:.1f} | {batch_size / torch_result[0]:,.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    parser.add_argument("--worker", choices=BACKENDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("batch_size", "steps", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    sizes = {"batch_size": args.batch_size, "steps": args.steps, "repeats": args.repeats}
    if args.worker:
        print(json.dumps(_worker(args.worker, **sizes)))
        return
    results = []
    for backend_name in args.backends:
        command = [sys.executable, __file__, "--worker", backend_name] + [
            f"--{k.replace('_', '-')}={v}" for k, v in sizes.items()
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"the {backend_name} measurements failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    torch_result = None if args.no_torch else _torch_seconds(**sizes)
    print(_report(results, torch_result, **sizes))


if __name__ == "__main__":
    main()
