"""The GUI's profiles, through a real node (a child process): ann's
Profile… window (the file dialog patched to answer a path) sets her display
name and avatar; bob's window names her "ann (Ann Example)" in its contact
list and on her message, and shows her avatar, small, in the header of
their conversation. A file that is no image is refused, and nothing
changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from chatd.client import ChatClient
from chatd.client.conversation import Peer
from chatd.client.gui import ChatApp, LoopThread
from tests.conftest import PASSWORD, NodeProcess, wait_serving
from tests.test_files import png
from tests.test_gui import WAIT, conversation, loop_thread, pump, submit_form

__all__ = ["loop_thread"]  # (the fixture, imported for this module's tests)


def test_profile_window_sets_the_name_and_the_other_window_shows_it(
    xvfb: str,
    spawn_node: Callable[..., NodeProcess],
    loop_thread: LoopThread,
    tmp_path: Path,
) -> None:
    node = spawn_node("n1")
    address: str = node.address  # type: ignore[attr-defined]
    wait_serving(address)
    (tmp_path / "me.png").write_bytes(png(40, 30))
    (tmp_path / "notes.txt").write_text("no picture")
    lib = ChatClient([address])

    async def setup() -> None:
        for name in ("ann", "bob"):
            await lib.create_account(name, PASSWORD)
        await lib.login("bob", PASSWORD)

    loop_thread.submit(setup()).result(WAIT)

    def profile() -> tuple[str, str] | None:
        got = loop_thread.submit(lib.get_profiles(["ann"])).result(WAIT)
        return (got["ann"].display_name, got["ann"].avatar_file_id) if "ann" in got else None

    ann, bob = ChatApp(address, refresh_ms=300), ChatApp(address, refresh_ms=300)
    try:
        submit_form(ann, "ann", PASSWORD)
        pump(ann, lambda: ann.me == "ann", "ann logged in")
        # a file that is no image: refused, nothing set
        ann.ask_avatar = lambda: str(tmp_path / "notes.txt")  # type: ignore[method-assign]
        ann.profile_button.invoke()
        pump(ann, lambda: ann.profile_window is not None, "the profile window")
        ann.profile_name.insert(0, "Ann Example")
        ann.avatar_button.invoke()
        ann.profile_submit.invoke()
        pump(ann, lambda: "no image" in ann.profile_error_var.get(), "the refusal")
        assert profile() is None
        # an image: the name and the avatar set
        ann.ask_avatar = lambda: str(tmp_path / "me.png")  # type: ignore[method-assign]
        ann.avatar_button.invoke()
        assert ann.avatar_var.get() == "me.png"
        ann.profile_submit.invoke()
        pump(ann, lambda: ann.profile_window is None, "the window closed")
        got = profile()
        assert got is not None and got[0] == "Ann Example" and got[1]
        avatar = loop_thread.submit(lib.download_file(got[1])).result(WAIT)
        assert avatar == png(40, 30)
        # opened again, it shows what is set
        ann.profile_button.invoke()
        pump(ann, lambda: ann.profile_name.get() == "Ann Example", "the name read back")
        assert ann.avatar_var.get() == "(an avatar is set)"
        ann.profile_window.destroy()
        ann.profile_window = None
        # bob's window names her
        submit_form(bob, "bob", PASSWORD)
        pump(bob, lambda: bob.me == "bob", "bob logged in")
        pump(
            bob,
            lambda: (
                bob.contacts.exists("ann")
                and bob.contacts.item("ann", "text") == "ann (Ann Example)"
            ),
            "her name in bob's contacts",
        )
        bob.open_conversation(Peer("ann"))
        pump(bob, lambda: "no messages yet" in conversation(bob), "the conversation")
        pump(bob, lambda: str(bob.peer_avatar.cget("image")) != "", "her avatar in the header")
        [small] = bob.avatars.values()
        assert str(small) in str(bob.peer_avatar.cget("image"))
        assert (small.width(), small.height()) == (20, 15)  # (40x30, halved: at most 32)
        ann.open_conversation(Peer("bob"))
        pump(ann, lambda: "no messages yet" in conversation(ann), "her conversation")
        ann.input.insert(0, "hello bob")
        ann.send_button.invoke()
        pump(ann, lambda: "you: hello bob" in conversation(ann), "sent")
        pump(bob, lambda: "ann (Ann Example): hello bob" in conversation(bob), "her message")
    finally:
        ann.close()
        bob.close()
        loop_thread.submit(lib.close()).result(WAIT)
