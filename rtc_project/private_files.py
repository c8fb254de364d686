"""Files only this server's user may read, whatever the umask: the data folder (the SQLite
database, the generated secret key) holds every datastore and every session, so a default
umask of 022 must not hand them to every account on the machine."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` made (with its parents) if missing; the folder itself, when made here, 0700.

    A folder that exists already is left as the operator made it (it may be shared on purpose);
    its files are still made private below."""
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:  # another process made it meanwhile
            pass
        else:
            path.chmod(DIR_MODE)  # mkdir's mode is filtered by the umask
    return path


def private_file(path: Path, *, tighten: bool = True) -> bool:
    """Make ``path`` 0600 (and empty) if it does not exist, atomically, so it is never readable
    by others, not even for a moment; an existing file is made 0600 when ``tighten``. True when
    it was made here."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        if tighten and path.stat().st_uid == os.geteuid():  # another user's: theirs to set
            path.chmod(FILE_MODE)
        return False
    os.close(descriptor)
    return True


def write_private(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it exists, readable by this user only; the file
    appears whole (written aside, then linked into place), so a process starting at the same
    moment reads all of it or finds none. False when ``path`` existed."""
    descriptor, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        try:
            os.link(scratch, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(scratch)


def private_sqlite(name: str) -> None:
    """The SQLite database file ``name`` made (empty, which SQLite takes as a new database) or
    tightened to 0600 before anything opens it: SQLite makes its -wal and -shm files with the
    database file's mode, so they are private too."""
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    private_file(path)
