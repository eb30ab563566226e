"""Cluster: replication between nodes.

Owns the replication driver that runs the role core and carries out its
actions (replication), what it keeps in the store: epoch, membership,
received entries, snapshots, truncation (persistence), the matching of the
core's replies to the requests from other nodes that wait for them, by
request id (replies), the transport of cluster traffic: log streams, unary
calls, snapshots (peers), the peer services MasterService and SlaveService
(peer_service), the translation between core messages and the cluster
protobufs (wire) with the checks of single fields (checks), the cluster
secret's interceptor (secret), the state digest reports (digests), and the
Protocols by which the driver and the transport know each other (ports).

May import: storage, chatd.core, chatd.proto, chatd.contract, chatd.config,
chatd.tls, gRPC and the server's shared modules (chatd.server.errors,
chatd.server.protocol). Never chatd.server's api or chat: the live readers
it ends at a master's change are a Protocol (ports.Streams), and build.py
hands in the hub.
"""
