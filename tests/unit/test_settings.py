"""Settings read from the environment fail early with a message naming the variable."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from rtc_project.env import env_bool, env_int, env_list, env_proxy_ssl_header
from tables.conf import rtc_settings, settings_from_environ


def test_rtc_settings_from_environment():
    values = settings_from_environ({"RTC_CHECKPOINT_EVERY": "50", "RTC_IDLE_SECONDS": "1.5"})
    assert values["CHECKPOINT_EVERY"] == 50 and values["IDLE_SECONDS"] == 1.5
    assert values["MAX_BATCH"] == 256  # default


@pytest.mark.parametrize("raw", ["many", "-1"])
def test_bad_rtc_setting_names_the_variable(raw):
    with pytest.raises(ImproperlyConfigured, match="RTC_CHECKPOINT_EVERY"):
        settings_from_environ({"RTC_CHECKPOINT_EVERY": raw})


def test_rtc_bridge_role_is_viewer_editor_or_none():
    assert settings_from_environ({})["BRIDGE_ROLE"] == "editor"
    for role in ("viewer", "editor", "none"):
        assert settings_from_environ({"RTC_BRIDGE_ROLE": role})["BRIDGE_ROLE"] == role
    for raw in ("owner", "", "admin"):  # never more than an editor, never by accident
        with pytest.raises(ImproperlyConfigured, match="RTC_BRIDGE_ROLE"):
            settings_from_environ({"RTC_BRIDGE_ROLE": raw})


def test_the_bridge_role_is_given_on_the_jupyter_datastore():
    from jupyter_sync.schema import JUPYTER_DATASTORE
    from relay.identity import BRIDGE_DATASTORE

    assert BRIDGE_DATASTORE == JUPYTER_DATASTORE  # the relay may not import jupyter_sync


def test_rtc_settings_follow_overrides(settings):
    settings.RTC = {"CHECKPOINT_EVERY": 7}
    assert rtc_settings.CHECKPOINT_EVERY == 7
    assert rtc_settings.MAX_BATCH == 256
    with pytest.raises(AttributeError, match="unknown RTC setting"):
        rtc_settings.NOPE  # noqa: B018


def test_env_helpers(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="DEBUG must be a boolean"):
        env_bool("DEBUG", False)
    monkeypatch.setenv("PORT", "x")
    with pytest.raises(ImproperlyConfigured, match="PORT must be an integer"):
        env_int("PORT", 1)
    monkeypatch.setenv("HOSTS", "a, b,,c")
    assert env_list("HOSTS", []) == ["a", "b", "c"]


def test_the_proxy_header_setting_reads_either_spelling(monkeypatch):
    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto,https")
    assert env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER") == ("HTTP_X_FORWARDED_PROTO", "https")
    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", "HTTP_X_FORWARDED_PROTO, https")
    assert env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER") == ("HTTP_X_FORWARDED_PROTO", "https")
    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", "")
    assert env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER") is None
    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto")
    with pytest.raises(ImproperlyConfigured, match="HEADER,value"):
        env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER")
