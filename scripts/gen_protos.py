"""Regenerate chatd/proto/ from protos/ (the one command: python scripts/gen_protos.py).

Writes *_pb2.py, *_pb2.pyi and *_pb2_grpc.py (with mypy stubs) into the given
output root (default: the repository root), mirroring the protos/ tree so the
generated imports read `from chatd.proto import ...`.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def generate(out_root: Path) -> None:
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    include = str(resources.files("grpc_tools") / "_proto")
    out = str(out_root)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_grpc_out={out}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
