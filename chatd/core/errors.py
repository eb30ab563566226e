"""Errors of the role core, split by who is at fault (h11's split)."""

from __future__ import annotations


class CoreError(Exception):
    """The core refused an event and changed nothing."""


class LocalProtocolError(CoreError):
    """The driver fed an event the current state cannot take: our bug."""


class RemoteProtocolError(CoreError):
    """A peer broke the protocol (e.g. a second master at one epoch)."""


class InvariantError(CoreError):
    """The core broke a rule of its own state (e.g. a commit index that
    went back, a second vote in one epoch): a bug in the core. Checked
    after every event (`Core.check`)."""
