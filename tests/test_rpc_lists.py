"""Every list of RPCs or services in chatd is derived from the protos'
descriptors (`DESCRIPTOR.services_by_name`), never written by hand: a hand
list misses the RPC or service added next (its metrics, its handler, the
secret that guards it, its health)."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from grpc_health.v1 import health_pb2

from chatd.proto import chat_pb2, cluster_pb2
from chatd.server.api import health
from chatd.server.api.metrics import Metrics
from chatd.server.cluster import secret

CHATD = Path(__file__).resolve().parent.parent / "chatd"
SERVICES = [
    *chat_pb2.DESCRIPTOR.services_by_name.values(),
    *cluster_pb2.DESCRIPTOR.services_by_name.values(),
    *health_pb2.DESCRIPTOR.services_by_name.values(),
]
SERVICE_NAMES = {s.full_name for s in SERVICES} | {s.name for s in SERVICES}
METHOD_NAMES = {m.name for s in SERVICES for m in s.methods}


def names(text: str) -> tuple[bool, bool]:
    """Whether `text` names a service ("NodeAdmin", "/NodeAdmin/",
    "/NodeAdmin/Status"), and whether it names a method ("Status")."""
    parts = [p for p in text.split("/") if p]
    if text.startswith("/") and parts:
        return parts[0] in SERVICE_NAMES, False
    return text in SERVICE_NAMES, text in METHOD_NAMES


def hand_lists(tree: ast.AST) -> list[int]:
    """The lines of the tuple, list, set or dict literals that name a
    service, or two methods or more, with strings written out."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items: list[Any] = list(node.elts)
        elif isinstance(node, ast.Dict):
            items = list(node.keys)
        else:
            continue
        strings = [i.value for i in items if isinstance(i, ast.Constant)]
        said = [names(text) for text in strings if isinstance(text, str)]
        if any(service for service, _ in said) or sum(method for _, method in said) >= 2:
            found.append(node.lineno)
    return found


def test_no_list_of_rpcs_or_services_is_written_by_hand() -> None:
    found = []
    for path in sorted(CHATD.rglob("*.py")):
        if path.parent.name == "proto":  # generated from the protos
            continue
        found += [f"{path.relative_to(CHATD)}:{n}" for n in hand_lists(ast.parse(path.read_text()))]
    assert not found, f"RPCs or services listed by hand, not from the descriptors: {found}"


def test_the_rule_sees_a_hand_list() -> None:
    tree = ast.parse(
        'GUARDED = ("/MasterService/", "/NodeAdmin/")\n'
        'HEALTH = ("", "ClientAccount")\n'
        'EXEMPT = {"Login", "CreateAccount"}\n'
        'LIMITS = {"Send": 1.0, "Connect": 2.0}\n'
        'COLUMNS = [("#0", "Contact"), ("status", "Status")]\n'  # one word, not a list
    )
    assert hand_lists(tree) == [1, 2, 3, 4]


def test_the_derived_lists_follow_the_descriptors() -> None:
    cluster = cluster_pb2.DESCRIPTOR.services_by_name.values()
    assert set(secret.CLUSTER_PREFIXES) == {f"/{s.full_name}/" for s in cluster}
    assert secret.OPEN_PREFIXES == ("/grpc.health.v1.Health/",)
    assert ("", *chat_pb2.DESCRIPTOR.services_by_name) == health.SERVICES


def test_an_rpc_added_to_a_service_is_measured() -> None:
    """Metrics.instrument wraps what the descriptor lists: an RPC added
    there is counted without a word of metrics.py changed."""
    service = chat_pb2.DESCRIPTOR.services_by_name["ClientAccount"]
    added = SimpleNamespace(name="AddedLater", server_streaming=False)
    grown = SimpleNamespace(methods=[*service.methods, added])

    async def rpc(request: Any, context: Any) -> Any:
        return None

    servicer = SimpleNamespace(**{m.name: rpc for m in grown.methods})
    Metrics().instrument(servicer, grown)
    assert all(getattr(servicer, m.name) is not rpc for m in grown.methods)
