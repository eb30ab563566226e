"""The GUI client, `chatd gui`: tkinter/ttk in the main thread, the async
client library on an asyncio loop (uvloop) in a worker thread.

Tk may only be touched from the main thread, and tkinter hands over a call
made in another thread only while `mainloop()` runs (under `update()` it
raises "main thread is not in main loop"; a main thread joining the worker
would deadlock). So the worker never calls Tk: coroutines go to the loop
with `asyncio.run_coroutine_threadsafe`, and their results, connection
events and incoming messages come back as callables on a queue that the
main thread drains from a `root.after` timer.

Incoming messages come from `ChatClient.inbox()`: the unread ones, then live
ones, each exactly once and across failovers, marked delivered by the
library. Rooms are listed before the contacts, as "#name" (the contacts
list names each row by the conversation's str()). Unread counts
are the server's (what the user's read markers leave, on every device),
fetched anew on every incoming message and every refresh; a room's
conversation shows its members in its heading, and what it shows of a
conversation counts as read.

A message's context menu (right-click on it, or the Menu key / Shift+F10 on
the selected one: a click or Up and Down select) offers Reply, Edit (one's
own), Delete (one's own, or any in a room one is an admin of) and React ▸;
Reply and Edit work through the input box, which then says so above it,
with a ✕ (or Escape) to cancel. An edit, deletion or reaction, one's own or
arriving on the stream, redraws the message in place (chatd.client.gui_messages).

Under the conversation, a line says who is typing there (sent while the
user types a message in the input box) and whether my last message there
was seen ("Seen"; in a room "Seen by N"), from the read receipts; the
"Share read receipts" box sets whether others see mine (and I theirs).
Ctrl+F (or Search…) opens the search window (chatd.client.gui_search).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import logging
import queue
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from chatd.client import conversation, errors
from chatd.client.api import ChatClient
from chatd.client.conversation import Conversation, InRoom, Peer, of_message, said
from chatd.client.errors import ChatError, NotLoggedIn, UsernameTaken, WrongPassword
from chatd.client.gui_files import FileActions
from chatd.client.gui_messages import MessageView
from chatd.client.gui_profiles import ProfileActions
from chatd.client.model import (
    DELETE,
    EDIT,
    REACT,
    UNREACT,
    ConnectionEvent,
    Message,
    Receipt,
    Typing,
    User,
    applied,
)
from chatd.client.notices import Typists, newest_mine, receipt_where
from chatd.client.rooms import Room, RoomMember, Unread, room_changes
from chatd.client.shown import NAMES, quote, who
from chatd.contract import Code
from chatd.tls import TlsError, credentials_of, tls_options
from chatd.words import counted

try:  # a Python without Tk (python:3.11-slim has no libtk) still imports this module
    import tkinter as tk
    from tkinter import ttk
except ImportError as exc:  # pragma: no cover - main() reports it
    NO_TK: ImportError | None = exc
else:
    NO_TK = None

T = TypeVar("T")
W = TypeVar("W", bound="tk.Widget")
log = logging.getLogger(__name__)
POLL_MS = 25  # how often the main thread takes what the worker handed back
PAGE = 50  # messages per history page
ON: dict[bool, Literal["normal", "disabled"]] = {True: "normal", False: "disabled"}
TEXT: dict[type[ChatError], str] = {
    UsernameTaken: "username already exists",
    NotLoggedIn: "your session ended: log in again",
}


def describe(exc: BaseException, name: str = "") -> str:
    """One clear line for a failed call, in this front end's words."""
    return errors.describe(exc, name, TEXT)


def packed(widget: W, side: Literal["left", "right", "top", "bottom"] = "top", **options: Any) -> W:
    widget.pack(side=side, **options)
    return widget


class LoopThread:
    """An asyncio event loop running in a worker thread."""

    def __init__(self) -> None:
        try:
            import uvloop

            self.loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - uvloop is a dependency
            self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="chatd-gui-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:  # cancel what is left, then close
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, timeout: float = 5.0) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)


