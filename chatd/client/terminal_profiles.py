"""The terminal client's profile commands: `/name [DISPLAY NAME]` shows or
sets my display name, `/avatar PATH` uploads an image and makes it my
avatar. Lines name people "bob (Bob Smith)" (chatd.client.profiles keeps
the names, a minute each).

`/name -` clears the name (and `/avatar -` the avatar): `/name` alone
already means "show it", so clearing needs a word, and a lone "-" is the
usual "none" of a command line and no one's name (a display name of a
dash alone is what it cannot set). A profile is one record (SetProfile
sets both fields), so each command sends the other field as it was.

Imports: chatd.client.api, errors, files, profiles, terminal_files."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chatd.client.api import ChatClient
from chatd.client.errors import NotLoggedIn
from chatd.client.files import Profile
from chatd.client.profiles import Profiles, printable
from chatd.client.terminal_files import path_and_rest, upload
from chatd.contract import Code

CLEAR = "-"


class ProfileCommands:
    """/name and /avatar: a mixin of chatd.client.terminal.Terminal."""

    if TYPE_CHECKING:  # (Terminal's)
        client: ChatClient
        out: Callable[[str], None]
        profiles: Profiles

    def _me(self) -> str:
        me = self.client.username
        if me is None:
            raise NotLoggedIn(Code.NOT_LOGGED_IN, "not logged in")
        return me

    async def _mine(self, me: str) -> Profile:
        """My profile as the node has it now (another device may have set it)."""
        got = await self.client.get_profiles([me])
        return next(iter(got.values()), Profile(me, "", ""))

    async def _set(self, me: str, display_name: str, avatar_file_id: str) -> None:
        await self.client.set_profile(display_name, avatar_file_id)
        kept = Profile(me, display_name, avatar_file_id)
        self.profiles.note(me, kept if display_name or avatar_file_id else None)

    async def _cmd_name(self, rest: str) -> None:
        me = self._me()
        mine = await self._mine(me)
        if not rest:
            self.out(
                f"your display name: {printable(mine.display_name)}"
                if mine.display_name
                else "you have no display name: /name DISPLAY NAME sets one"
            )
            return
        name = "" if rest == CLEAR else rest
        await self._set(me, name, mine.avatar_file_id)
        self.out(f"your display name is now {name}" if name else "display name cleared")

    async def _cmd_avatar(self, rest: str) -> None:
        parsed = None if rest == CLEAR else path_and_rest(rest)
        if rest != CLEAR and (parsed is None or parsed[1]):
            self.out("usage: /avatar PATH (an image; a PATH with spaces in quotes), /avatar -")
            return
        me = self._me()
        mine = await self._mine(me)
        if parsed is None:
            await self._set(me, mine.display_name, "")
            self.out("avatar cleared")
            return
        path = parsed[0]
        ref = await upload(self.client, path, self.out, "upload")
        if ref is None:
            return
        if not ref.content_type.startswith("image/"):
            self.out(f"{path} is no image ({ref.content_type}): an avatar is a picture")
            return
        await self._set(me, mine.display_name, ref.file_id)
        self.out(f"your avatar is now {ref.name}")
