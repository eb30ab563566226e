"""chatd: a replicated chat daemon on grpc.aio and SQLite."""

import os as _os

__version__ = "0.1.0"

# gRPC's fork handlers restart its poller in the child of a fork; the child
# of subprocess.Popen, whose fds are closed before exec, can then die on the
# closed epoll fd ("epoll_wait error: Bad file descriptor", grpc/grpc#43055).
# `chatd demo` ended so once in a full test run here (not reproduced on
# demand). chatd never forks a process that goes on using gRPC, so it needs
# none of them. (Read when gRPC starts: set before chatd imports grpc.)
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
