"""What both front ends show of a message's file, and where they save one.

A file's name comes from a node: it is never trusted as a path. `safe_name`
keeps only its last part (after any "/" or "\\"), without control
characters, so "../../etc/passwd" saves as "passwd" in the folder chosen;
`save` never overwrites a file there (" (1)", " (2)"… before the suffix).

Imports: chatd.client.model."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from chatd.client.model import FileRef

CLIP = "\N{PAPERCLIP}"
MAX_TRIES = 1000  # names tried with a number before giving up


def size_text(n: int) -> str:
    """A size in bytes as people read it: 512 B, 12.3 KB, 4.0 MB."""
    value, unit = float(n), "B"
    for bigger in ("KB", "MB", "GB"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"


def shown_name(name: str) -> str:
    """A node-given name fit to print: no control characters (a terminal
    would run them), "file" when nothing is left."""
    kept = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    return kept.strip() or "file"


def safe_name(name: str) -> str:
    """The name to save a node-given file name as, in a folder: its last
    part only, printable, never "." or ".." (then "file")."""
    last = shown_name(name).replace("\\", "/").rsplit("/", 1)[-1].strip()
    return last if last not in ("", ".", "..") else "file"


def file_line(ref: FileRef) -> str:
    """The line for a message's file: 📎 name (size, type)."""
    return f"{CLIP} {shown_name(ref.name)} ({size_text(ref.size)}, {ref.content_type})"


def default_folder() -> Path:
    """Where a file goes when no place is named: ~/Downloads, or the
    current folder without one."""
    downloads = Path.home() / "Downloads"
    return downloads if downloads.is_dir() else Path.cwd()


def numbered(path: Path, n: int) -> Path:
    """`path` with " (n)" before its suffix: a.png -> a (1).png."""
    return path.with_name(f"{path.stem} ({n}){path.suffix}") if n else path


def save(data: bytes, name: str, where: str | Path | None = None) -> Path:
    """Writes a file's bytes; answers the path written. `where`: a folder
    (the file goes in it, by its safe name), a new file's path, or None (the
    default folder). An existing file is never overwritten: a number is
    added to the name instead. OSError when it cannot be written."""
    target = Path(os.path.expanduser(where)) if where else default_folder()
    if target.is_dir():
        target = target / safe_name(name)
    for n in range(MAX_TRIES):
        path = numbered(target, n)
        try:
            with open(path, "xb") as f:  # (x: fails on an existing file, never follows it)
                f.write(data)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{target} and {MAX_TRIES - 1} numbered names exist already")
