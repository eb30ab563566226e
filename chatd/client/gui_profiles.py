"""The GUI's profiles (a mixin of chatd.client.gui.ChatApp): "Profile…"
opens a window with my display name and "Choose avatar…" (a file dialog
for images); Save uploads the image, if one was chosen, and sets both
(SetProfile sets the whole profile: what is not changed is sent as it
was). Messages and the contact list name people "bob (Bob Smith)", from
chatd.client.profiles (asked in batches on the loop, kept a minute; what
comes draws those people's messages and the contacts again).

The Profiles cache is written on the loop thread and read in the main
thread: each is one dict operation, atomic in CPython.

Imports: chatd.client.api, errors, files, model, profiles (Tk only when the
window is made)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatd.client.api import ChatClient
from chatd.client.conversation import Conversation, Peer
from chatd.client.errors import ChatError, InvalidFile
from chatd.client.files import Profile
from chatd.client.model import Message
from chatd.client.profiles import Profiles, printable
from chatd.contract import Code

if TYPE_CHECKING:
    import concurrent.futures
    import tkinter as tk
    from tkinter import ttk

    from chatd.client.gui_messages import MessageView

AVATAR_PX = 32  # the most the header's avatar is wide or high
IMAGES = [("Images", "*.png *.jpg *.jpeg *.gif *.webp"), ("All files", "*")]


class ProfileActions:
    if TYPE_CHECKING:  # (ChatApp's)
        root: tk.Tk
        client: ChatClient
        me: str | None
        view: MessageView
        peer: Conversation | None
        peer_avatar: ttk.Label
        history: dict[int, Message]
        call: Callable[..., concurrent.futures.Future[Any]]
        _render_contacts: Callable[[], None]

    def _profiles_ready(self) -> None:
        """Called once the widgets are made: messages name their senders
        through the cache."""
        self.profiles = Profiles()
        self._profiles_asked: set[str] = set()  # names on their way
        self.view.label = self.profiles.label
        self.profile_window: Any = None
        self.avatars: dict[str, tk.PhotoImage] = {}  # by file id: the header's
        self._avatars_asked: set[str] = set()

    def want_profiles(self, names: Iterable[str]) -> None:
        """Asks for the profiles of `names` not known (or a minute old);
        draws the messages and contacts again when they come."""
        wanted = [n for n in self.profiles.stale(names) if n not in self._profiles_asked]
        if not wanted or self.me is None:
            return
        self._profiles_asked.update(wanted)
        profiles, client = self.profiles, self.client

        def done(_: None) -> None:
            self._profiles_asked.difference_update(wanted)
            asked = set(wanted)
            for m in self.history.values():
                if m.sender.lower() in asked:
                    self.view.redraw(m)
            self._render_contacts()
            self.show_peer_avatar()

        def failed(_exc: Exception) -> None:
            self._profiles_asked.difference_update(wanted)

        self.call(profiles.fetch(client, wanted), done, failed)

    def show_peer_avatar(self) -> None:
        """The avatar of the person the conversation is with, small, in its
        header (none in a room, or while it comes)."""
        peer = self.peer
        if isinstance(peer, Peer):
            self.want_profiles([peer.name])
        p = self.profiles.profile(peer.name) if isinstance(peer, Peer) else None
        file_id = p.avatar_file_id if p is not None else ""
        image = self.avatars.get(file_id) if file_id else None
        self.peer_avatar.configure(image=image if image is not None else "")
        if not file_id or image is not None or file_id in self._avatars_asked:
            return
        self._avatars_asked.add(file_id)
        client = self.client

        async def fetch() -> bytes:
            try:
                return await client.download_file(file_id, thumbnail=True)
            except ChatError:  # (a small image has no thumbnail: itself, then)
                return await client.download_file(file_id)

        def done(data: bytes) -> None:
            import tkinter as tk

            try:
                image = tk.PhotoImage(master=self.root, data=base64.b64encode(data).decode())
            except tk.TclError:
                return  # (not an image Tk reads: no avatar shown)
            step = -(-max(image.width(), image.height()) // AVATAR_PX)
            self.avatars[file_id] = image.subsample(step) if step > 1 else image
            self.show_peer_avatar()

        self.call(fetch(), done, lambda _exc: self._avatars_asked.discard(file_id))

    def _profile_failed(self, exc: Exception) -> None:
        if self.profile_window is None:
            return
        if isinstance(exc, ChatError):
            self.profile_error_var.set(exc.message)
        elif isinstance(exc, OSError):
            self.profile_error_var.set(f"cannot read the image: {exc.strerror or exc}")
        else:
            self.profile_error_var.set(str(exc))

    def ask_avatar(self) -> str:
        """The image the user picks ("": none). (Tests patch it.)"""
        from tkinter import filedialog

        return str(
            filedialog.askopenfilename(parent=self.root, title="Choose an avatar", filetypes=IMAGES)
            or ""
        )

    def open_profile(self) -> None:
        """A small window: my display name and avatar, Save."""
        import tkinter as tk
        from tkinter import ttk

        if self.me is None:
            return
        me, client = self.me, self.client
        win = self.profile_window = tk.Toplevel(self.root)
        win.title("Profile")
        win.transient(self.root)
        frame = ttk.Frame(win, padding=10)
        frame.pack(fill="both", expand=True)
        ttk.Label(frame, text="Display name").grid(row=0, column=0, sticky="w", pady=2)
        self.profile_name = ttk.Entry(frame, width=32)
        self.profile_name.grid(row=0, column=1, pady=2)
        self.avatar_var = tk.StringVar(win, "")
        chosen: list[str] = []  # the image chosen, if any
        mine: list[Profile] = [Profile(me, "", "")]

        def choose() -> None:
            path = self.ask_avatar()
            if path:
                chosen[:] = [path]
                self.avatar_var.set(Path(path).name)

        self.avatar_button = ttk.Button(frame, text="Choose avatar…", command=choose)
        self.avatar_button.grid(row=1, column=0, sticky="w", pady=2)
        ttk.Label(frame, textvariable=self.avatar_var).grid(row=1, column=1, sticky="w")
        # (the callbacks name the variables through self: a variable a
        # callback held could be freed in the loop's thread, which Tk refuses)
        self.profile_error_var = tk.StringVar(win)
        error = self.profile_error_var
        ttk.Label(frame, textvariable=error, style="Error.TLabel").grid(columnspan=2)

        def loaded(got: dict[str, Profile]) -> None:
            p = next(iter(got.values()), None)
            if p is not None:
                mine[:] = [p]
                self.profile_name.delete(0, "end")
                self.profile_name.insert(0, printable(p.display_name))
                if p.avatar_file_id:
                    self.avatar_var.set("(an avatar is set)")

        self.call(client.get_profiles([me]), loaded, lambda exc: self._profile_failed(exc))

        async def save(name: str, path: str | None, kept: Profile) -> Profile:
            avatar = kept.avatar_file_id
            if path is not None:
                ref = await client.upload_file(path)
                if not ref.content_type.startswith("image/"):
                    what = f"{ref.name} is no image ({ref.content_type})"
                    raise InvalidFile(Code.INVALID_FILE, what)
                avatar = ref.file_id
            await client.set_profile(name, avatar)
            return Profile(me, name, avatar)

        def submit() -> None:
            self.profile_error_var.set("saving…")

            def done(p: Profile) -> None:
                self.profiles.note(me, p if p.display_name or p.avatar_file_id else None)
                win.destroy()
                self.profile_window = None

            name = self.profile_name.get().strip()
            saving = save(name, chosen[0] if chosen else None, mine[0])
            self.call(saving, done, lambda exc: self._profile_failed(exc))

        self.profile_submit = ttk.Button(frame, text="Save", command=submit)
        self.profile_submit.grid(columnspan=2, pady=4)
        self.profile_name.bind("<Return>", lambda _e: submit())
        self.profile_name.focus_set()
