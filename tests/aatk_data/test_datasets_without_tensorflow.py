"""aatk.datasets where TensorFlow is not installed (Keras's JAX backend alone, as on many GPU machines).

Each test runs a short script in a subprocess whose imports of ``tensorflow`` and
``tensorflow_datasets`` fail as where they are not installed (an import hook: TensorFlow is
installed here, and a process that imported it cannot forget it). NumPy arrays come from the
local files; ``load``, ``pad_crop_flip`` and the tensorflow-datasets fallback fail with messages
that say what works instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from aatk_data_testutils import CIFAR_FILES, MNIST_FILES, ROOT, real_data_dir

DATA = real_data_dir()
needs_real_data = pytest.mark.skipif(
    not all((DATA / "mnist" / f).is_file() for pair in MNIST_FILES.values() for f in pair)
    or not all((DATA / "cifar10" / "cifar-10-batches-bin" / f).is_file() for g in CIFAR_FILES.values() for f in g),
    reason=f"real MNIST and CIFAR-10 files not found under {DATA} (set AATK_DATA_DIR)",
)

WITHOUT_TENSORFLOW = """\
import importlib.abc, json, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in ("tensorflow", "tensorflow_datasets"):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None

sys.meta_path.insert(0, NoTensorFlow())
"""


def run_without_tensorflow(*, script: str, env: dict[str, str]) -> dict:
    """Runs ``script`` after the import hook; returns the JSON object it prints last."""
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_TENSORFLOW + script], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AATK_DATA_DIR"}
    env.update(KERAS_BACKEND="jax", PYTHONPATH=str(ROOT), **extra)
    return env


@needs_real_data
def test_load_arrays_reads_local_files_with_numpy_alone() -> None:
    result = run_without_tensorflow(
        script=f"""
import numpy as np
from aatk import datasets
x, y = datasets.load_arrays("mnist", "test", data_dir={str(DATA)!r}, subset=100)
cx, cy = datasets.load_arrays("cifar10", "train", subset=64)  # from $AATK_DATA_DIR
flipped = datasets.pad_crop_flip_numpy(cx, rng=np.random.default_rng(0))
print(json.dumps({{
    "mnist": [list(x.shape), str(x.dtype), str(y.dtype), float(x.max())],
    "cifar10": [list(flipped.shape), str(flipped.dtype)],
    "tensorflow_imported": any(m.split(".")[0] == "tensorflow" for m in sys.modules),
}}))
""",
        env=environment(AATK_DATA_DIR=str(DATA)),
    )
    assert result == {
        "mnist": [[100, 28, 28, 1], "float32", "int32", 1.0],
        "cifar10": [[64, 32, 32, 3], "float32"],
        "tensorflow_imported": False,
    }


def test_what_needs_tensorflow_says_what_works_instead() -> None:
    result = run_without_tensorflow(
        script="""
import numpy as np
from aatk import datasets
messages = {}
try:
    datasets.load_arrays("mnist", "test")  # no data_dir, no $AATK_DATA_DIR: tensorflow-datasets
except datasets.DatasetNotFoundError as error:
    messages["load_arrays"] = [str(error), isinstance(error, FileNotFoundError)]
for name, call in (("load", lambda: datasets.load("mnist", "test", data_dir=".")),
                   ("pad_crop_flip", lambda: datasets.pad_crop_flip(np.zeros((1, 4, 4, 1)), seed=[0, 0]))):
    try:
        call()
    except ImportError as error:
        messages[name] = [str(error), False]
print(json.dumps(messages))
""",
        env=environment(),
    )
    assert set(result) == {"load_arrays", "load", "pad_crop_flip"}
    message, is_file_not_found = result["load_arrays"]
    assert is_file_not_found  # the command line reports it in one line, as any missing data
    assert "no local copy of mnist" in message and "needs TensorFlow, which is not installed" in message
    assert "--data-dir" in message and "AATK_DATA_DIR" in message and "t10k-images-idx3-ubyte.gz" in message
    assert "tensorflow-datasets, which downloads" not in message  # not offered where it cannot work
    assert result["load"][0].startswith("aatk.datasets.load (a tf.data pipeline) needs TensorFlow")
    assert "load_arrays" in result["load"][0] and "model.fit(x, y, batch_size=...)" in result["load"][0]
    assert result["pad_crop_flip"][0].startswith("aatk.datasets.pad_crop_flip (pad_crop_flip_numpy does not) needs")
