"""The project's own settings: one namespaced dict, ``settings.RTC``, with documented defaults.

Each setting can be given in ``settings.RTC`` or through its environment variable. Read them
through ``rtc_settings.NAME``; tests can override them with ``override_settings(RTC={...})``.
An app with settings of its own declares its ``SettingsGroup`` the same way
(``jupyter_sync/conf.py``: ``settings.RTC_JUPYTER``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    parse: Callable[[str], Any]
    doc: str

    @property
    def env(self) -> str:
        return f"RTC_{self.name}"


def positive_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be >= 0")
    return number


def positive_float(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError("must be >= 0")
    return number


_RATE = re.compile(r"^\d+/(s|sec|second|m|min|minute|h|hour|d|day)$")


def _rate(value: str) -> str:
    """A REST framework throttle rate such as ``600/min``; empty: no limit."""
    value = value.strip()
    if value and not _RATE.match(value):
        raise ValueError("must be a rate like 600/min (per s, min, hour or day) or empty")
    return value


def _role(value: str) -> str:
    if value not in ("", "viewer", "editor"):
        raise ValueError("must be empty, viewer or editor")
    return value


def name_list(value: str | list[str] | tuple[str, ...]) -> list[str]:
    """Names given comma-separated (or as a list), ``*`` allowed only at the end (a prefix)."""
    items = value.split(",") if isinstance(value, str) else value
    names = [name.strip() for name in items if name.strip()]
    if any("*" in name[:-1] for name in names):
        raise ValueError("a * may only end a name (a prefix)")
    return names


def _names(value: str) -> str:
    return ",".join(name_list(value))


BRIDGE_ROLES = ("viewer", "editor", "none")


def _bridge_role(value: str) -> str:
    value = value.strip()
    if value not in BRIDGE_ROLES:
        raise ValueError(f"must be one of {', '.join(BRIDGE_ROLES)}")
    return value


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "CHECKPOINT_EVERY",
        500,
        positive_int,
        "Write a checkpoint after this many transactions since the last one.",
    ),
    Setting(
        "CHECKPOINT_BYTES",
        1_048_576,
        positive_int,
        "Write a checkpoint after this many bytes of patches since the last one.",
    ),
    Setting(
        "CHECKPOINTS_KEPT",
        10,
        positive_int,
        "Keep this many newest checkpoints; older ones are thinned to one per ten intervals.",
    ),
    Setting(
        "IDLE_SECONDS",
        300,
        positive_float,
        "Evict a loaded document from memory after this many idle seconds.",
    ),
    Setting(
        "MAX_LOADED",
        1000,
        positive_int,
        "Keep at most this many documents loaded per process (least recently used go first).",
    ),
    Setting(
        "REQUEST_THREADS",
        8,
        positive_int,
        "Threads a process keeps for HTTP requests' synchronous work, lent to one request at "
        "a time; a request that finds none idle gets one of its own, ended after it.",
    ),
    Setting(
        "COMMIT_THREADS",
        0,
        positive_int,
        "Threads a process commits datastores' writes on (group commit from the WebSocket "
        "consumers); 0: one on SQLite (one writer at a time), four on other databases.",
    ),
    Setting(
        "MAX_BATCH",
        256,
        positive_int,
        "Group commit: at most this many transactions in one database transaction.",
    ),
    Setting(
        "MAX_UPDATE_BYTES",
        8_388_608,
        positive_int,
        "Largest single Yjs update accepted, in bytes.",
    ),
    Setting(
        "MAX_NESTING",
        100,
        positive_int,
        "Deepest nesting of values and shared types in one Yjs update (arrays, maps, types "
        "in types), and in a document that updates build on; deeper is refused as too-deep "
        "before anything decodes or applies it. JSON (a REST body, a JSON-protocol frame) may "
        "nest 16 levels more, for its own fields (tables.nesting.JSON_ENVELOPE_LEVELS).",
    ),
    Setting(
        "RESERVED_NAMES",
        "jupyter,doc-*",
        _names,
        "Datastore names (comma-separated; a trailing * makes a prefix) that only the system "
        "and superusers create: the supernode's jupyter datastore and its doc-<id> documents, "
        "so nobody can take a notebook's name first and keep it from ever opening.",
    ),
    Setting(
        "MAX_DATASTORES_PER_USER",
        100,
        positive_int,
        "Datastores a user may own through the API (superusers: no limit); past it, creating "
        "one answers 403 datastore-quota. 0: no limit.",
    ),
    Setting(
        "UNDO_DEPTH",
        1000,
        positive_int,
        "How many of an author's recent transactions per-author undo/redo looks at.",
    ),
    Setting(
        "MAX_MESSAGE_BYTES",
        16_777_216,
        positive_int,
        "Largest WebSocket message accepted, in bytes; larger ones close the connection (1009).",
    ),
    Setting(
        "CATCH_UP_BYTES",
        8 * 1024 * 1024,
        positive_int,
        "Bytes of recent transactions a room keeps while a reader is behind, to send it what it "
        "missed as one merged update; a reader further behind gets it from the database.",
    ),
    Setting(
        "WORKERS",
        0,
        positive_int,
        "Worker processes `manage.py serve` runs on this machine, on one port. 0: one per core "
        "with REDIS_URL, else 1 (several workers need the Redis channel layer).",
    ),
    Setting(
        "RATE_LIMIT",
        200,
        positive_int,
        "Messages per second a WebSocket connection may send (sustained).",
    ),
    Setting(
        "RATE_BURST",
        400,
        positive_int,
        "Messages a WebSocket connection may send in a burst above the rate.",
    ),
    Setting(
        "MAX_PRESENCE_CLIENTS",
        4,
        positive_int,
        "Awareness client ids one WebSocket connection may announce (a browser tab has one, a "
        "JupyterLab window a few); more are dropped (presence-too-many-clients). 0: no limit.",
    ),
    Setting(
        "MAX_PRESENCE_BYTES",
        65_536,
        positive_int,
        "Largest awareness state accepted, in bytes of JSON; larger ones are dropped "
        "(presence-too-large). 0: no limit.",
    ),
    Setting(
        "ANONYMOUS_ROLE",
        "",
        _role,
        "Role of users who are not logged in: empty (no access), viewer or editor.",
    ),
    Setting(
        "BRIDGE_ROLE",
        "editor",
        _bridge_role,
        "Role on the jupyter datastore given once to the Django user made for a Jupyter user "
        "when a bridge first acts for them (X-Jupyter-User): viewer, editor or none. Given "
        "once: an admin's later change or removal of the role stands.",
    ),
    Setting(
        "API_RATE_USER",
        "600/min",
        _rate,
        "REST API requests a logged-in user may make (per s, min, hour or day; empty: no limit).",
    ),
    Setting(
        "API_RATE_ANON",
        "60/min",
        _rate,
        "REST API requests an anonymous client (by address) may make; empty: no limit.",
    ),
)


@dataclass(frozen=True)
class SettingsGroup:
    """One namespaced settings dict, ``settings.<name>``: its entries, their ``RTC_*``
    environment variables and defaults. Each app that has settings of its own declares a group."""

    name: str
    settings: tuple[Setting, ...]

    def from_environ(self, environ: dict[str, str] | None = None) -> dict[str, Any]:
        """Build the dict from ``RTC_*`` environment variables (defaults otherwise)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for setting in self.settings:
            raw = environ.get(setting.env)
            if raw is None:
                values[setting.name] = setting.default
                continue
            try:
                values[setting.name] = setting.parse(raw)
            except ValueError as error:
                raise ImproperlyConfigured(f"{setting.env}={raw!r}: {error}") from None
        return values


class SettingsReader:
    """Attribute access to a group's ``settings.<name>`` dict, the defaults filled in."""

    def __init__(self, group: SettingsGroup):
        self._group = group
        self._by_name = {setting.name: setting for setting in group.settings}

    def __getattr__(self, name: str) -> Any:
        from django.conf import settings

        if name not in self._by_name:
            raise AttributeError(f"unknown {self._group.name} setting {name!r}")
        configured = getattr(settings, self._group.name, {}) or {}
        return configured.get(name, self._by_name[name].default)


RTC = SettingsGroup("RTC", SETTINGS)


def settings_from_environ(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Build the ``RTC`` dict from ``RTC_*`` environment variables (defaults otherwise)."""
    return RTC.from_environ(environ)


rtc_settings = SettingsReader(RTC)
