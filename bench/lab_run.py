"""Ctrl+Enter in one JupyterLab window to the output in another person's window.

What someone collaborating sees: one person runs a cell, the other watches its output appear.
Two headless Chromium windows (selenium, as ``tests/e2e``) on stock JupyterLab 4 with its
collaboration front end, one notebook, a cell printing a counter, run again and again at a
human pace. Timed inside the pages, by one clock (the machine's; ``performance.timeOrigin +
performance.now()`` in each page): from the key press (a capturing ``keydown`` listener in the
runner's window, before JupyterLab handles it) to the new output's text in the DOM of the
runner's window (``own``) and of the watcher's (``other``), seen by a ``MutationObserver``.

Sides, each started fresh, run one after the other:

- **ours**: ``tests.support.jupyterlab.LabStack``, as ``scripts/run`` starts the product:
  JupyterLab with the bridge, this server (daphne, SQLite) and the supernode. The cell runs on
  the server side: its output reaches both windows through the shared document.
- **theirs**: the same JupyterLab (``--theirs-venv``, default
  ``bench/.venvs/jupyterlab-collaboration``, made once by this script: ``jupyterlab`` at the
  project's pinned version and ``jupyter-collaboration==5.0.4``), defaults. The runner's
  JupyterLab gets the output from the kernel's WebSocket (JupyterLab's own path) and writes it
  into its copy of the shared document, which jupyter-collaboration's room sends to the other.

Run: ``.venv/bin/python bench/lab_run.py [--runs 30] [--pace 0.5] [--skip-theirs]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rtc_project.settings")

from bench.common import median, percentile, print_table  # noqa: E402
from bench.lab import jupyter_server, theirs_python, versions  # noqa: E402
from tests.support.browser import missing_browser  # noqa: E402
from tests.support.jupyterlab import (  # noqa: E402
    CELLS,
    LAB_SETTINGS,
    LabStack,
    LabWindow,
    Person,
    notebook_json,
)
from tests.support.lab_people import ENVIRONMENT as PEOPLE_ENVIRONMENT  # noqa: E402

RUNNER = Person("ada", "Ada Lovelace", "AL", "#1f77b4")
WATCHER = Person("grace", "Grace Hopper", "GH", "#d62728")
THEIRS_VENV = ROOT / "bench" / ".venvs" / "jupyterlab-collaboration"
THEIRS_REQUIREMENTS = ("jupyter-collaboration==5.0.4", "ipykernel")
NOTEBOOK = "run.ipynb"
SETUP = "import itertools\ncounter = itertools.count()\nprint('ready')"
CELL = "print(next(counter))"
WARMUP = 3

# Installed in each window: when cell ``index``'s output text changes to one not seen before,
# note the time; and, in the runner's, the time of each Ctrl/Shift+Enter.
INSTRUMENT = """
const [cells, index] = arguments;
const now = () => performance.timeOrigin + performance.now();
window.__seen = {};
window.__keys = [];
window.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.shiftKey)) window.__keys.push(now());
}, true);
const read = () => {
  const cell = document.querySelectorAll(cells)[index];
  if (!cell) return;
  const text = [...cell.querySelectorAll(".jp-OutputArea-output")]
    .map((output) => output.textContent).join("").trim();
  if (text && !(text in window.__seen)) window.__seen[text] = now();
};
new MutationObserver(read).observe(document.body,
  {subtree: true, childList: true, characterData: true});
