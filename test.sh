#!/usr/bin/env bash
# Runs every test: the Rust core (cargo test) and the Python API (pytest).
# Creates ./.venv on first use. Set III_URL=ws://... to also run against a real engine.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "maturin>=1.5,<2" pytest pytest-timeout "pydantic>=2"
cargo test --quiet
maturin develop --quiet
python -m pytest -q -p no:cacheprovider --timeout 120 tests
