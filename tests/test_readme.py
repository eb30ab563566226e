"""The README's commands, run as written: the quick start installs chatd into
a fresh copy of the repository and serves (with a stock Debian Python, whose
pip refuses a system install under PEP 668, with a simulated one, and from
inside a virtual environment), `chatd demo` opens and stops, the TLS recipe
(docs/operations.md) makes certificates a node accepts, and the test command
is `.ci/run`'s. The README stays one short page, and every link of the
documentation (README.md, docs/, benchmarks/) leads to a file and a heading
that exist."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from chatd.tools.localcluster import NodeProcess, free_port
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
README_MAX_LINES = 300  # one short page; the rest lives in docs/
INSTALL_TIMEOUT = 600.0  # a fresh venv and the server's wheels: 7-20 s here


def section(title: str, text: str = README) -> str:
    """The text under the heading `title` (in the README unless `text` is
    given), up to the next heading of the same or a higher level."""
    match = re.search(rf"^(#+) {re.escape(title)}\n", text, re.M)
    assert match, f"no section {title!r}"
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def sh_blocks(text: str) -> list[str]:
    """The ```sh fenced blocks of `text`, each as its text."""
    return re.findall(r"^```sh\n(.*?)^```$", text, re.M | re.S)


def ci_test_command() -> str:
    """The command .ci/run runs: its one line that is not a comment, `set`
    or `cd`."""
    lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "set ", "cd "))
    ]
    assert len(lines) == 1, lines
    return lines[0]


def test_the_readme_test_command_is_what_ci_runs() -> None:
    blocks = sh_blocks(section("Testing"))
    assert blocks, "the Testing section has no ```sh block"
    readme_command = blocks[0].strip()
    assert shlex.split(readme_command) == shlex.split(ci_test_command())


def without_code(text: str) -> str:
    """`text` without its fenced code blocks and inline code spans."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"^```.*?^```$", "", text, flags=re.M | re.S))


def anchors_of(text: str) -> set[str]:
    """The anchors of a markdown file's headings, as GitHub makes them:
    lower case, punctuation other than - and _ dropped, spaces made -."""
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", without_code(text), re.M)
    }


def documentation() -> list[Path]:
    """The repository's markdown files: the README, docs/ and benchmarks/."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return files + sorted((ROOT / "benchmarks").glob("*.md"))


def test_the_readme_has_a_table_of_contents_whose_links_resolve() -> None:
    contents = section("Contents")
    anchors = set(re.findall(r"\]\(#([a-z0-9-]+)\)", contents))
    headings = anchors_of(README)
    assert anchors and anchors <= headings, sorted(anchors - headings)
    # the contents name every section of the README
    sections = set(re.findall(r"^## (.+)$", without_code(README), re.M)) - {"Contents"}
    named = {re.sub(r"[^\w\- ]", "", s.lower()).replace(" ", "-") for s in sections}
    assert named <= anchors, sorted(named - anchors)


def test_every_relative_link_of_the_documentation_resolves() -> None:
    """In README.md, docs/*.md and benchmarks/*.md, every link that is not a
    URL names a file that exists, and its #anchor a heading of that file."""
    assert (ROOT / "docs").is_dir() and len(documentation()) >= 5, documentation()
    broken = []
    checked = 0
    for source in documentation():
        text = source.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", without_code(text)):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            linked = (source.parent / path).resolve() if path else source
            where = f"{source.relative_to(ROOT)}: {target}"
            checked += 1
            if not linked.is_file():
                broken.append(f"{where} (no such file)")
            elif anchor and anchor not in anchors_of(linked.read_text()):
                broken.append(f"{where} (no such heading)")
    assert checked > 50, checked  # the check saw the links
    assert not broken, broken


def test_the_readme_is_one_short_page() -> None:
    """A newcomer's page: the README stays under its bound, and each file of
    docs/ is linked from it."""
    lines = README.count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert f"](docs/{doc.name})" in README, f"README.md does not link docs/{doc.name}"


