"""The fixtures every test directory shares.

The server's fixtures and helpers (real nodes, child processes, Xvfb) live in
tests/server_fixtures.py and load only where the server's dependencies are
installed: the core's tests (tests/test_core_*.py) need the standard library
and pytest alone, as chatd/core does.
"""

from __future__ import annotations

from importlib.util import find_spec

SERVER_DEPENDENCIES = ("grpc", "uvloop", "pexpect")

if all(find_spec(name) is not None for name in SERVER_DEPENDENCIES):
    from tests.server_fixtures import *  # noqa: F403  (fixtures, hooks and helpers)
