"""Notebooks as files: what tests write for Jupyter to open, and read back from disk."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from pycrdt import Array, Map, Text


def code(cell_id: str, source: str) -> dict:
    return {
        "id": cell_id,
        "cell_type": "code",
        "source": source,
        "metadata": {},
        "outputs": [],
        "execution_count": None,
    }


def y_code_cell(cell_id: str, source: str) -> Map:
    """``code(cell_id, source)`` as the shared types a notebook's ``cells`` array holds."""
    cell = code(cell_id, source)
    return Map({**cell, "source": Text(source), "metadata": Map(), "outputs": Array()})


def code_cells(*sources: str, first: int = 1) -> list[dict]:
    """Code cells with ids ``c<first>``, ``c<first + 1>``, ...: one per source."""
    return [code(f"c{index}", source) for index, source in enumerate(sources, first)]


PYTHON3 = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def notebook(*cells: dict, metadata: dict | None = None) -> dict:
    """An nbformat 4.5 notebook of ``cells``; its metadata names Python 3 unless given."""
    return {
        "cells": list(cells),
        "metadata": copy.deepcopy(PYTHON3) if metadata is None else metadata,
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def write_json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


def disk_notebook(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):  # not there, or being written
        return None


def disk_source(path: Path, index: int) -> str | None:
    nb = disk_notebook(path)
    if nb is None:
        return None
    source = nb["cells"][index]["source"]
    return "".join(source) if isinstance(source, list) else source
