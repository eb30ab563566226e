"""How both front ends put a message's state into words: the reactions a
person may type by name (`/react 12 +1`) and how each is called in a menu,
the reactions line ("👍 2 ❤️ 1"), a short quote of a message, and who a
line names.

Imports: chatd.contract and chatd.client.model."""

from __future__ import annotations

from chatd.client.model import Message
from chatd.contract import REACTIONS

# Each reaction of chatd.contract.REACTIONS: what a menu calls it, and the
# names a person may type for it (besides the emoji itself).
NAMES: dict[str, tuple[str, tuple[str, ...]]] = {
    REACTIONS[0]: ("thumbs up", ("+1", "thumbsup", "like", "yes")),
    REACTIONS[1]: ("heart", ("heart", "love", "<3")),
    REACTIONS[2]: ("laughing", ("joy", "laugh", "lol", "haha")),
    REACTIONS[3]: ("surprised", ("wow", "surprised", "open_mouth", "omg")),
    REACTIONS[4]: ("sad", ("cry", "sad")),
    REACTIONS[5]: ("party", ("tada", "party", "hooray")),
    REACTIONS[6]: ("eyes", ("eyes", "looking")),
    REACTIONS[7]: ("done", ("check", "done", "white_check_mark", "ok")),
}
VARIATION_SELECTOR = "\N{VARIATION SELECTOR-16}"
QUOTE_CHARS = 40  # how much of a message a quote shows


def emoji_named(typed: str) -> str | None:
    """The reaction `typed` names: the emoji itself (with or without its
    variation selector), a name (":thumbsup:" too), case aside; None: none."""
    word = typed.strip()
    if word.startswith(":") and word.endswith(":") and len(word) > 2:
        word = word[1:-1]
    for emoji, (_, names) in NAMES.items():
        bare = emoji.replace(VARIATION_SELECTOR, "")
        if word in (emoji, bare) or word.casefold() in names:
            return emoji
    return None


def reaction_names() -> list[str]:
    """Every name a reaction may be typed by, the first of each emoji first."""
    return [names[0] for _, names in NAMES.values()] + [
        n for _, names in NAMES.values() for n in names[1:]
    ]


def reactions_line(m: Message) -> str:
    """ "👍 2 ❤️ 1": each reaction and how many put it ("" for none)."""
    return " ".join(f"{emoji} {len(users)}" for emoji, users in m.reactions)


def quote(m: Message, chars: int = QUOTE_CHARS) -> str:
    """The start of a message's text on one line ("[deleted]" for a deleted one)."""
    if m.deleted:
        return "[deleted]"
    text = " ".join(m.body.split())
    return text if len(text) <= chars else text[: chars - 1].rstrip() + "…"


def who(name: str, me: str | None) -> str:
    return "you" if name == me else name
