"""Operator commands on backups: `chatd backup` and `chatd export`.

`chatd backup --server HOST:PORT FILE` asks any node (a slave carries the
call to the master) for a backup, writes it to a new file beside FILE with
a progress line on a terminal, checks it (chatd.server.storage.backup.describe: the
copy's tables give the state digest the master sent) and only then moves
it to FILE; an existing FILE is kept unless --force. `chatd export --user
NAME` writes one user's data as JSON lines, from a backup file (`--backup
FILE`) or a fresh backup of a running cluster. Both hold private messages:
what they write is readable by its owner only (chatd.private).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import TextIO

import grpc

from chatd import private
from chatd.contract import secret_metadata
from chatd.proto import cluster_pb2, cluster_pb2_grpc
from chatd.server.storage.backup import BackupError, BackupInfo, describe, dumps, export_user
from chatd.tools.admin import channel, fail, secret_of

MIB = 1 << 20


class Progress:
    """One line, rewritten, on a terminal; nothing elsewhere."""

    def __init__(self, out: TextIO) -> None:
        self.out = out if out.isatty() else None
        self.shown = -1

    def update(self, done: int, total: int) -> None:
        if self.out is None or total <= 0:
            return
        percent = 100 * done // total
        if percent != self.shown:
            self.shown = percent
            self.out.write(f"\rbackup: {percent:3d}% ({done / MIB:.1f} of {total / MIB:.1f} MiB)")
            self.out.flush()

    def end(self) -> None:
        if self.out is not None and self.shown >= 0:
            self.out.write("\n")
            self.out.flush()


async def fetch(args: argparse.Namespace, target: Path, progress: Progress) -> BackupInfo:
    """Writes a backup from the node at --server to `target` and checks it."""
    header: cluster_pb2.BackupChunk | None = None
    written = 0
    async with channel(args, args.server) as ch:
        call = cluster_pb2_grpc.NodeAdminStub(ch).Backup(
            cluster_pb2.BackupRequest(),
            metadata=secret_metadata(secret_of(args)),
            timeout=args.timeout,
        )
        with target.open("wb") as f:
            async for chunk in call:
                if header is None:
                    header = chunk
                written += len(chunk.data)
                await asyncio.to_thread(f.write, chunk.data)
                progress.update(written, chunk.total_bytes)
                if chunk.last:
                    break
            f.flush()
            os.fsync(f.fileno())
    progress.end()
    if header is None or written != header.total_bytes:
        raise BackupError(f"the backup ended after {written} bytes, short of its size")
    info = await asyncio.to_thread(describe, target)
    if (info.index, info.state_digest) != (header.index, header.state_digest):
        raise BackupError(
            f"the copy holds index {info.index}, state digest {info.state_digest}; the master "
            f"sent index {header.index}, state digest {header.state_digest}"
        )
    return info


def backup(args: argparse.Namespace) -> int:
    target = Path(args.file)
    exists = f"{target} exists: name another FILE, or add --force to replace it"
    if target.exists() and not args.force:  # (said before a backup is taken for nothing)
        print(f"chatd backup: {exists}", file=sys.stderr)
        return 1
    try:
        partial = private.new_file_beside(target)
    except OSError as exc:
        print(f"chatd backup: cannot write beside {target}: {exc}", file=sys.stderr)
        return 1
    try:
        info = asyncio.run(fetch(args, partial, Progress(sys.stderr)))
        private.place(partial, target, replace=args.force)
    except grpc.aio.AioRpcError as exc:
        return fail(args.server, exc)
    except FileExistsError:  # made while the backup was taken
        print(f"chatd backup: {exists}", file=sys.stderr)
        return 1
    except (BackupError, OSError) as exc:
        print(f"chatd backup: {exc}", file=sys.stderr)
        return 1
    finally:
        partial.unlink(missing_ok=True)
    print(f"backup written to {target}: {info.line()}")
    return 0


def export(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        try:
            if args.backup is not None:
                source = Path(args.backup)
            else:
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chatd-export-")))
                source = tmp / "backup.sqlite3"
                asyncio.run(fetch(args, source, Progress(sys.stderr)))
            out = sys.stdout
            private.restrict(out)  # `> FILE`: the shell made it under the umask
            for record in export_user(source, args.user):
                out.write(dumps(record) + "\n")
            out.flush()
        except BrokenPipeError:  # the reader had enough (`| head`)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except grpc.aio.AioRpcError as exc:
            return fail(args.server, exc)
        except (BackupError, OSError) as exc:
            print(f"chatd export: {exc}", file=sys.stderr)
            return 1
    return 0
