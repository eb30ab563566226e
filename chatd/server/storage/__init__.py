"""Storage: one node's SQLite data and the write path into it.

Owns the schema's version and its migrations (schema); the store, the
facade the other layers use (store: the log, begin/append/commit, the
caches, the digests); the table families, each with its tables' schema, its
apply functions and its cache: meta (the log, node-local meta, cluster
settings), users (accounts and sessions: the Directory), messages (messages,
request ids), delivery (room delivery marks, read markers), rooms (rooms,
members: the Rooms cache) with room_rules (what may change a room),
accounts (account administration) and receipts (who shares read receipts,
and who is told of a read marker that moved); the table of which function
applies each entry kind (apply); what apply hands out (rows); the connections and
their locks (connections); the reads of committed data (reads); copying
a store's file and installing a copy as a snapshot (snapshot); the state
digest (statedigest); group commit (writer); backup files (backup); the
data dir's lock (dirlock) and the record of entries a node dropped at a
master's change (rollback).

May import: chatd.core, chatd.proto, chatd.contract, chatd.words and the
server's shared modules (chatd.server.errors, chatd.server.protocol).
Never gRPC, nor chatd.server's api, chat or cluster: what the write path
tells the replication driver and the live readers it names as Protocols
(writer.Replication, writer.Readers), and build.py hands them in.
"""
