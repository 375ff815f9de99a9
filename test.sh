#!/usr/bin/env bash
# Runs every check CI runs: the lint gate (rustfmt, clippy, ruff, mypy --strict, stub check),
# the Rust core's tests (cargo test) and the Python API's tests (pytest).
# Creates ./.venv on first use. Set III_URL=ws://... to also run against a real engine.
# LINT=0 skips the lint gate (for quick local runs). WHEEL_TEST=1 (CI sets it) also builds the
# release wheel (scripts/build-wheels.sh, Linux) and installs it into a fresh venv without Rust,
# of this Python and of each other CPython 3.10-3.13 installed (scripts/wheel-matrix.sh).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The versions live in pyproject.toml: maturin from [build-system] requires, the test and lint
# extras (ruff and mypy pinned exactly). tomli reads pyproject.toml where tomllib is missing.
python -m pip install -q "tomli>=1.1; python_version < '3.11'"
python scripts/dev-requirements.py test lint | python -m pip install -q -r /dev/stdin

if [ "${LINT:-1}" != 0 ]; then
    echo "== lint"
    cargo fmt --check
    cargo clippy --quiet --workspace --all-targets -- -D warnings
    ruff check python tests benches examples tools
    ruff format --check python tests benches examples tools
    mypy --strict python/iii
fi

echo "== cargo test"
cargo test --quiet
echo "== build the extension"
maturin develop --quiet
if [ "${LINT:-1}" != 0 ]; then
    echo "== stub check"
    python -m mypy.stubtest iii._iii --allowlist tests/stubtest-allowlist.txt
fi
if [ "${WHEEL_TEST:-0}" != 0 ]; then
    echo "== wheel"
    scripts/build-wheels.sh
    III_WHEEL=$(ls "$PWD"/dist/iii_sdk-*-manylinux*_"$(uname -m)".whl)
    export III_WHEEL
fi
echo "== pytest"
python -m pytest -q -p no:cacheprovider --timeout 120 tests
if [ -z "${III_URL:-}" ]; then
    # Again with the test engine behaving like the engines after v0.11.0 (docs/protocol.md Part B).
    III_TEST_ENGINE=head III_WHEEL= python -m pytest -q -p no:cacheprovider --timeout 120 tests
    # And like engine 0.25 (docs/protocol.md Part C).
    III_TEST_ENGINE=0.25 III_WHEEL= python -m pytest -q -p no:cacheprovider --timeout 120 tests
fi
if [ "${WHEEL_TEST:-0}" != 0 ]; then
    # tests/test_wheel.py again, in a venv of each other CPython 3.10-3.13 found here.
    echo "== wheel on other Pythons"
    SKIP_PYTHON=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])') scripts/wheel-matrix.sh "$III_WHEEL"
fi
