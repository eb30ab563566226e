"""The session stream's frames, written and read by hand for speed
(chatd.server.web.codec), agree with protobuf's own JSON mapping."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st

from chatd.proto import chat_pb2
from chatd.server.errors import BadMessage
from chatd.server.web.codec import client_frame, from_json, server_frame_json, to_json

text = st.text(max_size=20)
int32 = st.integers(-(2**31), 2**31 - 1)


@given(text, text, int32, st.integers(0, 2**34), st.integers(0, 999_999_999), text, text)
def test_a_delivery_as_protobufs_mapping(
    sender: str, body: str, mid: int, seconds: int, nanos: int, to: str, room: str
) -> None:
    m = chat_pb2.Message(from_=sender, message=body, message_id=mid, to=to, room=room)
    m.time_stamp.CopyFrom(Timestamp(seconds=seconds, nanos=nanos))
    frame = chat_pb2.ServerFrame(message=m)
    assert server_frame_json(frame) == to_json(frame)


reaction = st.builds(
    lambda emoji, users: chat_pb2.Reaction(emoji=emoji, users=users),
    text,
    st.lists(text, max_size=3),
)


@given(
    int32,
    st.booleans(),
    st.booleans(),
    st.lists(reaction, max_size=3),
    st.sampled_from(list(chat_pb2.Message.Kind.values())),
    int32,
)
def test_a_message_with_its_state_or_an_event_as_protobufs_mapping(
    reply_to: int,
    edited: bool,
    deleted: bool,
    reactions: list[chat_pb2.Reaction],
    kind: int,
    target: int,
) -> None:
    m = chat_pb2.Message(
        from_="ann",
        message="hi",
        message_id=9,
        reply_to=reply_to,
        edited=edited,
        deleted=deleted,
        reactions=reactions,
        kind=kind,  # type: ignore[arg-type]
        target_id=target,
    )
    m.time_stamp.CopyFrom(Timestamp(seconds=1, nanos=2))
    frame = chat_pb2.ServerFrame(message=m)
    assert server_frame_json(frame) == to_json(frame)
    assert from_json(server_frame_json(frame), chat_pb2.ServerFrame) == frame


@given(text, text, text, st.integers(0, 2**63 - 1), st.booleans(), text)
def test_a_message_with_a_file_as_protobufs_mapping(
    fid: str, name: str, kind: str, size: int, thumb: bool, sha: str
) -> None:
    ref = chat_pb2.FileRef(
        file_id=fid, name=name, content_type=kind, size=size, has_thumbnail=thumb, sha256=sha
    )
    m = chat_pb2.Message(from_="ann", message="", message_id=9, file=ref)
    m.time_stamp.CopyFrom(Timestamp(seconds=1, nanos=2))
    frame = chat_pb2.ServerFrame(message=m)
    assert server_frame_json(frame) == to_json(frame)
    assert from_json(server_frame_json(frame), chat_pb2.ServerFrame) == frame


@given(text, int32, int32, text, int32, int32)
def test_a_result_as_protobufs_mapping(
    rid: str, mid: int, code: int, why: str, status: int, retry: int
) -> None:
    r = chat_pb2.SendResult(
        request_id=rid,
        message_id=mid,
        error_code=code,
        error_message=why,
        status=status,
        retry_after_ms=retry,
    )
    frame = chat_pb2.ServerFrame(result=r)
    assert server_frame_json(frame) == to_json(frame)


@given(text, text, text, int32)
def test_a_typing_notice_as_protobufs_mapping(sender: str, peer: str, room: str, ms: int) -> None:
    t = chat_pb2.Typing(from_=sender, peer=peer, room=room, expires_ms=ms)
    frame = chat_pb2.ServerFrame(typing=t)
    assert server_frame_json(frame) == to_json(frame)


@given(text, int32, text, text)
def test_a_receipt_as_protobufs_mapping(name: str, upto: int, peer: str, room: str) -> None:
    frame = chat_pb2.ServerFrame(
        receipt=chat_pb2.Receipt(username=name, upto=upto, peer=peer, room=room)
    )
    assert server_frame_json(frame) == to_json(frame)


@given(st.fixed_dictionaries({}, optional={"peer": text, "room": text}))
def test_a_typing_frame_read_as_protobuf_reads_it(typing: dict[str, str]) -> None:
    value = {"typing": typing}
    assert client_frame(value) == from_json(value, chat_pb2.ClientFrame)
    assert client_frame(value).WhichOneof("frame") == "typing"


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "request_id": text,
            "to": text,
            "message": text,
            "room": text,
            "reply_to": int32,
            "file_id": text,
        },
    )
)
def test_a_send_read_as_protobuf_reads_it(send: dict[str, object]) -> None:
    value = {"send": send}
    assert client_frame(value) == from_json(value, chat_pb2.ClientFrame)


@given(st.lists(int32, max_size=5))
def test_an_ack_read_as_protobuf_reads_it(ids: list[int]) -> None:
    value = {"ack": {"message_ids": ids}}
    assert client_frame(value) == from_json(value, chat_pb2.ClientFrame)


def test_what_is_no_frame_is_refused() -> None:
    cases: tuple[object, ...] = (
        {"send": {"to": 5}},
        {"send": {"reply_to": 2**31}},
        {"send": {"extra": "x"}},
        {"ack": {"message_ids": [2**31]}},
        {"send": {}, "ack": {}},
        {"typing": {"room": 5}},
        {"typing": {"who": "x"}},
        {"open": {"session_id": []}},
        [],
        "send",
    )
    for value in cases:
        try:
            client_frame(value)
        except BadMessage:
            continue
        raise AssertionError(f"taken: {value!r}")
