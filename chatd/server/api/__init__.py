"""API: the gRPC face of a node for clients and operators.

Owns the ClientAccount servicer (client_service), where a client's call is
served, here or at the master (router), the streams a slave carries to
the master (relay), its room RPCs (room_service), its read receipt RPCs
(presence_service), the Subscribe and Connect
streams (session_stream), the Connect streams not yet opened (unopened),
the unary calls' relay-or-serve plumbing (unary),
the one mapping of an exception to the gRPC status that answers it (status),
the method handlers that refuse a request that does not parse (handlers),
the NodeAdmin service (admin_service) and the user calls behind it
(user_admin), the health service (health) and the Prometheus metrics
(metrics). The servicers translate and relay; they hold no chat rule and
no replication logic.

May import: chat, storage, chatd.core, chatd.proto, chatd.contract,
chatd.config, gRPC and the server's shared modules (chatd.server.errors,
chatd.server.protocol). Never chatd.server's cluster: what the API asks of
the replication driver and the transport is a Protocol (ports.Cluster,
ports.Links), and build.py hands them in.
"""
