"""The newest log entries' bytes, kept in memory for replication: at most
RECENT_ENTRIES of them and RECENT_BYTES in all (a file's chunks are big
entries); replication reads the older ones from the log."""

from __future__ import annotations

from collections import OrderedDict

RECENT_ENTRIES = 20_000
# file chunks are 15 KiB entries (chatd.server.storage.files): 20,000 of
# them would be 300 MB
RECENT_BYTES = 32 << 20


class Recent(OrderedDict[int, bytes]):
    """Entry bytes by index, oldest first; `size` their total. (Ordered: a
    plain dict finds its oldest key by walking past the slots of the keys
    dropped before it, 3.5 us an entry once full.)"""

    def __init__(self) -> None:
        super().__init__()
        self.size = 0

    def keep(self, index: int, data: bytes) -> None:
        """Keeps the entry, dropping the oldest ones past the bounds."""
        self.size += len(data) - len(self.pop(index, b""))  # (a replaced tail's)
        self[index] = data
        while len(self) > RECENT_ENTRIES or (self.size > RECENT_BYTES and len(self) > 1):
            self.size -= len(self.popitem(last=False)[1])

    def clear(self) -> None:
        super().clear()
        self.size = 0
