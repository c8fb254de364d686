"""Typed readers for settings that come from the environment.

Every setting of the project is read through these helpers so that a bad value fails at start-up
with a message that names the variable, instead of surfacing later as a confusing error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured

_Number = TypeVar("_Number", int, float)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    return _env_number(name, default, int, "an integer", minimum)


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    return _env_number(name, default, float, "a number", minimum)


def _env_number(
    name: str, default: _Number, parse: Callable[[str], _Number], kind: str, minimum: _Number
) -> _Number:
    """``parse`` applied to the variable, at least ``minimum``; ``kind`` names it in errors."""
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        number = parse(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {kind}, got {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {number}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """Django's ``SECURE_PROXY_SSL_HEADER`` from ``HEADER,value`` (``X-Forwarded-Proto,https``,
    or Django's own spelling ``HTTP_X_FORWARDED_PROTO,https``); unset or empty: None."""
    items = env_list(name, [])
    if not items:
        return None
    if len(items) != 2:
        raise ImproperlyConfigured(f"{name} must be HEADER,value (X-Forwarded-Proto,https)")
    header, value = items
    meta = header.upper().replace("-", "_")
    return (meta if meta.startswith("HTTP_") else f"HTTP_{meta}"), value
