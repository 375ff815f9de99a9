#!/usr/bin/env bash
# Runs every check CI runs: the lint gate (rustfmt, clippy, ruff, mypy --strict, stub check),
# the Rust core's tests (cargo test) and the Python API's tests (pytest).
# Creates ./.venv on first use. Set III_URL=ws://... to also run against a real engine.
# LINT=0 skips the lint gate (for quick local runs). WHEEL_TEST=1 (CI sets it) also builds the
# release wheel (scripts/build-wheels.sh, Linux) and installs it into a fresh venv without Rust.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "maturin>=1.5,<2" pytest pytest-timeout "pydantic>=2" "opentelemetry-api>=1.25" "opentelemetry-sdk>=1.25" "uvloop>=0.19" "ruff>=0.8" "mypy>=1.13" cryptography

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
    # Again with the test engine behaving like the engines after v0.11.0 (protocol.md Part B).
    III_TEST_ENGINE=head III_WHEEL= python -m pytest -q -p no:cacheprovider --timeout 120 tests
fi