class ChatApp(FileActions, ProfileActions):
    """The window: a log-in form, then contacts, a conversation and an input
    box; the connection state in the status bar."""

    def __init__(
        self,
        servers: Sequence[str] | str,
        *,
        root: tk.Tk | None = None,
        refresh_ms: int = 3000,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self.servers = servers if isinstance(servers, str) else ",".join(servers)
        self.client_options = client_options or {}
        self.refresh_ms = refresh_ms
        self.root = root or tk.Tk(className="chatd")
        self.runner = LoopThread()
        self._handed_back: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._clients: list[ChatClient] = []
        self.client = self._new_client()
        self._receiver: asyncio.Task[None] | None = None  # the loop thread's only
        self._events: asyncio.Task[None] | None = None  # typing, receipts: the loop's only
        self.typists = Typists()
        self.readers: dict[str, int] = {}  # the shown conversation's: name -> read up to
        self.search_window: Any = None  # (chatd.client.gui_search, made on first use)
        self.me: str | None = None
        self.peer: Conversation | None = None  # the conversation shown
        self.users: dict[str, bool] = {}  # name -> online
        self.rooms: dict[str, Room] = {}  # name -> the room, as last listed
        self.unread: dict[str, int] = {}  # user -> unread count
        self.history: dict[int, Message] = {}  # the shown conversation, by id
        self.quoted: dict[int, Message] = {}  # what replies answer, beyond `history`
        self._fetching: set[int] = set()  # of those, the ones asked for
        self.replying: Message | None = None  # what the input box answers
        self.editing: Message | None = None  # what the input box edits
        self.menu_message: int | None = None  # the message whose menu is open
        self.more_history = self._loading_older = self._refreshing = self._lost = False
        self._received: set[int] = set()
        self._generation = 0  # one more at each log-out: late answers are dropped
        self._tick_id: str | None = None
        self._reading: str | None = None  # a read marker to set shortly
        self.closed = False
        self._build()
        self.show_login()
        self._drain_id = self.root.after(POLL_MS, self._drain)
        self.root.protocol("WM_DELETE_WINDOW", self.close)

    # -- widgets --

    def _build(self) -> None:
        root, servers = self.root, self.servers.replace(",", ", ")
        root.title("chatd")
        root.geometry("860x560")
        root.minsize(560, 380)
        style = ttk.Style(root)
        if "clam" in style.theme_names():
            style.theme_use("clam")
        style.configure("Error.TLabel", foreground="#b00020")
        self.status_var = tk.StringVar(root, f"not connected yet ({servers})")
        self.login_error_var, self.notice_var = tk.StringVar(root), tk.StringVar(root)
        self.user_var, self.peer_var = tk.StringVar(root), tk.StringVar(root, "choose a contact")
        status = ttk.Label(root, textvariable=self.status_var, relief="sunken", padding=3)
        status.pack(side="bottom", fill="x")
        self._build_login_form(servers)
        self._build_chat_frame()

    def _build_login_form(self, servers: str) -> None:
        """The log-in / create-account form."""
        self.login_frame = ttk.Frame(self.root)
        form = ttk.Frame(self.login_frame)
        form.place(relx=0.5, rely=0.4, anchor="center")
        ttk.Label(form, text="chatd", font=("TkHeadingFont", 16, "bold")).grid(columnspan=2)
        ttk.Label(form, text=servers).grid(columnspan=2, pady=6)
        self.username_entry = ttk.Entry(form, width=28)
        self.password_entry = ttk.Entry(form, width=28, show="*")
        for row, (label, entry) in enumerate(
            [("Username", self.username_entry), ("Password", self.password_entry)], start=2
        ):
            ttk.Label(form, text=label).grid(row=row, column=0, sticky="e", padx=4, pady=4)
            entry.grid(row=row, column=1, pady=4)
            entry.bind("<Return>", lambda _e: self.log_in())
        buttons = ttk.Frame(form)
        buttons.grid(columnspan=2, pady=8)
        self.login_button = packed(ttk.Button(buttons, text="Log in", command=self.log_in), "left")
        self.create_button = ttk.Button(buttons, text="Create account", command=self.create_account)
        self.create_button.pack(side="left", padx=8)
        ttk.Label(form, textvariable=self.login_error_var, style="Error.TLabel").grid(columnspan=2)

    def _build_chat_frame(self) -> None:
        """After log-in: the user and Log out on top, then contacts | conversation."""
        self.chat_frame = ttk.Frame(self.root, padding=6)
        top = packed(ttk.Frame(self.chat_frame), fill="x")
        ttk.Label(top, textvariable=self.user_var).pack(side="left")
        self.logout_button = packed(ttk.Button(top, text="Log out", command=self.log_out), "right")
        self.password_button = ttk.Button(top, text="Password…", command=self.ask_password_change)
        self.password_button.pack(side="right", padx=6)
        self.share_var = tk.BooleanVar(self.root, True)
        self.share_box = ttk.Checkbutton(
            top, text="Share read receipts", variable=self.share_var, command=self.share_receipts
        )
        self.share_box.pack(side="right", padx=6)
        self.profile_button = ttk.Button(top, text="Profile…", command=self.open_profile)
        self.profile_button.pack(side="right", padx=6)
        self.search_button = ttk.Button(top, text="Search…", command=self.open_search)
        self.search_button.pack(side="right", padx=6)
        self.root.bind("<Control-f>", lambda _e: self.open_search())
        panes = packed(ttk.PanedWindow(self.chat_frame, orient="horizontal"), fill="both")
        panes.pack_configure(expand=True, pady=6)
        self._build_contacts(panes)
        right = ttk.Frame(panes)
        panes.add(self.contacts, weight=1)
        panes.add(right, weight=3)
        self._build_conversation(right)

    def _build_contacts(self, panes: ttk.PanedWindow) -> None:
        self.contacts = ttk.Treeview(panes, columns=("status", "unread"), selectmode="browse")
        for column, title, width in [("#0", "Contact", 120), ("status", "Status", 80)]:
            self.contacts.heading(column, text=title)
            self.contacts.column(column, width=width)
        self.contacts.heading("unread", text="Unread")
        self.contacts.column("unread", width=60, anchor="e")
        self.contacts.tag_configure("unread", font=("TkDefaultFont", 10, "bold"))
        self.contacts.tag_configure("offline", foreground="#777777")
        self.contacts.bind("<<TreeviewSelect>>", self._selected)

    def _build_conversation(self, right: ttk.Frame) -> None:
        """The peer's name and Load older, the input box, the messages."""
        head = packed(ttk.Frame(right), fill="x")
        peer_font = ("TkHeadingFont", 11, "bold")
        self.peer_avatar = packed(ttk.Label(head), "left", padx=(0, 4))
        ttk.Label(head, textvariable=self.peer_var, font=peer_font).pack(side="left")
        self.older_button = ttk.Button(head, text="Load older", command=self.load_older)
        self.older_button.pack(side="right")
        bottom = packed(ttk.Frame(right), "bottom", fill="x")
        ttk.Label(bottom, textvariable=self.notice_var, style="Error.TLabel").pack(side="bottom")
        # "Replying to …" / "Editing your message", shown above the input box while so
        self.compose_bar = ttk.Frame(bottom)
        self.compose_var = tk.StringVar(self.root)
        ttk.Label(self.compose_bar, textvariable=self.compose_var).pack(side="left")
        self.compose_cancel = ttk.Button(
            self.compose_bar, text="✕", width=2, command=self.cancel_compose
        )
        self.compose_cancel.pack(side="right")
        self.input = packed(ttk.Entry(bottom), "left", fill="x", expand=True, pady=(4, 0))
        self.input.bind("<Return>", self.send)
        self.input.bind("<Escape>", lambda _e: self.cancel_compose())
        self.send_button = ttk.Button(bottom, text="Send", command=self.send)
        self.send_button.pack(side="right", padx=(4, 0), pady=(4, 0))
        # who types there, and whether my last message was seen
        line = packed(ttk.Frame(right), "bottom", fill="x")
        self.typing_var, self.seen_var = tk.StringVar(self.root), tk.StringVar(self.root)
        ttk.Label(line, textvariable=self.typing_var, foreground="#555555").pack(side="left")
        ttk.Label(line, textvariable=self.seen_var, foreground="#555555").pack(side="right")
        self.input.bind("<KeyRelease>", self._typed, add="+")
        self.attach_button = ttk.Button(bottom, text="Attach…", command=self.attach)
        self.attach_button.pack(side="right", padx=(4, 0), pady=(4, 0))
        self.scrollbar = packed(ttk.Scrollbar(right, command=self._scrolled), "right", fill="y")
        self.conversation = tk.Text(right, wrap="word", state="disabled", width=40, height=10)
        self.conversation.configure(padx=6, pady=4, font="TkDefaultFont")
        self.conversation.configure(yscrollcommand=self.scrollbar.set)
        self.conversation.pack(side="left", fill="both", expand=True)
        self.conversation.configure(takefocus=True)
        self.view = MessageView(self.conversation, self._quoted)
        self._files_ready()
        self._profiles_ready()
        self.message_menu = tk.Menu(self.root, tearoff=False)
        self.react_menu = tk.Menu(self.message_menu, tearoff=False)
        self.conversation.bind("<Button-1>", self._clicked)
        # (the menu is posted without a grab: a click anywhere else takes it away)
        self.root.bind("<Button-1>", self._clicked_anywhere, add="+")
        self.conversation.bind("<Button-3>", self._right_clicked)
        for widget in (self.conversation, self.input):
            for key in ("<KeyPress-Menu>", "<Shift-F10>"):
                widget.bind(key, self._menu_key)
        self.conversation.bind("<Up>", lambda _e: self._select_next(-1))
        self.conversation.bind("<Down>", lambda _e: self._select_next(1))
        for sequence in ("<MouseWheel>", "<Button-4>"):  # the wheel, up: at the top, load older
            self.conversation.bind(sequence, lambda _e: self.root.after_idle(self._at_top))

    def show_login(self, error: str = "") -> None:
        self.chat_frame.pack_forget()
        self.login_frame.pack(fill="both", expand=True)
        self.login_error_var.set(error)
        self.login_button.configure(state="normal")
        self.create_button.configure(state="normal")
        self.root.title("chatd")
        self.username_entry.focus_set()

    def show_chat(self) -> None:
        self.login_frame.pack_forget()
        self.chat_frame.pack(fill="both", expand=True)
        self.root.title(f"chatd: {self.me}")
        self.user_var.set(f"Logged in as {self.me}")
        self.input.focus_set()

    # -- between the threads --

    def call(
        self,
        coro: Coroutine[Any, Any, T],
        done: Callable[[T], None] | None = None,
        failed: Callable[[Exception], None] | None = None,
    ) -> concurrent.futures.Future[T]:
        """Runs `coro` on the loop; `done(result)` or `failed(exc)` then run
        in the main thread (not if the session ended meanwhile)."""
        generation, future = self._generation, self.runner.submit(coro)

        def finish() -> None:
            if future.cancelled() or self.closed or generation != self._generation:
                return
            exc = future.exception()
            if exc is None:
                if done is not None:
                    done(future.result())
            elif isinstance(exc, Exception):
                if not isinstance(exc, ChatError):
                    log.error("GUI request failed", exc_info=exc)
                (failed or self._notice)(exc)

        future.add_done_callback(lambda _f: self._handed_back.put(finish))
        return future

    def _drain(self) -> None:
        """Main thread: runs what the worker handed back, then again soon."""
        while not self.closed:
            try:
                fn = self._handed_back.get_nowait()
            except queue.Empty:
                break
            try:
                fn()
            except Exception:
                log.exception("GUI callback failed")
        if not self.closed:
            self._drain_id = self.root.after(POLL_MS, self._drain)

    def _new_client(self) -> ChatClient:
        client = ChatClient(self.servers, **self.client_options)
        client.on_connection = lambda event: self._handed_back.put(
            functools.partial(self._connection, client, event)
        )
        self._clients.append(client)
        return client

    def _connection(self, client: ChatClient, event: ConnectionEvent) -> None:
        if client is not self.client:
            return
        if event.state == "connected":
            again, self._lost = self._lost, False
            self.status_var.set(f"{'reconnected' if again else 'connected'} to {event.address}")
        elif event.state in ("lost", "gave-up"):
            self._lost = True
            self.status_var.set("connection lost, retrying…")

    def _notice(self, exc: Exception, name: str = "") -> None:
        self.notice_var.set(describe(exc, name))

    # -- logging in and out --

    def log_in(self) -> None:
        self._sign_in(create=False)

    def create_account(self) -> None:
        self._sign_in(create=True)

    def _sign_in(self, *, create: bool) -> None:
        name, password = self.username_entry.get().strip(), self.password_entry.get()
        client = self.client
        if not name or not password:
            self.login_error_var.set("enter a username and a password")
            return
        self.login_error_var.set("")
        self.login_button.configure(state="disabled")
        self.create_button.configure(state="disabled")

        async def sign_in() -> None:
            if create:
                await client.create_account(name, password)
            await client.login(name, password)

        def logged_in(_: None) -> None:
            self.me = name
            self.password_entry.delete(0, "end")
            self.notice_var.set("")
            self.show_chat()
            self.runner.submit(self._start_receiver(client))
            self._tick()
            self.share_var.set(True)  # (the node's default, until it answers)
            self.call(client.shares_receipts(), self.share_var.set, lambda _: None)

        self.call(sign_in(), logged_in, lambda exc: self.show_login(describe(exc, name)))

    def ask_password_change(self) -> None:
        """A small window: the current password, the new one twice (masked)."""
        win = self.password_window = tk.Toplevel(self.root)
        win.title("Change password")
        win.transient(self.root)
        frame = packed(ttk.Frame(win, padding=10), fill="both")
        entries = []
        for row, label in enumerate(("Current password", "New password", "New password again")):
            ttk.Label(frame, text=label).grid(row=row, column=0, sticky="w", pady=2)
            entry = ttk.Entry(frame, show="*", width=28)
            entry.grid(row=row, column=1, pady=2)
            entries.append(entry)
        self.password_entries = entries
        error = tk.StringVar(win)
        self.password_error_var = error
        ttk.Label(frame, textvariable=error, style="Error.TLabel").grid(columnspan=2)

        def submit() -> None:
            old, new, again = (e.get() for e in entries)
            if new != again:
                error.set("the new passwords differ")
                return
            error.set("changing…")

            def done(_: None) -> None:
                win.destroy()
                self.notice_var.set("password changed; your other sessions have ended")

            def failed(exc: Exception) -> None:
                if isinstance(exc, WrongPassword):
                    error.set("that is not your current password")
                else:
                    error.set(describe(exc))

            self.call(self.client.change_password(old, new), done, failed)

        self.password_submit = ttk.Button(frame, text="Change", command=submit)
        self.password_submit.grid(columnspan=2, pady=4)
        for e in entries:
            e.bind("<Return>", lambda _e: submit())
        entries[0].focus_set()

    def log_out(self) -> None:
        old = self._end_session()

        async def sign_off() -> None:
            await self._stop_receiver()
            with contextlib.suppress(ChatError):
                await old.logout()
            await old.close()

        self.runner.submit(sign_off())
        self.show_login()

    def _end_session(self) -> ChatClient:
        """Forgets the session in the window; returns its client."""
        old, self._generation = self.client, self._generation + 1
        if self._tick_id is not None:
            self.root.after_cancel(self._tick_id)
            self._tick_id = None
        self.client = self._new_client()
        self.me = self.peer = None
        self.typists, self.readers = Typists(), {}
        self.typing_var.set("")
        self.seen_var.set("")
        if self.search_window is not None:
            self.search_window.top.destroy()
            self.search_window = None
        self.users, self.unread, self.history, self.rooms = {}, {}, {}, {}
        self.quoted, self._fetching, self.view.selected = {}, set(), None
        self.cancel_compose()
        self._received.clear()
        self.profiles.clear()
        self._profiles_asked.clear()
        self._avatars_asked.clear()
        self.peer_avatar.configure(image="")
        if self.profile_window is not None:
            self.profile_window.destroy()
            self.profile_window = None
        self._loading_older = self._refreshing = False
        self.contacts.delete(*self.contacts.get_children())
        self.peer_var.set("choose a contact")
        self._render()
        return old

    def _session_ended(self, client: ChatClient) -> None:
        if client is self.client:
            self.runner.submit(self._end_session().close())
            self.show_login(describe(NotLoggedIn(Code.NOT_LOGGED_IN, "")))

    # -- incoming messages (in the loop thread) --

    async def _start_receiver(self, client: ChatClient) -> None:
        await self._stop_receiver()
        self._receiver = asyncio.create_task(self._receive(client))
        self._events = asyncio.create_task(self._receive_events(client))

    async def _stop_receiver(self) -> None:
        for task in (self._receiver, self._events):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._receiver = self._events = None

    async def _receive_events(self, client: ChatClient) -> None:
        """Typing notices and live receipts, while `_receive` reads."""
        while True:
            try:
                async for e in client.events():
                    self._handed_back.put(functools.partial(self._presence, client, e))
            except NotLoggedIn:
                return  # (the receiver tells)
            except ChatError:  # (no node answers: the status bar says so)
                pass
            await asyncio.sleep(2)

    async def _receive(self, client: ChatClient) -> None:
        while True:
            try:
                async for m in client.inbox():
                    self._handed_back.put(functools.partial(self._incoming, client, m))
            except NotLoggedIn:
                self._handed_back.put(functools.partial(self._session_ended, client))
                return
            except ChatError as exc:  # no node answers (the status bar says so), or worse
                log.warning("receiving stopped (%s); again in 2 s", exc)
                await asyncio.sleep(2)

    def _incoming(self, client: ChatClient, m: Message) -> None:
        if client is not self.client or m.id in self._received:
            return
        self._received.add(m.id)
        if not m.event and self.typists.said(m, self.me):
            self._show_typing()
        if m.event:  # (a conversation not shown shows it in its history, when opened)
            self._apply(m)
            return
        if m.room:  # the server counts a room's unread ones: shown at the refresh below
            if of_message(m, self.me) == self.peer:
                self._add_messages(self.peer, [m])
                self._read_soon()
        elif Peer(m.sender) == self.peer:
            self._add_messages(self.peer, [m])
        else:
            self.unread[m.sender] = self.unread.get(m.sender, 0) + 1
            self.users.setdefault(m.sender, True)
            self._render_contacts()
        self.refresh_contacts()

    # -- contacts --

    def _tick(self) -> None:
        self.refresh_contacts(members=True)
        self._tick_id = self.root.after(self.refresh_ms, self._tick)

    def refresh_contacts(self, members: bool = False) -> None:
        """Users, rooms and unread counts anew (and with `members`, or when
        the shown room changed, who is in it)."""
        if self._refreshing or self.me is None:
            return
        self._refreshing = True

        client = self.client

        async def every() -> tuple[list[User], list[Room], list[Unread]]:
            return await client.list_users(), await client.rooms(), await client.unread()

        def done(got: tuple[list[User], list[Room], list[Unread]]) -> None:
            self._refreshing = False
            users, rooms, unread = got
            self.users = {u.name: u.online for u in users if u.name != self.me}
            self.want_profiles(self.users)
            before, self.rooms = self.rooms, {r.name: r for r in rooms}
            # invitations and removals: the node sends no event for them
            changes = room_changes(before, rooms)
            if lines := said(changes, lambda _room: "select it to join"):
                self.notice_var.set("; ".join(lines))
            self.unread = {u.peer: u.count for u in unread if Peer(u.peer) != self.peer}
            peer = self.peer
            if isinstance(peer, InRoom):
                if peer.name not in self.rooms:
                    self._left_room()
                elif members or before.get(peer.name) != self.rooms[peer.name]:
                    self._show_members(peer)
            self._render_contacts()

        def failed(_exc: Exception) -> None:
            self._refreshing = False  # the status bar says why

        self.call(every(), done, failed)

    def _render_contacts(self) -> None:
        """One row a conversation, its iid what the user sees ("#room", or
        the user's name): the rooms first, then the users."""
        tree = self.contacts
        rows: list[Conversation] = [
            *(InRoom(name) for name in sorted(self.rooms, key=str.casefold)),
            *(Peer(name) for name in sorted(self.users)),
        ]
        for iid in set(tree.get_children()) - {str(c) for c in rows}:
            tree.delete(iid)
        for i, c in enumerate(rows):
            name = str(c)
            if isinstance(c, InRoom):
                room = self.rooms[c.name]
                unread = 0 if c == self.peer else room.unread
                state = counted(room.members, "member") if room.joined else "invited"
                values: tuple[str, int | str] = (state, unread or "")
                tags: tuple[str, ...] = ("unread",) if unread else ()
            else:
                unread, online = self.unread.get(c.name, 0), self.users[c.name]
                values = ("● online" if online else "○ offline", unread or "")
                tags = ("unread",) if unread else () if online else ("offline",)
            shown = name if isinstance(c, InRoom) else self.profiles.label(name)
            if tree.exists(name):
                tree.item(name, text=shown, values=values, tags=tags)
                tree.move(name, "", i)
            else:
                tree.insert("", i, iid=name, text=shown, values=values, tags=tags)

    def _selected(self, _event: object = None) -> None:
        selection = self.contacts.selection()
        picked = conversation.parse(selection[0]) if selection else None
        if picked is not None and picked != self.peer:
            self.open_conversation(picked)

    # -- the conversation --

    def _page(self, c: Conversation, before: int = 0) -> Coroutine[Any, Any, list[Message]]:
        """One page of the conversation `c`."""
        return conversation.history(self.client, c, before=before, limit=PAGE)

    def open_conversation(self, c: Conversation, at: int = 0) -> None:
        """Shows the newest page of the conversation `c` (a room I am
        invited to is joined first)."""
        name = str(c)
        if isinstance(c, InRoom) and c.name in self.rooms and not self.rooms[c.name].joined:
            invited = c
            self.call(self.client.join_room(c.name), lambda _: self._joined(invited))
            return
        self.peer, self.history, self.more_history = c, {}, False
        self.quoted, self._fetching = {}, set()
        self.view.selected = None
        self.cancel_compose()
        if isinstance(c, Peer):
            self.unread.pop(c.name, None)
        self.peer_var.set(f"Room {name}" if isinstance(c, InRoom) else f"Conversation with {name}")
        self.show_peer_avatar()
        self.notice_var.set("")
        self.readers = {}
        self._show_typing()
        self._load_receipts()
        if isinstance(c, InRoom):
            self._show_members(c)
        self._render_contacts()
        if self.contacts.exists(name) and self.contacts.selection() != (name,):
            self.contacts.selection_set(name)
        self._render()
        self.input.focus_set()

        def done(page: list[Message]) -> None:
            if self.peer == c:
                self.more_history = len(page) >= PAGE
                self._add_messages(c, page)
                self._read_soon()
                if at:
                    self._reveal(c, at)

        self.call(self._page(c), done, lambda e: self._notice(e, name))

    def _joined(self, c: InRoom) -> None:
        room = self.rooms.get(c.name)
        if room is not None:
            self.rooms[c.name] = dataclasses.replace(room, joined=True)
        self.refresh_contacts()
        self.peer = None
        self.root.after(0, lambda: self.open_conversation(c))

    def _show_members(self, c: InRoom) -> None:
        def done(members: list[RoomMember]) -> None:
            if self.peer == c:
                who = ", ".join(
                    m.name + (" (invited)" if not m.joined else " ●" if m.online else "")
                    for m in members
                )
                self.peer_var.set(f"Room {c}: {who}")

        self.call(self.client.room_members(c.name), done, lambda e: self._notice(e, str(c)))

    def _left_room(self) -> None:
        """The shown room is no longer the user's (removed, or left)."""
        name, self.peer, self.history = self.peer, None, {}
        self.peer_var.set(f"you are no longer in {name}")
        self._render()

    def _read_soon(self) -> None:
        """What the shown conversation shows counts as read (one marker a
        moment later for a burst of messages)."""
        if self._reading is not None or self.peer is None:
            return

        def mark() -> None:
            self._reading = None
            c = self.peer
            if c is None or not self.history:
                return
            self.call(conversation.mark_read(self.client, c, max(self.history)), lambda _: None)

        self._reading = self.root.after(300, mark)

    def load_older(self) -> None:
        name = self.peer
        if name is None or not self.history or not self.more_history or self._loading_older:
            return
        self._loading_older, first = True, min(self.history)

        def done(page: list[Message]) -> None:
            self._loading_older = False
            if self.peer == name:
                self.more_history = len(page) >= PAGE
                self.history.update((m.id, m) for m in page)
                self._render(top=first)

        def failed(exc: Exception) -> None:
            self._loading_older = False
            self._notice(exc, str(name))

        self.call(self._page(name, first), done, failed)

    def _scrolled(self, *args: Any) -> None:
        self.conversation.yview(*args)
        self._at_top()

    def _at_top(self) -> None:
        first, last = self.conversation.yview()
        if first <= 0.0 and last < 1.0:
            self.load_older()

    def send(self, _event: object = None) -> str:
        """Sends the input box to the shown contact, answering the message
        being replied to, or saves it as the new text of the one being
        edited ("break": Enter ends here)."""
        text, peer, me = self.input.get().strip(), self.peer, self.me
        if not text:
            return "break"
        if peer is None or me is None:
            self.notice_var.set("choose a contact first")
            return "break"
        if self.editing is not None:
            self._save_edit(self.editing, text)
            return "break"
        replying = self.replying
        reply_to = replying.id if replying is not None else 0
        self.input.delete(0, "end")
        self.notice_var.set("")
        self.cancel_compose()

        def done(message_id: int) -> None:
            sent = Message(message_id, me, str(peer), text, datetime.now(UTC), reply_to=reply_to)
            if isinstance(peer, InRoom):
                sent = dataclasses.replace(sent, room=peer.name)
            self._add_messages(peer, [sent])
            self.conversation.see("end")

        def failed(exc: Exception) -> None:
            self._notice(exc, str(peer))
            if not self.input.get():
                self.input.insert(0, text)
                if replying is not None and self.peer == peer:
                    self.reply_to(replying)

        self.call(conversation.send(self.client, peer, text, reply_to), done, failed)
        return "break"

    # -- a message's menu and what it does --

    def _quoted(self, message_id: int) -> Message | None:
        """The message a reply answers, as known; fetched when not (and the
        replies drawn again when it comes)."""
        m = self.history.get(message_id) or self.quoted.get(message_id)
        if m is not None or self.peer is None or message_id in self._fetching:
            return m
        c = self.peer
        self._fetching.add(message_id)

        def done(got: Message | None) -> None:
            if got is not None and self.peer == c:
                self.quoted[message_id] = got
                self.view.redraw_all(self.history, message_id)

        self.call(conversation.message(self.client, c, message_id), done, lambda _e: None)
        return None

    def _apply(self, event: Message) -> None:
        """An edit, deletion or reaction: the message it changes, if shown
        (or quoted), drawn again in place."""
        target = event.target_id
        if target in self.quoted:
            self.quoted[target] = applied(self.quoted[target], event)
        if target not in self.history:
            if target in self.quoted:
                self.view.redraw_all(self.history, target)
            return
        self.history[target] = applied(self.history[target], event)
        self.view.redraw_all(self.history, target)
        if event.kind == DELETE:
            for pending in (self.replying, self.editing):
                if pending is not None and pending.id == target:
                    self.cancel_compose()

    def _own_event(self, kind: str, m: Message, body: str = "") -> Callable[[int], None]:
        """What to do once a call on message `m` of mine succeeded: apply its
        event here (the stream brings it too: applied twice, the same)."""

        def done(event_id: int) -> None:
            if event_id:
                me = self.me or ""
                event = Message(event_id, me, m.recipient, body, datetime.now(UTC), m.room)
                event = dataclasses.replace(event, kind=kind, target_id=m.id)
                self._received.add(event_id)
                self._apply(event)

        return done

    def _refused(self, verb: str) -> Callable[[Exception], None]:
        def failed(exc: Exception) -> None:
            self.notice_var.set(f"cannot {verb} that message: {describe(exc)}")

        return failed

    def _clicked_anywhere(self, event: tk.Event[tk.Misc]) -> None:
        if not str(event.widget).startswith(str(self.message_menu)):
            self.message_menu.unpost()

    def _clicked(self, event: tk.Event[tk.Text]) -> None:
        self.conversation.focus_set()
        self.view.select(self.view.message_at(event.x, event.y))

    def _right_clicked(self, event: tk.Event[tk.Text]) -> str:
        mid = self.view.message_at(event.x, event.y)
        if mid is not None:
            self.view.select(mid)
            self.open_menu(mid, event.x_root, event.y_root)
        return "break"

    def _menu_key(self, _event: object = None) -> str:
        """The Menu key or Shift+F10: the selected message's menu (the
        newest message's, when none is selected)."""
        mid = self.view.selected if self.view.selected in self.history else None
        if mid is None and self.history:
            mid = max(self.history)
            self.view.select(mid)
        if mid is not None:
            self.open_menu(mid, *self.view.screen_point(mid))
        return "break"

    def _select_next(self, step: int) -> str:
        ids = sorted(self.history)
        if ids:
            at = ids.index(self.view.selected) if self.view.selected in ids else len(ids)
            self.view.select(ids[max(0, min(len(ids) - 1, at + step))])
        return "break"

    def may_delete(self, m: Message) -> bool:
        """Mine, or in a room I am an admin of (the node decides: this is
        what the menu offers)."""
        room = self.rooms.get(m.room) if m.room else None
        return m.sender == self.me or (room is not None and room.admin)

    def open_menu(self, message_id: int, x: int, y: int) -> None:
        """The menu of message `message_id`, at screen point (x, y)."""
        m = self.history.get(message_id)
        if m is None:
            return
        self.menu_message = message_id
        menu, react = self.message_menu, self.react_menu
        menu.delete(0, "end")
        react.delete(0, "end")
        live = ON[not m.deleted]
        mine = ON[m.sender == self.me and not m.deleted]
        deletable = ON[self.may_delete(m) and not m.deleted]
        menu.add_command(label="Reply", state=live, command=lambda: self.reply_to(m))
        menu.add_command(label="Edit", state=mine, command=lambda: self.edit(m))
        menu.add_command(label="Delete", state=deletable, command=lambda: self.ask_delete(m))
        mine_now = {emoji for emoji, users in m.reactions if self.me in users}
        for emoji, (name, _) in NAMES.items():
            checked = tk.BooleanVar(menu, emoji in mine_now)
            react.add_checkbutton(
                label=f"{emoji}  {name}",
                variable=checked,
                command=functools.partial(self.toggle_reaction, m.id, emoji),
            )
        menu.add_cascade(label="React", menu=react, state=live)
        if m.file is not None and not m.deleted:
            menu.add_command(label="Save as…", command=lambda: self.save_as(m))
        try:
            menu.tk_popup(x, y)
        finally:  # (X11: the menu is up; the window takes events again)
            menu.grab_release()

    def reply_to(self, m: Message) -> None:
        self.cancel_compose()
        self.replying = m
        self._compose(f"Replying to {who(m.sender, self.me)}: {quote(m)}")

    def edit(self, m: Message) -> None:
        self.cancel_compose()
        self.editing = m
        self.input.delete(0, "end")
        self.input.insert(0, m.body)
        self._compose("Editing your message (Enter saves it)")

    def _compose(self, what: str) -> None:
        self.compose_var.set(what)
        self.compose_bar.pack(side="top", fill="x", before=self.input)
        self.input.focus_set()

    def cancel_compose(self) -> None:
        """Ends a reply or an edit in the input box (an edit's text cleared)."""
        if self.editing is not None:
            self.input.delete(0, "end")
        self.replying = self.editing = None
        self.compose_var.set("")
        self.compose_bar.pack_forget()

    def _save_edit(self, m: Message, text: str) -> None:
        if text == m.body:
            self.cancel_compose()
            return
        self.notice_var.set("")
        done = self._own_event(EDIT, m, text)

        def saved(event_id: int) -> None:
            if self.editing is not None and self.editing.id == m.id:
                self.cancel_compose()
            done(event_id)

        self.call(self.client.edit_message(m.id, text), saved, self._refused("edit"))

    def ask_delete(self, m: Message) -> None:
        """A small window: delete message `m` for everyone?"""
        win = self.delete_window = tk.Toplevel(self.root)
        win.title("Delete message")
        win.transient(self.root)
        frame = packed(ttk.Frame(win, padding=10), fill="both")
        whose = "your message" if m.sender == self.me else f"{m.sender}'s message"
        text = f"Delete {whose} for everyone?\n\n“{quote(m)}”"
        ttk.Label(frame, text=text, wraplength=320).pack(pady=(0, 8))
        buttons = packed(ttk.Frame(frame))

        def delete() -> None:
            win.destroy()
            done = self._own_event(DELETE, m)
            self.call(self.client.delete_message(m.id), done, self._refused("delete"))

        self.delete_confirm = packed(ttk.Button(buttons, text="Delete", command=delete), "left")
        cancel = ttk.Button(buttons, text="Cancel", command=win.destroy)
        cancel.pack(side="left", padx=6)
        win.bind("<Escape>", lambda _e: win.destroy())
        win.bind("<Return>", lambda _e: delete())
        cancel.focus_set()

    def toggle_reaction(self, message_id: int, emoji: str) -> None:
        """Adds my reaction `emoji` to a message, or takes it back if there."""
        m = self.history.get(message_id)
        if m is None:
            return
        mine = any(e == emoji and self.me in users for e, users in m.reactions)
        kind = UNREACT if mine else REACT
        call = self.client.unreact(m.id, emoji) if mine else self.client.react(m.id, emoji)
        self.call(call, self._own_event(kind, m, emoji), self._refused("react to"))

    def _add_messages(self, peer: Conversation, messages: list[Message]) -> None:
        new = [m for m in messages if m.id not in self.history]
        if peer != self.peer or not new:
            return
        at_end = self.conversation.yview()[1] >= 0.999
        appending = bool(self.history) and min(m.id for m in new) > max(self.history)
        self.history.update((m.id, m) for m in new)
        self.want_profiles({m.sender for m in new if m.sender != self.me})
        if appending:
            self.conversation.configure(state="normal")
            for m in sorted(new, key=lambda m: m.id):
                self._insert(m)
            self.conversation.configure(state="disabled")
        else:
            self._render()
        if at_end or not appending:
            self.conversation.see("end")
        self._show_seen()

    def _insert(self, m: Message) -> None:
        self.view.me = self.me
        self.view.insert(m)

    def _render(self, top: int | None = None) -> None:
        """Draws the whole conversation, with message `top` at the top."""
        text, top_index = self.conversation, None
        text.configure(state="normal")
        text.delete("1.0", "end")
        if self.peer is not None and not self.history:
            text.insert("end", "no messages yet\n", "meta")
        elif self.more_history:
            text.insert("end", "older messages: Load older, or scroll up\n", "meta")
        for message_id in sorted(self.history):
            if message_id == top:
                top_index = text.index("end-1c")
            self._insert(self.history[message_id])
        text.configure(state="disabled")
        self.older_button.configure(state="normal" if self.more_history else "disabled")
        if top_index is not None:
            text.yview(top_index)

    # -- typing notices, read receipts --

    def _typed(self, _event: object = None) -> None:
        """A key in the input box: a message being typed (not an edit)
        tells the conversation (the library sends a frame every few
        seconds at most)."""
        peer = self.peer
        if peer is None or self.me is None or self.editing is not None:
            return
        if not self.input.get().strip():
            return
        if isinstance(peer, InRoom):
            self.call(self.client.typing(room=peer.name), failed=lambda _e: None)
        else:
            self.call(self.client.typing(peer=peer.name), failed=lambda _e: None)

    def _presence(self, client: ChatClient, e: Typing | Receipt) -> None:
        if client is not self.client:
            return
        if isinstance(e, Typing):
            self.typists.typing(e)
            self._show_typing()
            left_ms = int((e.until - self.runner.loop.time()) * 1000)
            self.root.after(max(0, left_ms) + 50, self._show_typing)
        elif receipt_where(e) == self.peer:
            self.readers[e.username] = max(self.readers.get(e.username, 0), e.upto)
            self._show_seen()

    def _show_typing(self) -> None:
        self.typing_var.set(self.typists.line(self.peer, self.runner.loop.time()))

    def _load_receipts(self) -> None:
        c = self.peer
        if c is None or self.me is None:
            return
        if isinstance(c, InRoom):
            call = self.client.list_receipts(room=c.name)
        else:
            call = self.client.list_receipts(peer=c.name)

        def done(receipts: list[Receipt]) -> None:
            if self.peer == c:
                self.readers = {r.username: r.upto for r in receipts}
                self._show_seen()

        self.call(call, done, lambda _e: None)

    def _show_seen(self) -> None:
        """ "Seen" (a room: "Seen by N") when my last message here was read."""
        c = self.peer
        mine = newest_mine(list(self.history.values()), self.me, c) if c is not None else 0
        n = sum(upto >= mine for upto in self.readers.values()) if mine else 0
        if not n:
            self.seen_var.set("")
        else:
            self.seen_var.set(f"Seen by {n}" if isinstance(c, InRoom) else "Seen")

    def share_receipts(self) -> None:
        share = bool(self.share_var.get())

        def failed(exc: Exception) -> None:
            self.share_var.set(not share)
            self._notice(exc)

        self.call(self.client.share_receipts(share), lambda _: self._load_receipts(), failed)

    # -- search --

    def open_search(self) -> None:
        if self.me is None:
            return
        if self.search_window is None:
            from chatd.client.gui_search import SearchWindow

            self.search_window = SearchWindow(
                self.root, self._search, self.open_at, lambda: self.me
            )
        self.search_window.show()

    def _search(self, words: str, peer: str, room: str, before: int) -> None:
        window = self.search_window
        self.call(
            self.client.search_messages(words, peer=peer, room=room, before=before),
            window.shown,
            lambda exc: window.failed(describe(exc, peer or (str(InRoom(room)) if room else ""))),
        )

    def open_at(self, m: Message) -> None:
        """Opens a search result's conversation, with the message selected."""
        self.open_conversation(of_message(m, self.me), at=m.id)
        self.root.lift()

    def _reveal(self, c: Conversation, at: int, pages: int = 20) -> None:
        """Selects message `at` of the conversation shown, loading older
        pages (up to `pages`) until it is there."""
        if self.peer != c:
            return
        if at in self.history:
            self.view.select(at)
            self.conversation.focus_set()
            return
        if not self.history or not self.more_history or not pages or at > max(self.history):
            self.notice_var.set(f"message {at} is not in this conversation's history now")
            return
        first = min(self.history)

        def done(page: list[Message]) -> None:
            if self.peer == c:
                self.more_history = len(page) >= PAGE
                self.history.update((m.id, m) for m in page)
                self._render(top=first)
                self._reveal(c, at, pages - 1)

        self.call(self._page(c, first), done, lambda e: self._notice(e, str(c)))

    # -- the end --

    def close(self) -> None:
        """Stops the timers, the subscription, the clients, the loop and its
        thread, then the window."""
        if self.closed:
            return
        self.closed = True
        for after_id in (self._tick_id, self._drain_id):
            if after_id is not None:
                with contextlib.suppress(tk.TclError):
                    self.root.after_cancel(after_id)

        async def shutdown() -> None:
            await self._stop_receiver()
            for client in self._clients:
                await client.close()

        try:
            self.runner.submit(shutdown()).result(timeout=5)
        except Exception:
            log.exception("GUI shutdown")
        self.runner.stop()
        with contextlib.suppress(tk.TclError):
            self.root.destroy()


def client_options(args: argparse.Namespace) -> dict[str, Any]:
    """ChatClient's keywords from `chatd gui`'s flags: TLS, --retry-for."""
    return {**tls_options(args), "retry_for": args.retry_for}


def main(args: argparse.Namespace) -> int:
    options = client_options(args)
    try:
        credentials_of(args)
    except TlsError as exc:
        print(f"chatd gui: error: {exc}", file=sys.stderr)
        return 2
    if not [a for a in str(args.server).split(",") if a.strip()]:
        print("chatd gui: error: --server needs at least one HOST:PORT", file=sys.stderr)
        return 2
    if NO_TK is not None:
        print(f"chatd gui: error: no Tk here ({NO_TK}; Debian: python3-tk)", file=sys.stderr)
        return 1
    try:
        root = tk.Tk(className="chatd")
    except tk.TclError as exc:
        print(f"chatd gui: error: cannot open a window: {exc}", file=sys.stderr)
        return 1
    app = ChatApp(args.server, root=root, client_options=options)
    try:
        root.mainloop()
    finally:
        app.close()
    return 0
