"""examples/worker_025.py, a worker that uses only iii-sdk 0.25.0 import paths, runs to the end
as its own process against the test engine in each generation (or once against ``III_URL``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from iii.testing import Engine

from conftest import REAL_ENGINE_URL

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "worker_025.py"


@pytest.fixture(params=["v0.11", "head", "0.25"])
def engine_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if REAL_ENGINE_URL:
        if request.param != "0.25":
            pytest.skip("III_URL: the engine's own generation runs once")
        yield REAL_ENGINE_URL
        return
    with Engine(generation=str(request.param)) as engine:
        yield engine.url


def test_worker_025_runs_to_the_end(engine_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("III_")}
    env["III_URL"] = engine_url
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("connected as worker ")
    assert "quote        -> 17.0 served by shop::quote" in lines
    assert "checksum     -> 16384 bytes, sum 57344 served by shop::checksum" in lines
    assert "void         -> None" in lines
    assert "trigger_async-> [1.0, 2.0, 3.0]" in lines
    assert "outside      -> None" in lines
    assert lines[-1] == "done"
    # Nothing deprecated on the 0.25.0 paths.
    assert "Warning" not in done.stderr, done.stderr


def test_worker_025_starts_its_own_engine_without_iii_url() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("III_")}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "done"
