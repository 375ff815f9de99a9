#!/usr/bin/env bash
# The abi3 wheel (cp310-abi3) on every CPython it claims that is installed here: for each of
# 3.10, 3.11, 3.12 and 3.13, tests/test_wheel.py with III_WHEEL_PYTHON set to that interpreter
# (a fresh venv without Rust, the wheel installed, `import iii`, the test engine, a function
# registered and called, examples/quickstart.py). Versions not installed are skipped and named;
# every version found runs, and the script fails if any failed.
# An interpreter is `python3.X` on PATH or, failing that (pyenv's shims answer only for the
# selected version), the newest $PYENV_ROOT/versions/3.X.*.
# Usage: scripts/wheel-matrix.sh [WHEEL] (default: $III_WHEEL). SKIP_PYTHON=3.11 leaves out a
# version already tested (test.sh: the one its pytest run used). Runs pytest from ./.venv,
# where test.sh has installed the package and the test requirements.
set -euo pipefail
cd "$(dirname "$0")/.."
wheel=${1:-${III_WHEEL:-}}
if [ -z "$wheel" ] || [ ! -f "$wheel" ]; then
    echo "wheel-matrix: no wheel: pass its path or set III_WHEEL" >&2
    exit 2
fi
wheel=$(cd "$(dirname "$wheel")" && pwd)/$(basename "$wheel")
pyenv_versions=${PYENV_ROOT:-$HOME/.pyenv}/versions

# Prints the path of a working CPython $1 (e.g. 3.12), or nothing.
find_python() {
    local version=$1 candidate
    for candidate in "$(command -v "python$version" || true)" \
        $(ls -d "$pyenv_versions/$version".*/bin/"python$version" 2>/dev/null | sort -V -r); do
        if [ -n "$candidate" ] && "$candidate" -c "import sys; sys.exit(sys.implementation.name != 'cpython' or '%d.%d' % sys.version_info[:2] != '$version')" 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
}

ran=""
skipped=""
failed=""
for version in 3.10 3.11 3.12 3.13; do
    if [ "$version" = "${SKIP_PYTHON:-}" ]; then
        skipped="$skipped $version(already tested)"
        continue
    fi
    python=$(find_python "$version")
    if [ -z "$python" ]; then
        skipped="$skipped $version(not installed)"
        continue
    fi
    echo "-- CPython $version: $python"
    ran="$ran $version"
    if ! III_WHEEL=$wheel III_WHEEL_PYTHON=$python .venv/bin/python -m pytest -q -p no:cacheprovider \
        --timeout 120 tests/test_wheel.py; then
        failed="$failed $version"
    fi
done
echo "wheel-matrix: ran on:${ran:- none}; skipped:${skipped:- none}; failed on:${failed:- none}"
if [ -n "$failed" ]; then
    exit 1
fi
if [ -z "$ran" ] && [ -z "${SKIP_PYTHON:-}" ]; then
    echo "wheel-matrix: no CPython 3.10-3.13 found" >&2
    exit 1
fi
