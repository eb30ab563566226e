"""The terminal client's file commands: `/send-file PATH [TEXT]` uploads a
file and sends it (with the text, if any) to the conversation shown;
`/download ID [PATH]` saves the file of message ID (chatd.client.files_view
says where, and why a node-given name is never a path).

"/send-file", not "/attach": the command sends at once, as /send does; an
"attach" would promise a draft the next line goes with.

A PATH with spaces is quoted ('/send-file "my cat.png" look'); "~" is the
home folder. Imports: chatd.client.api, conversation, errors, files_view, model."""

from __future__ import annotations

import asyncio
import io
import os
import shlex
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from chatd.client import conversation
from chatd.client.api import ChatClient
from chatd.client.conversation import Conversation
from chatd.client.errors import ChatError, NotLoggedIn
from chatd.client.files_view import save, shown_name, size_text
from chatd.client.model import FileRef, Message
from chatd.contract import Code


def path_and_rest(rest: str) -> tuple[str, str] | None:
    """(the path, the text after it) of "PATH [TEXT]", PATH maybe quoted
    (None: no path, or an unclosed quote)."""
    stream = io.StringIO(rest)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split = True
    try:
        path = lexer.get_token()
    except ValueError:
        return None
    if not path:
        return None
    return os.path.expanduser(path), stream.read().strip()


async def upload(
    client: ChatClient, path: str, out: Callable[[str], None], verb: str
) -> FileRef | None:
    """The file at `path` uploaded; None (said with `out`: "cannot VERB
    PATH: why") if it could not be read or the node refused it. NotLoggedIn
    is raised."""
    try:
        return await client.upload_file(path)
    except OSError as exc:
        out(f"cannot read {path}: {exc.strerror or exc}")
    except NotLoggedIn:
        raise
    except ChatError as exc:
        out(f"cannot {verb} {path}: {exc.message}")
    return None


class FileCommands:
    """/send-file and /download: a mixin of chatd.client.terminal.Terminal."""

    if TYPE_CHECKING:  # (Terminal's)
        client: ChatClient
        out: Callable[[str], None]
        peer: Conversation | None
        known: dict[int, Message]
        _send: Callable[..., Coroutine[Any, Any, None]]
        _message_args: Callable[..., tuple[int, str] | None]

    def _logged_in(self) -> None:
        if self.client.username is None:
            raise NotLoggedIn(Code.NOT_LOGGED_IN, "not logged in")

    async def _cmd_send_file(self, rest: str) -> None:
        parsed = path_and_rest(rest)
        if parsed is None:
            self.out("usage: /send-file PATH [TEXT] (a PATH with spaces in quotes)")
            return
        self._logged_in()
        if self.peer is None:
            self.out("choose someone to talk to first: /chat NAME")
            return
        path, text = parsed
        to = self.peer
        ref = await upload(self.client, path, self.out, "send")
        if ref is not None:
            await self._send(to, text, file=ref)

    async def _cmd_download(self, rest: str) -> None:
        args = self._message_args(rest, "/download ID [PATH]", text=False)
        if args is None:
            return
        mid, where = args
        if where[:1] in ("'", '"'):
            parsed = path_and_rest(where)
            where = parsed[0] if parsed is not None else where
        m = self.known.get(mid)
        if m is None and self.peer is not None:
            try:
                m = await conversation.message(self.client, self.peer, mid)
            except NotLoggedIn:
                raise
            except ChatError:
                m = None
        if m is None:
            self.out(f"message {mid} is not on this screen: /chat to its conversation first")
            return
        if m.file is None or m.deleted:
            self.out(f"message {mid} carries no file")
            return
        ref = m.file
        try:
            data = await self.client.download_file(ref.file_id)
        except NotLoggedIn:
            raise
        except ChatError as exc:
            self.out(f"cannot download the file of message {mid}: {exc.message}")
            return
        try:
            saved = await asyncio.to_thread(save, data, ref.name, where or None)
        except OSError as exc:
            self.out(f"cannot save the file of message {mid}: {exc.strerror or exc}")
            return
        self.out(f"saved {shown_name(ref.name)} ({size_text(len(data))}) as {saved}")
