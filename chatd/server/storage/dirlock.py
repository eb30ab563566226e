"""One process a data dir: an exclusive lock (flock) on the file `lock` in
it, held while the node runs. A second node on the same dir, or a restart
while the old process is still stopping, waits for it a bounded time, then
refuses: two processes on one SQLite store would each take the other's
membership and log for their own."""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path

from chatd.server.errors import DataDirBusy

log = logging.getLogger(__name__)

LOCK_FILE = "lock"
WAIT_S = 10.0  # how long a second process waits for the dir
POLL_S = 0.1


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, wait_s: float = WAIT_S) -> None:
        """Takes the lock, waiting up to `wait_s` for the process holding it
        (saying so once); DataDirBusy if it still holds it then, OSError if
        the lock file cannot be opened."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + wait_s
        said = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = _holder(fd)
                    if time.monotonic() >= deadline:
                        raise DataDirBusy(
                            f"the data dir {self.path.parent} is in use by {holder} "
                            f"(still after {wait_s:g} s): one node a data dir"
                        ) from None
                    if not said:
                        said = True
                        log.warning(
                            "the data dir %s is in use by %s; waiting (up to %g s) for it to stop",
                            self.path.parent,
                            holder,
                            wait_s,
                        )
                    time.sleep(POLL_S)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # (closing it releases the lock)
            self._fd = None


def _holder(fd: int) -> str:
    """ "pid N", as the process holding the lock wrote it."""
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return f"pid {text}" if text.isdigit() else "another process"
