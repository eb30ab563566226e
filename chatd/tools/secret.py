"""An operator command's cluster secret (where it is taken from) and how a
call the node refused is told. Imports no more than grpc's health check
needs, for `chatd health` runs every few seconds."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

WHERE = "--cluster-secret, --cluster-secret-file, CHATD_CLUSTER_SECRET or CHATD_CLUSTER_SECRET_FILE"


def secret_of(args: argparse.Namespace) -> str | None:
    """--cluster-secret, else --cluster-secret-file, else CHATD_CLUSTER_SECRET,
    else CHATD_CLUSTER_SECRET_FILE."""
    if getattr(args, "cluster_secret", None):
        return str(args.cluster_secret)
    path = getattr(args, "cluster_secret_file", None)
    source = "--cluster-secret-file"
    if path is None and not os.environ.get("CHATD_CLUSTER_SECRET"):
        path = os.environ.get("CHATD_CLUSTER_SECRET_FILE") or None
        source = "CHATD_CLUSTER_SECRET_FILE"
    if path is not None:
        from chatd.config import read_secret_file

        return read_secret_file(Path(path), source)
    return os.environ.get("CHATD_CLUSTER_SECRET") or None


def refused(server: str, code: str, details: str) -> int:
    """One line on stderr for a failed call (exit status 1); a wrong or
    missing cluster secret names where the command takes it from."""
    line = f"chatd: {server}: {code}: {details}"
    if code == "UNAUTHENTICATED" and "wrong or missing" in details:
        line += f" (the command takes it from {WHERE})"
    print(line, file=sys.stderr)
    return 1
