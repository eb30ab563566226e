"""The terminal client's profiles: /name sets, shows and clears my display
name, /avatar makes an image my avatar (keeping the name; a file that is no
image is refused); the other terminal names me "ann (Ann Example)" on
message lines and in /users, asking again after a minute. Two terminals
(prompt_toolkit reading a pipe, in this process) and a real node."""

from __future__ import annotations

from pathlib import Path

from chatd.client import ChatClient
from chatd.client.profiles import KEEP_S, labelled
from chatd.server.node import Node
from tests.conftest import PASSWORD
from tests.test_files import png
from tests.test_terminal_edits import accounts, terminals


async def profiles_of(address: str, name: str) -> dict[str, tuple[str, str]]:
    async with ChatClient([address]) as c:
        await c.login(name, PASSWORD)
        return {
            n: (p.display_name, p.avatar_file_id) for n, p in (await c.get_profiles([name])).items()
        }


async def test_name_shows_beside_the_username_on_the_other_terminal(node: Node) -> None:
    await accounts(node.address, "ann", "bob")
    async with terminals(node.address, "ann", "bob") as (ann, bob):
        ann.type("/name")
        await ann.shows("^you have no display name: /name DISPLAY NAME sets one$")
        ann.type("/name Ann Example")
        await ann.shows("^your display name is now Ann Example$")
        ann.type("/name")
        await ann.shows("^your display name: Ann Example$")
        ann.type("/chat bob")
        bob.type("/chat ann")
        await bob.shows("talking to ann")
        ann.type("hello")
        await ann.shows(r"^\d+ \[\d\d:\d\d\] you: hello$")
        await bob.shows(r"^\d+ \[\d\d:\d\d\] ann \(Ann Example\): hello$")
        bob.type("/users")
        await bob.shows(r"^  ann \(Ann Example\) +(online|offline)")
        # a name the node refuses changes nothing
        ann.type("/name " + "x" * 65)
        await ann.shows("(?i)display name")
        assert await profiles_of(node.address, "ann") == {"ann": ("Ann Example", "")}
        # a new name shows once the one kept is a minute old
        ann.type("/name Ann B. Example")
        await ann.shows("^your display name is now Ann B. Example$")
        ann.type("again")
        await bob.shows(r"^\d+ \[\d\d:\d\d\] ann \(Ann Example\): again$")
        clock = bob.terminal.profiles.clock
        bob.terminal.profiles.clock = lambda: clock() + KEEP_S + 1
        ann.type("and again")
        await bob.shows(r"^\d+ \[\d\d:\d\d\] ann \(Ann B\. Example\): and again$")
        ann.type("/name -")
        await ann.shows("^display name cleared$")
        assert await profiles_of(node.address, "ann") == {}


async def test_avatar_uploads_an_image_and_keeps_the_name(node: Node, tmp_path: Path) -> None:
    (tmp_path / "me.png").write_bytes(png(40, 30))
    (tmp_path / "notes.txt").write_text("no picture")
    await accounts(node.address, "ann")
    async with terminals(node.address, "ann") as (ann,):
        ann.type("/name Ann Example")
        await ann.shows("^your display name is now Ann Example$")
        ann.type(f"/avatar {tmp_path / 'notes.txt'}")
        await ann.shows(r"notes\.txt is no image \(.+\): an avatar is a picture$")
        assert await profiles_of(node.address, "ann") == {"ann": ("Ann Example", "")}
        ann.type(f"/avatar {tmp_path / 'me.png'}")
        await ann.shows(r"^your avatar is now me\.png$")
        got = await profiles_of(node.address, "ann")
        name, avatar = got["ann"]
        assert name == "Ann Example" and avatar
        async with ChatClient([node.address]) as c:
            await c.login("ann", PASSWORD)
            assert (await c.download_file(avatar)) == png(40, 30)
        ann.type("/avatar")
        await ann.shows(r"^usage: /avatar PATH")
        ann.type("/avatar -")
        await ann.shows("^avatar cleared$")
        assert await profiles_of(node.address, "ann") == {"ann": ("Ann Example", "")}


def test_labels() -> None:
    assert labelled("bob", "Bob Smith") == "bob (Bob Smith)"
    assert labelled("bob", "") == labelled("bob", "BOB") == "bob"
    assert labelled("bob", "Bob\x1b[2J") == "bob (Bob[2J)"
