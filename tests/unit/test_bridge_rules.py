"""The bridge's pure rules: close codes the docprovider reads, what goes upstream, the identity
header, the settings' checks. The real pipe runs in tests/jupyter/test_bridge_*.py."""

from __future__ import annotations

import json

import pytest
from jupyter_rtc_bridge import closing, upstream
from jupyter_rtc_bridge.config import MIB, BridgeConfigError, RTCBridge, check_server_url
from jupyter_rtc_bridge.identity import IdentityTooLarge, identity_header
from jupyter_server.auth import User


def denied_frame(reason: str) -> bytes:
    data = reason.encode()
    assert len(data) < 128
    return bytes([2, 0, len(data)]) + data


# --- Close codes ------------------------------------------------------------------------------


def test_a_stale_session_becomes_the_reload_dialog():
    code, reason = closing.browser_close(4409, "", "document-replaced: the document was replaced")
    assert code == 1003
    assert json.loads(reason) == {
        "reason": "unknown_session",
        "reloadable": True,
        "errorReason": "The document was replaced",
    }


def test_refusals_become_the_dialog_reloadable_only_for_read_only():
    code, reason = closing.browser_close(4403, None, "forbidden: no access to document 'x'")
    assert code == 1003
    assert json.loads(reason)["reloadable"] is False
    assert json.loads(reason)["errorReason"] == "No access to document 'x'"
    code, reason = closing.browser_close(4403, "", "read-only: you may only view this notebook")
    assert (code, json.loads(reason)["reloadable"]) == (1003, True)
    code, reason = closing.browser_close(4401, "", None)
    assert code == 1003 and json.loads(reason)["errorReason"] == closing.DEFAULT_REASONS[4401]


def test_bad_and_unknown_rooms_pass_through_so_the_provider_gives_up():
    assert closing.browser_close(4400, "bad room", None) == (4400, "bad room")
    assert closing.browser_close(4404, "", "unknown-document: gone")[0] == 4404


def test_a_dropped_connection_is_a_close_y_websocket_retries():
    for code in (None, 1005, 1006, 1015):
        assert closing.browser_close(code, None, None)[0] in (1011, 1013)
    assert closing.browser_close(1001, "going away", None)[0] == 1013
    assert closing.browser_close(1000, "bye", None) == (1000, "bye")


def test_a_long_reason_is_cut_to_fit_a_close_frame():
    code, reason = closing.browser_close(4409, "", "x: " + "é" * 500)
    assert code == 1003 and len(reason.encode()) <= 123
    assert json.loads(reason)["errorReason"].endswith("...")


def test_only_permission_denied_frames_have_a_reason():
    assert closing.denied_reason(denied_frame("forbidden: no")) == "forbidden: no"
    raw_save = bytes([2, 4]) + b"save" + bytes([7])  # jupyter-collaboration's raw message
    assert closing.denied_reason(raw_save) is None
    assert closing.denied_reason(bytes([0, 0, 1, 0])) is None  # a sync step
    assert closing.denied_reason(bytes([2, 0, 9, 65])) is None  # truncated


# --- What goes upstream -----------------------------------------------------------------------


def test_routes_keep_path_and_query_minus_base_url_and_jupyter_token():
    url = upstream.http_url(
        "https://rtc.example/pre",
        "/user/ada/api/collaboration/session/a%2Fb.ipynb?x=1",
        "/user/ada/",
    )
    assert url == "https://rtc.example/pre/api/collaboration/session/a%2Fb.ipynb?x=1"
    url = upstream.http_url("http://rtc", "/api/kernels/k/requests/r?token=secret&wait=1", "/")
    assert url == "http://rtc/api/kernels/k/requests/r?wait=1"


def test_a_room_carries_only_its_session_id():
    url = upstream.websocket_url(
        "https://rtc.example", "/api/collaboration/room/json:notebook:f?sessionId=s&token=t", "/"
    )
    assert url == "wss://rtc.example/api/collaboration/room/json:notebook:f?sessionId=s"
    bare = upstream.websocket_url("http://rtc:8000", "/api/collaboration/room/R?token=t", "/")
    assert bare == "ws://rtc:8000/api/collaboration/room/R"


def test_the_identity_header_is_small_ascii_json_of_jupyters_user():
    user = User(username="ada", name="Ada Lovelace", display_name="Ada ✓", initials="AL")
    header = identity_header(user)
    assert header.isascii()
    assert json.loads(header) == {
        "username": "ada",
        "name": "Ada Lovelace",
        "display_name": "Ada ✓",
        "initials": "AL",
        "color": None,
    }
    assert json.loads(identity_header({"username": "bob"}))["display_name"] == "bob"
    assert len(identity_header(User(username="c", name="n" * 10_000))) <= 4096
    assert json.loads(identity_header(User(username="d", name="a\x07b")))["name"] == "ab"
    with pytest.raises(IdentityTooLarge):
        identity_header(User(username="u" * 256))


# --- Settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ftp://rtc",
        "rtc.example.org",
        "http://",
        "http://rtc/?a=1",
        "http://u:p@rtc",
        "http://rtc:x",
    ],
)
def test_a_bad_server_url_is_one_line_naming_the_option(url):
    with pytest.raises(BridgeConfigError) as error:
        check_server_url(url)
    assert "RTCBridge.server_url" in str(error.value) and "\n" not in str(error.value)


def test_settings_come_from_options_or_the_environment(monkeypatch):
    monkeypatch.setenv("RTC_SERVER_URL", "https://rtc.example/base/")
    monkeypatch.setenv("RTC_BRIDGE_TOKEN", "abc")
    checked = RTCBridge().checked()
    assert (checked.server_url, checked.token) == ("https://rtc.example/base", "abc")
    assert "abc" not in repr(checked)
    assert RTCBridge(server_url="http://other", token="t").checked().server_url == "http://other"
    monkeypatch.setenv("RTC_BRIDGE_TOKEN", "")
    with pytest.raises(BridgeConfigError, match=r"RTCBridge\.token"):
        RTCBridge().checked()
    with pytest.raises(BridgeConfigError, match="64 MiB"):
        RTCBridge(token="t", max_message_size=MIB).checked()
    monkeypatch.delenv("RTC_SERVER_URL")
    assert not RTCBridge().configured()


def test_the_rooms_limit_is_the_rtc_servers(monkeypatch):
    monkeypatch.delenv("RTC_MAX_MESSAGE_BYTES", raising=False)
    settings = RTCBridge(server_url="http://rtc", token="t").checked()
    assert settings.room_max_message_size == 16 * MIB  # the RTC server's default
    assert settings.max_message_size == 256 * MIB  # the RTC server's leg: whole documents
    monkeypatch.setenv("RTC_MAX_MESSAGE_BYTES", "1000")  # as the RTC server reads it
    assert RTCBridge(server_url="http://rtc", token="t").checked().room_max_message_size == 1000
    with pytest.raises(BridgeConfigError, match="room_max_message_size"):
        RTCBridge(server_url="http://rtc", token="t", room_max_message_size=0).checked()
