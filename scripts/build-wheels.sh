#!/usr/bin/env bash
# Builds into dist/ what a release publishes from a Linux machine: a manylinux2014 (glibc 2.17)
# abi3 wheel for this machine's architecture and the sdist, then checks the wheel (maturin's
# own audit, auditwheel, tools/check_wheel.py). zig (the `ziglang` package) links against
# glibc 2.17, so neither Docker nor an old-glibc build image is needed.
# Uses ./.venv like test.sh; needs Rust. PROFILE=dev builds an unoptimised wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
arch=$(uname -m)
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
. .venv/bin/activate
# NOTE: zig pinned: it is the linker of the published wheel, and 0.17.1 (with maturin 1.16)
# is the version whose output was checked (glibc symbols <= 2.17, wheel installed on CPython
# 3.10-3.13); maturin-action itself caps the zig it installs (< 0.14 in its 1.47.3).
python -m pip install -q "maturin>=1.5,<2" "ziglang==0.17.1" auditwheel

mkdir -p dist
rm -f dist/iii_sdk-*-manylinux*_"$arch".whl dist/iii_sdk-*.tar.gz
# --target keeps these artifacts apart from `cargo test` / `maturin develop` (zig is the linker
# here, which would otherwise rebuild the shared ones every time); --auditwheel check fails
# instead of bundling a library into the wheel.
maturin build --quiet --profile "$profile" --zig --compatibility manylinux2014 \
    --target "$arch-unknown-linux-gnu" --auditwheel check --strip --out dist
maturin sdist --out dist

wheel=$(ls dist/iii_sdk-*-cp310-abi3-manylinux*_"$arch".whl)
auditwheel show "$wheel" | tee dist/auditwheel.txt
# auditwheel names the oldest policy the wheel satisfies; anything newer than 2_17 is a failure.
tr -s ' \n' ' ' <dist/auditwheel.txt | grep -q "consistent with the following platform tag: \"manylinux_2_17_$arch\""
python tools/check_wheel.py "$wheel"
ls -l dist/*.whl dist/*.tar.gz
