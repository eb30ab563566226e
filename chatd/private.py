"""Files that hold chat data or secrets are their owner's alone.

A store, its write-ahead log, a backup or an export holds every private
message and every password hash: under the usual umask (022) they would be
readable by every local account. A node makes its data dir 0700 and every
file it writes 0600 whatever the umask it was started under (it sets its
own: the temporaries, snapshots and restores it writes are covered too),
and makes private at start what an older version or another tool left open
to others. The operator commands write their files 0600 too.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

UMASK = 0o077  # what a node creates: no access for group or others
DIR_MODE = 0o700
FILE_MODE = 0o600


def data_dir(path: Path) -> None:
    """Makes the node's data dir (0700) or makes an existing one private,
    with the files and dirs in it, saying so in one WARNING line; and sets
    this process's umask so that everything it creates from now on is
    private. OSError if the dir cannot be made."""
    os.umask(UMASK)
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    opened: list[str] = []
    refused: list[str] = []
    for p in (path, *sorted(path.iterdir())):
        st = p.lstat()
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)) or not st.st_mode & 0o077:
            continue
        mode = stat.S_IMODE(st.st_mode)
        named = f"{p} ({mode:04o})"
        try:
            p.chmod(mode & ~0o077)
            opened.append(named)
        except OSError as exc:
            refused.append(f"{named}: {exc.strerror}")
    if opened or refused:
        log.warning(
            "data dir %s was open to other local users, who could read its messages and "
            "password hashes: %s%s",
            path,
            f"made private (0700 for dirs, 0600 for files): {', '.join(opened)}" if opened else "",
            f"{'; ' if opened else ''}could not change: {', '.join(refused)}" if refused else "",
        )


def new_file_beside(target: Path) -> Path:
    """A new empty file (0600) in `target`'s directory, with a name of its
    own: where a file is written before it is moved to `target`."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    return Path(name)


def place(written: Path, target: Path, replace: bool) -> None:
    """Moves a finished file to `target`. Without `replace`, an existing
    `target` is kept (FileExistsError), even one made meanwhile."""
    if not replace:
        try:
            os.link(written, target)  # (fails if target exists, atomically)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links
            if target.exists():
                raise FileExistsError(target) from None
        else:
            written.unlink()
            return
    os.replace(written, target)


def restrict(stream: IO[str]) -> None:
    """Makes an open regular file (a redirected stdout) 0600 before anything
    is written to it; other files (a terminal, a pipe) are left alone."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # not a file of the system's (a test's capture)
        return
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o077:
        os.fchmod(fd, FILE_MODE)
