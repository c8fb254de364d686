"""The whole product as people use it, for end-to-end tests in a browser: JupyterLab 4 with the
bridge, this server (daphne) and the supernode, as ``scripts/run`` starts them, and JupyterLab
windows driven by selenium in headless Chromium.

- ``LabStack``: the three processes on free ports, in a private directory of their own: a SQLite
  database migrated for it (so it is independent of pytest-django's test database and can serve
  a whole test module), a notebook root, the bridge's token from ``manage.py
  create_bridge_token``. JupyterLab knows the ``people`` given, each with a token of their own
  (``tests.support.lab_people``), so each browser is a different Jupyter user, mapped by the
  bridge to a user of this server. ``close()`` stops the supernode first, then JupyterLab and
  daphne, and removes the directory.
- ``LabWindow``: one person's JupyterLab in one browser, with what a person does and sees: open
  a notebook, type into a cell, read a cell, run it and wait for its output, the collaborators
  panel, Ctrl+S, dialogs, notifications, screenshots, and the browser console's SEVERE entries.

Every wait has a deadline (``tests.support.waiting.eventually``); nothing sleeps.

Imported by tests and by ``scripts/docs-images`` (which sets ``DJANGO_SETTINGS_MODULE``):
PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.support import ROOT
from tests.support.bridged_jupyter import BridgedJupyter
from tests.support.browser import WINDOW_SIZE, open_chromium
from tests.support.lab_people import ENVIRONMENT as PEOPLE_ENVIRONMENT
from tests.support.liveserver import ServerProcess
from tests.support.waiting import eventually

try:
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
except ImportError:  # reported by missing_browser()
    pass

BRIDGE_ACCOUNT = "jupyterlab-bridge"
ARTIFACTS = ROOT / "test-artifacts"
WAIT = 60.0  # JupyterLab's first load and a notebook's first open, on a loaded two-core machine
STEP = 20.0  # one thing appearing in a window that is already open
# Every person's JupyterLab settings: no "get notified about news?" toast over the notebooks.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}
}


# --- The stack ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """A Jupyter user, as Jupyter's identity provider describes one."""

    username: str
    display_name: str
    initials: str
    color: str

    @property
    def token(self) -> str:
        """Their Jupyter token (tests only: it is derived from the username)."""
        return f"token-of-{self.username}"

    @property
    def rtc_username(self) -> str:
        """The user this server made for them (``<jupyter username>@<bridge account>``)."""
        return f"{self.username}@{BRIDGE_ACCOUNT}"

    def identity(self) -> dict[str, str]:
        return {
            "username": self.username,
            "name": self.display_name,
            "display_name": self.display_name,
            "initials": self.initials,
            "color": self.color,
        }


