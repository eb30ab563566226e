"""The web listener from outside, as a page (or an attacker) speaks to it:
real nodes in this process, a real WebSocket client (aiohttp's). The calls
and the session stream reach the client servicer (a slave relays them to
the master), every response carries the strict headers, a foreign Origin
is refused, and input that is no protocol message is answered, then closed
on. The page itself is tested in Chromium (tests/test_web_page.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chatd.core.types import Role
from chatd.server.build import build
from chatd.server.node import Node
from tests.certs import make_ca, make_cert
from tests.conftest import PASSWORD, node_config
from tests.waiting import eventually_async

pytestmark = pytest.mark.timeout(60)


async def started(path: Path, **overrides: Any) -> Node:
    n = await build(node_config(path, web_listen="127.0.0.1:0", **overrides))
    await n.start()
    return n


@pytest.fixture
async def web_node(tmp_path: Path) -> AsyncIterator[Node]:
    n = await started(tmp_path / "n1")
    try:
        yield n
    finally:
        await n.stop()


class Page:
    """A WebSocket as the page holds it: numbered calls, one stream."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.hello: dict[str, Any] = {}

    async def read(self, timeout: float = 10) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        out: dict[str, Any] = json.loads(msg.data)
        return out

    async def call(self, name: str, **request: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "call": name, "request": request})
        while (answer := await self.read()).get("id") != self.next_id:
            pass
        return answer

    async def user(self, name: str) -> str:
        r = await self.call("CreateAccount", username=name, password=PASSWORD)
        assert r["response"]["error_code"] == 0, r
        r = await self.call("Login", username=name, password=PASSWORD)
        assert r["response"]["error_code"] == 0, r
        return str(r["response"]["session_id"])


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def page(http: aiohttp.ClientSession, node: Node, origin: str | None = None) -> Page:
    headers = {"Origin": origin or node.web_origin}
    ws = await http.ws_connect(node.web_origin + "/ws", headers=headers)
    p = Page(ws)
    first = await p.read()
    p.hello = first["hello"]
    return p


async def test_calls_and_a_session_stream(web_node: Node, http: aiohttp.ClientSession) -> None:
    p = await page(http, web_node)
    assert p.hello["node_id"] == web_node.node_id and p.hello["role"] == "master"
    assert p.hello["web"] == [web_node.web_origin] and p.hello["protocol"] == 1
    ann = await p.user("ann")
    await p.user("bob")
    users = await p.call("ListUsers")
    assert {u["username"] for u in users["response"]["user"]} == {"ann", "bob"}
    assert users["metadata"]["chatd-master"] == web_node.address
    # an application error travels in the response, as over gRPC
    bad = await p.call("Login", username="ann", password="wrong-password")
    assert bad["response"]["error_code"] != 0 and bad["response"]["error_message"]
    await p.ws.send_json({"id": 50, "connect": {"session_id": ann}})
    opened = await p.read()
    assert opened == {"id": 50, "opened": {"metadata": {"chatd-master": web_node.address}}}
    send = {"request_id": "r1", "to": "bob", "message": "hello bob"}
    await p.ws.send_json({"id": 50, "frame": {"send": send}})
    result = (await p.read())["frame"]["result"]
    assert result["request_id"] == "r1" and result["message_id"] > 0 and result["status"] == 0
    # the same request id again: stored once
    await p.ws.send_json({"id": 50, "frame": {"send": send}})
    again = (await p.read())["frame"]["result"]
    assert again["message_id"] == result["message_id"]
    # bob's page: the backlog on his stream, a proper time stamp
    b = await page(http, web_node)
    r = await b.call("Login", username="bob", password=PASSWORD)
    await b.ws.send_json({"id": 9, "connect": {"session_id": r["response"]["session_id"]}})
    assert "opened" in await b.read()
    got = (await b.read())["frame"]["message"]
    assert got["from_"] == "ann" and got["message"] == "hello bob" and got["to"] == "bob"
    assert got["message_id"] == result["message_id"] and got["time_stamp"].endswith("Z")
    # the page ends its stream: OK
    await b.ws.send_json({"id": 9, "close": {}})
    assert (await b.read())["end"]["code"] == "OK"


