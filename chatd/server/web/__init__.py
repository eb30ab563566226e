"""The web client's side of a node: the page and its files, and a WebSocket
that carries the gRPC client API to the page (chatd.server.web.app).

Calls and session streams go through the very servicer the gRPC listener
serves (chatd.server.api.client_service): the same chat rules, limits,
throttles and relays to the master. This layer only translates: JSON to
protobuf and back (codec), a gRPC servicer context for a WebSocket's calls
(context), the WebSocket's messages (session), and HTTP (app).

May import: chatd.server.api (the servicer it calls), chat, storage, the
shared modules (errors, protocol) and chatd.core.
Never: chatd.server.cluster (the servicer relays; this layer does not), nor
the node that builds it.
"""
