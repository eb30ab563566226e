"""What both front ends know of people's profiles: display names (and
avatars), asked with GetProfiles in batches and kept KEEP_S seconds, as
the web page does; a delivery carries none. A name asked and not answered
(no profile, or the call failed) is asked again only after KEEP_S too, so
a burst of messages costs one call, not one each; a batch not answered in
WAIT_S counts as failed (a line waits for it at most that long).

`labelled("bob", "Bob Smith")` is how a line names someone: "bob (Bob
Smith)". A display name is shown without the characters a screen would
take as commands (a node checks them; a hostile one might not).

Imports: chatd.client.api, errors, files."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from chatd.client.api import ChatClient
from chatd.client.errors import ChatError
from chatd.client.files import Profile

KEEP_S = 60.0  # a profile read is shown this long before it is asked again
BATCH = 1000  # the most names one GetProfiles takes
WAIT_S = 3.0  # the longest a batch is waited for (the terminal prints a line after it)


def printable(text: str) -> str:
    return "".join(c for c in text if c.isprintable())


def labelled(name: str, display: str) -> str:
    """ "bob (Bob Smith)"; "bob" when there is no display name, or it is
    the username itself."""
    shown = printable(display).strip()
    if not shown or shown.casefold() == name.casefold():
        return name
    return f"{name} ({shown})"


class Profiles:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._known: dict[str, tuple[Profile | None, float]] = {}  # lower-case name ->

    def clear(self) -> None:
        self._known.clear()

    def note(self, name: str, profile: Profile | None) -> None:
        """What I set (mine, known now without asking)."""
        self._known[name.lower()] = (profile, self.clock())

    def profile(self, name: str) -> Profile | None:
        got = self._known.get(name.lower())
        return got[0] if got is not None else None

    def display(self, name: str) -> str:
        """The display name of `name` as known now ("": none, or not known)."""
        p = self.profile(name)
        return p.display_name if p is not None else ""

    def label(self, name: str) -> str:
        return labelled(name, self.display(name))

    def stale(self, names: Iterable[str]) -> list[str]:
        """Those of `names` not known, or known for longer than KEEP_S."""
        now = self.clock()
        out: dict[str, None] = {}
        for n in names:
            got = self._known.get(n.lower())
            if n and (got is None or now - got[1] > KEEP_S):
                out[n.lower()] = None
        return list(out)

    async def fetch(self, client: ChatClient, names: Iterable[str]) -> None:
        """Asks for the profiles of those of `names` that are stale, in
        batches; a failed call leaves them as they were (asked again later)."""
        wanted = self.stale(names)
        for start in range(0, len(wanted), BATCH):
            batch = wanted[start : start + BATCH]
            at = self.clock()
            try:
                async with asyncio.timeout(WAIT_S):
                    got = await client.get_profiles(batch)
            except (ChatError, TimeoutError):
                for n in batch:
                    self._known[n] = (self.profile(n), at)
                continue
            for n in batch:
                self._known[n] = (None, at)
            for p in got.values():
                self._known[p.username.lower()] = (p, at)