async def test_every_response_carries_the_strict_headers(
    web_node: Node, http: aiohttp.ClientSession
) -> None:
    for path in ("/", "/static/nothing-here.js", "/ws-not", "/../etc/passwd"):
        async with http.get(web_node.web_origin + path) as r:
            csp = r.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["Referrer-Policy"] == "no-referrer"
            if path != "/":
                assert r.status == 404, path


async def test_a_foreign_origin_is_refused(web_node: Node, http: aiohttp.ClientSession) -> None:
    for origin in ("http://evil.example", "null", web_node.web_origin + ".evil.example"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await http.ws_connect(web_node.web_origin + "/ws", headers={"Origin": origin})
        assert caught.value.status == 403, origin
    # the node reached by IP: the same origin the browser used is taken
    port = web_node.web_origin.rpartition(":")[2]
    p = await page(http, web_node, origin=f"http://127.0.0.1:{port}")
    assert p.hello["node_id"] == web_node.node_id


async def test_bad_input_is_answered_and_a_socket_with_nothing_valid_closed(
    web_node: Node, http: aiohttp.ClientSession
) -> None:
    p = await page(http, web_node)
    await p.user("ann")
    cases: list[tuple[Any, str]] = [
        ("not json", "not JSON"),
        ("[1, 2]", "a JSON object"),
        ('{"call": "Login"}', "needs an id"),
        ('{"id": -3, "call": "Login"}', "needs an id"),
        ('{"id": 4, "call": "Login", "connect": {}}', "one of"),
        ('{"id": 5, "call": "DropTables"}', "no call named"),
        ('{"id": 6, "call": "Login", "request": {"username": 5}}', "not a valid LoginRequest"),
        ('{"id": 7, "call": "Login", "request": {"sneaky": 1}}', "not a valid LoginRequest"),
        ('{"id": 8, "frame": {"send": {}}}', "no stream 8"),
        ('{"id": 9, "connect": {"session_id": 1}}', "not a valid OpenFrame"),
        ("[" * 100_000, "not JSON"),
    ]
    for text, said in cases:
        await p.ws.send_str(text)
        answer = await p.read()
        assert answer["error"]["code"] == "INVALID_ARGUMENT" and said in answer["error"]["details"]
    assert (await p.call("ListUsers"))["response"]["user"], "the socket still serves"
    # binary is no message either
    await p.ws.send_bytes(b"\x00\x01")
    assert "JSON text" in (await p.read())["error"]["details"]

    # a socket whose first message is junk: answered, then closed (1008)
    q = await page(http, web_node)
    await q.ws.send_str("junk")
    assert (await q.read())["error"]["details"] == "not JSON"
    closed = await q.ws.receive(timeout=5)
    assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 1008


async def test_a_silent_socket_is_closed_within_the_first_frame_timeout(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    n = await started(tmp_path / "n1", first_frame_timeout=0.5)
    try:
        p = await page(http, n)
        began = asyncio.get_running_loop().time()
        closed = await p.ws.receive(timeout=10)
        took = asyncio.get_running_loop().time() - began
        assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 1008
        assert took < 3, took
    finally:
        await n.stop()


async def test_throttles_are_kept_per_page_address_and_a_proxy_only_when_trusted(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """--account-rate 1: one account an hour per client address. Pages on
    this host share 127.0.0.1; X-Forwarded-For counts only from a trusted
    proxy."""
    n = await started(tmp_path / "n1", account_rate=1, web_trusted_proxies=("127.0.0.2",))
    try:
        p = await page(http, n)
        first = await p.call("CreateAccount", username="ann", password=PASSWORD)
        assert first["response"]["error_code"] == 0, first
        # a forwarded-for header from an untrusted peer changes nothing
        ws = await http.ws_connect(
            n.web_origin + "/ws",
            headers={"Origin": n.web_origin, "X-Forwarded-For": "10.9.9.9"},
        )
        q = Page(ws)
        await q.read()
        second = await q.call("CreateAccount", username="bob", password=PASSWORD)
        assert "error" in second and second["error"]["code"] == "RESOURCE_EXHAUSTED", second
        assert int(second["error"]["metadata"]["chatd-retry-after-ms"]) > 0
        # the trusted proxy (a connection from 127.0.0.2) names its client
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=connector) as proxied:
            for client, code in (("10.9.9.9", 0), ("10.9.9.9", None), ("10.9.9.8", 0)):
                ws = await proxied.ws_connect(
                    n.web_origin + "/ws",
                    headers={"Origin": n.web_origin, "X-Forwarded-For": f"1.1.1.1, {client}"},
                )
                r = Page(ws)
                await r.read()
                made = await r.call(
                    "CreateAccount", username=f"u{client[-1]}{code}", password=PASSWORD
                )
                if code is None:
                    assert made["error"]["code"] == "RESOURCE_EXHAUSTED", made
                else:
                    assert made["response"]["error_code"] == code, made
                await ws.close()
    finally:
        await n.stop()


async def test_a_slave_relays_a_pages_calls_and_sends_and_serves_its_deliveries(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    master = await started(tmp_path / "m")
    slave = await started(tmp_path / "s", join=(master.peer_address,))
    try:

        def slave_of_a_known_master() -> bool:
            core = slave.repl.core
            return core.role is Role.SLAVE and bool(core.membership.addresses.get(core.master))

        await eventually_async(slave_of_a_known_master, "the second node a slave")
        p = await page(http, slave)
        assert p.hello["role"] == "slave"
        # a page that came early is told the other member's origin once it is known
        while len(p.hello["web"]) < 2:
            said = await p.read()
            assert set(said) == {"hello"}, said
            p.hello = said["hello"]
        assert p.hello["web"] == [slave.web_origin, master.web_origin]
        ann = await p.user("ann")
        await p.user("bob")
        await p.ws.send_json({"id": 3, "connect": {"session_id": ann}})
        opened = await p.read()
        assert opened["opened"]["metadata"]["chatd-master"] == master.address
        send = {"request_id": "s1", "to": "ann", "message": "to myself, via the slave"}
        await p.ws.send_json({"id": 3, "frame": {"send": send}})
        seen: dict[str, Any] = {}
        for _ in range(2):
            frame = (await p.read())["frame"]
            seen.update(frame)
        assert seen["result"]["message_id"] == seen["message"]["message_id"] > 0
        assert master.store.last_index > 0
        # each node names both pages; a page of the master's is taken at the slave
        both = {master.web_origin, slave.web_origin}
        await eventually_async(lambda: set(slave.web_origins_now()) == both, "both origins")
        q = await page(http, slave, origin=master.web_origin)
        assert q.hello["web"] == [slave.web_origin, master.web_origin]
        # (the same port by another name is no member's origin)
        other = master.web_origin.replace("127.0.0.1", "localhost")
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(slave.web_origin + "/ws", headers={"Origin": other})
    finally:
        await master.stop()
        await slave.stop()


async def test_a_node_that_stops_closes_its_pages_sockets_going_away(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    n = await started(tmp_path / "n1")
    stopped = False
    try:
        p = await page(http, n)
        await p.user("ann")
        await n.stop()
        stopped = True
        closed = await p.ws.receive(timeout=10)
        assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 1001
    finally:
        if not stopped:
            await n.stop()


async def test_with_the_nodes_certificate_the_page_is_https_and_the_socket_wss(
    tmp_path: Path,
) -> None:
    ca, ca_key, ca_cert = make_ca(tmp_path)
    cert, key = make_cert(tmp_path, "n1", ca_key, ca_cert)
    n = await started(tmp_path / "n1", tls_cert=cert, tls_key=key)
    try:
        assert n.web_origin.startswith("https://127.0.0.1:"), n.web_origin
        trusted = ssl.create_default_context(cafile=str(ca))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusted)) as s:
            p = await page(s, n)
            assert p.hello["web"] == [n.web_origin]
            assert (await p.call("ListUsers"))["response"] == {"user": []}
            # plain HTTP on the TLS port gets no page
            plain = n.web_origin.replace("https://", "http://")
            with pytest.raises(aiohttp.ClientError):
                async with s.get(plain + "/") as r:
                    await r.read()
    finally:
        await n.stop()


async def test_the_pages_sockets_and_calls_show_in_the_metrics(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    n = await started(tmp_path / "n1", metrics_port=0)
    try:
        p = await page(http, n)
        await p.user("ann")

        async def scraped() -> str:
            async with http.get(f"http://127.0.0.1:{n.metrics_port}/metrics") as r:
                return await r.text()

        async def one_socket() -> bool:
            return "chatd_web_sockets 1.0" in await scraped()

        await eventually_async(one_socket, "chatd_web_sockets 1")
        text = await scraped()
        assert 'chatd_requests_total{code="OK",error_code="0",rpc="Login"} 1.0' in text, text
    finally:
        await n.stop()


async def test_a_page_that_vanishes_mid_stream_leaves_no_error_in_the_log(
    web_node: Node, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A browser tab closed while its deliveries and results flow: the
    node ends the stream quietly (no ERROR, no traceback) and serves on."""
    caplog.set_level(logging.WARNING)
    for round_ in range(5):
        p = await page(http, web_node)
        ann = await p.user(f"ann{round_}")
        await p.ws.send_json({"id": 1, "connect": {"session_id": ann}})
        assert "opened" in await p.read()
        for k in range(50):
            send = {"request_id": f"{round_}-{k}", "to": f"ann{round_}", "message": "x" * 500}
            await p.ws.send_json({"id": 1, "frame": {"send": send}})
        await p.read()
        connection = p.ws._response.connection  # the TCP connection, cut
        assert connection is not None and connection.transport is not None
        transport = connection.transport
        transport.abort()
    q = await page(http, web_node)
    assert (await q.call("ListUsers"))["response"]["user"]
    await asyncio.sleep(0.5)
    bad = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not bad, [r.getMessage() for r in bad]


async def test_a_frame_for_a_stream_that_just_ended_is_dropped_not_refused(
    web_node: Node, http: aiohttp.ClientSession
) -> None:
    """The node ends a stream (here: its session logged out elsewhere) while
    the page writes a frame for it: the page reads the end and opens
    another; the frame it wrote meanwhile gets no refusal (which the page
    would show as one). A stream id never opened is still refused."""
    p = await page(http, web_node)
    ann = await p.user("ann")
    await p.user("bob")
    await p.ws.send_json({"id": 40, "connect": {"session_id": ann}})
    assert "opened" in await p.read()
    other = await page(http, web_node)
    await other.call("Logout", session_id=ann)
    while "end" not in (ended := await p.read()):
        pass
    assert ended["id"] == 40 and ended["end"]["code"] == "UNAUTHENTICATED", ended
    send = {"request_id": "late", "to": "bob", "message": "written before the end was read"}
    await p.ws.send_json({"id": 40, "frame": {"send": send}})
    await p.ws.send_json({"id": 40, "close": {}})
    await p.ws.send_json({"id": 41, "frame": {"send": send}})  # never opened
    answer = await p.read()
    assert answer["id"] == 41 and "no stream 41" in answer["error"]["details"], answer
    assert (await p.call("ListUsers"))["response"]["user"]  # the socket still serves
