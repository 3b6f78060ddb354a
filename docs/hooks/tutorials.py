"""MkDocs hook: publish the executable tutorials of ``tutorials/`` as pages.

The tutorials are jupytext percent scripts kept outside ``docs/`` so that they
stay plain Python files the test suite can run. This hook adds each one to the
site as ``tutorials/<name>.py``; the mkdocs-jupyter plugin then executes it and
renders it with its outputs and figures. A tutorial that raises fails the build.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]


@event_priority(100)  # before mkdocs-jupyter's on_files, which wraps notebook pages
def on_files(files: Files, config) -> Files:
    # A File rooted at the repository (not File.generated): mkdocs-jupyter's wrapper
    # recomputes abs_src_path from src_dir, which a generated file lacks.
    for path in sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py")):
        files.append(
            File(
                f"tutorials/{path.name}",
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files
