"""run_supernode's URLs are checked before anything runs: one clear line, never a token."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jupyter_sync.management.commands.run_supernode import jupyter_url, relay_url


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("ws://127.0.0.1:8000", "ws://127.0.0.1:8000"),
        ("wss://rtc.example.org/", "wss://rtc.example.org"),
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000"),
        ("HTTPS://rtc.example.org/prefix/", "wss://rtc.example.org/prefix"),
    ],
)
def test_the_relay_url_is_a_websocket_base_and_http_means_ws(given, used):
    assert relay_url(given) == used


def test_a_jupyter_url_is_http_and_empty_means_launch_one():
    assert jupyter_url("http://127.0.0.1:8888/base/") == "http://127.0.0.1:8888/base"
    assert jupyter_url("") == ""


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--server-url", "ftp://127.0.0.1:8000"),
        ("--server-url", "127.0.0.1:8000"),
        ("--server-url", "ws://127.0.0.1:99999"),
        ("--server-url", "ws://127.0.0.1:8000/?token=s3cret-token"),
        ("--server-url", "ws://user:s3cret-token@/x"),
        ("--jupyter-url", "ws://127.0.0.1:8888/?token=s3cret-token"),
        ("--jupyter-url", "http://127.0.0.1:8888/?token=s3cret-token"),
    ],
)
def test_a_bad_url_is_refused_in_one_line_that_prints_no_token(option, value):
    # No database is touched: the options are checked first (this is a unit test).
    with pytest.raises(CommandError) as refused:
        call_command("run_supernode", option, value)
    message = str(refused.value)
    assert option in message and "\n" not in message.strip()
    assert "s3cret" not in message


def test_an_unreadable_token_file_is_refused_before_anything_runs(tmp_path):
    missing = tmp_path / "no-such-token"
    with pytest.raises(CommandError, match="cannot read --jupyter-token-file") as refused:
        call_command("run_supernode", "--jupyter-token-file", str(missing))
    assert str(missing) in str(refused.value)
