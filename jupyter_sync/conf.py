"""The Jupyter side's own settings: one namespaced dict, ``settings.RTC_JUPYTER``.

Each setting can be given there or through its ``RTC_*`` environment variable (the machinery is
``tables.conf``'s). Read them through ``jupyter_settings.NAME``; tests can override them with
``override_settings(RTC_JUPYTER={...})``.
"""

from __future__ import annotations

from typing import Any

from tables.conf import Setting, SettingsGroup, SettingsReader, positive_float, positive_int

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "OUTPUT_MAX_CHARS",
        1_000_000,
        positive_int,
        "Output the supernode keeps per execution, in characters (stream text written, redraws "
        "after a carriage return included, and the JSON of other outputs); the rest is dropped "
        "with a notice. 0: no limit.",
    ),
    Setting(
        "RECORD_RETENTION",
        3600,
        positive_float,
        "Seconds a finished requests or executions record stays in the jupyter datastore "
        "(its patches stay in the history); 0: kept for ever.",
    ),
    Setting(
        "SERVER_STATE_HISTORY",
        604800,
        positive_float,
        "Seconds of patch history the supernode keeps for the jupyter datastore (server state); "
        "older patches are pruned behind a checkpoint. 0: kept for ever. Other datastores keep "
        "theirs unless `manage.py prune_history` is run.",
    ),
    Setting(
        "API_ACTION_TIMEOUT",
        15.0,
        positive_float,
        "Seconds a REST action on Jupyter waits for the supernode before answering 202 with the "
        "URL of its request record.",
    ),
)

RTC_JUPYTER = SettingsGroup("RTC_JUPYTER", SETTINGS)


def settings_from_environ(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Build the ``RTC_JUPYTER`` dict from ``RTC_*`` environment variables (defaults otherwise)."""
    return RTC_JUPYTER.from_environ(environ)


jupyter_settings = SettingsReader(RTC_JUPYTER)