def copy_of_repository(dest: Path) -> Path:
    """The repository's tracked files as they are now (not its .venv or any
    build), copied to dest."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        src = ROOT / os.fsdecode(name)
        if src.is_file():
            target = dest / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    for extra in ("README.md", "scripts/install"):  # as they are in the work tree
        shutil.copy2(ROOT / extra, dest / extra)
    return dest


def clean_env(path: str) -> dict[str, str]:
    """A user's shell environment: no PYTHONPATH (the copy's install must
    serve, not this checkout), no virtual environment, no chatd settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CHATD_", "PYTHON", "VIRTUAL_ENV", "PYTEST", "COV_"))
    }
    env["PATH"] = path
    return env


def externally_managed(python: str) -> bool:
    out = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True,
        text=True,
    )
    return out.returncode == 0 and Path(out.stdout.strip(), "EXTERNALLY-MANAGED").exists()


def stock_debian_python() -> str | None:
    """The distribution's python3 where it is externally managed, 3.11 or
    newer, and can make a venv (Debian's python3-venv)."""
    for candidate in ("/usr/bin/python3",):
        if not os.access(candidate, os.X_OK) or not externally_managed(candidate):
            continue
        ok = subprocess.run(
            [candidate, "-c", "import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))"],
            capture_output=True,
        )
        if ok.returncode == 0:
            return candidate
    return None


def simulated_externally_managed_python(base: Path) -> Path:
    """A python3 whose stdlib directory holds an EXTERNALLY-MANAGED file, as
    a stock Debian or Ubuntu Python's does: this interpreter, run with
    PYTHONHOME at a prefix whose lib/pythonX.Y links every entry of the real
    stdlib beside the marker. Returns the directory holding `python3`."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    real_stdlib = Path(sysconfig.get_path("stdlib", vars={"installed_base": sys.base_prefix}))
    stdlib = base / "prefix" / "lib" / version
    stdlib.mkdir(parents=True)
    for entry in real_stdlib.iterdir():
        (stdlib / entry.name).symlink_to(entry)
    (stdlib / "EXTERNALLY-MANAGED").write_text(
        "[externally-managed]\nError=managed by the (simulated) distribution\n"
    )
    real = Path(sys._base_executable)  # type: ignore[attr-defined]  # not a venv's
    bindir = base / "bin"
    bindir.mkdir()
    wrapper = bindir / "python3"
    wrapper.write_text(f'#!/bin/sh\nPYTHONHOME={base / "prefix"} exec {real} "$@"\n')
    wrapper.chmod(0o755)
    return bindir


@pytest.fixture(params=["stock-debian", "simulated-pep668", "inside-a-venv"])
def shell_path(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The PATH of a user's shell whose python3 is one of: a stock Debian
    Python (externally managed), a simulated externally managed Python, or
    the python3 of an activated virtual environment."""
    system_path = "/usr/local/bin:/usr/bin:/bin"
    if request.param == "stock-debian":
        python = stock_debian_python()
        if python is None:
            pytest.skip("no externally managed python3 with venv at /usr/bin (not Debian/Ubuntu)")
        bindir = tmp_path / "debian-bin"
        bindir.mkdir()
        (bindir / "python3").symlink_to(python)
        return f"{bindir}:{system_path}"
    if request.param == "simulated-pep668":
        return f"{simulated_externally_managed_python(tmp_path / 'managed')}:{system_path}"
    outer = tmp_path / "outer-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(outer)], check=True)
    return f"{outer / 'bin'}:{system_path}"


