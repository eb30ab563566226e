"""The wire contract of API.md, read off the generated descriptors, and the
check that the committed generated code is what `scripts/gen_protos.py`
makes from protos/ today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from google.protobuf.descriptor import FieldDescriptor as F

from chatd.proto import chat_pb2, cluster_pb2

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "chatd" / "proto"

STRING, INT32, BOOL, MESSAGE = F.TYPE_STRING, F.TYPE_INT32, F.TYPE_BOOL, F.TYPE_MESSAGE
INT64, BYTES = F.TYPE_INT64, F.TYPE_BYTES

# message -> [(number, name, type, repeated?)], exactly as in API.md (plus additions)
CONTRACT: dict[str, list[tuple[int, str, int, bool]]] = {
    "CreateAccountRequest": [(1, "username", STRING, False), (2, "password", STRING, False)],
    "LoginRequest": [(1, "username", STRING, False), (2, "password", STRING, False)],
    "ServerResponse": [
        (1, "error_code", INT32, False),
        (2, "error_message", STRING, False),
        (3, "session_id", STRING, False),
        (4, "message_id", INT32, False),
    ],
    "SendRequest": [
        (1, "to", STRING, False),
        (2, "message", STRING, False),
        (3, "session_id", STRING, False),
        (4, "request_id", STRING, False),
        (5, "room", STRING, False),  # addition: rooms
        (6, "reply_to", INT32, False),  # addition: replies (protocol 4)
        (7, "file_id", STRING, False),  # addition: files (protocol 4)
    ],
    "ReceiveRequest": [(1, "session_id", STRING, False)],
    "ChatRequest": [
        (1, "session_id", STRING, False),
        (2, "username", STRING, False),
        (3, "before_message_id", INT32, False),
        (4, "limit", INT32, False),
    ],
    "AcknowledgeReceivedMessagesRequest": [
        (1, "session_id", STRING, False),
        (2, "message_ids", INT32, True),
    ],
    "DeleteAccountRequest": [(1, "session_id", STRING, False)],
    "Message": [
        (1, "from_", STRING, False),
        (2, "message", STRING, False),
        (3, "message_id", INT32, False),
        (4, "time_stamp", MESSAGE, False),
        (5, "to", STRING, False),
        (6, "room", STRING, False),  # addition: rooms
        # additions: a message's state, and events (protocol 4)
        (7, "reply_to", INT32, False),
        (8, "edited", BOOL, False),
        (9, "deleted", BOOL, False),
        (10, "reactions", MESSAGE, True),
        (11, "kind", F.TYPE_ENUM, False),
        (12, "target_id", INT32, False),
        (13, "file", MESSAGE, False),  # addition: files (14 reserved: see GetProfiles)
    ],
    "Messages": [
        (1, "error_code", INT32, False),
        (2, "error_message", STRING, False),
        (3, "message", MESSAGE, True),
    ],
    "Empty": [],
    "User": [(1, "username", STRING, False), (2, "status", STRING, False)],
    "Users": [(1, "user", MESSAGE, True)],
    # field 3 is chatd's addition (API.md allows new field numbers)
    "SubscribeRequest": [
        (1, "session_id", STRING, False),
        (2, "after_message_id", INT32, False),
        (3, "live_only", BOOL, False),
        (4, "events", BOOL, False),  # addition: events (protocol 4)
    ],
    # issue 27's additions (typing notices, read receipts)
    "TypingFrame": [(1, "peer", STRING, False), (2, "room", STRING, False)],
    "Typing": [
        (1, "from_", STRING, False),
        (2, "peer", STRING, False),
        (3, "room", STRING, False),
        (4, "expires_ms", INT32, False),
    ],
    "Receipt": [
        (1, "username", STRING, False),
        (2, "upto", INT32, False),
        (3, "peer", STRING, False),
        (4, "room", STRING, False),
    ],
    "ReceiptsRequest": [
        (1, "session_id", STRING, False),
        (2, "peer", STRING, False),
        (3, "room", STRING, False),
    ],
    "Receipts": [
        (1, "error_code", INT32, False),
        (2, "error_message", STRING, False),
        (3, "receipt", MESSAGE, True),
        (4, "not_sharing", BOOL, False),
    ],
    "ShareReceiptsRequest": [(1, "session_id", STRING, False), (2, "share", BOOL, False)],
    # additions: files and profiles (protocol 4)
    "UploadChunk": [
        (1, "session_id", STRING, False),
        (2, "name", STRING, False),
        (3, "content_type", STRING, False),
        (4, "total_size", INT64, False),
        (5, "data", BYTES, False),
    ],
    "UploadResult": [
        (1, "error_code", INT32, False),
        (2, "error_message", STRING, False),
        (3, "file", MESSAGE, False),
    ],
    "FileRef": [
        (1, "file_id", STRING, False),
        (2, "name", STRING, False),
        (3, "content_type", STRING, False),
        (4, "size", INT64, False),
        (5, "has_thumbnail", BOOL, False),
        (6, "sha256", STRING, False),
    ],
    "FileRequest": [
        (1, "session_id", STRING, False),
        (2, "file_id", STRING, False),
        (3, "thumbnail", BOOL, False),
        (4, "offset", INT64, False),
    ],
    "FileData": [
        (1, "error_code", INT32, False),
        (2, "error_message", STRING, False),
        (3, "file", MESSAGE, False),
        (4, "data", BYTES, False),
    ],
    "ProfileRequest": [
        (1, "session_id", STRING, False),
        (2, "display_name", STRING, False),
        (3, "avatar_file_id", STRING, False),
    ],
    "ProfilesRequest": [(1, "session_id", STRING, False), (2, "usernames", STRING, True)],
    "Profile": [
        (1, "username", STRING, False),
        (2, "display_name", STRING, False),
        (3, "avatar_file_id", STRING, False),
    ],
    "Profiles": [
        (1, "error_code", INT32, False),
        (2, "error_message", STRING, False),
        (3, "profile", MESSAGE, True),
    ],
}

RPCS = {
    "CreateAccount": ("CreateAccountRequest", "ServerResponse", False),
    "ListUsers": ("Empty", "Users", False),
    "Login": ("LoginRequest", "ServerResponse", False),
    "Send": ("SendRequest", "ServerResponse", False),
    "GetMessages": ("ReceiveRequest", "Messages", False),
    "GetChat": ("ChatRequest", "Messages", False),
    "AcknowledgeReceivedMessages": (
        "AcknowledgeReceivedMessagesRequest",
        "ServerResponse",
        False,
    ),
    "DeleteAccount": ("DeleteAccountRequest", "ServerResponse", False),
    "Logout": ("DeleteAccountRequest", "ServerResponse", False),
    "Subscribe": ("SubscribeRequest", "Message", True),
}
# chatd's additions: new RPCs only, the contract's above unchanged
ADDED = {
    "Connect": ("ClientFrame", "ServerFrame", True),  # bidirectional
    "CreateRoom": ("RoomRequest", "ServerResponse", False),
    "InviteToRoom": ("RoomMemberRequest", "ServerResponse", False),
    "JoinRoom": ("RoomRequest", "ServerResponse", False),
    "LeaveRoom": ("RoomRequest", "ServerResponse", False),
    "RemoveFromRoom": ("RoomMemberRequest", "ServerResponse", False),
    "NameRoomAdmin": ("RoomMemberRequest", "ServerResponse", False),
    "ListRooms": ("RoomRequest", "Rooms", False),
    "ListRoomMembers": ("RoomRequest", "RoomMembers", False),
    "GetRoomHistory": ("RoomHistoryRequest", "Messages", False),
    "MarkRead": ("MarkReadRequest", "ServerResponse", False),
    "ListUnread": ("ReceiveRequest", "UnreadCounts", False),
    "ChangePassword": ("ChangePasswordRequest", "ServerResponse", False),
    "DeleteRoom": ("RoomRequest", "ServerResponse", False),
    "DeclineInvite": ("RoomRequest", "ServerResponse", False),
    "EditMessage": ("EditMessageRequest", "ServerResponse", False),
    "DeleteMessage": ("MessageRequest", "ServerResponse", False),
    "React": ("ReactRequest", "ServerResponse", False),
    "ListReceipts": ("ReceiptsRequest", "Receipts", False),
    "ShareReceipts": ("ShareReceiptsRequest", "ServerResponse", False),
    "SearchMessages": ("SearchRequest", "SearchResults", False),
    "SearchUsers": ("SearchUsersRequest", "Users", False),
    "SetProfile": ("ProfileRequest", "ServerResponse", False),
    "GetProfiles": ("ProfilesRequest", "Profiles", False),
}
# additions streaming one way: (request, response, client streaming, server streaming)
ADDED_ONE_WAY = {
    "UploadFile": ("UploadChunk", "UploadResult", True, False),
    "GetFile": ("FileRequest", "FileData", False, True),
}


def test_client_service_matches_the_contract() -> None:
    service = chat_pb2.DESCRIPTOR.services_by_name["ClientAccount"]
    assert service.full_name == "ClientAccount"  # no package
    assert chat_pb2.DESCRIPTOR.package == ""
    methods = {m.name: m for m in service.methods}
    assert set(methods) == set(RPCS) | set(ADDED) | set(ADDED_ONE_WAY)
    for name, (request, response, streaming) in RPCS.items():
        m = methods[name]
        assert m.input_type.full_name == request, name
        assert m.output_type.full_name == response, name
        assert m.server_streaming is streaming and not m.client_streaming, name
    for name, (request, response, both) in ADDED.items():
        m = methods[name]
        assert (m.input_type.full_name, m.output_type.full_name) == (request, response), name
        assert m.server_streaming is both and m.client_streaming is both, name
    for name, (request, response, client, server) in ADDED_ONE_WAY.items():
        m = methods[name]
        assert (m.input_type.full_name, m.output_type.full_name) == (request, response), name
        assert (m.client_streaming, m.server_streaming) == (client, server), name


def test_messages_match_the_contract() -> None:
    for name, fields in CONTRACT.items():
        desc = chat_pb2.DESCRIPTOR.message_types_by_name[name]
        got = [
            (f.number, f.name, f.type, f.is_repeated)
            for f in sorted(desc.fields, key=lambda f: f.number)
        ]
        assert got == fields, name
    ts = chat_pb2.Message.DESCRIPTOR.fields_by_name["time_stamp"].message_type
    assert ts is not None and ts.full_name == "google.protobuf.Timestamp"
    assert chat_pb2.Message.DESCRIPTOR.fields_by_name["message"].type == STRING
    # the frames' additions: each a field of its oneof, at the contract's number
    for message, number, name, type_name in (
        ("OpenFrame", 5, "events", ""),
        ("ClientFrame", 4, "typing", "TypingFrame"),
        ("ServerFrame", 3, "typing", "Typing"),
        ("ServerFrame", 4, "receipt", "Receipt"),
        ("SendFrame", 6, "file_id", ""),
    ):
        f = chat_pb2.DESCRIPTOR.message_types_by_name[message].fields_by_number[number]
        assert f.name == name, (message, number)
        assert (f.message_type.name if f.message_type else "") == type_name, (message, number)


def test_empty_bytes_parse_as_every_request() -> None:
    for name in CONTRACT:
        msg = getattr(chat_pb2, name).FromString(b"")
        assert msg.ByteSize() == 0


def test_cluster_services_keep_the_seed_names_without_package() -> None:
    assert cluster_pb2.DESCRIPTOR.package == ""
    services = cluster_pb2.DESCRIPTOR.services_by_name
    assert {m.name for m in services["MasterService"].methods} == {
        "RegisterSlave",
        "HeartBeat",
        "CheckMaster",
        "ReportDigest",
    }
    assert {m.name for m in services["SlaveService"].methods} == {
        "AcceptUpdates",
        "UpdateMaster",
        "UpdateSlaves",
    }
    accept = services["SlaveService"].methods_by_name["AcceptUpdates"]
    assert accept.client_streaming and accept.server_streaming


def test_generated_code_is_current(tmp_path: Path) -> None:
    """Fails when protos/ changed without `python scripts/gen_protos.py`."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = {
        p.relative_to(tmp_path / "chatd" / "proto"): p
        for p in (tmp_path / "chatd" / "proto").glob("*_pb2*.py*")
    }
    committed = {p.relative_to(GENERATED): p for p in GENERATED.glob("*_pb2*.py*")}
    assert sorted(map(str, fresh)) == sorted(map(str, committed)), (
        "generated files differ in number: run `python scripts/gen_protos.py`"
    )
    stale = [str(rel) for rel, p in fresh.items() if p.read_bytes() != committed[rel].read_bytes()]
    assert not stale, f"stale generated code {stale}: run `python scripts/gen_protos.py`"
