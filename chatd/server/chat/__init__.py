"""Chat: the rules of the chat service, free of gRPC and of replication.

Owns the limits and the checks of a request (limits), passwords and
session ids (passwords), sessions and the operations on accounts and
messages (rules), the room operations (room_ops), a user's streams of
messages: how many, and what each delivers, backlog then live (streams),
the throttles and rate limits (throttle, ratelimit,
room_rates), live delivery: the open streams of each user and who is
online (hub), a stream's typing and receipt events (events), and who may
send a typing notice, who sees it and the read receipts a user may read
(presence).

May import: storage, chatd.core, chatd.proto, chatd.contract, chatd.words
and the server's shared modules (chatd.server.errors, chatd.server.protocol).
Never gRPC, nor chatd.server's api or cluster: what a write needs of the
cluster it asks through the writer (storage.writer), wired by build.py.
"""