"""
SEEN = "return [window.__seen[arguments[0]] || null, window.__keys.slice(-1)[0] || null];"


def log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


@dataclass
class Figures:
    side: str
    own: list[float] = field(default_factory=list)
    other: list[float] = field(default_factory=list)
    load_start: str = ""
    load_end: str = ""
    versions: str = ""


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


# --- The sides ------------------------------------------------------------------------------


class TheirStack:
    """JupyterLab with jupyter-collaboration, the same people logging in by their tokens."""

    def __init__(self, python: str, people: Sequence[Person]):
        self.work = Path(tempfile.mkdtemp(prefix="rtc-lab-run-theirs-"))
        self.notebooks = self.work / "notebooks"
        self.notebooks.mkdir()
        settings = self.work / "lab-settings"
        for plugin, values in LAB_SETTINGS.items():
            target = settings / f"{plugin.replace(':', '/')}.jupyterlab-settings"
            target.parent.mkdir(parents=True)
            target.write_text(json.dumps(values))
        extensions = ("jupyterlab", "jupyter_server_fileid", "jupyter_server_ydoc")
        self.server = jupyter_server(
            self.notebooks,
            python,
            [
                *(f"--ServerApp.jpserver_extensions={name}=True" for name in extensions),
                "--ServerApp.identity_provider_class="
                "tests.support.lab_people.PeopleIdentityProvider",
                "--LabApp.news_url=None",
            ],
            env={
                PEOPLE_ENVIRONMENT: json.dumps({p.token: p.identity() for p in people}),
                "JUPYTERLAB_SETTINGS_DIR": str(settings),
                "PYTHONPATH": str(ROOT),
            },
        )

    def start(self) -> TheirStack:
        self.server.start()
        return self

    def write_notebook(self, path: str, *sources: str) -> None:
        (self.notebooks / path).write_text(json.dumps(notebook_json(*sources), indent=1))

    def lab_url(self, person: Person, path: str = "") -> str:
        return f"{self.server.url}/lab/tree/{path}?reset&token={person.token}"

    def close(self) -> None:
        try:
            self.server.close()
        finally:
            shutil.rmtree(self.work, ignore_errors=True)


def their_python(venv: Path) -> str:
    """The virtualenv's interpreter, with JupyterLab (the project's version) and
    jupyter-collaboration (installed once)."""
    from importlib.metadata import version

    return theirs_python(
        venv,
        [f"jupyterlab=={version('jupyterlab')}", *THEIRS_REQUIREMENTS],
        ["jupyterlab", "jupyter_server_ydoc", "ipykernel"],
    )


# --- Measuring ------------------------------------------------------------------------------


def measure(side: str, stack: Any, args: argparse.Namespace) -> Figures:
    figures = Figures(side, load_start=_load())
    stack.write_notebook(NOTEBOOK, SETUP, CELL)
    runner = watcher = None
    try:
        runner = LabWindow(stack, RUNNER).open_notebook(NOTEBOOK)
        watcher = LabWindow(stack, WATCHER).open_notebook(NOTEBOOK)
        for window in (runner, watcher):
            window.driver.execute_script(INSTRUMENT, CELLS, 1)
        runner.run_cell(0)
        watcher.wait_output(0, lambda text: "ready" in text, "the set-up cell's output", 60)
        for run in range(WARMUP + args.runs):
            started = time.monotonic()
            runner.run_cell(1)
            text = str(run)
            own, pressed = runner.wait_for(
                lambda text=text: _both(runner.driver.execute_script(SEEN, text)),
                f"output {text} in the runner's window",
            )
            other, _ = watcher.wait_for(
                lambda text=text: _both(watcher.driver.execute_script(SEEN, text), key=False),
                f"output {text} in the watcher's window",
            )
            if run >= WARMUP:
                figures.own.append(own - pressed)
                figures.other.append(other - pressed)
            # A human pace: the next run starts --pace seconds after this one did.
            time.sleep(max(0.0, args.pace - (time.monotonic() - started)))
        if args.screenshots:
            runner.screenshot(f"lab-run-{side}-runner")
            watcher.screenshot(f"lab-run-{side}-watcher")
    finally:
        for window in (runner, watcher):
            if window is not None:
                window.close()
    figures.load_end = _load()
    return figures


def _both(seen: list[float | None], key: bool = True) -> tuple[float, float] | None:
    output, pressed = seen
    if output is None or (key and pressed is None):
        return None
    return output, pressed or 0.0


def run_side(name: str, make: Callable[[], Any], args: argparse.Namespace) -> Figures:
    log(f"starting {name}")
    stack = make()
    try:
        return measure(name, stack, args)
    finally:
        stack.close()


def report(all_figures: list[Figures], args: argparse.Namespace) -> None:
    for figures in all_figures:
        print(f"{figures.side}: {figures.versions}")
    print_table(
        [
            "side",
            "own window ms (median)",
            "p90",
            "other window ms (median)",
            "p90",
            "min",
            "max",
            "load start / end",
        ],
        [
            [
                figures.side,
                f"{median(figures.own):.1f}",
                f"{percentile(figures.own, 90):.1f}",
                f"{median(figures.other):.1f}",
                f"{percentile(figures.other, 90):.1f}",
                f"{min(figures.other):.1f}",
                f"{max(figures.other):.1f}",
                f"{figures.load_start} / {figures.load_end}",
            ]
            for figures in all_figures
        ],
        f"Ctrl+Enter on `{CELL}` to its output, {args.runs} runs a side "
        f"(after {WARMUP} not counted), one every {args.pace} s",
    )
    by_side = {figures.side: figures for figures in all_figures}
    if {"ours", "theirs"} <= by_side.keys():
        ours, theirs = by_side["ours"], by_side["theirs"]
        print(
            f"\nours / theirs: own window {median(ours.own) / median(theirs.own):.2f}x, "
            f"other window {median(ours.other) / median(theirs.other):.2f}x; ours' other "
            "window / theirs' own window (JupyterLab's own path to the kernel): "
            f"{median(ours.other) / median(theirs.own):.2f}x"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs measured per side")
    parser.add_argument("--pace", type=float, default=0.5, help="seconds from run to run")
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument("--skip-theirs", action="store_true")
    parser.add_argument("--theirs-venv", type=Path, default=THEIRS_VENV)
    parser.add_argument(
        "--screenshots", action="store_true", help="save both windows to test-artifacts/"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    reason = missing_browser()
    if reason:
        raise SystemExit(reason)
    results = []
    if not args.skip_ours:
        figures = run_side(
            "ours", lambda: LabStack([RUNNER, WATCHER], name="lab-run").start(), args
        )
        figures.versions = versions(sys.executable, ["jupyterlab", "pycrdt", "daphne"])
        results.append(figures)
    if not args.skip_theirs:
        python = their_python(args.theirs_venv)
        figures = run_side("theirs", lambda: TheirStack(python, [RUNNER, WATCHER]).start(), args)
        figures.versions = versions(
            python, ["jupyterlab", "jupyter-collaboration", "jupyter-server-ydoc", "pycrdt"]
        )
        results.append(figures)
    report(results, args)


if __name__ == "__main__":
    main()
