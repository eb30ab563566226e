"""The GUI's files (a mixin of chatd.client.gui.ChatApp): "Attach…" beside
the input box picks a file and sends it, with the input box's text, to the
conversation shown; a message with a file shows "📎 name (size)" under its
text and, for an image, its thumbnail (the node's PNG, fetched once per
file, then the message drawn again in place); "Save as…" in its menu, or a
double-click on it, saves the file where the user says.

Imports: chatd.client.api, conversation, files_view, model (Tk only when the
window is made)."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatd.client import conversation
from chatd.client.api import ChatClient
from chatd.client.conversation import Conversation, InRoom
from chatd.client.files_view import CLIP, default_folder, safe_name, shown_name, size_text
from chatd.client.model import FileRef, Message

if TYPE_CHECKING:
    import concurrent.futures
    import tkinter as tk
    from tkinter import ttk

    from chatd.client.gui_messages import MessageView

MAX_THUMBNAILS = 200  # images kept (the oldest go first)


class FileActions:
    if TYPE_CHECKING:  # (ChatApp's)
        root: tk.Tk
        client: ChatClient
        me: str | None
        peer: Conversation | None
        history: dict[int, Message]
        input: ttk.Entry
        notice_var: tk.StringVar
        conversation: tk.Text
        view: MessageView
        call: Callable[..., concurrent.futures.Future[Any]]
        _notice: Callable[..., None]
        _add_messages: Callable[[Conversation, list[Message]], None]

    def _files_ready(self) -> None:
        """Called once the widgets are made: the message list draws files
        through `_draw_file`; a double-click saves a message's file."""
        self.thumbnails: dict[str, tk.PhotoImage] = {}  # by file id
        self._thumbnails_asked: set[str] = set()
        self.view.draw_file = self._draw_file
        self.conversation.bind("<Double-Button-1>", self._double_clicked)

    # -- sending --

    def ask_file(self) -> str:
        """The file the user picks ("": none). (Tests patch it.)"""
        from tkinter import filedialog

        return str(filedialog.askopenfilename(parent=self.root, title="Attach a file") or "")

    def ask_save_path(self, ref: FileRef) -> str:
        """Where the user saves a file ("": cancelled). (Tests patch it.)"""
        from tkinter import filedialog

        chosen = filedialog.asksaveasfilename(
            parent=self.root,
            title="Save as",
            initialdir=str(default_folder()),
            initialfile=safe_name(ref.name),
        )
        return str(chosen or "")

    def attach(self) -> None:
        """Attach…: uploads the file picked and sends it here, with the
        input box's text."""
        peer, me = self.peer, self.me
        if peer is None or me is None:
            self.notice_var.set("choose a contact first")
            return
        path = self.ask_file()
        if not path:
            return
        text = self.input.get().strip()
        self.notice_var.set(f"sending {Path(path).name}…")

        async def upload_and_send() -> tuple[int, FileRef]:
            ref = await self.client.upload_file(path)
            return await conversation.send(self.client, peer, text, 0, ref.file_id), ref

        def done(sent: tuple[int, FileRef]) -> None:
            message_id, ref = sent
            if self.input.get().strip() == text:
                self.input.delete(0, "end")
            self.notice_var.set("")
            m = Message(message_id, me, str(peer), text, datetime.now(UTC), file=ref)
            if isinstance(peer, InRoom):
                m = dataclasses.replace(m, room=peer.name)
            self._add_messages(peer, [m])
            self.conversation.see("end")

        def failed(exc: Exception) -> None:
            if isinstance(exc, OSError):
                self.notice_var.set(f"cannot read {path}: {exc.strerror or exc}")
            else:
                self._notice(exc, str(peer))

        self.call(upload_and_send(), done, failed)

    # -- showing --

    def _draw_file(self, m: Message, at: str, tag: str) -> None:
        """Writes message `m`'s file line (and its thumbnail) at `at`."""
        ref = m.file
        if ref is None:
            return
        text = self.conversation
        line = f"  {CLIP} {shown_name(ref.name)} ({size_text(ref.size)})\n"
        text.insert(at, line, ("file", tag))
        if not ref.has_thumbnail:
            return
        image = self.thumbnails.get(ref.file_id)
        if image is None:
            self._fetch_thumbnail(m.id, ref)
            return
        text.insert(at, "  ", (tag,))
        name = text.image_create(at, image=image, padx=2, pady=2)
        text.tag_add(tag, name)
        text.insert(at, "\n", (tag,))

    def _fetch_thumbnail(self, message_id: int, ref: FileRef) -> None:
        if ref.file_id in self._thumbnails_asked:
            return
        self._thumbnails_asked.add(ref.file_id)

        def done(png: bytes) -> None:
            import tkinter as tk

            try:
                image = tk.PhotoImage(master=self.root, data=base64.b64encode(png).decode())
            except tk.TclError:
                return  # (not an image Tk reads: the line says what the file is)
            if len(self.thumbnails) >= MAX_THUMBNAILS:
                self.thumbnails.pop(next(iter(self.thumbnails)))
            self.thumbnails[ref.file_id] = image
            m = self.history.get(message_id)
            if m is not None:
                self.view.redraw(m)

        def failed(_exc: Exception) -> None:  # (asked again when the message is drawn again)
            self._thumbnails_asked.discard(ref.file_id)

        self.call(self.client.download_file(ref.file_id, thumbnail=True), done, failed)

    # -- saving --

    def _double_clicked(self, event: tk.Event[tk.Text]) -> str | None:
        mid = self.view.message_at(event.x, event.y)
        m = self.history.get(mid) if mid is not None else None
        if m is None or m.file is None or m.deleted:
            return None
        self.save_as(m)
        return "break"

    def save_as(self, m: Message) -> None:
        """Save as…: downloads message `m`'s file to where the user says."""
        ref = m.file
        if ref is None:
            return
        path = self.ask_save_path(ref)
        if not path:
            return

        async def fetch() -> bytes:
            return await self.client.download_file(ref.file_id)

        def done(data: bytes) -> None:
            try:
                Path(path).write_bytes(data)  # (the dialog asked before replacing a file)
            except OSError as exc:
                self.notice_var.set(f"cannot save {path}: {exc.strerror or exc}")
                return
            self.notice_var.set(f"saved {shown_name(ref.name)} as {path}")

        self.call(fetch(), done, self._notice)
