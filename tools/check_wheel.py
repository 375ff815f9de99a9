"""Check a Linux wheel of ours before it is published: tags, glibc floor, linked libraries.

    python tools/check_wheel.py dist/iii_sdk-*-manylinux*.whl

Fails (exit 1) unless the wheel

- is tagged ``cp310-abi3`` (one wheel for every CPython >= 3.10) and ``manylinux_2_17_<arch>``
  (alias ``manylinux2014``) for the architecture of its extension module;
- has an extension module that needs no glibc symbol version newer than 2.17 and links only
  libraries every manylinux2014 system has (not libpython: abi3 modules resolve the C API from
  the interpreter that loads them);
- carries the Python package, its type stubs and ``py.typed``.

Needs ``pyelftools`` (installed with ``auditwheel``).
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

GLIBC_FLOOR = (2, 17)
# The libraries PEP 599 (manylinux2014) lets a wheel link without bundling them, that a Rust
# extension can plausibly need.
ALLOWED_LIBS = {
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libgcc_s.so.1",
    "libutil.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
}
ELF_ARCH = {"EM_X86_64": "x86_64", "EM_AARCH64": "aarch64"}
REQUIRED_FILES = {"iii/__init__.py", "iii/_iii.pyi", "iii/py.typed", "iii/testing.py"}


def version_tuple(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split("_", 1)[1].split("."))


def check(path: str) -> list[str]:
    problems: list[str] = []
    with zipfile.ZipFile(path) as wheel:
        names = set(wheel.namelist())
        wheel_meta = next(n for n in names if n.endswith(".dist-info/WHEEL"))
        tags = {
            line.split(":", 1)[1].strip()
            for line in wheel.read(wheel_meta).decode().splitlines()
            if line.startswith("Tag:")
        }
        modules = [n for n in names if n.startswith("iii/_iii") and n.endswith(".so")]
        problems += [f"missing {f}" for f in sorted(REQUIRED_FILES - names)]
        if modules != ["iii/_iii.abi3.so"]:
            problems.append(f"expected one abi3 extension module iii/_iii.abi3.so, found {modules}")
            return problems
        elf = ELFFile(io.BytesIO(wheel.read(modules[0])))

    arch = ELF_ARCH.get(elf["e_machine"])
    print(f"{path}\n  tags: {', '.join(sorted(tags))}")
    if arch is None:
        return [*problems, f"unexpected machine {elf['e_machine']}"]
    wanted = f"cp310-abi3-manylinux_2_17_{arch}"
    if wanted not in tags:
        problems.append(f"tag {wanted} missing")
    if any(not t.startswith("cp310-abi3-") for t in tags):
        problems.append("a tag other than cp310-abi3")

    needed: list[str] = []
    glibc: set[str] = set()
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            needed += [tag.needed for tag in section.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]
        elif isinstance(section, GNUVerNeedSection):
            for _lib, versions in section.iter_versions():
                glibc |= {v.name for v in versions if v.name.startswith("GLIBC_")}
    newest = max(glibc, key=version_tuple, default="none")
    print(f"  linked: {', '.join(needed)}\n  newest glibc symbol version: {newest}")
    problems += [
        f"links {lib}, which manylinux2014 does not provide" for lib in needed if lib not in ALLOWED_LIBS
    ]
    too_new = sorted(v for v in glibc if version_tuple(v) > GLIBC_FLOOR)
    if too_new:
        problems.append(f"needs glibc symbols newer than 2.17: {too_new}")
    if not elf.get_section_by_name(".dynsym") or not any(
        s.name == "PyInit__iii" for s in elf.get_section_by_name(".dynsym").iter_symbols()
    ):
        problems.append("PyInit__iii is not exported")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("wheels", nargs="+")
    failed = False
    for path in parser.parse_args().wheels:
        for problem in check(path):
            print(f"  FAIL: {problem}")
            failed = True
    print("FAILED" if failed else "ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
