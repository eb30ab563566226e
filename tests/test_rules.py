"""The validation rules, property-tested (hypothesis): as pure functions, and
against a real node, where a refused request changes nothing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatd.contract import Code
from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.server.build import build
from chatd.server.chat.limits import (
    ChatLimits,
    check_message,
    check_password,
    check_request_id,
    check_username,
)
from chatd.server.errors import RequestRefused
from tests.conftest import PASSWORD, node_config, user

USERNAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")
LIMITS = ChatLimits()
text = st.text(st.characters(codec="utf-8"), max_size=40)  # what UTF-8 can carry


def code_of(fn: object, *args: object) -> int:
    try:
        fn(*args)  # type: ignore[operator]
    except RequestRefused as exc:
        return int(exc.code)
    return 0


@given(text)
def test_username_rule(name: str) -> None:
    expected = 0 if USERNAME.fullmatch(name) else Code.INVALID_USERNAME
    assert code_of(check_username, name) == expected


@given(st.from_regex(USERNAME, fullmatch=True))
def test_every_well_formed_username_is_accepted(name: str) -> None:
    assert code_of(check_username, name) == 0


@given(st.integers(0, 1100), st.sampled_from(["a", "é", "字", " ", "\n"]))
def test_password_rule(length: int, ch: str) -> None:
    expected = 0 if 8 <= length <= 1024 else Code.INVALID_PASSWORD
    assert code_of(check_password, ch * length, LIMITS) == expected


@given(st.integers(0, 4200), st.integers(1, 5000))
def test_message_rule(length: int, limit: int) -> None:
    limits = ChatLimits(max_message_chars=limit)
    expected = 0 if 1 <= length <= limit else Code.INVALID_MESSAGE
    assert code_of(check_message, "m" * length, limits) == expected


@given(st.text(max_size=200))
def test_request_id_rule(rid: str) -> None:
    expected = 0 if len(rid) <= 128 else Code.INVALID_ARGUMENT
    assert code_of(check_request_id, rid) == expected


def test_boundaries() -> None:
    assert code_of(check_username, "u" * 32) == 0
    assert code_of(check_username, "u" * 33) == Code.INVALID_USERNAME
    assert code_of(check_password, "p" * 8, LIMITS) == 0
    assert code_of(check_password, "p" * 7, LIMITS) == Code.INVALID_PASSWORD
    assert code_of(check_message, "m" * 4096, LIMITS) == 0
    assert code_of(check_message, "m" * 4097, LIMITS) == Code.INVALID_MESSAGE


# -- against a real node: refused input changes nothing --

BAD_INPUT = st.one_of(
    st.tuples(st.just("create-name"), text.filter(lambda s: not USERNAME.fullmatch(s))),
    st.tuples(st.just("create-password"), st.text(max_size=7)),
    st.tuples(st.just("send-body"), st.sampled_from(["", "x" * 4097])),
    st.tuples(st.just("send-to"), text.filter(lambda s: s not in ("alice", "bob"))),
    st.tuples(st.just("session"), text),
    st.tuples(st.just("request-id"), st.text(min_size=129, max_size=140)),
    st.tuples(st.just("chat-limit"), st.integers(-(2**31), -1).map(str)),
    st.tuples(st.just("ack-ids"), st.integers(-(2**31), 0).map(str)),
)


async def refused(
    stub: chat_pb2_grpc.ClientAccountAsyncStub, sid: str, kind: str, value: str
) -> int:
    """Runs one bad request; returns its error code (0 would be a bug)."""
    r: Any
    if kind == "create-name":
        r = await stub.CreateAccount(
            chat_pb2.CreateAccountRequest(username=value, password=PASSWORD)
        )
    elif kind == "create-password":
        r = await stub.CreateAccount(
            chat_pb2.CreateAccountRequest(username="fresh", password=value)
        )
    elif kind == "send-body":
        r = await stub.Send(chat_pb2.SendRequest(to="bob", message=value, session_id=sid))
    elif kind == "send-to":
        r = await stub.Send(chat_pb2.SendRequest(to=value, message="hi", session_id=sid))
    elif kind == "session":
        r = await stub.Send(chat_pb2.SendRequest(to="bob", message="hi", session_id=value))
        assert r.error_code == Code.NOT_LOGGED_IN
        for req in (chat_pb2.ReceiveRequest(session_id=value),):
            assert (await stub.GetMessages(req)).error_code == Code.NOT_LOGGED_IN
        gc = await stub.GetChat(chat_pb2.ChatRequest(session_id=value, username="bob"))
        assert gc.error_code == Code.NOT_LOGGED_IN
        ack = chat_pb2.AcknowledgeReceivedMessagesRequest(session_id=value, message_ids=[1])
        assert (await stub.AcknowledgeReceivedMessages(ack)).error_code == Code.NOT_LOGGED_IN
        dr = chat_pb2.DeleteAccountRequest(session_id=value)
        assert (await stub.Logout(dr)).error_code == Code.NOT_LOGGED_IN
        assert (await stub.DeleteAccount(dr)).error_code == Code.NOT_LOGGED_IN
    elif kind == "request-id":
        r = await stub.Send(
            chat_pb2.SendRequest(to="bob", message="hi", session_id=sid, request_id=value)
        )
    elif kind == "chat-limit":
        r = await stub.GetChat(
            chat_pb2.ChatRequest(session_id=sid, username="bob", limit=int(value))
        )
    else:
        r = await stub.AcknowledgeReceivedMessages(
            chat_pb2.AcknowledgeReceivedMessagesRequest(session_id=sid, message_ids=[int(value)])
        )
    return int(r.error_code)


async def test_bad_input_never_changes_state(tmp_path: Path) -> None:
    n = await build(node_config(tmp_path / "n"))
    await n.start()
    try:
        async with grpc.aio.insecure_channel(n.address) as ch:
            stub = chat_pb2_grpc.ClientAccountStub(ch)
            sid = await user(stub, "alice")
            await user(stub, "bob")
            cases: list[tuple[str, str]] = []

            @settings(
                max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much]
            )
            @given(BAD_INPUT)
            def collect(case: tuple[str, str]) -> None:
                cases.append(case)

            collect()
            assert len(cases) >= 50
            before = (n.store.last_index, n.store.digest)
            for kind, value in cases:
                code = await refused(stub, sid, kind, value)
                assert code in (2, 3, 4, 5, 14, 15), (kind, value, code)
                assert (n.store.last_index, n.store.digest) == before, (kind, value)
            # and the node still serves
            r = await stub.Send(chat_pb2.SendRequest(to="bob", message="fine", session_id=sid))
            assert r.error_code == 0
    finally:
        await n.stop()


@pytest.mark.parametrize(
    ("flag", "value", "ok", "bad", "code"),
    [
        ("min_password_length", 12, "p" * 12, "p" * 11, Code.INVALID_PASSWORD),
        ("max_message_chars", 10, "m" * 10, "m" * 11, Code.INVALID_MESSAGE),
    ],
)
async def test_limits_follow_the_flags(
    tmp_path: Path, flag: str, value: int, ok: str, bad: str, code: int
) -> None:
    n = await build(node_config(tmp_path / "n", **{flag: value}))
    await n.start()
    try:
        async with grpc.aio.insecure_channel(n.address) as ch:
            stub = chat_pb2_grpc.ClientAccountStub(ch)
            if flag == "min_password_length":
                for pw, want in ((bad, code), (ok, 0)):
                    r = await stub.CreateAccount(
                        chat_pb2.CreateAccountRequest(username="a", password=pw)
                    )
                    assert r.error_code == want
            else:
                sid = await user(stub, "alice")
                for body, want in ((bad, code), (ok, 0)):
                    r = await stub.Send(
                        chat_pb2.SendRequest(to="alice", message=body, session_id=sid)
                    )
                    assert r.error_code == want
    finally:
        await n.stop()
