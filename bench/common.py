"""Shared set-up for the benchmark scripts: Django on a throwaway database, timers, tables.

Nothing here touches the developer's ``var/`` directory: ``DATA_DIR`` is a fresh temporary
directory unless ``--data-dir`` says otherwise, and the database is either a SQLite file inside it
or a PostgreSQL database that the script drops and recreates (only names starting with ``bench``
or ``rtc_bench`` are accepted, so a typo cannot wipe a real database).
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/rtc_bench"
FORBIDDEN_DATABASES = {"test", "test_test", "postgres", "template0", "template1"}


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=None,
        help="sqlite:///path or postgres://user@host:port/rtc_bench (default: a SQLite file in "
        "the temporary DATA_DIR). A PostgreSQL database is dropped and recreated.",
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help=f"shorthand for --database-url {DEFAULT_POSTGRES_URL}",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="DATA_DIR for the run (default: a temporary directory, removed at exit)",
    )
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=None,
        help="DATABASE_CONN_MAX_AGE for the run (default: the project's default, 0)",
    )


def database_url(args: argparse.Namespace) -> str:
    if args.database_url:
        return args.database_url
    if args.postgres:
        return DEFAULT_POSTGRES_URL
    return f"sqlite:///{Path(args.data_dir) / 'bench.sqlite3'}"


BENCH_DATABASE_PREFIXES = ("rtc_bench", "bench")


def _dedicated_database(url: str, prefixes: Sequence[str]) -> tuple[str, str]:
    """(name, admin URL) of a database a benchmark may drop: its name starts with one of
    ``prefixes`` and is none of the well-known ones (exits otherwise)."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if name in FORBIDDEN_DATABASES or not name.startswith(tuple(prefixes)):
        raise SystemExit(
            f"refusing to drop database {name!r}: use a dedicated one whose name starts with "
            + " or ".join(repr(prefix) for prefix in prefixes)
        )
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, parts.fragment))
    return name, admin


def postgres_recreate(url: str, prefixes: Sequence[str] = BENCH_DATABASE_PREFIXES) -> None:
    """Drop and create the benchmark's PostgreSQL database (only a dedicated one)."""
    import psycopg

    name, admin = _dedicated_database(url, prefixes)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def postgres_drop(url: str, prefixes: Sequence[str] = BENCH_DATABASE_PREFIXES) -> None:
    """Drop the benchmark's PostgreSQL database (only a dedicated one)."""
    import psycopg

    name, admin = _dedicated_database(url, prefixes)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup_django(args: argparse.Namespace, *, fresh: bool = True) -> str:
    """Configure and start Django; with ``fresh``, recreate the database and migrate it.

    Returns the database URL in use (child processes get it verbatim, with ``fresh=False``).
    """
    if args.data_dir is None:
        args.data_dir = tempfile.mkdtemp(prefix="rtc-bench-")
        atexit.register(shutil.rmtree, args.data_dir, ignore_errors=True)
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    url = database_url(args)
    os.environ["DJANGO_SETTINGS_MODULE"] = "rtc_project.settings"
    os.environ["DATA_DIR"] = str(args.data_dir)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if args.conn_max_age is not None:
        os.environ["DATABASE_CONN_MAX_AGE"] = str(args.conn_max_age)
    if fresh:
        if url.startswith(("postgres://", "postgresql://")):
            postgres_recreate(url)
        elif url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    import django

    django.setup()
    if fresh:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
    return url


def load_average() -> str:
    """The 1-minute load average and the core count: other work on the machine skews timings."""
    try:
        one, _, _ = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f} on {os.cpu_count()} cores"


def vendor() -> str:
    from django.db import connection

    return {"postgresql": "PostgreSQL", "sqlite": "SQLite"}.get(
        connection.vendor, connection.vendor
    )


def reset_process_state() -> None:
    """Forget loaded documents and commit queues (as the test suite does between tests)."""
    from tables import commit
    from tables.loaded import doc_cache

    doc_cache.clear()
    commit._queues.clear()


# --- Measuring ------------------------------------------------------------------------------


def rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def print_profile(profiler: Any, top: int) -> None:
    """A cProfile's ``top`` entries by own time, then by cumulative time."""
    import io
    import pstats

    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(key).print_stats(top)
        print(out.getvalue())


def trim_malloc() -> bool:
    """Hand the free pages glibc keeps for reuse back to the system; False where it cannot
    (not glibc)."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs``); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak RSS since start or since ``reset_peak_rss`` (VmHWM), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def mib(n: float) -> str:
    return f"{n / 1048576:,.1f} MiB"


def kib(n: float) -> str:
    return f"{n / 1024:,.1f} KiB"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    if title:
        print(f"\n{title}")
    line = "  ".join("-" * w for w in widths)
    for index, row in enumerate(cells):
        print(
            "  ".join(
                cell.ljust(w) if i == 0 or not _numeric(cell) else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            print(line)
    sys.stdout.flush()


def _numeric(cell: str) -> bool:
    return bool(cell) and (cell[0].isdigit() or cell[0] in "-.") and cell != "-"
