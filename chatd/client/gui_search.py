"""The GUI's search window (Ctrl+F, chatd.client.gui): words to find in
all my conversations ("#room words" or "@name words": in that one only),
the results newest first (when, where, who, text), More for older ones;
Enter or a double-click on a result opens its conversation at it.

The window never calls the library: `run(words, peer, room, before)`
searches (in the GUI's loop thread) and hands the page back to `shown`,
or a refusal's words to `failed`.

Imports: chatd.client.conversation, chatd.client.model, chatd.client.notices
and chatd.client.search."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from datetime import datetime
from tkinter import ttk

from chatd.client.conversation import of_message
from chatd.client.model import Message
from chatd.client.notices import search_scope
from chatd.client.search import SearchPage
from chatd.client.shown import who

Run = Callable[[str, str, str, int], None]


class SearchWindow:
    def __init__(
        self,
        root: tk.Misc,
        run: Run,
        open_at: Callable[[Message], None],
        me: Callable[[], str | None],
    ) -> None:
        self.run, self.open_at, self.me = run, open_at, me
        self.top = tk.Toplevel(root)
        self.top.title("Search messages")
        self.top.geometry("640x360")
        self.top.protocol("WM_DELETE_WINDOW", self.top.withdraw)
        self.top.bind("<Escape>", lambda _e: self.top.withdraw())
        bar = ttk.Frame(self.top, padding=6)
        bar.pack(fill="x")
        self.entry = ttk.Entry(bar)
        self.entry.pack(side="left", fill="x", expand=True)
        self.entry.bind("<Return>", lambda _e: self.search())
        ttk.Button(bar, text="Search", command=self.search).pack(side="left", padx=(4, 0))
        self.status_var = tk.StringVar(self.top, 'words; "#room words" or "@name words": one only')
        ttk.Label(self.top, textvariable=self.status_var, padding=(6, 0)).pack(fill="x")
        bottom = ttk.Frame(self.top, padding=6)
        bottom.pack(side="bottom", fill="x")
        self.more_button = ttk.Button(bottom, text="More", command=self.more, state="disabled")
        self.more_button.pack(side="right")
        columns = ("when", "where", "who", "text")
        self.results = ttk.Treeview(self.top, columns=columns, show="headings")
        for column, width in zip(columns, (110, 90, 80, 340), strict=True):
            self.results.heading(column, text=column.capitalize())
            self.results.column(column, width=width, stretch=column == "text")
        self.results.pack(fill="both", expand=True, padx=6)
        self.results.bind("<Double-1>", self._open)
        self.results.bind("<Return>", self._open)
        self.found: dict[int, Message] = {}
        self._query: tuple[str, str, str] | None = None
        self._next = 0

    def show(self) -> None:
        self.top.deiconify()
        self.top.lift()
        self.entry.focus_set()

    def search(self) -> None:
        scope = search_scope(self.entry.get())
        if scope is None:
            self.status_var.set("type the words to find")
            return
        self._query, self._next = scope, 0
        self.results.delete(*self.results.get_children())
        self.found = {}
        self.status_var.set("searching…")
        self.run(*scope, 0)

    def more(self) -> None:
        if self._query is not None and self._next:
            self.more_button.configure(state="disabled")
            self.run(*self._query, self._next)

    def shown(self, page: SearchPage) -> None:
        """A page of results came (after the rows there)."""
        me, today = self.me(), datetime.now().astimezone().date()
        for m in page.messages:
            if m.id in self.found:
                continue
            self.found[m.id] = m
            local = m.time.astimezone()
            when = local.strftime("%H:%M" if local.date() == today else "%Y-%m-%d %H:%M")
            where = str(of_message(m, me))
            self.results.insert(
                "", "end", iid=str(m.id), values=(when, where, who(m.sender, me), m.body)
            )
        self._next = page.next_before
        self.more_button.configure(state="normal" if page.next_before else "disabled")
        n = len(self.found)
        self.status_var.set(
            f"{n} found" + (": More for older ones" if page.next_before else "")
            if n
            else "nothing found"
        )
        children = self.results.get_children()
        if children and not self.results.selection():
            self.results.selection_set(children[0])
            self.results.focus(children[0])

    def failed(self, why: str) -> None:
        self.status_var.set(why)

    def _open(self, _event: object = None) -> str:
        selected = self.results.selection()
        if selected:
            self.open_at(self.found[int(selected[0])])
        return "break"
