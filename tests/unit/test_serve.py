"""``manage.py serve``: how many workers, and never several without a layer that crosses
processes."""

import os

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from relay.management.commands.serve import daphne_command, default_workers


def test_one_worker_per_core_with_redis_else_one(settings):
    settings.REDIS_URL = None
    assert default_workers() == 1
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    assert default_workers() == (os.cpu_count() or 1)


def test_several_workers_without_redis_are_refused(settings):
    settings.REDIS_URL = None
    with pytest.raises(CommandError, match="REDIS_URL"):
        call_command("serve", workers=2, port=0)


def test_each_worker_is_daphne_on_the_inherited_socket_with_the_message_limit(settings):
    settings.RTC = {"MAX_MESSAGE_BYTES": 1234}
    command = daphne_command(7, ["--proxy-headers"])
    assert command[command.index("--fd") + 1] == "7"
    assert command[command.index("--websocket-max-message-size") + 1] == "1234"
    assert command[-2:] == ["--proxy-headers", "rtc_project.asgi:application"]
