"""Storage: one node's SQLite data and the write path into it.

Owns the schema and its migrations (schema), the tables with their apply
functions and caches (store, accounts, rooms), the state digest
(statedigest), group commit (writer), backups and snapshots' files (backup)
and the record of entries a node dropped at a master's change (rollback).

May import: chatd.core, chatd.proto, chatd.contract, chatd.words and the
server's shared modules (chatd.server.errors, chatd.server.protocol).
Never gRPC, nor chatd.server's api, chat or cluster: what the write path
tells the replication driver and the live readers it names as Protocols
(writer.Replication, writer.Readers), and node.py hands them in.
"""
