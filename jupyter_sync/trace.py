"""Wall-clock marks of an execution's hops through the supernode, for ``bench/supernode.py
--trace``: the bench lines them up with its own clock (another process on the same machine), so
the time is ``time.time()``. Logged at DEBUG by ``jupyter_sync.trace``, which is off unless the
``TRACE_LOG`` setting turns it on: one ``isEnabledFor`` per mark otherwise."""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("jupyter_sync.trace")


def mark(execution_id: str, hop: str, when: float | None = None) -> None:
    """``hop`` of ``execution_id`` happened at ``when`` (``time.time()``; default: now)."""
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("trace %s %s %.6f", execution_id, hop, time.time() if when is None else when)


__all__ = ["mark"]