def notebook_json(*sources: str, outputs: Sequence[list] | None = None) -> dict:
    """An nbformat 4.5 notebook of code cells ``c1``, ``c2``... with a Python 3 kernelspec (so
    JupyterLab asks for no kernel)."""
    cells = [
        {
            "id": f"c{index}",
            "cell_type": "code",
            "source": source,
            "metadata": {},
            "outputs": list(outputs[index - 1]) if outputs else [],
            "execution_count": None,
        }
        for index, source in enumerate(sources, 1)
    ]
    metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    return {"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}


class StackError(AssertionError):
    """A process of the stack did not start, or a command of it failed."""


class LabStack:
    """This server, JupyterLab with the bridge, and the supernode, in a directory of their own."""

    def __init__(self, people: Sequence[Person], *, name: str = "lab"):
        self.people = list(people)
        self.work = Path(tempfile.mkdtemp(prefix=f"rtc-{name}-"))
        self.data_dir = self.work / "data"
        self.notebooks = self.work / "notebooks"
        self.data_dir.mkdir()
        self.notebooks.mkdir()
        self.database = f"sqlite:///{self.data_dir / 'db.sqlite3'}"
        self.rtc: ServerProcess | None = None
        self.lab: BridgedJupyter | None = None
        self.supernode: subprocess.Popen[bytes] | None = None
        self.supernode_log = self.work / "supernode.log"
        self._tokens: dict[str, str] = {}

    # --- Starting and stopping ------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """What this server's processes (daphne, manage.py, the supernode) run with."""
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(
            DATABASE_URL=self.database,
            DATA_DIR=str(self.data_dir),
            DJANGO_SETTINGS_MODULE="rtc_project.settings",
            PYTHONUNBUFFERED="1",
        )
        return env

    def manage(self, *args: str, timeout: float = 120.0) -> str:
        """``manage.py <args>`` on this stack's database; its stdout."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise StackError(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def start(self) -> LabStack:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        self.manage("migrate", "--noinput", "-v0")
        self.rtc = ServerProcess(
            database=self.database,
            env={"DATA_DIR": str(self.data_dir), "REDIS_URL": ""},
            name="rtc",
        ).start(timeout=WAIT)
        token = self.manage("create_bridge_token", BRIDGE_ACCOUNT).strip()
        people = {person.token: person.identity() for person in self.people}
        settings = self.work / "lab-settings"
        for plugin, values in LAB_SETTINGS.items():
            target = settings / f"{plugin.replace(':', '/')}.jupyterlab-settings"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(values))
        self.lab = BridgedJupyter(
            self.rtc.url,
            token,
            root_dir=self.notebooks,
            env={
                PEOPLE_ENVIRONMENT: json.dumps(people),
                "JUPYTERLAB_SETTINGS_DIR": str(settings),
                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            },
            # The language-server extension, as `jupyter lab` enables it from its installed
            # config (JupyterLab asks it for its status on every load).
            extensions={"jupyter_lsp": True},
            args=[
                "--ServerApp.identity_provider_class="
                "tests.support.lab_people.PeopleIdentityProvider",
                "--LabApp.news_url=None",  # no news fetched from the internet
            ],
        ).start(timeout=WAIT)
        command = [sys.executable, "manage.py", "run_supernode", "--refresh", "0.5"]
        command += ["--jupyter-url", self.lab.url]  # the token by environment, as scripts/run
        command += ["--server-url", self.rtc.ws_url]
        with self.supernode_log.open("ab") as log:
            self.supernode = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**self.environment(), "JUPYTER_TOKEN": self.lab.token},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.manage("wait_for_supernode", "--timeout", str(WAIT))

    def close(self) -> None:
        """Stop the supernode (it records that it stops, through daphne), then JupyterLab and
        daphne; remove the directory. Raises if daphne had died on its own."""
        try:
            if self.supernode is not None and self.supernode.poll() is None:
                self.supernode.terminate()
                try:
                    self.supernode.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.supernode.kill()
                    self.supernode.wait(timeout=10)
            if self.lab is not None:
                self.lab.close()
            if self.rtc is not None:
                self.rtc.close()
        finally:
            shutil.rmtree(self.work, ignore_errors=True)

    def logs(self) -> str:
        """Every process's output so far, for a failing test's report."""
        parts = []
        if self.rtc is not None:
            parts.append(f"===== daphne ({self.rtc.url}) =====\n{self.rtc.log}")
        if self.lab is not None:
            parts.append(f"===== JupyterLab ({self.lab.url}) =====\n{self.lab.log}")
        if self.supernode_log.exists():
            parts.append(f"===== supernode =====\n{self.supernode_log.read_text(errors='replace')}")
        return "\n".join(parts)

    def check_alive(self) -> None:
        """Raise, with the output, if a process of the stack died."""
        assert self.rtc is not None and self.lab is not None and self.supernode is not None
        self.rtc.check_alive()
        if not self.lab.alive:
            raise StackError(f"JupyterLab exited:\n{self.lab.log}")
        if self.supernode.poll() is not None:
            raise StackError(f"the supernode exited:\n{self.logs()}")

    # --- Files and roles ------------------------------------------------------------------

    def write_notebook(self, path: str, *sources: str) -> Path:
        target = self.notebooks / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(notebook_json(*sources), indent=1))
        return target

    def read_notebook(self, path: str) -> dict:
        """The ``.ipynb`` as it is on disk now."""
        return json.loads((self.notebooks / path).read_text())

    def saved_sources(self, path: str) -> list[str]:
        return sources_of(self.read_notebook(path))

    def saved_outputs(self, path: str, cell: int) -> str:
        return outputs_of(self.read_notebook(path), cell)

    def rtc_usernames(self) -> set[str]:
        """The users this server has now (read from its SQLite database)."""
        with contextlib.closing(sqlite3.connect(self.data_dir / "db.sqlite3", timeout=10)) as db:
            return {row[0] for row in db.execute("SELECT username FROM auth_user")}

    def rtc_display_names(self) -> dict[str, str]:
        """username -> first name (a Jupyter user's display name) of this server's users."""
        with contextlib.closing(sqlite3.connect(self.data_dir / "db.sqlite3", timeout=10)) as db:
            return dict(db.execute("SELECT username, first_name FROM auth_user"))

    def authors(self, path: str, origin: str = "client") -> set[str]:
        """Who wrote the transactions of the notebook at ``path`` from a client (JupyterLab),
        or with another ``origin``: the usernames this server attributed them to, from its
        history."""
        query = """
            SELECT DISTINCT u.username
            FROM tables_transaction t
            JOIN tables_datastore d ON t.datastore_id = d.id
            JOIN jupyter_sync_document doc ON d.name = 'doc-' || doc.record_id
            JOIN auth_user u ON t.author_id = u.id
            WHERE doc.path = ? AND t.origin = ?
        """
        with contextlib.closing(sqlite3.connect(self.data_dir / "db.sqlite3", timeout=10)) as db:
            return {row[0] for row in db.execute(query, (path, origin))}

    def history(self, path: str) -> list[tuple[int, str | None, str | None, str]]:
        """The notebook at ``path``'s transactions in this server's history, oldest first:
        ``(serial, author's username, author's display name, origin)``."""
        query = """
            SELECT t.serial, u.username, u.first_name, t.origin
            FROM tables_transaction t
            JOIN tables_datastore d ON t.datastore_id = d.id
            JOIN jupyter_sync_document doc ON d.name = 'doc-' || doc.record_id
            LEFT JOIN auth_user u ON t.author_id = u.id
            WHERE doc.path = ?
            ORDER BY t.serial
        """
        with contextlib.closing(sqlite3.connect(self.data_dir / "db.sqlite3", timeout=10)) as db:
            return list(db.execute(query, (path,)))

    def api_token(self, person: Person) -> str:
        """An API token of this server for the user the bridge made for ``person`` (made once,
        ``manage.py create_token``), for calling this server's own API as them."""
        if person.username not in self._tokens:
            self._tokens[person.username] = self.manage("create_token", person.rtc_username).strip()
        return self._tokens[person.username]

    def grant(self, person: Person, role: str) -> None:
        """``manage.py grant jupyter <person> <role>``: their role on every notebook."""
        self.manage("grant", "jupyter", person.rtc_username, role)

    def lab_url(self, person: Person, path: str = "") -> str:
        """JupyterLab logged in as ``person``, showing ``path`` only (``reset``: the workspace,
        which Jupyter keeps per server, not per person, restores no earlier test's tabs)."""
        assert self.lab is not None
        where = f"/tree/{quote(path)}" if path else ""
        return f"{self.lab.url}/lab{where}?reset&token={person.token}"


def _joined(source: str | list[str]) -> str:
    return source if isinstance(source, str) else "".join(source)


def sources_of(notebook: dict) -> list[str]:
    """Each cell's source."""
    return [_joined(cell["source"]) for cell in notebook["cells"]]


def outputs_of(notebook: dict, cell: int) -> str:
    """The text of cell ``cell``'s outputs (streams, ``text/plain`` of results, errors)."""
    return outputs_text(notebook["cells"][cell].get("outputs", []))


def outputs_text(outputs: list[dict]) -> str:
    parts = []
    for output in outputs:
        if output.get("output_type") == "stream":
            parts.append(_joined(output.get("text", "")))
        elif "data" in output:
            parts.append(_joined(output["data"].get("text/plain", "")))
        elif output.get("output_type") == "error":
            parts.append(f"{output.get('ename')}: {output.get('evalue')}")
    return "".join(parts)


def _if(predicate: Callable[[str], bool], text: str) -> tuple[str] | None:
    """``(text,)`` when ``text`` satisfies ``predicate`` (truthy even when empty), else None."""
    return (text,) if predicate(text) else None


# --- A window ----------------------------------------------------------------------------

NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook shown
CELLS = f"{NOTEBOOK} .jp-Notebook .jp-Cell"

READ_CELLS = """
const cells = [...document.querySelectorAll(arguments[0])];
return cells.map((cell) => {
  const lines = [...cell.querySelectorAll(".jp-InputArea-editor .cm-content > .cm-line")];
  const outputs = [...cell.querySelectorAll(".jp-OutputArea-output")];
  return {
    source: lines.map((line) => line.textContent).join("\\n"),
    output: outputs.map((output) => output.innerText).join(""),
    prompt: (cell.querySelector(".jp-InputPrompt") || {}).innerText || "",
  };
});
"""

REMOTE_CURSORS = """
const cell = document.querySelectorAll(arguments[0])[arguments[1]];
return [...cell.querySelectorAll(".jp-remote-cursor")].map(
  (cursor) => getComputedStyle(cursor).borderLeftColor);
"""

# A request from the page, as JupyterLab's ServerConnection makes one: the Jupyter server's base
# URL, the login cookie, and the page's own _xsrf cookie echoed in X-XSRFToken.
PAGE_FETCH = """
const [method, path, body, done] = arguments;
const config = JSON.parse(document.getElementById("jupyter-config-data").textContent);
const xsrf = (document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1];
const headers = {"Content-Type": "application/json"};
if (xsrf) headers["X-XSRFToken"] = decodeURIComponent(xsrf);
fetch(config.baseUrl + path, {method, body, headers, credentials: "same-origin"})
  .then(async (answer) => done([answer.status, await answer.text()]))
  .catch((error) => done([0, String(error)]));
"""

TOASTS = """
const inView = (rect) => rect.left >= 0 && rect.top >= 0 && rect.right <= innerWidth
  && rect.bottom <= innerHeight;
return [...document.querySelectorAll(".jp-toastContainer .Toastify__toast")]
  .filter((toast) => !arguments[0] || inView(toast.getBoundingClientRect()))
  .map((toast) => toast.innerText);
"""

# A request of the server-side executor that failed, as Chromium logs it.
EXECUTE_FAILED = re.compile(r"/api/kernels/[^/ ]+/execute\S* - Failed to load resource: .*")


class ExecutionRefused(AssertionError):
    """JupyterLab's request to run a cell (``POST api/kernels/<id>/execute``) failed."""


class LabWindow:
    """One person's JupyterLab in one headless Chromium."""

    def __init__(self, stack: LabStack, person: Person, *, size: tuple[int, int] = WINDOW_SIZE):
        self.stack = stack
        self.person = person
        self.driver = open_chromium(size)
        self.console: list[dict] = []  # every entry read so far (reading drains the browser's)
        self.closed = False

    # --- Opening ------------------------------------------------------------------------

    def open_lab(self) -> LabWindow:
        """JupyterLab with no document, once its file browser is shown."""
        self.driver.get(self.stack.lab_url(self.person))
        self.wait_for(
            lambda: self.driver.find_elements(By.CSS_SELECTOR, ".jp-DirListing"),
            f"JupyterLab to load in {self.person.username}'s window",
            WAIT,
        )
        return self

    def open_notebook(self, path: str) -> LabWindow:
        """JupyterLab showing the notebook ``path``, once its cells are shown and its kernel
        is idle (JupyterLab starts one when it opens a notebook)."""
        self.driver.get(self.stack.lab_url(self.person, path))
        self.wait_for(
            lambda: self.driver.execute_script(
                "return document.querySelectorAll(arguments[0] + ' .cm-content').length",
                CELLS,
            ),
            f"{path} to open in {self.person.username}'s window",
            WAIT,
        )
        self.wait_for(
            lambda: self.kernel_status() == "idle",
            f"the kernel of {path} to be idle in {self.person.username}'s window",
            WAIT,
        )
        return self

    def fetch(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """A request from the page (``path`` relative to Jupyter's base URL), as JupyterLab
        makes them: status, and the body read as JSON (as text when it is not)."""
        sent = None if body is None else json.dumps(body)
        status, text = self.driver.execute_async_script(PAGE_FETCH, method, path, sent)
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def wait_for(self, condition: Callable[[], Any], what: str, timeout: float = STEP) -> Any:
        """``eventually(condition)``, explained by what the window shows."""

        def guarded() -> Any:
            try:
                return condition()
            except StaleElementReferenceException:  # the page redrew in between: ask again
                return None

        return eventually(guarded, timeout, what, explain=self.describe)

    def describe(self) -> str:
        try:
            return (
                f"{self.person.username}'s window shows {self.cells()}; "
                f"dialogs {self.dialogs()}; notifications {self.notifications()}; "
                f"console errors {self.severe()}"
            )
        except WebDriverException as error:
            return f"{self.person.username}'s window cannot be read: {error}"

    # --- Reading ------------------------------------------------------------------------

    def cells(self) -> list[dict[str, str]]:
        """What each cell of the notebook shown shows: ``source``, ``output``, ``prompt``."""
        return self.driver.execute_script(READ_CELLS, CELLS)

    def cell_text(self, index: int) -> str:
        return self.cells()[index]["source"]

    def cell_output(self, index: int) -> str:
        return self.cells()[index]["output"]

    def wait_cell_text(self, index: int, predicate: Callable[[str], bool], what: str) -> str:
        """Cell ``index``'s text, once ``predicate`` holds for it."""
        return self.wait_for(lambda: _if(predicate, self.cell_text(index)), what)[0]

    def wait_output(
        self, index: int, predicate: Callable[[str], bool], what: str, timeout: float = STEP
    ) -> str:
        """Cell ``index``'s output text, once ``predicate`` holds for it. Raises
        ``ExecutionRefused`` as soon as the console shows that running a cell failed."""

        def shown() -> tuple[str] | None:
            refused = [m for m in self.severe() if EXECUTE_FAILED.search(m)]
            if refused:
                raise ExecutionRefused(f"JupyterLab could not run the cell: {refused[0]}")
            return _if(predicate, self.cell_output(index))

        return self.wait_for(shown, what, timeout)[0]

    def kernel_status(self) -> str | None:
        """The notebook toolbar's kernel status (``idle``, ``busy``...)."""
        found = self.driver.find_elements(
            By.CSS_SELECTOR, f"{NOTEBOOK} .jp-Notebook-ExecutionIndicator"
        )
        return found[0].get_attribute("data-status") if found else None

    def status_bar(self) -> str:
        return self.driver.find_element(By.ID, "jp-main-statusbar").text

    def dialogs(self) -> list[str]:
        """The text of every open dialog (title, body, buttons)."""
        return [
            element.text for element in self.driver.find_elements(By.CSS_SELECTOR, ".jp-Dialog")
        ]

    def notifications(self, *, in_full: bool = True) -> list[str]:
        """The text of the notifications shown as toasts (JupyterLab's Notification API),
        newest last: only those wholly in the window (not sliding in or out) unless
        ``in_full=False``."""
        return self.driver.execute_script(TOASTS, in_full)

    def collaborators(self) -> list[str]:
        """The names the collaborators panel (left side bar, "Online collaborators") lists:
        the other people in this JupyterLab. Opens the panel if it is not shown."""
        panel = self.driver.find_elements(By.CSS_SELECTOR, ".jp-CollaboratorsPanel")
        if not panel or not panel[0].is_displayed():
            self.driver.find_element(
                By.CSS_SELECTOR, ".jp-SideBar li[data-id='jp-collaboration-panel']"
            ).click()
        headers = self.driver.find_elements(
            By.CSS_SELECTOR, ".jp-CollaboratorsList .jp-CollaboratorHeader"
        )
        # Each header is the person's initials (their icon) and their name, one a line.
        return [header.text.strip().splitlines()[-1] for header in headers if header.text.strip()]

    def remote_cursors(self, index: int) -> list[str]:
        """The colours (``rgb(...)``) of the other people's cursors shown in cell ``index``."""
        return self.driver.execute_script(REMOTE_CURSORS, CELLS, index)

    # --- Doing --------------------------------------------------------------------------

    def editor(self, index: int) -> Any:
        return self.driver.find_elements(By.CSS_SELECTOR, f"{CELLS} .cm-content")[index]

    def type_in_cell(self, index: int, text: str, *, at: str = "end") -> None:
        """Click into cell ``index``'s editor, go to its start or end, and type ``text``."""
        editor = self.editor(index)
        editor.click()
        editor.send_keys(Keys.CONTROL, Keys.HOME if at == "start" else Keys.END)
        editor.send_keys(text)

    def run_cell(self, index: int) -> None:
        """Run cell ``index`` as a person does: in its editor, Ctrl+Enter."""
        editor = self.editor(index)
        editor.click()
        editor.send_keys(Keys.CONTROL, Keys.ENTER)

    def undo_in_cell(self, index: int, *, redo: bool = False) -> None:
        """Ctrl+Z (redo: Ctrl+Shift+Z) in cell ``index``'s editor: the browser's Yjs undo."""
        keys = (Keys.CONTROL, Keys.SHIFT, "z") if redo else (Keys.CONTROL, "z")
        self.editor(index).send_keys(*keys)

    def save(self) -> None:
        """Ctrl+S, in the notebook's first cell."""
        self.editor(0).send_keys(Keys.CONTROL, "s")

    # --- The document timeline (jupyter-docprovider's status-bar slider) -----------------

    def open_timeline(self) -> Any:
        """Click the status bar's "Document Timeline" icon; the slider, once it is shown."""
        icon = self.wait_for(
            lambda: self.driver.find_elements(
                By.CSS_SELECTOR, "#jp-slider-status-bar [title='Document Timeline']"
            ),
            "the timeline icon in the status bar",
        )[0]
        icon.click()
        return self.wait_for(
            lambda: self.driver.find_elements(By.CSS_SELECTOR, ".jp-timestampDisplay .jp-Slider"),
            "the timeline slider",
        )[0]

    def move_timeline(self, slider: Any, position: int) -> None:
        """Move the slider to ``position`` with the keyboard, one point a key press, as a
        person holding an arrow key does; each press asks the server for one step."""
        current = int(slider.get_attribute("value"))
        key = Keys.ARROW_LEFT if position < current else Keys.ARROW_RIGHT
        for _ in range(abs(current - position)):
            slider.send_keys(key)
        self.wait_for(
            lambda: int(slider.get_attribute("value")) == position,
            f"the slider at point {position}",
        )

    def restore_version(self) -> str:
        """Click "Restore version <time>"; the button's text."""
        button = self.wait_for(
            lambda: self.driver.find_elements(By.CSS_SELECTOR, ".jp-restoreBtn"),
            "the restore button",
        )[0]
        label = button.text
        button.click()
        return label

    def click_dialog_button(self, label: str) -> None:
        buttons = self.driver.find_elements(By.CSS_SELECTOR, ".jp-Dialog button")
        matching = [button for button in buttons if button.text.strip() == label]
        assert matching, f"no {label!r} button in {[b.text for b in buttons]}"
        matching[0].click()

    def screenshot(self, name: str) -> Path:
        """``test-artifacts/<name>.png``."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    # --- The console --------------------------------------------------------------------

    def read_console(self) -> list[dict]:
        """Every console entry so far (kept here: the browser gives each out once)."""
        if not self.closed:
            self.console.extend(self.driver.get_log("browser"))
        return self.console

    def severe(self, ignore: Callable[[dict], bool] = lambda entry: False) -> list[str]:
        """The console's SEVERE entries (errors, failed requests), but those ``ignore``d."""
        return [
            entry["message"]
            for entry in self.read_console()
            if entry["level"] == "SEVERE" and not ignore(entry)
        ]

    def close(self) -> None:
        """Close the browser (what it logged is kept in ``console``)."""
        if self.closed:
            return
        try:
            self.read_console()
        finally:
            self.closed = True
            self.driver.quit()


SIDE_BY_SIDE = """
<!doctype html><html><body style="margin:0;background:#444">
<div id="both" style="display:inline-flex;gap:8px;padding:8px;background:#444">{images}</div>
</body></html>
"""


def side_by_side(images: Sequence[Path], target: Path) -> Path:
    """One PNG of ``images`` next to each other, drawn by a headless Chromium (no image
    library needed)."""
    work = Path(tempfile.mkdtemp(prefix="rtc-images-"))
    try:
        tags = "".join(f'<img src="{Path(image).resolve().as_uri()}">' for image in images)
        page = work / "both.html"
        page.write_text(SIDE_BY_SIDE.format(images=tags))
        driver = open_chromium((4000, 2000))
        try:
            driver.get(page.as_uri())
            both = driver.find_element(By.ID, "both")
            eventually(
                lambda: driver.execute_script(
                    "return [...document.images].every((image) => image.complete)"
                ),
                STEP,
                "the screenshots to load",
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            both.screenshot(str(target))
        finally:
            driver.quit()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
