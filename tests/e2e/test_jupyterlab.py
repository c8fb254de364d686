"""What people see in JupyterLab: stock JupyterLab 4 with its collaboration front end and the
bridge, this server (daphne) and the supernode, as ``scripts/run`` starts them
(``tests.support.jupyterlab.LabStack``, one for the module), each person in a headless Chromium
of their own (``LabWindow``), logged in to Jupyter with a token of their own.

Ada and Grace are editors (the role every Jupyter user gets on first use); Vic is made a viewer
of the ``jupyter`` datastore, so of every notebook. Every test uses notebooks of its own and
leaves a screenshot of each window in ``test-artifacts/<test>-<person>.png``.

Skipped, with the reason, when Chromium, chromedriver or selenium is missing; under CI=true a
skip is a failure.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.browser import missing_browser
from tests.support.jupyterlab import (
    STEP,
    LabStack,
    LabWindow,
    Person,
    notebook_json,
    outputs_of,
    sources_of,
)
from tests.support.nodeclient import NodeYClient
from tests.support.waiting import eventually

pytest_plugins = ["tests.support.nodeclient"]

ADA = Person("ada", "Ada Lovelace", "AL", "#1f77b4")
GRACE = Person("grace", "Grace Hopper", "GH", "#d62728")
VIC = Person("vic", "Vic Viewer", "VV", "#2ca02c")
SAVED = 30.0  # the supernode saves 2 s after the last change, checking the file every 2 s


def rgb(color: str) -> str:
    """``#d62728`` as a browser's computed style gives it: ``rgb(214, 39, 40)``."""
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


@pytest.fixture(scope="module")
def stack() -> Iterator[LabStack]:
    reason = missing_browser()
    if reason:
        pytest.skip(reason)
    lab = LabStack([ADA, GRACE, VIC], name="e2e-lab").start()
    try:
        yield lab
    finally:
        lab.close()


class Windows:
    """The test's browser windows; a screenshot of each, named after the test."""

    def __init__(self, stack: LabStack, test_name: str):
        self.stack = stack
        self.test_name = re.sub(r"[^\w.-]+", "-", test_name)
        self.opened: list[LabWindow] = []

    def open(self, person: Person, notebook: str | None = None) -> LabWindow:
        window = LabWindow(self.stack, person)
        self.opened.append(window)
        return window.open_notebook(notebook) if notebook else window.open_lab()

    def screenshot(self, window: LabWindow, suffix: str = "") -> None:
        window.screenshot(f"{self.test_name}-{window.person.username}{suffix}")

    def close(self) -> None:
        for window in self.opened:
            try:
                if not window.closed:
                    self.screenshot(window)
            finally:
                window.close()
            for entry in window.console:  # shown by pytest only when the test failed
                print(f"[{window.person.username}] {entry['level']} {entry['message']}")


@pytest.fixture
def windows(stack: LabStack, request: pytest.FixtureRequest) -> Iterator[Windows]:
    opened = Windows(stack, request.node.name)
    try:
        yield opened
    finally:
        opened.close()
        print(stack.logs()[-20000:])
    stack.check_alive()


def wait_saved(stack: LabStack, path: str, check: Callable[[dict], bool], what: str) -> dict:
    """The notebook on disk, once ``check`` holds for it. (Jupyter writes a file in place:
    a read may see it half written, and is then tried again.)"""

    def saved() -> dict | None:
        try:
            notebook = stack.read_notebook(path)
        except ValueError:
            return None
        return notebook if check(notebook) else None

    return eventually(
        saved, SAVED, what, explain=lambda: f"on disk: {(stack.notebooks / path).read_text()}"
    )


# --- Two people, one notebook -----------------------------------------------------------------


