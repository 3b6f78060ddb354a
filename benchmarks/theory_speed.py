"""Speed of the theory package: sampling, exact enumeration, and the prop1 report.

Run ``python benchmarks/theory_speed.py``; it prints a Markdown table. The figures in
docs/development.md come from this script. Timings are the best of several repeats
(wall clock, one process), so they measure the code rather than the machine's noise.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

import theory
from theory import exact


def best_time(function: Callable[[], object], *, repeats: int = 5) -> float:
    """The fastest of ``repeats`` wall-clock timings of ``function()``, in seconds."""
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return min(timings)


def main() -> None:
    dist = theory.PROPOSITION_1
    rows = []
    for n in (100_000, 1_000_000):
        seconds = best_time(lambda: dist.sample(n, seed=0))
        rows.append((f"sample Eq. 16, n = {n:,}, d = 7", seconds, f"{n / seconds / 1e6:.1f} M samples/s"))
    tsipras = theory.TsiprasDistribution(p=0.9, eta=0.1, d=100)
    seconds = best_time(lambda: tsipras.sample(100_000, seed=0))
    rows.append(("sample Eq. 13, n = 100,000, d = 100", seconds, f"{1e5 / seconds / 1e6:.2f} M samples/s"))
    for d in (7, 12, 16, 20):
        instance = theory.SignFlipDistribution(p="4/5", eta=[1] * d)
        classifier = theory.SignLinearClassifier(weights=list(range(1, d + 1)))
        seconds = best_time(lambda: exact.robust_accuracy(classifier, instance, eps="0.5"), repeats=2 if d > 16 else 5)
        rows.append((f"exact robust accuracy, d = {d} (2^{d} patterns)", seconds, ""))
    for d in (7, 12):
        instance = theory.SignFlipDistribution(p="4/5", eta=[1] * d)
        seconds = best_time(lambda: exact.bayes_accuracy(instance), repeats=3)
        rows.append((f"exact Bayes accuracy, d = {d}", seconds, ""))
    h0 = theory.h0(dist)
    seconds = best_time(lambda: theory.monte_carlo_accuracy(h0, dist, eps="0.02", samples=1_000_000, seed=0))
    rows.append(("Monte Carlo robust accuracy, 1,000,000 samples", seconds, ""))
    for flags in ([], ["--json"]):
        command = [sys.executable, "-m", "theory.prop1", *flags]
        seconds = best_time(lambda: subprocess.run(command, check=True, capture_output=True), repeats=3)
        rows.append((f"`python -m theory.prop1 {' '.join(flags)}`".replace(" `", "`"), seconds, "whole process"))

    print(f"Machine: {platform.processor() or platform.machine()}, {platform.system()}, "
          f"Python {platform.python_version()}, numpy {np.__version__}")
    print()
    print("| operation | time | throughput |")
    print("|---|---|---|")
    for name, seconds, note in rows:
        print(f"| {name} | {seconds * 1e3:,.1f} ms | {note} |")


if __name__ == "__main__":
    main()
