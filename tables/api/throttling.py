"""Request rates for the REST API: REST framework's user and anonymous throttles, with the rates
read from ``settings.RTC`` (``RTC_API_RATE_USER``, ``RTC_API_RATE_ANON``) at each request, so
that a changed setting applies without a restart of the class (and ``override_settings`` works).

The counts live in Django's default cache: per process with the built-in local-memory cache.
"""

from __future__ import annotations

from rest_framework import throttling

from tables.conf import rtc_settings


class UserRateThrottle(throttling.UserRateThrottle):
    """Per user (anonymous clients by address), at ``RTC_API_RATE_USER``."""

    def get_rate(self) -> str | None:
        return rtc_settings.API_RATE_USER or None


class AnonRateThrottle(throttling.AnonRateThrottle):
    """Anonymous clients by address, at ``RTC_API_RATE_ANON``."""

    def get_rate(self) -> str | None:
        return rtc_settings.API_RATE_ANON or None
