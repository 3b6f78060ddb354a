"""Where a result comes from: versions, source commit, date and device, recorded beside it.

Every ``eval-*.json`` that ``aatk evaluate`` (and ``aatk combine``) writes holds the
[`environment`][aatk.provenance.environment] of the process under ``"provenance"``, so
that a table of results gathered by ``aatk report`` shows which code, libraries and
machine produced each row, and when.

Nothing here imports Keras, TensorFlow or JAX: versions come from the installed
distributions' metadata, and the accelerators are asked of a backend only if it is
already imported. The command line's ``--version`` uses [`aatk_version`][aatk.provenance.aatk_version].
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["aatk_version", "device_description", "environment", "package_versions", "source_revision"]

SOURCE_ROOT = Path(__file__).resolve().parents[1]
"""The folder holding the ``aatk`` package: a git checkout when aatk is installed from source."""

_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "keras": ("keras",),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-macos", "tf-nightly"),
    "jax": ("jax",),
    "jaxlib": ("jaxlib",),
    "numpy": ("numpy",),
}
"""Package → the distributions that install it (TensorFlow has several)."""


def aatk_version() -> str:
    """The installed ``aatk`` distribution's version, else the package's ``__version__``.

    Examples:
        >>> aatk_version().count(".") >= 1
        True
    """
    try:
        return metadata.version("aatk")
    except metadata.PackageNotFoundError:
        from aatk import __version__

        return __version__


def package_versions() -> dict[str, str | None]:
    """Python's and the numerical packages' versions (None where not installed).

    Examples:
        >>> sorted(package_versions())
        ['jax', 'jaxlib', 'keras', 'numpy', 'python', 'tensorflow']
    """
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package, distributions in _DISTRIBUTIONS.items():
        versions[package] = None
        for distribution in distributions:
            try:
                versions[package] = metadata.version(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def _git(*arguments: str, timeout: float) -> str | None:
    """The output of a read-only git command in [`SOURCE_ROOT`][aatk.provenance.SOURCE_ROOT], or None."""
    environment = dict(os.environ, GIT_OPTIONAL_LOCKS="0", LC_ALL="C")  # never write the index
    try:
        done = subprocess.run(["git", "-C", str(SOURCE_ROOT), *arguments], capture_output=True, text=True,
                              timeout=timeout, env=environment, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def source_revision(*, timeout: float = 2.0) -> dict[str, Any]:
    """The git commit of aatk's source tree and whether it has uncommitted changes.

    Only when aatk runs from a git checkout (the folder above the package holds ``.git``);
    an installed copy inside some other repository is not mistaken for it.

    Args:
        timeout: Seconds each git command may take.

    Returns:
        ``{"commit": <40 hex digits> or None, "dirty": True/False or None}`` — None where
        there is no checkout, no git, or git did not answer in time. ``dirty`` counts
        changes to tracked files, not untracked ones.
    """
    if not (SOURCE_ROOT / ".git").exists():
        return {"commit": None, "dirty": None}
    commit = _git("rev-parse", "HEAD", timeout=timeout)
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git("status", "--porcelain", "--untracked-files=no", timeout=timeout)
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as stream:
            for line in stream:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def _accelerators() -> list[str]:
    """Names of the GPUs/TPUs of Keras's backend, if that backend is already imported (else [])."""
    names: list[str] = []
    backend = _keras_backend() or ("jax" if "jax" in sys.modules else "tensorflow")
    try:
        if backend == "jax" and "jax" in sys.modules:
            jax = sys.modules["jax"]
            names = [f"{device.platform}: {device.device_kind}" for device in jax.devices() if device.platform != "cpu"]
        elif backend == "tensorflow" and "tensorflow" in sys.modules:
            tf = sys.modules["tensorflow"]
            for device in tf.config.list_physical_devices():
                if device.device_type == "CPU":
                    continue
                details = tf.config.experimental.get_device_details(device)
                names.append(f"{device.device_type}: {details.get('device_name', device.name)}")
    except Exception:  # a description must never fail an evaluation
        return names
    return names


def device_description() -> dict[str, Any]:
    """The machine: platform, CPU model and count, and accelerators (as the backend names them).

    Examples:
        >>> sorted(device_description())
        ['accelerators', 'cpu', 'cpu_count', 'platform']
    """
    return {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "accelerators": _accelerators(),
    }


def _keras_backend() -> str | None:
    if "keras" in sys.modules:
        try:
            return sys.modules["keras"].backend.backend()
        except Exception:
            pass
    return os.environ.get("KERAS_BACKEND") or None


def environment(*, dtype_policy: str | None = None) -> dict[str, Any]:
    """Everything that says where a result comes from, as a JSON-ready dict.

    Args:
        dtype_policy: The Keras dtype policy the result was computed in (default: the
            global one, if Keras is imported).

    Returns:
        ``aatk_version``, ``versions`` ([`package_versions`][aatk.provenance.package_versions]),
        ``keras_backend``, ``git_commit`` and ``git_dirty``
        ([`source_revision`][aatk.provenance.source_revision]), ``date_utc`` (ISO 8601, to
        the second), ``device`` ([`device_description`][aatk.provenance.device_description])
        and ``dtype_policy``.
    """
    if dtype_policy is None and "keras" in sys.modules:
        try:
            dtype_policy = sys.modules["keras"].config.dtype_policy().name
        except Exception:
            dtype_policy = None
    revision = source_revision()
    return {
        "aatk_version": aatk_version(),
        "versions": package_versions(),
        "keras_backend": _keras_backend(),
        "git_commit": revision["commit"],
        "git_dirty": revision["dirty"],
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": device_description(),
        "dtype_policy": dtype_policy,
    }
