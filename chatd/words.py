"""Counts in words, for everything chatd prints."""

from __future__ import annotations


def counted(n: float, noun: str, plural: str = "") -> str:
    """ "1 member", "2 members", "0 members", "0.5 messages" (`plural`: when
    not noun + "s")."""
    return f"{n:g} {noun}" if n == 1 else f"{n:g} {plural or noun + 's'}"
