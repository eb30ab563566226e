"""docker-compose.yml, checked without a Docker engine: its structure, and
each service's own command run as a local process (service names mapped to
127.0.0.1, ports remapped), restarted unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from chatd.client import ChatClient, UsernameTaken
from tests.cluster import Cluster
from tests.conftest import PASSWORD, TEST_HASH_COST, NodeProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
SECRET = "compose-test-secret"


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def dockerfile_lines() -> list[str]:
    """The Dockerfile's instructions, one a line (continuations joined)."""
    return (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in dockerfile_lines():
        if line.startswith("ENV "):
            env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return env


def test_compose_structure() -> None:
    doc = compose()
    services = doc["services"]
    assert len(services) == 3
    founders = [n for n, s in services.items() if "--role" in s["command"]]
    assert len(founders) == 1
    (founder,) = founders
    assert (
        services[founder]["command"][services[founder]["command"].index("--role") + 1] == "master"
    )
    data_dir = dockerfile_env()["CHATD_DATA_DIR"]
    host_ports = set()
    for name, s in services.items():
        cmd = s["command"]
        assert cmd[0] == "serve"
        if name != founder:
            join = cmd[cmd.index("--join") + 1]
            assert join.split(":")[0] in services, "joins by service name"
            assert "--role" not in cmd
        assert cmd[cmd.index("--advertise") + 1] == f"{name}:50051"
        assert cmd[cmd.index("--peer-advertise") + 1] == f"{name}:50052"
        if name != founder:
            assert cmd[cmd.index("--join") + 1].endswith(":50052"), "joins on the peer port"
        volume, target = s["volumes"][0].split(":")
        assert target == data_dir and volume in doc["volumes"], "a named volume per node"
        assert s["restart"] == "unless-stopped"
        assert s["image"] == "chatd:latest"
        if name == founder:  # the image is built once, by one service
            assert s["build"] == "." and s["pull_policy"] == "build"
        else:
            assert "build" not in s and s["pull_policy"] == "never"
            assert founder in s["depends_on"]
        assert "CHATD_CLUSTER_SECRET" in s["environment"]["CHATD_CLUSTER_SECRET"]
        host, container = s["ports"][0].split(":")
        assert container == "50051"
        host_ports.add(host)
    assert len(host_ports) == 3 and len({s["volumes"][0] for s in services.values()}) == 3
    assert "CHATD_CLUSTER_SECRET=" in (ROOT / ".env.example").read_text()


def test_dockerfile_is_small_and_unprivileged() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", text, re.M)
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    assert "EXPOSE 50051" in text and 'ENTRYPOINT ["chatd"]' in text
    assert "VOLUME" in text
    env = dockerfile_env()
    assert env["CHATD_LISTEN"].endswith(":50051")
    assert env["CHATD_PEER_LISTEN"].endswith(":50052")
    # the final stage installs wheels only: no compiler or build tools
    final = text.rsplit("FROM ", 1)[1]
    assert "gcc" not in final and "build-essential" not in final and "apt-get" not in final
    # no layer keeps the wheels: they come in through a bind mount, not a COPY
    assert "COPY --from" not in final and "--mount=type=bind,from=build" in final
    # its own health check, on the gRPC health service
    assert re.search(r'^HEALTHCHECK .*\\\n\s+CMD \["chatd", "health"\]', text, re.M)
    assert env["CHATD_IN_CONTAINER"] == "1"  # no secret: refuse, not serve on loopback
    # the data volume is the node's alone from its first start (a new volume takes this mode)
    assert re.search(rf"mkdir -m 0?700 {env['CHATD_DATA_DIR']} ", text)
    assert text.startswith("# syntax=docker/dockerfile:1")  # (RUN --mount)


def dockerfile_healthcheck() -> tuple[dict[str, str], list[str]]:
    """The Dockerfile's HEALTHCHECK: its options and its command."""
    (line,) = [x for x in dockerfile_lines() if x.startswith("HEALTHCHECK ")]
    options = dict(re.findall(r"--([\w-]+)=(\S+)", line))
    return options, list(yaml.safe_load(line.split(" CMD ", 1)[1]))


def test_every_service_has_its_own_healthcheck() -> None:
    """An image built in the OCI format (podman's and buildah's default)
    drops the Dockerfile's HEALTHCHECK: each service says its own, the
    same check at the same timing, so it holds on every engine."""
    options, command = dockerfile_healthcheck()
    for name, s in compose()["services"].items():
        check = s.get("healthcheck")
        assert check is not None, f"{name} has no healthcheck of its own"
        assert not check.get("disable", False)
        assert check["test"] == ["CMD", *command], name
        for option in ("interval", "timeout", "start-period", "retries"):
            assert str(check[option.replace("-", "_")]) == options[option], (name, option)


class ComposeAsProcesses:
    """Runs each compose service's command as a local chatd process."""

    def __init__(self, base: Path) -> None:
        self.services = compose()["services"]
        self.ports = {name: free_port() for name in self.services}
        self.peer_ports = {name: free_port() for name in self.services}
        self.web_ports = {name: free_port() for name in self.services}
        self.cluster = Cluster(base, SECRET)
        self.procs: dict[str, NodeProcess] = {}

    def local(self, arg: str) -> str:
        for name, port in self.ports.items():
            arg = arg.replace(f"{name}:50051", f"127.0.0.1:{port}")
            arg = arg.replace(f"{name}:50052", f"127.0.0.1:{self.peer_ports[name]}")
        return arg

    def start(self, name: str) -> None:
        s = self.services[name]
        web = f"127.0.0.1:{self.web_ports[name]}"  # (each container's 8080)
        args = [self.local(a).replace("0.0.0.0:8080", web) for a in s["command"]] + [
            "--password-hash-cost",
            str(TEST_HASH_COST),
            "--send-rate",
            "0",
            "--account-rate",
            "0",
        ]
        env = dict(
            os.environ,
            CHATD_CLUSTER_SECRET=SECRET,
            CHATD_DATA_DIR=str(self.cluster.base / name),
            CHATD_LISTEN=f"127.0.0.1:{self.ports[name]}",
            CHATD_PEER_LISTEN=f"127.0.0.1:{self.peer_ports[name]}",
        )
        proc = self.procs.get(name)
        if proc is None:
            proc = self.procs[name] = EnvNodeProcess(args, self.cluster.base / f"{name}.log", env)
            self.cluster.nodes[name] = proc
            self.cluster.addresses[name] = f"127.0.0.1:{self.ports[name]}"
        proc.start()

    def healthcheck(self, name: str) -> subprocess.CompletedProcess[str]:
        """The service's healthcheck command (["CMD", "chatd", ...]) inside
        its container, where chatd's default node is the one it runs."""
        test = self.services[name]["healthcheck"]["test"]
        assert test[:2] == ["CMD", "chatd"]
        env = dict(os.environ, CHATD_SERVER=f"127.0.0.1:{self.ports[name]}")
        return subprocess.run(
            [sys.executable, "-m", "chatd", *test[2:]],
            capture_output=True,
            text=True,
            timeout=20,
            env=env,
        )


class EnvNodeProcess(NodeProcess):
    def __init__(self, args: list[str], log_path: Path, env: dict[str, str]) -> None:
        super().__init__(args, log_path)
        self.env = env

    def start(self) -> EnvNodeProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chatd", *self.args], stdout=log, stderr=log, env=self.env
        )
        return self


