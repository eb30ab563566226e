"""Counts in words, for everything chatd prints."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str = "") -> str:
    """ "1 member", "2 members", "0 members" (`plural`: when not noun + "s")."""
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"
