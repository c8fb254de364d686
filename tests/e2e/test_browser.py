"""The browser client (relay/static/relay/rtc-client.js) and the todo page, in headless Chromium.

Real daphne processes (tests/support/liveserver.py) serve the page and the WebSocket; selenium
drives the system Chromium through /usr/bin/chromedriver (Debian: ``apt-get install chromium
chromium-driver``). The browser tests are skipped, with the reason, when Chromium, chromedriver,
selenium or the built Yjs bundle (``scripts/build-frontend``) is missing; under CI=true a skip
is a failure.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from tables import records, service
from tables.models import Datastore, Transaction
from tables.permissions import grant
from tables.pruning import prune_history
from tests.support import ROOT
from tests.support.browser import missing_browser, open_chromium
from tests.support.waiting import eventually

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
except ImportError:  # reported as the skip reason
    pass

pytest_plugins = ["tests.support.liveserver"]
pytestmark = pytest.mark.django_db(transaction=True)

BUNDLE = ROOT / "relay" / "static" / "relay" / "vendor" / "yjs.mjs"
TIMEOUT = 20.0

PAGE_STATE = """
const $ = (id) => document.getElementById(id);
return {
  status: $("status").dataset.status,
  serial: Number($("serial").textContent),
  pending: Number($("pending").textContent),
  errors: [...$("errors").children].map((p) => p.textContent),
  items: [...document.querySelectorAll("#items li")].map((li) => ({
    id: li.dataset.id,
    title: li.querySelector(".title").value,
    done: li.querySelector(".done").checked,
  })),
};
"""


def missing_requirement() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if reason := missing_browser():
        return reason
    if not BUNDLE.exists():
        return f"{BUNDLE.relative_to(ROOT)} is not built (run scripts/build-frontend)"
    return None


@pytest.fixture
def open_browser() -> Iterator[Callable[[], Any]]:
    """A factory of headless Chromium sessions; each quits at teardown (its console printed)."""
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    drivers = []

    def open_() -> Any:
        driver = open_chromium()
        drivers.append(driver)
        return driver

    yield open_
    for number, driver in enumerate(drivers, 1):
        try:  # shown by pytest only when the test failed
            for entry in driver.get_log("browser"):
                print(f"[browser {number}] {entry['level']} {entry['message']}")
        finally:
            driver.quit()


def session_cookie(user: User) -> str:
    """A logged-in session of ``user``, stored in the test database the servers read."""
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


class TodoPage:
    """The todo page of one datastore in one browser, for one user."""

    def __init__(self, driver: Any, server: Any, datastore: str, user: User):
        self.driver = driver
        self.server = server
        self.datastore = datastore
        # A cookie can be set only for the site being shown: visit the server once first.
        driver.get(f"{server.url}/todo/login/")
        driver.add_cookie(
            {"name": settings.SESSION_COOKIE_NAME, "value": session_cookie(user), "path": "/"}
        )

    def open(self) -> TodoPage:
        self.driver.get(f"{self.server.url}/todo/{self.datastore}/")
        self.wait_for(lambda state: state["status"] == "synced", "the page to sync")
        return self

    # --- Reading ----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return self.driver.execute_script(PAGE_STATE)

    def items(self) -> dict[str, tuple[str, bool]]:
        """Shown items: title -> (id, done)."""
        return {item["title"]: (item["id"], item["done"]) for item in self.state()["items"]}

    def item_id(self, title: str) -> str:
        self.wait_for(lambda state: title in titles(state), f"item {title!r} to be shown")
        return self.items()[title][0]

    @property
    def store_id(self) -> str:
        return self.driver.execute_script("return window.rtcClient.storeId")

    @property
    def stable_serial(self) -> int | None:
        return self.driver.execute_script("return window.rtcClient.stableSerial")

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], Any], what: str, timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        """Wait until ``predicate(page state)`` holds; the state then."""
        eventually(
            lambda: predicate(self.state()),
            timeout,
            what,
            explain=lambda: f"the page shows {self.state()}",
        )
        return self.state()

    def wait_settled(self, serial: int | None = None) -> dict[str, Any]:
        """Synced, nothing unsent, and (if given) at ``serial``."""
        return self.wait_for(
            lambda s: (
                s["status"] == "synced"
                and s["pending"] == 0
                and (serial is None or s["serial"] == serial)
            ),
            f"the page to settle at serial {serial}",
        )

    # --- Editing ----------------------------------------------------------------------------

    def add(self, title: str) -> None:
        self.driver.find_element(By.ID, "new-title").send_keys(title, Keys.ENTER)

    def _row(self, item_id: str, part: str) -> Any:
        return self.driver.find_element(By.CSS_SELECTOR, f'li[data-id="{item_id}"] {part}')

    def toggle(self, item_id: str) -> None:
        self._row(item_id, ".done").click()

    def type_in_title(self, item_id: str, *keys: str) -> None:
        field = self._row(item_id, ".title")
        field.click()
        field.send_keys(*keys)


def titles(state: dict[str, Any]) -> dict[str, bool]:
    """title -> done, of the items a page state shows."""
    return {item["title"]: item["done"] for item in state["items"]}


def server_items(name: str) -> dict[str, dict[str, Any]]:
    state, _serial = service.live_python(Datastore.objects.get(name=name))
    return state.get("items", {})


def stored_serials(name: str) -> list[int]:
    return list(
        Transaction.objects.filter(datastore__name=name)
        .order_by("serial")
        .values_list("serial", flat=True)
    )


@pytest.fixture
def ada() -> User:
    return User.objects.create_user("ada")


@pytest.fixture
def groceries(ada: User) -> Datastore:
    return service.create_datastore("groceries", "todo", owner=ada)


# --- Pages without a browser ------------------------------------------------------------------


def test_page_needs_login_read_access_and_a_todo_datastore(groceries, ada):
    stranger = User.objects.create_user("stranger")
    viewer = User.objects.create_user("viewer")
    grant(groceries, viewer, "viewer")
    service.create_datastore("notes", "freeform", owner=ada)
    client = Client()

    response = client.get("/todo/groceries/")
    assert response.status_code == 302
    assert response["Location"].startswith("/todo/login/?next=/todo/groceries/")

    client.force_login(stranger)
    assert client.get("/todo/groceries/").status_code == 403
    assert client.get("/todo/nothing-here/").status_code == 404
    assert client.get("/todo/notes/").status_code == 404  # not a todo datastore
    assert b"groceries" not in client.get("/todo/").content

    client.force_login(viewer)
    page = client.get("/todo/groceries/")
    assert page.status_code == 200
    assert b"relay/rtc-client.js" in page.content
    assert b"read-only" in page.content
    assert b"/todo/groceries/" in client.get("/todo/").content


def test_login_page_logs_in_and_goes_on(groceries, ada):
    ada.set_password("s3cret-pass")
    ada.save()
    client = Client()
    assert client.get("/todo/login/").status_code == 200
    response = client.post(
        "/todo/login/",
        {"username": "ada", "password": "s3cret-pass", "next": "/todo/groceries/"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/todo/groceries/"
    assert client.get("/todo/groceries/").status_code == 200


# --- In the browser ---------------------------------------------------------------------------


def test_two_windows_see_each_others_edits_live(start_server, open_browser, groceries, ada):
    bob = User.objects.create_user("bob")
    grant(groceries, bob, "editor")
    server = start_server()
    alice_page = TodoPage(open_browser(), server, "groceries", ada).open()
    bob_page = TodoPage(open_browser(), server, "groceries", bob).open()

    alice_page.add("Milk")
    bob_page.wait_for(lambda s: titles(s) == {"Milk": False}, "Milk to reach Bob")
    milk = bob_page.item_id("Milk")
    assert alice_page.item_id("Milk") == milk

    bob_page.toggle(milk)
    alice_page.wait_for(lambda s: titles(s) == {"Milk": True}, "Bob's toggle to reach Alice")

    alice_page.type_in_title(milk, Keys.END, " and eggs")
    bob_page.wait_for(lambda s: "Milk and eggs" in titles(s), "Alice's typing to reach Bob")

    # Both type into the same title at once, at either end: the texts merge.
    bob_page.type_in_title(milk, Keys.HOME, "Oat ")
    alice_page.type_in_title(milk, Keys.END, " (2L)")
    expected = {"Oat Milk and eggs (2L)": True}
    for page in (alice_page, bob_page):
        page.wait_for(lambda s: titles(s) == expected, "both edits on both pages")

    serial = Datastore.objects.get(name="groceries").last_serial
    for page in (alice_page, bob_page):
        page.wait_settled(serial)
        # Both reported their serial: the server calls the whole history stable.
        page.wait_for(lambda s, page=page: page.stable_serial == serial, "the stable serial")
    assert stored_serials("groceries") == list(range(1, serial + 1))
    assert server_items("groceries") == {milk: {"title": "Oat Milk and eggs (2L)", "done": True}}


def test_an_item_written_from_python_appears(
    start_server, open_browser, groceries, ada, redis_url, settings
):
    # A process without WebSocket connections tells the servers through the channel layer,
    # which must then be one that crosses processes (Redis), as in a deployment.
    url, prefix = redis_url
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [url], "prefix": prefix},
        }
    }
    server = start_server(env={"REDIS_URL": url, "REDIS_PREFIX": prefix})
    page = TodoPage(open_browser(), server, "groceries", ada).open()

    records.set_fields(groceries, "items", "from-python", {"title": "Call Bob", "done": False})
    page.wait_for(lambda s: titles(s) == {"Call Bob": False}, "the Python-side item")
    records.set_fields(groceries, "items", "from-python", {"title": "Call Bob now", "done": True})
    state = page.wait_for(lambda s: titles(s) == {"Call Bob now": True}, "the Python-side edit")
    assert state["items"][0]["id"] == "from-python"
    page.wait_settled(2)


def test_a_change_the_server_did_not_hear_of_arrives_in_serial_order(
    start_server, open_browser, groceries, ada
):
    # Without a channel layer shared with the servers, a write from this process is not
    # announced; the page gets it, in order, with the next change it sees.
    server = start_server()
    page = TodoPage(open_browser(), server, "groceries", ada).open()
    records.set_fields(groceries, "items", "quiet", {"title": "Unannounced", "done": False})
    page.add("Loud")
    state = page.wait_settled(2)
    assert titles(state) == {"Unannounced": False, "Loud": False}
    assert stored_serials("groceries") == [1, 2]


def test_a_gap_behind_the_pruned_history_is_filled_from_the_checkpoint(
    start_server, open_browser, groceries, ada, settings
):
    settings.RTC = {**settings.RTC, "CHECKPOINT_EVERY": 5, "CHECKPOINTS_KEPT": 100}
    server = start_server()
    page = TodoPage(open_browser(), server, "groceries", ada).open()
    page.wait_settled(0)
    # Unannounced writes, then pruned: serials 1-10 are gone, 11 and 12 remain.
    for n in range(12):
        records.set_fields(groceries, "items", f"quiet-{n}", {"title": f"Q{n}", "done": False})
    cutoff = datetime.now(UTC) + timedelta(seconds=1)
    assert prune_history(groceries, older_than=cutoff, keep=0).history_start == 10
    page.add("Loud")
    state = page.wait_settled(13)
    assert titles(state) == {**{f"Q{n}": False for n in range(12)}, "Loud": False}
    assert stored_serials("groceries") == [11, 12, 13]


def test_reconnects_after_a_crash_and_sends_each_edit_once(
    start_server, open_browser, groceries, ada
):
    server = start_server()
    page = TodoPage(open_browser(), server, "groceries", ada).open()
    page.add("Before the crash")
    page.wait_settled(1)

    # Frozen server: the edit is sent, never answered; then the process dies with it.
    server.process.send_signal(signal.SIGSTOP)
    page.add("Sent, never answered")
    page.wait_for(lambda s: s["pending"] == 1, "the edit to wait for its answer")
    server.kill(signal.SIGKILL)
    page.wait_for(lambda s: s["status"] == "disconnected", "the page to notice the crash")
    page.add("Made while down")
    page.wait_for(lambda s: s["pending"] == 2, "both edits to wait")

    server.restart()
    page.wait_settled(3)
    expected = {"Before the crash": False, "Sent, never answered": False, "Made while down": False}
    assert titles(page.state()) == expected

    store_id = page.store_id
    rows = Transaction.objects.filter(datastore=groceries).order_by("serial")
    assert list(rows.values_list("serial", "txid", "store_id")) == [
        (1, f"{store_id}-1", store_id),
        (2, f"{store_id}-2", store_id),
        (3, f"{store_id}-3", store_id),
    ]
    assert sorted(item["title"] for item in server_items("groceries").values()) == sorted(expected)


def test_a_viewers_edit_is_refused_and_shown(start_server, open_browser, groceries, ada):
    records.set_fields(groceries, "items", "bread", {"title": "Bread", "done": False})
    viewer = User.objects.create_user("vic")
    grant(groceries, viewer, "viewer")
    server = start_server()
    page = TodoPage(open_browser(), server, "groceries", viewer).open()
    page.wait_for(lambda s: titles(s) == {"Bread": False}, "the existing item")

    page.toggle("bread")
    state = page.wait_for(lambda s: s["errors"], "the refusal to be shown")
    assert "permission-denied" in state["errors"][0]
    # The document was rebuilt from the server's: the toggle is undone on the page.
    page.wait_for(lambda s: titles(s) == {"Bread": False} and s["pending"] == 0, "the rebuild")

    page.add("Cake")
    page.wait_for(lambda s: len(s["errors"]) == 2, "the second refusal")
    page.wait_for(lambda s: titles(s) == {"Bread": False}, "the refused item to go")
    assert page.state()["status"] == "synced"

    assert stored_serials("groceries") == [1]
    assert not Transaction.objects.filter(store_id=page.store_id).exists()
    assert server_items("groceries") == {"bread": {"title": "Bread", "done": False}}
