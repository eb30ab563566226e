"""chatd: a replicated chat daemon on grpc.aio and SQLite."""

__version__ = "0.1.0"