def test_pip_refuses_a_system_install_where_the_quick_start_still_works(tmp_path: Path) -> None:
    """The premise of the PEP 668 cases: pip run by the simulated managed
    python (and the stock Debian one, where there is one) refuses to install
    the package, as the old `python3 -m pip install '.[server]'` line was."""
    pythons = [str(simulated_externally_managed_python(tmp_path / "managed") / "python3")]
    if (debian := stock_debian_python()) is not None:
        pythons.append(debian)
    for python in pythons:
        assert externally_managed(python)
        out = subprocess.run(
            [python, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-build-isolation", "."],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=clean_env(os.environ.get("PATH", "/usr/bin:/bin")),
            timeout=120,
        )
        assert out.returncode != 0, (python, out.stdout, out.stderr)
        assert "externally-managed-environment" in out.stderr, (python, out.stderr)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc), nearest first."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop(0)
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.append(child)
                todo.append(child)
    return found


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What installing the server asks pip for besides chatd itself (its
    dependencies, and setuptools to build it), resolved once from the
    indexes pip is configured with and saved as files, for the quick start's
    three cases to install from without reading the indexes' pages again
    (most of each install's time: grpcio's page alone lists thousands of
    files). Each case still makes its own .venv, builds chatd from its own
    copy of the repository and installs every dependency into it."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    source = copy_of_repository(tmp_path_factory.mktemp("wheelhouse-source"))  # (pip builds in it)
    wanted = ["setuptools>=68", f"{source}[server]"]
    out = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--dest", str(folder), *wanted],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert not list(folder.glob("chatd*")), sorted(p.name for p in folder.iterdir())
    return folder


