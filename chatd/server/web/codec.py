"""Protobuf messages as the page sees them: protobuf's JSON mapping with the
.proto field names and every field present (zeros included), as plain
dicts for json.dumps; and the page's JSON parsed back, strictly (an unknown
field or a wrong type is refused, never guessed at).

The frames of a session stream, the hot path, are written and read by hand;
tests/test_web_codec.py checks them against json_format's mapping."""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from chatd.proto import chat_pb2
from chatd.server.errors import BadMessage

M = TypeVar("M", bound=Message)


def to_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(
        message, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
    )


def from_json(value: Any, cls: type[M]) -> M:
    """`value` (a JSON object) as a `cls` message; BadMessage otherwise."""
    if not isinstance(value, dict):
        raise BadMessage(f"a {cls.DESCRIPTOR.name} is a JSON object")
    try:
        return json_format.ParseDict(value, cls())
    except (json_format.ParseError, TypeError, ValueError, RecursionError) as exc:
        why = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise BadMessage(f"not a valid {cls.DESCRIPTOR.name}: {why}") from None


_KIND = chat_pb2.Message.Kind.Name


def message_json(m: chat_pb2.Message) -> dict[str, Any]:
    return {
        "from_": m.from_,
        "message": m.message,
        "message_id": m.message_id,
        "time_stamp": m.time_stamp.ToJsonString() if m.HasField("time_stamp") else None,
        "to": m.to,
        "room": m.room,
        "reply_to": m.reply_to,
        "edited": m.edited,
        "deleted": m.deleted,
        "reactions": [{"emoji": r.emoji, "users": list(r.users)} for r in m.reactions],
        "kind": _KIND(m.kind),
        "target_id": m.target_id,
    } | ({"file": _file_json(m.file)} if m.HasField("file") else {})


def _file_json(f: chat_pb2.FileRef) -> dict[str, Any]:
    return {
        "file_id": f.file_id,
        "name": f.name,
        "content_type": f.content_type,
        "size": str(f.size),  # (an int64, as protobuf's mapping writes it)
        "has_thumbnail": f.has_thumbnail,
        "sha256": f.sha256,
    }


def server_frame_json(f: chat_pb2.ServerFrame) -> dict[str, Any]:
    """A delivery, a send's result, a typing notice or a read receipt
    (to_json's mapping, written out)."""
    kind = f.WhichOneof("frame")
    if kind == "message":
        return {"message": message_json(f.message)}
    if kind == "typing":
        t = f.typing
        return {
            "typing": {
                "from_": t.from_,
                "peer": t.peer,
                "room": t.room,
                "expires_ms": t.expires_ms,
            }
        }
    if kind == "receipt":
        c = f.receipt
        return {"receipt": {"username": c.username, "upto": c.upto, "peer": c.peer, "room": c.room}}
    r = f.result
    return {
        "result": {
            "request_id": r.request_id,
            "message_id": r.message_id,
            "error_code": r.error_code,
            "error_message": r.error_message,
            "status": r.status,
            "retry_after_ms": r.retry_after_ms,
        }
    }


_SEND_FIELDS = {"request_id", "to", "message", "room", "reply_to", "file_id"}
_TYPING_FIELDS = {"peer", "room"}
INT32_MAX = 2**31 - 1


def _send_field(key: str, v: Any) -> bool:
    """Whether a send frame's field has the usual shape (strings, and a
    whole number for reply_to)."""
    if key == "reply_to":
        return type(v) is int and -INT32_MAX - 1 <= v <= INT32_MAX
    return type(v) is str


def client_frame(value: Any) -> chat_pb2.ClientFrame:
    """A send, ack or typing frame from the page: read by hand when it has
    the usual shape (strings and reply_to's number for a send, strings for
    typing, whole numbers for an
    ack), else by from_json."""
    if isinstance(value, dict) and len(value) == 1:
        send = value.get("send")
        if (
            isinstance(send, dict)
            and send.keys() <= _SEND_FIELDS
            and all(_send_field(k, v) for k, v in send.items())
        ):
            return chat_pb2.ClientFrame(send=chat_pb2.SendFrame(**send))
        ack = value.get("ack")
        if isinstance(ack, dict) and ack.keys() <= {"message_ids"}:
            ids = ack.get("message_ids", [])
            if isinstance(ids, list) and all(
                type(i) is int and -INT32_MAX - 1 <= i <= INT32_MAX for i in ids
            ):
                return chat_pb2.ClientFrame(ack=chat_pb2.AckFrame(message_ids=ids))
        typing = value.get("typing")
        if (
            isinstance(typing, dict)
            and typing.keys() <= _TYPING_FIELDS
            and all(type(v) is str for v in typing.values())
        ):
            return chat_pb2.ClientFrame(typing=chat_pb2.TypingFrame(**typing))
    return from_json(value, chat_pb2.ClientFrame)