def test_what_one_types_appears_in_the_others_window_and_both_edits_in_one_cell_survive(
    stack, windows
):
    stack.write_notebook("together.ipynb", "total = 1", "words = []")
    ada = windows.open(ADA, "together.ipynb")
    grace = windows.open(GRACE, "together.ipynb")

    ada.type_in_cell(0, "\ntotal += 2")
    seen = grace.wait_cell_text(0, lambda text: "total += 2" in text, "Ada's line in Grace's")
    assert seen == "total = 1\ntotal += 2"

    # Both type into the same cell without waiting for each other, at either end.
    grace.type_in_cell(1, "grace = 1\n", at="start")
    ada.type_in_cell(1, "\nwords.append('ada')")
    merged = "grace = 1\nwords = []\nwords.append('ada')"
    for window in (ada, grace):
        window.wait_cell_text(1, lambda text: text == merged, "both edits in both windows")
    assert ada.cells()[0]["source"] == grace.cells()[0]["source"] == "total = 1\ntotal += 2"

    wait_saved(
        stack,
        "together.ipynb",
        lambda notebook: sources_of(notebook) == ["total = 1\ntotal += 2", merged],
        "both people's edits saved to the .ipynb",
    )
    # This server's history names each person as the author of their own edits (and the
    # supernode as the author of what it loaded from the file).
    authors = stack.authors("together.ipynb")
    assert authors == {ADA.rtc_username, GRACE.rtc_username, "supernode"}


def test_each_person_sees_the_other_by_their_jupyter_name_and_cursor(stack, windows):
    stack.write_notebook("names.ipynb", "a = 1", "b = 2")
    ada = windows.open(ADA, "names.ipynb")
    grace = windows.open(GRACE, "names.ipynb")
    grace.type_in_cell(1, "")  # Grace's cursor goes to the end of the second cell

    ada.wait_for(lambda: ada.collaborators() == ["Grace Hopper"], "Grace in Ada's panel")
    ada.wait_for(
        lambda: rgb(GRACE.color) in ada.remote_cursors(1), "Grace's cursor in Ada's cell 2"
    )
    assert ada.remote_cursors(0) == []  # only where Grace is
    grace.wait_for(lambda: grace.collaborators() == ["Ada Lovelace"], "Ada in Grace's panel")
    # Each is a user of this server of their own, under their Jupyter display name.
    names = stack.rtc_display_names()
    assert names[ADA.rtc_username] == "Ada Lovelace"
    assert names[GRACE.rtc_username] == "Grace Hopper"


# --- Running cells on the server --------------------------------------------------------------


def test_a_cells_output_is_shown_and_saved_after_the_browser_closes(stack, windows):
    stack.write_notebook("run.ipynb", "print(6 * 7)")
    ada = windows.open(ADA, "run.ipynb")
    grace = windows.open(GRACE, "run.ipynb")
    ada.run_cell(0)
    assert ada.wait_output(0, lambda text: "42" in text, "the output in Ada's window") == "42\n"
    assert grace.wait_output(0, lambda text: "42" in text, "Ada's output in Grace's") == "42\n"
    windows.screenshot(ada)
    windows.screenshot(grace)
    ada.close()
    grace.close()

    saved = wait_saved(
        stack,
        "run.ipynb",
        lambda notebook: "42" in outputs_of(notebook, 0),
        "the output in the .ipynb",
    )
    assert saved["cells"][0]["execution_count"] == 1


def test_a_long_cell_keeps_running_and_saves_all_its_output_after_the_browser_closes(
    stack, windows
):
    lines = [f"line {i}" for i in range(5)]
    stack.write_notebook(
        "long.ipynb",
        "import time\nfor i in range(5):\n    print(f'line {i}', flush=True)\n    time.sleep(1)",
    )
    ada = windows.open(ADA, "long.ipynb")
    ada.run_cell(0)
    shown = ada.wait_output(0, lambda text: "line 0" in text, "the first line")
    windows.screenshot(ada)
    ada.close()
    assert "line 4" not in shown  # the browser closed while the cell was running

    saved = wait_saved(
        stack,
        "long.ipynb",
        lambda notebook: "line 4" in outputs_of(notebook, 0),
        "the last line in the .ipynb",
    )
    assert outputs_of(saved, 0).splitlines() == lines

    # Opened again, the notebook shows what was printed while no window was open.
    grace = windows.open(GRACE, "long.ipynb")
    reopened = grace.wait_output(0, lambda text: "line 4" in text, "every line when reopened")
    assert reopened.splitlines() == lines


# --- Changes from elsewhere, and an outage --------------------------------------------------


