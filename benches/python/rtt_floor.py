"""The least a Python process can spend on a sequential round trip, against which the SDK's
round trip is judged: a client written for this benchmark alone, one thread, a blocking socket,
WebSocket frames by hand, ``json``, no SDK and no event loop. It serves ``bench::echo`` (and what
the raw client's fan-outs call) or drives sequential calls to it. ``matrix`` times every driver
(the raw Rust client, ours, this one) against every server (the same three) on a running engine.

    python benches/python/rtt_floor.py serve ws://127.0.0.1:49134          # prints "ready"
    python benches/python/rtt_floor.py drive ws://127.0.0.1:49134          # prints the p50
    python benches/python/rtt_floor.py matrix ws://127.0.0.1:49134 --raw <raw_limit> --rounds 3
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pathlib
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

HERE = pathlib.Path(__file__).resolve()
SDK_BENCH = HERE.parents[3] / "shared" / "peers" / "sdk_bench.py"
CALLS = 5000


class Link:
    """A WebSocket client connection with nothing on top: text frames in and out."""

    def __init__(self, url: str) -> None:
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET / HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        self.buf = self.buf.split(b"\r\n\r\n", 1)[1]

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the engine closed the connection")
        return data

    def send(self, message: dict[str, Any]) -> None:
        payload = json.dumps(message, separators=(",", ":")).encode()
        n = len(payload)
        if n < 126:
            head = bytes([0x81, 0x80 | n])
        elif n < 65536:
            head = bytes([0x81, 0xFE]) + struct.pack(">H", n)
        else:
            head = bytes([0x81, 0xFF]) + struct.pack(">Q", n)
        self.sock.sendall(head + b"\0\0\0\0" + payload)  # a zero mask leaves the payload as it is

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            self.buf += self._recv()

    def messages(self) -> Iterator[dict[str, Any]]:
        while True:
            self._need(2)
            n, start = self.buf[1] & 0x7F, 2
            if n == 126:
                self._need(4)
                n, start = struct.unpack(">H", self.buf[2:4])[0], 4
            elif n == 127:
                self._need(10)
                n, start = struct.unpack(">Q", self.buf[2:10])[0], 10
            self._need(start + n)
            opcode, data = self.buf[0] & 0x0F, self.buf[start : start + n]
            self.buf = self.buf[start + n :]
            if opcode == 1:
                yield json.loads(data)


def serve(url: str) -> None:
    link = Link(url)
    for fid in ("bench::echo", "bench::echo_sync", "bench::sink", "bench::count"):
        link.send({"type": "registerfunction", "id": fid})
    print("ready", flush=True)
    sunk = 0
    for msg in link.messages():
        if msg.get("type") != "invokefunction":
            continue
        if "invocation_id" not in msg:
            sunk += 1  # bench::sink, called void
            continue
        fid = msg["function_id"]
        result = {"n": sunk} if fid == "bench::count" else msg.get("data")
        link.send({"type": "invocationresult", "invocation_id": msg["invocation_id"], "function_id": fid,
                   "result": result})  # fmt: skip


def drive(url: str) -> float:
    link = Link(url)
    messages = link.messages()

    def call(n: int) -> dict[str, Any]:
        link.send({"type": "invokefunction", "function_id": "bench::echo", "data": {"i": 1},
                   "invocation_id": f"00000000-0000-4000-8000-{n:012d}"})  # fmt: skip
        return next(m for m in messages if m.get("type") == "invocationresult")

    while "error" in call(0):  # until the server's function is registered
        time.sleep(0.2)
    lat = []
    for n in range(1, CALLS + 1):
        t0 = time.perf_counter()
        call(n)
        lat.append(time.perf_counter() - t0)
    return statistics.median(lat) * 1e6


def drive_ours(url: str) -> float:
    """The same calls through the SDK, ``trigger()`` from the main thread (sdk_bench.py's)."""
    from iii import InitOptions, register_worker

    worker = register_worker(url, InitOptions(otel={"enabled": False}, enable_metrics_reporting=False))
    request = {"function_id": "bench::echo", "payload": {"i": 1}}
    deadline = time.monotonic() + 30
    while True:
        try:
            worker.trigger({**request, "timeout_ms": 2000})
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    lat = []
    for _ in range(CALLS):
        t0 = time.perf_counter()
        worker.trigger(request)
        lat.append(time.perf_counter() - t0)
    worker.shutdown()
    return statistics.median(lat) * 1e6


def matrix(url: str, raw: str, rounds: int) -> None:
    me = [sys.executable, str(HERE)]
    servers = {"raw": [raw, "serve", url], "ours": [sys.executable, str(SDK_BENCH), "serve", url],
               "floor": [*me, "serve", url]}  # fmt: skip
    drivers = {
        "raw": [raw, "drive", url, "--quick"],
        "ours": [*me, "drive-ours", url],
        "floor": [*me, "drive", url],
    }
    p50: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in range(rounds):
        for server, argv in servers.items():
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
            try:
                assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", server
                for driver, dargv in drivers.items():
                    out = subprocess.run(dargv, capture_output=True, text=True, check=True, timeout=300)
                    value = json.loads(out.stdout.strip().splitlines()[-1])["rtt_p50_us"]
                    p50[(server, driver)].append(value)
                    print(
                        f"round {r + 1} server {server:5} driver {driver:5} p50 {value:7.1f} us", flush=True
                    )
            finally:
                proc.kill()
                proc.wait()
    print("\nmedian p50 (us), rows: server, columns: driver")
    print("        " + "".join(f"{d:>8}" for d in drivers))
    for server in servers:
        print(f"{server:8}" + "".join(f"{statistics.median(p50[(server, d)]):8.1f}" for d in drivers))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["serve", "drive", "drive-ours", "matrix"])
    ap.add_argument("url")
    ap.add_argument("--raw", help="the raw client's binary (../shared/peers/raw_limit), for matrix")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.mode == "serve":
        serve(args.url)
    elif args.mode == "matrix":
        if not args.raw:
            ap.error("matrix needs --raw")
        matrix(args.url, args.raw, args.rounds)
    else:
        value = drive(args.url) if args.mode == "drive" else drive_ours(args.url)
        print(json.dumps({"rtt_p50_us": round(value, 1)}))


if __name__ == "__main__":
    main()