async def write(addresses: list[str], n: int, tag: str) -> None:
    c = ChatClient(addresses)
    try:
        with contextlib.suppress(UsernameTaken):  # made by an earlier round
            await c.create_account("alice", PASSWORD)
        await c.login("alice", PASSWORD)
        for i in range(n):
            await c.send("alice", f"{tag}{i}")
    finally:
        await c.close()


def test_compose_services_as_processes_restart_safely(tmp_path: Path) -> None:
    run = ComposeAsProcesses(tmp_path)
    c = run.cluster
    try:
        for name in run.services:  # in compose order, as depends_on has it
            run.start(name)
        c.wait(lambda: c.in_sync_count() == 3, "3 nodes in sync")
        for name in run.services:  # each service's own healthcheck, run as the engine does
            assert run.healthcheck(name).returncode == 0, run.healthcheck(name)
        addresses = list(c.addresses.values())
        asyncio.run(write(addresses, 20, "a"))
        first = c.converged()
        for name in run.services:  # every container restarted with its command
            c.kill(name)
            asyncio.run(write(addresses, 10, f"{name}-"))
            run.procs[name].start()
            c.wait(lambda: c.in_sync_count() == 3, f"{name} back in sync")
        final = c.converged()
        assert int(final["applied_index"]) > int(first["applied_index"])  # type: ignore[call-overload]
        assert int(final["epoch"]) > 1  # type: ignore[call-overload]
        # still one cluster: the founder did not found a second one
        masters = [n for n in run.services if (c.status(n) or {}).get("role") == "master"]
        assert len(masters) == 1
        assert len(final["members"]) == 3  # type: ignore[arg-type]
    finally:
        for p in run.procs.values():
            p.kill(signal.SIGKILL)