def test_a_change_through_jupyters_contents_api_reaches_both_windows(stack, windows):
    stack.write_notebook("outside.ipynb", "from_disk = 0")
    ada = windows.open(ADA, "outside.ipynb")
    grace = windows.open(GRACE, "outside.ipynb")
    model = {"type": "notebook", "format": "json", "content": notebook_json("from_api = 1")}
    answer = httpx.put(
        f"{stack.lab.url}/api/contents/outside.ipynb",
        json=model,
        headers={"Authorization": f"token {ADA.token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    for window in (ada, grace):
        window.wait_cell_text(0, lambda text: text == "from_api = 1", "the file's new source")
    assert stack.saved_sources("outside.ipynb") == ["from_api = 1"]


DOWN = "Collaboration server unreachable: your edits are kept in this window"
BACK = "Collaboration server reachable again"


def told(window: LabWindow, message: str) -> list[str]:
    """The notifications ``window`` shows that say ``message``."""
    return [text for text in window.notifications() if message in text]


def test_while_this_server_is_down_jupyterlab_says_so_and_what_is_typed_is_kept(stack, windows):
    stack.write_notebook("outage.ipynb", "before = 1")
    ada = windows.open(ADA, "outage.ipynb")
    grace = windows.open(GRACE, "outage.ipynb")
    ada.type_in_cell(0, "\nconnected = 2")
    grace.wait_cell_text(0, lambda text: "connected = 2" in text, "Ada's line in Grace's")

    assert not told(ada, DOWN) and not told(grace, DOWN)

    stack.rtc.kill()  # a crash: nothing is flushed on the way out
    ada.type_in_cell(0, "\nwhile_down = 3")
    # Both are told, as their rooms fail to reconnect, and the notice stays while it is down.
    for window in (ada, grace):
        window.wait_for(lambda w=window: told(w, DOWN), "the outage notice", STEP)
    windows.screenshot(ada, "-while-down")
    windows.screenshot(grace, "-while-down")
    assert "while_down = 3" in ada.cell_text(0)  # the window keeps it meanwhile
    assert told(ada, DOWN)[0].count("Collaboration server") == 1  # one notice, not one a retry

    stack.rtc.restart(timeout=60)
    expected = "before = 1\nconnected = 2\nwhile_down = 3"
    grace.wait_cell_text(0, lambda text: text == expected, "the line typed while down, in Grace's")
    ada.wait_cell_text(0, lambda text: text == expected, "and still in Ada's")
    for window in (ada, grace):  # the notice replaced by a short one, that closes on its own
        window.wait_for(lambda w=window: told(w, BACK) and not told(w, DOWN), "the back notice")
    windows.screenshot(ada, "-back")
    for window in (ada, grace):
        window.wait_for(
            lambda w=window: not w.notifications(in_full=False), "the back notice to close"
        )
    assert ada.cell_text(0) == expected
    assert ada.dialogs() == grace.dialogs() == []  # no "Session expired": both still edit
    wait_saved(
        stack,
        "outage.ipynb",
        lambda notebook: sources_of(notebook) == [expected],
        "the line typed while down, on disk",
    )


# --- A viewer ---------------------------------------------------------------------------------


def test_a_viewer_reads_and_their_edit_is_refused_with_jupyterlabs_reload_dialog(stack, windows):
    stack.write_notebook("viewer.ipynb", "shared = 'by ada'")
    # Vic becomes known to this server when their JupyterLab first calls it; then an admin
    # makes them a viewer of every notebook.
    vic = windows.open(VIC)
    eventually(lambda: VIC.rtc_username in stack.rtc_usernames(), 30, "Vic known to the server")
    stack.grant(VIC, "viewer")

    ada = windows.open(ADA, "viewer.ipynb")
    vic.open_notebook("viewer.ipynb")
    assert vic.cell_text(0) == "shared = 'by ada'"  # a viewer reads

    vic.type_in_cell(0, "  # vic")
    dialog = vic.wait_for(
        lambda: [text for text in vic.dialogs() if "Session expired" in text],
        "the refusal in Vic's window",
    )[0]
    assert "You may not edit this document; your change was not saved" in dialog
    assert "Reload" in dialog
    windows.screenshot(vic, "-refused")

    # Ada edits after the refusal: once her edit is on disk, Vic's would be too, had it passed.
    ada.type_in_cell(0, "\nshared += '!'")
    expected = "shared = 'by ada'\nshared += '!'"
    wait_saved(
        stack,
        "viewer.ipynb",
        lambda notebook: sources_of(notebook) == [expected],
        "Ada's edit, and only hers, on disk",
    )
    assert ada.cell_text(0) == expected

    vic.click_dialog_button("Reload")
    vic.wait_for(lambda: vic.cells() and vic.cell_text(0) == expected, "Vic's reloaded window")
    assert not vic.dialogs()


# --- Saving -----------------------------------------------------------------------------------


class FileChangedDialog(AssertionError):
    """JupyterLab showed "File Changed" on Ctrl+S."""


def test_ctrl_s_saves_without_the_file_changed_dialog(stack, windows):
    stack.write_notebook("save.ipynb", "value = 1")
    ada = windows.open(ADA, "save.ipynb")
    ada.type_in_cell(0, "\nvalue += 1")
    wait_saved(
        stack,
        "save.ipynb",
        lambda notebook: "value += 1" in sources_of(notebook)[0],
        "the automatic save",
    )

    ada.type_in_cell(0, "\nvalue += 2")
    ada.save()
    ada.wait_for(
        lambda: ada.dialogs() or "Saving completed" in ada.status_bar(),
        "the save to complete, or a dialog",
    )
    if any("File Changed" in text for text in ada.dialogs()):
        windows.screenshot(ada, "-file-changed")
        warnings = [e["message"] for e in ada.read_console() if e["level"] == "WARNING"]
        raise FileChangedDialog(f"File Changed on Ctrl+S; console warnings: {warnings}")
    assert not ada.dialogs()
    wait_saved(
        stack,
        "save.ipynb",
        lambda notebook: sources_of(notebook) == ["value = 1\nvalue += 1\nvalue += 2"],
        "the saved notebook",
    )


# --- Forks ------------------------------------------------------------------------------------


# Run alone, the module's stack (this server, JupyterLab, the supernode) starts within it too.
@pytest.mark.timeout(300)
def test_a_fork_made_from_the_page_is_edited_apart_and_its_merge_appears_in_both_windows(
    stack, windows, node_client
):
    stack.write_notebook("forked.ipynb", "base = 1")
    ada = windows.open(ADA, "forked.ipynb")
    grace = windows.open(GRACE, "forked.ipynb")
    status, session = ada.fetch(
        "PUT", "api/collaboration/session/forked.ipynb", {"format": "json", "type": "notebook"}
    )
    assert status == 200, session
    room = f"json:notebook:{session['fileId']}"

    # Ada forks the notebook from her page, as JupyterLab's fork manager asks.
    status, made = ada.fetch(
        "PUT", f"api/collaboration/fork/{room}", {"title": "idea", "synchronize": False}
    )
    assert status == 201, made
    fork_id = made["fork_roomid"]
    status, listed = grace.fetch("GET", f"api/collaboration/fork/{room}")
    assert (status, list(listed)) == (200, [fork_id]), listed

    # The fork is edited in its room through the bridge, as Ada, by a y-websocket client;
    # Grace meanwhile types in the notebook itself.
    on_fork: NodeYClient = node_client(timeout=60)
    on_fork.connect(
        f"{stack.lab.ws_url}/api/collaboration/room",
        fork_id,
        ADA.token,
        {"sessionId": made["sessionId"]},
    )
    on_fork.wait_synced()
    on_fork.insert_text(["cells", 0, "source"], 0, "# idea\n", root_type="array")
    on_fork.wait_for(
        lambda doc: doc["cells"][0]["source"] == "# idea\nbase = 1", {"cells": "array"}
    )
    grace.type_in_cell(0, "\nroot = 2")
    ada.wait_cell_text(0, lambda text: text == "base = 1\nroot = 2", "Grace's line in Ada's")
    assert "# idea" not in ada.cell_text(0)  # the fork's edit stays in the fork

    # Grace merges it from her page: both windows show both edits.
    status, merged = grace.fetch("DELETE", f"api/collaboration/fork/{fork_id}?merge=true")
    assert status == 200, merged
    assert merged["merged"] is True and merged["serial"] is not None
    expected = "# idea\nbase = 1\nroot = 2"
    for window in (ada, grace):
        window.wait_cell_text(0, lambda text: text == expected, "the merge in both windows")
    windows.screenshot(ada, "-merged")
    windows.screenshot(grace, "-merged")
    assert stack.authors("forked.ipynb", "merge") == {GRACE.rtc_username}
    status, listed = ada.fetch("GET", f"api/collaboration/fork/{room}")
    assert (status, listed) == (200, {})
    wait_saved(
        stack,
        "forked.ipynb",
        lambda notebook: sources_of(notebook) == [expected],
        "the merged notebook saved",
    )


# --- The console ------------------------------------------------------------------------------


def noise(entry: dict) -> bool:
    """Console entries that say nothing about this product: only a missing favicon (Chromium
    asks for /favicon.ico whatever the page declares)."""
    return "favicon" in entry["message"] and "Failed to load resource" in entry["message"]


def test_an_editing_and_running_session_logs_no_errors_in_the_browser_console(stack, windows):
    stack.write_notebook("console.ipynb", "n = 10", "print(sum(range(n)))")
    ada = windows.open(ADA, "console.ipynb")
    grace = windows.open(GRACE, "console.ipynb")

    ada.type_in_cell(0, "\nn += 1")
    grace.wait_cell_text(0, lambda text: text == "n = 10\nn += 1", "Ada's edit for Grace")
    grace.run_cell(0)
    grace.run_cell(1)
    for window in (grace, ada):
        window.wait_output(1, lambda text: text == "55\n", "the output in both windows")
    wait_saved(
        stack,
        "console.ipynb",
        lambda notebook: "55" in outputs_of(notebook, 1),
        "the run saved",
    )

    errors = {window.person.username: window.severe(ignore=noise) for window in (ada, grace)}
    assert errors == {"ada": [], "grace": []}, "\n".join(
        f"{who}: {message}" for who, messages in errors.items() for message in messages
    )


# --- History: the document timeline and who ran what ------------------------------------------


@pytest.mark.timeout(300)  # the module's stack may start within it
def test_ctrl_z_in_a_cell_takes_back_ones_own_typing_and_keeps_the_others(stack, windows):
    stack.write_notebook("ctrl-z.ipynb", "base = 0")
    ada = windows.open(ADA, "ctrl-z.ipynb")
    grace = windows.open(GRACE, "ctrl-z.ipynb")
    ada.type_in_cell(0, "\nada = 1")
    grace.wait_cell_text(0, lambda text: text == "base = 0\nada = 1", "Ada's line for Grace")
    grace.type_in_cell(0, "grace = 2\n", at="start")
    both = "grace = 2\nbase = 0\nada = 1"
    ada.wait_cell_text(0, lambda text: text == both, "Grace's line for Ada")
    before = stack.history("ctrl-z.ipynb")[-1][0]

    # Ada's Ctrl+Z is JupyterLab's (Yjs') undo of her own typing: Grace's line stays.
    ada.undo_in_cell(0)
    for window in (ada, grace):
        window.wait_cell_text(0, lambda text: text == "grace = 2\nbase = 0", "Ada's undo")
    windows.screenshot(grace, "-after-ctrl-z")
    wait_saved(
        stack, "ctrl-z.ipynb", lambda nb: sources_of(nb) == ["grace = 2\nbase = 0"], "the undo"
    )
    # It reaches this server as Ada's edit, like any other.
    after = [row for row in stack.history("ctrl-z.ipynb") if row[0] > before]
    assert (ADA.rtc_username, "client") in {(who, origin) for _, who, _, origin in after}

    ada.undo_in_cell(0, redo=True)
    for window in (ada, grace):
        window.wait_cell_text(0, lambda text: text == both, "Ada's redo")


@pytest.mark.timeout(300)
def test_the_timeline_shows_an_older_version_and_its_restore_reaches_both_windows(stack, windows):
    stack.write_notebook("history.ipynb", "step = 1")
    ada = windows.open(ADA, "history.ipynb")
    grace = windows.open(GRACE, "history.ipynb")
    ada.type_in_cell(0, "\nstep = 2")
    grace.wait_cell_text(0, lambda text: text == "step = 1\nstep = 2", "Ada's line for Grace")
    grace.type_in_cell(0, "\nstep = 3")
    latest = "step = 1\nstep = 2\nstep = 3"
    ada.wait_cell_text(0, lambda text: text == latest, "Grace's line for Ada")
    wait_saved(stack, "history.ipynb", lambda nb: sources_of(nb) == [latest], "both lines stored")

    # The point to go back to: Ada's last keystroke, Grace's typing after it. (Each window
    # also wrote the kernel's metadata when it opened the notebook, before anyone typed.)
    rows = stack.history("history.ipynb")
    target = max(serial for serial, who, _, _ in rows if who == ADA.rtc_username)
    assert any(serial > target for serial, who, _, _ in rows if who == GRACE.rtc_username)

    # (1) Ada opens the timeline (the status bar's history icon) and moves the slider back:
    # her window shows the notebook as it was then; Grace's still shows the live one.
    slider = ada.open_timeline()
    newest = int(slider.get_attribute("max"))
    assert int(slider.get_attribute("value")) == newest >= target - 1
    windows.screenshot(ada, "-1-timeline-open")
    ada.move_timeline(slider, target - 1)  # points are serials 1, 2, ... (nothing pruned)
    older = "step = 1\nstep = 2"
    ada.wait_cell_text(0, lambda text: text == older, "the older version in Ada's window")
    assert grace.cell_text(0) == latest
    windows.screenshot(ada, "-2-older-version")

    # (2) Restore: both windows follow, and the history has one restore by Ada.
    label = ada.restore_version()
    assert label.startswith("Restore version")
    for window in (ada, grace):
        window.wait_cell_text(0, lambda text: text == older, "the restored version")
    restores = [row for row in stack.history("history.ipynb") if row[3] == "restore"]
    assert restores == [(restores[0][0], ADA.rtc_username, ADA.display_name, "restore")]
    assert restores[0][0] > rows[-1][0]
    wait_saved(stack, "history.ipynb", lambda nb: sources_of(nb) == [older], "the restore saved")
    windows.screenshot(ada, "-3-restored")
    windows.screenshot(grace, "-3-restored")

    # Ada edits on after the restore: her window is on the live document again.
    ada.type_in_cell(0, "\nafter = 4")
    grace.wait_cell_text(0, lambda text: text == older + "\nafter = 4", "Ada's edit after it")


@pytest.mark.timeout(300)
def test_who_ran_a_cell_is_listed_by_the_provenance_query(stack, windows):
    stack.write_notebook("provenance.ipynb", "print('ran')")
    ada = windows.open(ADA, "provenance.ipynb")
    grace = windows.open(GRACE, "provenance.ipynb")
    ada.run_cell(0)
    ada.wait_output(0, lambda text: text == "ran\n", "Ada's run")
    prompt = ada.cells()[0]["prompt"]
    grace.run_cell(0)
    grace.wait_for(lambda: grace.cells()[0]["prompt"] not in ("", prompt, "[*]:"), "Grace's run")
    grace.wait_output(0, lambda text: text == "ran\n", "Grace's run's output")
    windows.screenshot(grace, "-ran-twice")

    headers = {"Authorization": f"Token {stack.api_token(ADA)}"}
    documents = httpx.get(
        f"{stack.rtc.url}/api/documents",
        params={"path": "provenance.ipynb"},
        headers=headers,
        timeout=30,
    )
    assert documents.status_code == 200, documents.text
    file_id = documents.json()["results"][0]["id"]
    answer = httpx.get(
        f"{stack.rtc.url}/api/executions",
        params={"document_id": f"json:notebook:{file_id}", "cell_id": "c1"},
        headers=headers,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    runs = answer.json()  # newest request first
    assert [run["requested_by"] for run in runs] == [GRACE.rtc_username, ADA.rtc_username]
    # The hash a client computes from the text it sees: sha256 of the source's UTF-8.
    assert {run["source_hash"] for run in runs} == {hashlib.sha256(b"print('ran')").hexdigest()}
    assert {run["status"] for run in runs} == {"completed"}
    kernels = {run["kernel_id"] for run in runs}
    assert len(kernels) == 1 and None not in kernels
    assert [run["shows_outputs"] for run in runs] == [True, False]
