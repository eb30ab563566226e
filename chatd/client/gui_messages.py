"""The GUI's message list (chatd.client.gui): a Tk Text widget that shows a
conversation's messages, each in a range tagged with its id, so that one
message is drawn again in place when an edit, a deletion or a reaction
changes it, and the message under the pointer (or the one selected with
the keyboard) is found for its context menu.

A message reads, on up to three lines:

      ↪ bob: the start of what it answers
    12:01  alice (Alice Example): the text (edited)   ("Message deleted" once deleted)
      👍 2  ❤️ 1

Imports: chatd.client.model and chatd.client.shown (Tk only when a view is made)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from chatd.client.model import Message
from chatd.client.shown import quote, who

if TYPE_CHECKING:
    import tkinter as tk

REPLY_MARK = "\N{RIGHTWARDS ARROW WITH HOOK}"
DELETED = "Message deleted"
_TAG = re.compile(r"m(\d+)")
COLORS = [
    ("time", "#888"),
    ("me", "#1f5fbf"),
    ("them", "#2e7d32"),
    ("meta", "#888"),
    ("quote", "#666"),
    ("reactions", "#555"),
    ("deleted", "#999"),
    ("file", "#1f5fbf"),
]


def tag_of(message_id: int) -> str:
    return f"m{message_id}"


class MessageView:
    """Draws messages into `text`; `quoted(id)` gives the message a reply
    answers (None: not known yet)."""

    def __init__(self, text: tk.Text, quoted: Callable[[int], Message | None]) -> None:
        self.text = text
        self.quoted = quoted
        self.me: str | None = None
        self.selected: int | None = None
        # draws a message's file at an index, tagged: (message, index, tag)
        self.draw_file: Callable[[Message, str, str], None] | None = None
        # how a sender is named: "bob (Bob Smith)" (chatd.client.gui_profiles)
        self.label: Callable[[str], str] = lambda name: name
        for tag, color in COLORS:
            text.tag_configure(tag, foreground=color)
        text.tag_configure("deleted", font=("TkDefaultFont", 10, "italic"))
        text.tag_configure("selected", background="#e3ecf8")
        text.mark_set("redraw", "1.0")

    def insert(self, m: Message, at: str = "end") -> None:
        """Writes message `m` at index `at` ("end", or the mark "redraw")."""
        text, mine, tag = self.text, m.sender == self.me, tag_of(m.id)
        if m.reply_to:
            replied = self.quoted(m.reply_to)
            said = f"{who(replied.sender, self.me)}: {quote(replied)}" if replied else "…"
            text.insert(at, f"  {REPLY_MARK} {said}\n", ("quote", tag))
        text.insert(at, m.time.astimezone().strftime("%H:%M  "), ("time", tag))
        text.insert(at, "you" if mine else self.label(m.sender), ("me" if mine else "them", tag))
        if m.deleted:
            text.insert(at, ": ", (tag,))
            text.insert(at, DELETED, ("deleted", tag))
        else:
            text.insert(at, f": {m.body}", (tag,))
            if m.edited:
                text.insert(at, " (edited)", ("meta", tag))
        text.insert(at, "\n", (tag,))
        if m.file is not None and not m.deleted and self.draw_file is not None:
            self.draw_file(m, at, tag)
        if m.reactions:
            line = "   ".join(f"{emoji} {len(users)}" for emoji, users in m.reactions)
            text.insert(at, f"  {line}\n", ("reactions", tag))
        if m.id == self.selected:
            self._highlight(see=False)

    def redraw(self, m: Message) -> bool:
        """Draws message `m` again where it is (False: it is not shown)."""
        ranges = self.text.tag_ranges(tag_of(m.id))
        if not ranges:
            return False
        text = self.text
        disabled = str(text.cget("state")) == "disabled"
        text.configure(state="normal")
        text.delete(ranges[0], ranges[-1])
        text.mark_set("redraw", ranges[0])
        text.mark_gravity("redraw", "right")
        self.insert(m, "redraw")
        if disabled:
            text.configure(state="disabled")
        return True

    def redraw_all(self, shown: Mapping[int, Message], changed: int) -> None:
        """Draws message `changed` again, and the replies that quote it."""
        for mid, m in shown.items():
            if mid == changed or m.reply_to == changed:
                self.redraw(m)

    def message_at(self, x: int, y: int) -> int | None:
        """The id of the message drawn at pixel (x, y) of the widget."""
        for tag in self.text.tag_names(f"@{x},{y}"):
            if found := _TAG.fullmatch(str(tag)):
                return int(found[1])
        return None

    def select(self, message_id: int | None) -> None:
        self.selected = message_id
        self._highlight(see=True)

    def _highlight(self, *, see: bool) -> None:
        text = self.text
        text.tag_remove("selected", "1.0", "end")
        if self.selected is None:
            return
        ranges = text.tag_ranges(tag_of(self.selected))
        if ranges:
            text.tag_add("selected", ranges[0], ranges[-1])
            if see:
                text.see(ranges[0])

    def screen_point(self, message_id: int) -> tuple[int, int]:
        """Where on the screen message `message_id` starts (its menu opens there)."""
        text = self.text
        ranges = text.tag_ranges(tag_of(message_id))
        box = text.bbox(ranges[0]) if ranges else None
        x, y = (box[0] + 40, box[1] + box[3]) if box else (20, 20)
        return text.winfo_rootx() + x, text.winfo_rooty() + y
