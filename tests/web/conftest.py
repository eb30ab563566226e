"""Fixtures of the web client's browser tests: real `chatd serve` nodes with
--web-listen on 127.0.0.1, and headless Chromium driven by Playwright.

Without /usr/bin/chromium (or Playwright) every browser test here is
skipped and says why (under CI it fails: ./scripts/test-deps installs both)."""

from __future__ import annotations

import asyncio
import os
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from chatd.tools.localcluster import Cluster, free_port
from tests.server_fixtures import CI

CHROMIUM = "/usr/bin/chromium"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def need_browser() -> None:
    """Skips (fails under CI, where they must run) without the browser."""
    missing = None
    if not Path(CHROMIUM).exists():
        missing = f"{CHROMIUM} is missing (./scripts/test-deps installs it)"
    elif find_spec("playwright") is None:
        missing = "playwright is not installed (./scripts/test-deps installs it)"
    if missing is None:
        return
    if CI:
        pytest.fail(f"{missing} (CI=true)")
    print(f"skipped: {missing}")
    pytest.skip(missing)


class WebCluster:
    """`chatd serve` nodes, each with its web listener; `origins[name]` is
    where a browser reaches a node's page."""

    def __init__(self, base: Path) -> None:
        self.cluster = Cluster(base)
        self.origins: dict[str, str] = {}

    def add(self, name: str, *args: str, join: str | None = None) -> str:
        """Node `name` with its web listener (`args`: more of its flags)."""
        port = free_port()
        self.cluster.add(name, "--web-listen", f"127.0.0.1:{port}", *args, join=join)
        self.origins[name] = f"http://127.0.0.1:{port}"
        return self.origins[name]

    def start(self, size: int, *args: str) -> WebCluster:
        """`size` nodes, n1 the master (`args`: more flags of each)."""
        self.add("n1", *args)
        self.cluster.wait_role("n1", "master")
        for i in range(2, size + 1):
            self.add(f"n{i}", *args, join=self.cluster.peers["n1"])
        if size > 1:
            self.cluster.wait(
                lambda: self.cluster.in_sync_count() == size, what=f"{size} nodes in sync"
            )
        for origin in self.origins.values():
            wait_page(origin)
        if size > 1:
            self.wait_hellos()
        return self

    def wait_hellos(self, timeout: float = 20.0) -> None:
        """Waits (bounded) until every node's hello names every node's web
        origin: the members learn them from each other a moment after they
        join, and a page keeps the list its node gave it on connecting."""
        want = set(self.origins.values())

        async def complete(origin: str) -> bool:
            url = origin.replace("http://", "ws://") + "/ws"
            async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
                hello = await ws.receive_json(timeout=5)
                return set(hello["hello"]["web"]) >= want

        async def all_complete() -> bool:
            return all([await complete(o) for o in self.origins.values()])

        deadline = time.monotonic() + timeout
        with ThreadPoolExecutor(1) as pool:  # (a loop of its own: the test's may be running)
            for _ in range(200):
                if time.monotonic() > deadline:
                    break
                if pool.submit(asyncio.run, all_complete()).result(timeout=timeout):
                    return
                time.sleep(0.1)
        raise AssertionError(f"the hellos never named all of {sorted(want)}")

    def log(self, name: str) -> str:
        return self.cluster.nodes[name].log()


def wait_page(origin: str, timeout: float = 20.0) -> None:
    """Waits (bounded) until `origin` serves its page."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(origin + "/", timeout=1.0) as r:
                if r.status == 200:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"{origin} did not serve its page: {last}")


@pytest.fixture
def web_cluster(tmp_path: Path) -> Iterator[WebCluster]:
    """An empty web cluster: the test starts it (`start(size)`)."""
    (tmp_path / "nodes").mkdir()
    c = WebCluster(tmp_path / "nodes")
    try:
        yield c
    finally:
        c.cluster.stop_all()


@pytest.fixture
def node_origin(web_cluster: WebCluster) -> str:
    """One node (the master), its web origin."""
    return web_cluster.start(1).origins["n1"]


@pytest.fixture
def web_node(web_cluster: WebCluster) -> str:
    """One node (the master) for a browser, its web origin."""
    need_browser()
    return web_cluster.start(1).origins["n1"]


# The web tests run in one event loop, the session's (each module's
# pytestmark says so), so that they share one Chromium: starting Playwright's
# driver and the browser took 2-5 s a test. Each test has contexts of its own
# (a context is a fresh profile: no cookie or storage is shared), closed when
# it ends.
WEB_LOOP = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium() -> AsyncIterator[Any]:
    need_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            yield b
        finally:
            await b.close()


class Browser:
    """The session's Chromium as one test sees it: `new_context` as
    Playwright's, each context closed when the test ends."""

    def __init__(self, chromium: Any) -> None:
        self.chromium = chromium
        self.contexts: list[Any] = []

    async def new_context(self, **options: Any) -> Any:
        context = await self.chromium.new_context(**options)
        self.contexts.append(context)
        return context


@pytest_asyncio.fixture(loop_scope="session")
async def browser(chromium: Any) -> AsyncIterator[Browser]:
    b = Browser(chromium)
    try:
        yield b
    finally:
        for context in b.contexts:
            await context.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Where screenshots go: $CHATD_ARTIFACTS, or the test's temporary folder."""
    folder = Path(os.environ.get("CHATD_ARTIFACTS") or tmp_path / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"web test artifacts in {folder}")
    return folder


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A browser test module without `pytestmark = WEB_LOOP` would run in a
    loop of its own and fail on the shared Chromium in a way that does not
    say why: it fails at once, saying so."""
    for item in items:
        if "tests/web/" not in str(item.path).replace(os.sep, "/"):
            continue
        marks = [m for m in item.iter_markers("asyncio") if m.kwargs.get("loop_scope")]
        if asyncio.iscoroutinefunction(getattr(item, "function", None)) and not any(
            m.kwargs["loop_scope"] == "session" for m in marks
        ):
            raise pytest.UsageError(f"{item.nodeid}: its module lacks `pytestmark = WEB_LOOP`")