def test_the_quick_start_installs_and_serves_as_written(
    shell_path: str, wheelhouse: Path, tmp_path: Path
) -> None:
    """The quick start's first command, run by bash in a fresh copy of the
    repository: it makes .venv, installs, and the node it starts answers; a
    SIGTERM to the node's PID stops it and the command exits 0. The node
    listens on a free port (CHATD_LISTEN, as the README says every flag can
    be set) so that nothing else on the machine is in the way; pip finds
    the dependencies in the wheelhouse (resolved once for the three cases)."""
    first = sh_blocks(section("Quick start"))[0].strip()
    assert "chatd serve" in first and "\n" not in first, first
    repo = copy_of_repository(tmp_path / "repo")
    env = clean_env(shell_path)
    env["CHATD_LISTEN"] = "127.0.0.1:0"
    env["PIP_NO_INDEX"] = "1"
    env["PIP_FIND_LINKS"] = str(wheelhouse)
    log = tmp_path / "quickstart.log"
    started = time.monotonic()
    with log.open("wb") as out:
        shell = subprocess.Popen(
            ["bash", "-c", first],
            cwd=repo,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        address = None
        deadline = started + INSTALL_TIMEOUT
        while address is None and time.monotonic() < deadline and shell.poll() is None:
            match = re.search(r"serving clients on (127\.0\.0\.1:\d+)", log.read_text())
            address = match.group(1) if match else None
            time.sleep(0.2)
        assert address, f"no node started: {log.read_text()[-3000:]}"
        installed = time.monotonic() - started
        node_pids = [p for p in descendants(shell.pid) if "serve" in cmdline(p) or shell.pid == p]
        assert (repo / ".venv" / "bin" / "chatd").exists()
        health = subprocess.run(
            [str(repo / ".venv" / "bin" / "chatd"), "health", "--server", address],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert health.returncode == 0 and "SERVING" in health.stdout, health
        # the page the README says to open
        web = re.search(r"web client on (http://127\.0\.0\.1:\d+)/", log.read_text())
        assert web and web.group(1) + "/" in README, log.read_text()[-3000:]
        with urllib.request.urlopen(web.group(1) + "/", timeout=10) as r:
            assert r.status == 200 and b'<script type="module"' in r.read()
        # the node runs the copy's install, not this checkout
        serve_pids = [p for p in node_pids if "serve" in cmdline(p)]
        if not serve_pids and "serve" in cmdline(shell.pid):
            serve_pids = [shell.pid]  # bash ran the last command in its own place
        assert len(serve_pids) == 1, [cmdline(p) for p in node_pids]
        assert cmdline(serve_pids[0])[0].startswith(str(repo / ".venv")), cmdline(serve_pids[0])
        os.kill(serve_pids[0], signal.SIGTERM)
        assert shell.wait(timeout=30) == 0, log.read_text()[-3000:]
        assert "stopped" in log.read_text()
        print(f"quick start: installed and serving after {installed:.1f} s")
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait(timeout=10)


def test_install_says_what_is_missing_without_venv(tmp_path: Path) -> None:
    """A Python without ensurepip (a stock Debian before `apt install
    python3-venv`): scripts/install says what to install, exits 1 and leaves
    no half-made .venv."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "install", repo / "scripts" / "install")
    hide = tmp_path / "hide"
    (hide / "ensurepip").mkdir(parents=True)
    (hide / "ensurepip" / "__init__.py").write_text("raise ImportError('no ensurepip here')\n")
    env = clean_env(os.environ.get("PATH", "/usr/bin:/bin"))
    env["PYTHON"] = sys.executable
    env["PYTHONPATH"] = str(hide)
    out = subprocess.run(
        [str(repo / "scripts" / "install")], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1, out
    assert "apt install python3-venv" in out.stderr, out.stderr
    assert not (repo / ".venv").exists()


def chatd_on_path(bindir: Path) -> Path:
    """A `chatd` script in bindir that runs this checkout's chatd."""
    bindir.mkdir(parents=True, exist_ok=True)
    script = bindir / "chatd"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -m chatd "$@"\n')
    script.chmod(0o755)
    return bindir


def matched(child: pexpect.spawn[str]) -> re.Match[str]:
    assert isinstance(child.match, re.Match)
    return child.match


@pytest.fixture
def spawned() -> Iterator[list[pexpect.spawn[str]]]:
    children: list[pexpect.spawn[str]] = []
    yield children
    for child in children:
        if child.isalive():
            child.terminate(force=True)


def test_chatd_demo_and_a_second_client_as_written(
    tmp_path: Path, spawned: list[pexpect.spawn[str]]
) -> None:
    """The quick start's `chatd demo` line, with the installed `chatd` on
    PATH as `. .venv/bin/activate` puts it: the demo prints the second
    client's command, that command connects, and `/quit` in the demo's
    client stops the three nodes (by the PIDs it printed)."""
    demo_line = sh_blocks(section("Quick start"))[1].strip()
    assert demo_line.endswith("chatd demo"), demo_line
    # This checkout's chatd stands in for .venv's (installed above in
    # another test): a `chatd` script on PATH that runs it.
    bindir = chatd_on_path(tmp_path / "bin")
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "activate").write_text(f'PATH="{bindir}:$PATH"; export PATH\n')
    env = {
        "TERM": "xterm",
        "PROMPT_TOOLKIT_NO_CPR": "1",
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
    }
    demo = pexpect.spawn(
        "bash", ["-c", demo_line], cwd=str(tmp_path), env=env, encoding="utf-8",
        timeout=60, dimensions=(40, 160),
    )  # fmt: skip
    spawned.append(demo)
    pids = []
    for _ in range(3):
        demo.expect(r"pid (\d+)")
        pids.append(int(matched(demo).group(1)))
    demo.expect(r"chatd chat --server (\S+)")
    servers = matched(demo).group(1)
    demo.expect(">")
    second = pexpect.spawn(
        "bash", ["-c", f". .venv/bin/activate && chatd chat --server {servers}"],
        cwd=str(tmp_path), env=env, encoding="utf-8", timeout=60, dimensions=(40, 160),
    )  # fmt: skip
    spawned.append(second)
    second.expect(">")
    second.sendline("/quit")
    second.expect(pexpect.EOF)
    demo.sendline("/quit")
    demo.expect(pexpect.EOF)
    demo.close()
    assert demo.exitstatus == 0, demo.before
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        os.kill(pid, signal.SIGKILL)
        pytest.fail(f"demo node {pid} still ran after /quit")


def test_the_tls_recipe_makes_certificates_a_node_accepts(tmp_path: Path) -> None:
    """docs/operations.md's TLS section's openssl commands, run as written: a node serves with
    n1.pem/n1.key and the CA, a client verifies it with the CA, a peer
    listener call shows admin.pem, and one without a certificate fails."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    recipe = sh_blocks(section("TLS", OPERATIONS))[0]
    subprocess.run(["bash", "-e", "-c", recipe], cwd=tmp_path, check=True, timeout=120,
                   capture_output=True)  # fmt: skip
    port, peer = free_port(), free_port()
    for _ in range(100):  # two different ones: two calls may give the same free port
        if peer != port:
            break
        peer = free_port()
    node = NodeProcess.serve(
        tmp_path, "n1", f"127.0.0.1:{port}", f"127.0.0.1:{peer}", "--role", "master",
        "--tls-cert", str(tmp_path / "n1.pem"), "--tls-key", str(tmp_path / "n1.key"),
        "--tls-ca", str(tmp_path / "ca.pem"),
    ).start()  # fmt: skip
    try:
        ca = ["--tls-ca", str(tmp_path / "ca.pem")]
        admin = ["--tls-cert", str(tmp_path / "admin.pem")]
        admin += ["--tls-key", str(tmp_path / "admin.key")]

        def chatd(*args: str) -> subprocess.CompletedProcess[str]:
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            env.pop("CHATD_CLUSTER_SECRET", None)
            return subprocess.run([sys.executable, "-m", "chatd", *args], env=env,
                                  capture_output=True, text=True, timeout=60)  # fmt: skip

        def health_of() -> subprocess.CompletedProcess[str]:
            if not node.running:
                pytest.fail(f"the node exited: {node.log()[-3000:]}")
            return chatd("health", "--server", f"127.0.0.1:{port}", *ca)

        health = eventually(
            health_of, "chatd health: SERVING", until=lambda h: h.returncode == 0, interval=0.3
        )
        assert "SERVING" in health.stdout
        status = chatd("status", "--server", f"127.0.0.1:{peer}", "--json", *ca, *admin)
        assert status.returncode == 0, status
        assert chatd("status", "--server", f"127.0.0.1:{peer}", *ca).returncode != 0
        assert chatd("health", "--server", f"127.0.0.1:{port}").returncode != 0  # plaintext
    finally:
        node.kill(signal.SIGTERM)


def test_the_by_hand_cluster_waits_then_stops_as_written(tmp_path: Path) -> None:
    """The by-hand block, on free ports in place of 50051-50053 and
    50061-50063: after its wait loop `chatd status` answers with three
    members in sync, and `kill $(jobs -p)` stops all three nodes cleanly."""
    block = sh_blocks(section("By hand"))[0]
    assert "kill $(jobs -p)" in section("By hand")
    readme_ports = (50051, 50052, 50053, 50061, 50062, 50063)
    free: list[int] = []
    for _ in range(100):  # six different ones: two calls may give the same free port
        if len(free) == len(readme_ports):
            break
        if (port := free_port()) not in free:
            free.append(port)
    assert len(free) == len(readme_ports), free
    ports = {str(p): str(f) for p, f in zip(readme_ports, free, strict=True)}
    script = re.sub(r"\b(5005[123]|5006[123])\b", lambda m: ports[m.group(1)], block)
    script += "\nkill $(jobs -p)\nwait\n"
    bindir = chatd_on_path(tmp_path / "bin")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{bindir}:{os.environ['PATH']}"}
    env = {k: v for k, v in env.items() if not k.startswith("CHATD_")}
    shell = subprocess.Popen(["bash", "-c", script], cwd=tmp_path, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)  # fmt: skip
    try:
        out, err = shell.communicate(timeout=120)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait(timeout=10)
    assert shell.returncode == 0, (out, err)
    rows = [line.split() for line in out.splitlines() if re.match(r"n[123]\s", line)]
    assert sorted(r[0] for r in rows) == ["n1", "n2", "n3"], out
    assert all(r[3] == "yes" for r in rows), out
    assert err.count("stopped") >= 3, err[-3000:]
