"""The wheel that scripts/build-wheels.sh makes installs and works without a Rust toolchain.

Runs when III_WHEEL names that wheel: `WHEEL_TEST=1 ./test.sh` builds it and sets it (CI does).
III_WHEEL_PYTHON picks the interpreter of the fresh venv (default: the one running pytest).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

WHEEL = os.environ.get("III_WHEEL", "")
ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not WHEEL, reason="III_WHEEL is unset (run WHEEL_TEST=1 ./test.sh)")


def clean_env(venv: Path) -> dict[str, str]:
    """The environment of a user who has Python but no Rust: the venv first on PATH, no
    directory holding cargo or rustc, nothing pointing at this checkout or at an engine."""
    path = [
        d
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and not any(os.path.exists(os.path.join(d, tool)) for tool in ("cargo", "rustc"))
    ]
    drop = ("PYTHON", "VIRTUAL_ENV", "CARGO", "RUSTUP", "RUSTC", "III_", "MATURIN")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *path])
    return env


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    wheel = Path(WHEEL).resolve()
    assert wheel.is_file(), f"III_WHEEL={WHEEL} is not a file"
    home = tmp_path_factory.mktemp("wheel")
    venv = home / "venv"
    python = os.environ.get("III_WHEEL_PYTHON", sys.executable)
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    env = clean_env(venv)
    assert shutil.which("cargo", path=env["PATH"]) is None
    assert shutil.which("rustc", path=env["PATH"]) is None
    # --only-binary: pip must not fall back to building anything from source.
    pip = subprocess.run(
        ["python", "-m", "pip", "install", "-q", "--only-binary", ":all:", str(wheel)],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return home, env


def run(venv: tuple[Path, dict[str, str]], *args: str) -> str:
    home, env = venv
    done = subprocess.run(["python", *args], env=env, cwd=home, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_import_comes_from_the_installed_wheel(venv):
    out = run(
        venv,
        "-c",
        "import importlib.metadata, iii, iii._iii, iii.testing\n"
        "print(iii.__file__, iii._iii.__file__, importlib.metadata.version('iii-sdk'))\n"
        "with iii.testing.Engine() as engine:\n"
        "    w = iii.register_worker(engine.url, iii.InitOptions(worker_name='wheel'))\n"
        "    w.register_function('wheel::inc', lambda d: {'n': d['n'] + 1})\n"
        "    print(w.trigger({'function_id': 'wheel::inc', 'payload': {'n': 41}}))\n"
        "    w.shutdown()\n",
    )
    package, native, version, result = out.split(maxsplit=3)
    site = str(venv[0] / "venv" / "lib")
    assert package.startswith(site) and native.startswith(site), out
    assert native.endswith("_iii.abi3.so")
    assert version == (ROOT / "pyproject.toml").read_text().split('version = "', 1)[1].split('"')[0]
    assert result.strip() == "{'n': 42}"


def test_quickstart_runs_on_the_installed_wheel(venv):
    out = run(venv, str(ROOT / "examples" / "quickstart.py"))
    assert "Hello, World!" in out
    assert "out of stock" in out
    assert "['fired', 'queued']" in out


def test_async_handlers_run_in_a_task_of_their_own_on_this_python(venv):
    """How a handler's Task starts depends on the CPython version (eagerly from 3.12)."""
    script = textwrap.dedent(
        """
        import asyncio, iii, iii.testing

        async def handler(data):
            me = asyncio.current_task()
            if data["suspend"]:
                await asyncio.sleep(0)
            return me is not None and asyncio.current_task() is me

        with iii.testing.Engine(generation="0.25") as engine:
            w = iii.register_worker(engine.url, iii.InitOptions(worker_name="tasks"))
            w.register_function("tasks::own", handler)
            calls = [{"function_id": "tasks::own", "payload": {"suspend": s}} for s in (False, True)]
            remote = [w.trigger({**c, "dispatch": "remote"}) for c in calls]

            async def main():
                return [await w.trigger_async(c) for c in calls]

            print(remote + asyncio.run(main()))
            w.shutdown()
        """
    )
    assert run(venv, "-c", script).strip() == "[True, True, True, True]"
