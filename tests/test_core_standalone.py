"""The core and its tests need nothing but the standard library and pytest:
run here in a Python where the server's dependencies cannot be imported
(each set to None in sys.modules, as if not installed) and no pytest plugin
is loaded but pytest's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import SERVER_DEPENDENCIES

ROOT = Path(__file__).resolve().parent.parent
BLOCKED = (*SERVER_DEPENDENCIES, "google.protobuf", "pytest_asyncio", "pytest_timeout")
# quick core tests that run; every core test module is collected (imported)
RUN = ["tests/test_core_traces.py", "tests/test_core_log.py", "tests/test_core_quorum.py"]


def _without_server_dependencies(code: str, timeout: float) -> subprocess.CompletedProcess[str]:
    prelude = f"import sys\nfor name in {BLOCKED!r}:\n    sys.modules[name] = None\n"
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_core_imports_without_the_server_dependencies() -> None:
    done = _without_server_dependencies("import grpc\n", timeout=60)  # the blocking works
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr
    done = _without_server_dependencies("import chatd.core\nprint('ok')\n", timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_core_tests_run_without_the_server_dependencies() -> None:
    files = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("tests/test_core_*.py"))
    code = (
        "import pytest\n"
        f"collected = pytest.main(['-q', '-p', 'no:cacheprovider', '--co', *{files!r}])\n"
        f"ran = pytest.main(['-q', '-p', 'no:cacheprovider', *{RUN!r}])\n"
        "sys.exit(collected or ran)\n"
    )
    done = _without_server_dependencies(code, timeout=170)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout
