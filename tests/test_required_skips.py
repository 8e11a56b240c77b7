"""Under FORGEGRAPH_REQUIRE_SERVICES=1 a skip is a failure, unless its reason is allowed.

Each case runs a small test file in a pytest of its own (a subprocess, with
tests/conftest.py's hook loaded as a plugin), so the environment variable is
read as CI reads it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CASES = '''
import pytest

from tests.conftest import other_database


@pytest.fixture
def missing():
    pytest.skip("Redis is not available: connection refused")


def test_skips_in_the_body():
    pytest.skip("no local PostgreSQL cluster to restart")


def test_skips_in_a_fixture(missing):
    pass


@pytest.mark.skipif(True, reason="node is not on PATH")
def test_skips_by_mark():
    pass


@pytest.mark.skip(reason="not written yet")
def test_skips_unconditionally():
    pass


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_applies_to_one_database(backend):
    if backend != "sqlite":
        other_database("only SQLite keeps values of another type")


@pytest.mark.xfail(reason="a known defect", strict=True)
def test_expected_to_fail():
    assert False


def test_imports_or_skips():
    pytest.importorskip("a_module_that_is_not_installed_here")
'''

MODULE_SKIP = '''
import pytest

pytest.importorskip("another_module_that_is_not_installed_here")


def test_never_collected():
    pass
'''


def run(tmp_path: Path, source: str, require: bool) -> tuple[int, str]:
    (tmp_path / "test_cases.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k != "FORGEGRAPH_REQUIRE_SERVICES"}
    if require:
        env["FORGEGRAPH_REQUIRE_SERVICES"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-rA", "-q", "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_cases.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    return done.returncode, done.stdout + done.stderr


def outcomes(output: str) -> dict[str, str]:
    """test name -> the word pytest's -rA summary gives it (PASSED, FAILED, ERROR, SKIPPED, XFAIL)."""
    found: dict[str, str] = {}
    for word, name in re.findall(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (?:\[\d+\] )?\S*?::(\S+)", output, re.M):
        found[name] = word
    return found


def test_without_the_variable_every_skip_stays_a_skip(tmp_path: Path) -> None:
    code, output = run(tmp_path, CASES, require=False)
    assert code == 0, output
    assert re.search(r"\b6 skipped\b", output), output
    assert "1 xfailed" in output, output


def test_required_services_fail_every_skip_but_the_allowed_ones(tmp_path: Path) -> None:
    code, output = run(tmp_path, CASES, require=True)
    assert code == 1, output
    got = outcomes(output)
    # A skip in the body fails the call; in a fixture or by mark, the setup (an error).
    assert got["test_skips_in_the_body"] == "FAILED", output
    assert got["test_imports_or_skips"] == "FAILED", output
    assert got["test_skips_in_a_fixture"] == "ERROR", output
    assert got["test_skips_by_mark"] == "ERROR", output
    assert got["test_skips_unconditionally"] == "ERROR", output
    # The allowed reason stays a skip, its other parameter passes; xfail is untouched.
    assert re.search(r"^SKIPPED .*: this parameter is for the other database: only SQLite", output, re.M), output
    assert got["test_applies_to_one_database[sqlite]"] == "PASSED", output
    assert got["test_expected_to_fail"] == "XFAIL", output
    assert "skipped without an allowed reason under FORGEGRAPH_REQUIRE_SERVICES=1: " \
        "Redis is not available: connection refused" in output, output
    assert re.search(r"\b1 skipped\b", output) and "1 xfailed" in output, output


def test_required_services_fail_a_module_that_skips_whole(tmp_path: Path) -> None:
    code, output = run(tmp_path, MODULE_SKIP, require=False)
    assert code in (0, 5) and "1 skipped" in output, output  # 5: no test ran
    code, output = run(tmp_path, MODULE_SKIP, require=True)
    assert code != 0, output
    assert "skipped without an allowed reason" in output, output
    assert "another_module_that_is_not_installed_here" in output, output


@pytest.mark.parametrize("allowed", ["this parameter is for the other database: why"])
def test_the_allow_list_is_a_prefix_of_the_reason(allowed: str) -> None:
    from tests.conftest import ALLOWED_SKIPS

    assert allowed.startswith(ALLOWED_SKIPS)
    assert not "PostgreSQL is not available".startswith(ALLOWED_SKIPS)
