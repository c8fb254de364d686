"""Real notebooks for round-trip tests: the test notebooks shipped in the source distributions
of nbformat and nbconvert (the versions this project installs), fetched once from the package
index with pip and cached under ``var/corpus/``. They cover what notebooks hold in the wild:
widget state, attachments, raw cells, every output type (streams, errors, images, SVG, HTML,
LaTeX), unusual and nested metadata, tags, and nbformat 4.0 to 4.5 minors. Only notebooks
nbformat validates as version 4 are kept (older ones Jupyter converts on reading, which no
server-side round trip could undo). Without the network the tests that use them are skipped
(a failure under CI=true)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tarfile
import warnings
from importlib.metadata import version
from pathlib import Path

import nbformat
import pytest

from tests.support import ROOT

PACKAGES = ("nbformat", "nbconvert")
CACHE = ROOT / "var" / "corpus"


def _fetch(package: str, into: Path) -> Path:
    pinned = f"{package}=={version(package)}"
    target = into / pinned
    if target.is_dir() and any(target.iterdir()):
        return target
    into.mkdir(parents=True, exist_ok=True)
    download = into / "sdists"
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    command += ["--no-binary", ":all:", "--dest", str(download), pinned]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    archives = sorted(download.glob(f"{package}-{version(package)}.tar.gz"))
    if done.returncode or not archives:
        pytest.skip(f"could not download {pinned}'s source distribution: {done.stderr[-500:]}")
    staging = into / f".{pinned}"
    staging.mkdir(exist_ok=True)
    with tarfile.open(archives[0]) as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.endswith(".ipynb"):
                name = member.name.split("/", 1)[1].replace("/", "__")
                extracted = archive.extractfile(member)
                assert extracted is not None
                (staging / name).write_bytes(extracted.read())
    staging.rename(target)
    return target


def version4(path: Path) -> dict | None:
    """The notebook's JSON if nbformat validates it as version 4 as it is (nothing to correct,
    no warning), else None."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        if content.get("nbformat") != 4 or content.get("nbformat_minor", 0) > 5:
            return None  # nbformat 4.0 to 4.5: a "future" minor is no Jupyter tool's format
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            nbformat.validate(nbformat.from_dict(copy.deepcopy(content)))
    except (ValueError, nbformat.ValidationError):
        return None
    return None if caught else content


def corpus() -> dict[str, dict]:
    """``{name: notebook JSON}`` for every valid nbformat-4 notebook of the packages."""
    notebooks: dict[str, dict] = {}
    for package in PACKAGES:
        for path in sorted(_fetch(package, CACHE).glob("*.ipynb")):
            content = version4(path)
            if content is not None:
                notebooks[f"{package}__{path.stem}"] = content
    return notebooks


def features(notebook: dict) -> set[tuple[str, ...]]:
    """What a notebook holds that a round trip could lose: its nbformat minor, cell types, output
    types and MIME types, attachments, and the metadata keys of the notebook, cells and outputs."""
    found = {("minor", str(notebook.get("nbformat_minor")))}
    found |= {("metadata", key) for key in notebook.get("metadata", {})}
    for cell in notebook.get("cells", []):
        found.add(("cell", cell.get("cell_type", "")))
        found |= {("cell-metadata", key) for key in cell.get("metadata", {})}
        if cell.get("attachments"):
            found.add(("attachments",))
        if "id" not in cell:
            found.add(("no-cell-id",))
        for output in cell.get("outputs", []):
            found.add(("output", output.get("output_type", "")))
            found |= {("mime", key) for key in output.get("data", {})}
            found |= {("output-metadata", key) for key in output.get("metadata", {})}
    return found


def representative(notebooks: dict[str, dict]) -> dict[str, dict]:
    """Few notebooks holding, between them, every ``features()`` of the whole set (a greedy
    cover, the same each run): for round trips too slow to make with every notebook."""
    wanted = set().union(*(features(content) for content in notebooks.values()))
    chosen: dict[str, dict] = {}
    while wanted:
        name = max(sorted(notebooks), key=lambda name: len(features(notebooks[name]) & wanted))
        chosen[name] = notebooks[name]
        wanted -= features(notebooks[name])
    return chosen
