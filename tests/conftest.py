"""Shared test configuration: Hypothesis profiles.

``ci`` (the default) is derandomized, so every run of the suite draws the same
examples; ``dev`` keeps Hypothesis' random exploration. Choose one with the
environment variable ``HYPOTHESIS_PROFILE``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]
# The tests live in tests/theory/, a directory without __init__.py; make sure the
# project's own ``theory`` package (a regular package at the repository root) is
# the one imported even when pytest is started without the root on sys.path.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=100, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Folders whose code never touches Keras's backend: theory/ imports no Keras at all, and the
# data tests exercise tf.data and NumPy loaders that are the same under either backend. They run
# in the TensorFlow pass only (``make test-jax`` deselects the marker).
BACKEND_INDEPENDENT_FOLDERS = ("theory", "aatk_data")


def pytest_collection_modifyitems(config, items) -> None:
    import pytest

    for item in items:
        if Path(str(item.fspath)).parent.name in BACKEND_INDEPENDENT_FOLDERS:
            item.add_marker(pytest.mark.backend_independent)
