"""End-to-end benchmark of the iii Python SDK: ours against the official pure-Python iii-sdk 0.11.0.

    python benches/python/bench.py [--url ws://...] [--official-python /work/official-venv/bin/python]
                                   [--calls 20000] [--concurrency 1000] [--rounds 3]
                                   [--call-timeout-ms 2000] [--json out.json] [--tls]

For each SDK (ours = the interpreter running this script; official = --official-python) it
starts a serving worker (serve.py) and a driving worker (drive.py), each in its own process
with that SDK's interpreter, and, unless --url / III_URL is given, a fresh test engine in a
third process (``python -m iii.testing``, from this interpreter) so that the engine's CPU is
charged to neither worker. The driver runs each scenario inside an async handler of its own
function ``<ns>::drive`` and reports per scenario:

  a  sequential round trips to an async echo, small payload (p50/p99 latency)
  b  fan-out of --calls calls at --concurrency to an async echo, small payload
  c  the same to a sync echo
  d  the same to the async echo with a 16 KiB payload
  e  --calls void calls to a sink, timed until the serving worker has run all of them

plus errors and the CPU time of the serving and driving processes per call. With --tls both
workers connect over wss:// through a TLS-terminating proxy in its own process
(tests/tls_proxy.py, Python asyncio, a CA made for the run and trusted via SSL_CERT_FILE), the
same proxy code for both SDKs. With both SDKs
it ends with ratios ours/official. Every child dies with this process (PR_SET_PDEATHSIG, stdin
EOF, watchdogs) and every wait has a timeout.

Robustness against the engine's dropped-result race (README, "Known engine issue": under CPU
contention the engine can drop a fast callee's result, and the caller waits for its timeout):

* every call has a short timeout, ``--call-timeout-ms`` (default 2000), and when calls failed
  a scenario's calls/s counts the answered calls up to the last answer: one dropped result no
  longer holds a fan-out for the SDK's 30 s default (measured: 13k calls/s shown as 650);
* errors are counted per scenario and cause, ``timeouts`` (what a dropped result looks like;
  match them against "Did not find caller for invocation" in a real engine's log) and
  ``other`` (anything else is a bug), and printed with the exception's type and message;
* ``--rounds N`` (default 3) runs everything N times, each round with fresh processes (and a
  fresh test engine), the SDKs alternating; the tables show the median of the rounds for each
  figure and the errors summed over all rounds, and the per-round calls/s are printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = ["a", "b", "c", "d", "e"]


def _pdeathsig() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process (and its reaped children not counted)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        pass
    try:  # no /proc (macOS): ps prints [[dd-]hh:]mm:ss.cc
        out = subprocess.run(["ps", "-o", "cputime=", "-p", str(pid)], capture_output=True, text=True).stdout
        days, _, clock = out.strip().rpartition("-")
        seconds = 0.0
        for part in clock.split(":"):
            seconds = seconds * 60 + float(part)
        return seconds + 86400 * int(days or 0)
    except (OSError, ValueError):
        return None


class Child:
    """A subprocess whose stdout lines are collected by a thread; stderr goes to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.stderr = tempfile.NamedTemporaryFile(prefix=f"iii-bench-{name}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
            text=True,
            preexec_fn=_pdeathsig,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name=f"read-{name}", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, tags: tuple[str, ...], deadline: float) -> tuple[str, object]:
        """Next line starting with one of ``tags`` (or FATAL); raises on timeout or exit."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no {'/'.join(tags)} before the deadline")
            try:
                line = self.lines.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(
                    f"{self.name} exited (code {self.proc.poll()}); stderr: {self.stderr_tail()}"
                )
            tag, _, rest = line.partition(" ")
            if tag == "FATAL":
                raise RuntimeError(f"{self.name}: {rest}; stderr: {self.stderr_tail()}")
            if tag in tags:
                try:
                    return tag, json.loads(rest) if rest else None
                except json.JSONDecodeError:
                    return tag, rest

    def stderr_tail(self, n: int = 1500) -> str:
        try:
            with open(self.stderr.name, errors="replace") as f:
                return f.read()[-n:].strip()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.terminate()
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            except OSError:
                pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass
        self.stderr.close()
        try:
            os.unlink(self.stderr.name)
        except OSError:
            pass


def child_env(otel: bool = False) -> dict[str, str]:
    """The SDK processes' environment; OpenTelemetry off unless ``otel`` (then each SDK's
    default, which is on for both)."""
    env = dict(os.environ)
    if otel:
        env.pop("OTEL_ENABLED", None)
        env["BENCH_OTEL"] = "1"
    else:
        env["OTEL_ENABLED"] = "false"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("III_URL", None)
    return env


def start_tls_proxy(label: str, url: str, env: dict[str, str], children: list[Child]) -> str:
    """Puts a TLS-terminating proxy in front of ``url``; trusts its CA in ``env``."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    directory = tempfile.mkdtemp(prefix="iii-bench-pki-")
    script = os.path.join(HERE, "..", "..", "tests", "tls_proxy.py")
    proxy = Child(f"tls-{label}", [sys.executable, script, str(port), directory], env)
    children.append(proxy)
    line = proxy.lines.get(timeout=20)
    if not line or not line.startswith("listening "):
        raise RuntimeError(f"TLS proxy did not start: {line!r} {proxy.stderr_tail()}")
    env["SSL_CERT_FILE"] = os.path.join(directory, "iii-bench-ca.pem")
    return f"wss://localhost:{line.split()[1]}"


def run_sdk(label: str, python: str, args: argparse.Namespace, deadline: float) -> dict:
    """Runs every scenario with one SDK; returns {"label", "sdk", "scenarios": {...}, ...}."""
    out: dict = {"label": label, "python": python, "scenarios": {}, "problems": []}
    children: list[Child] = []
    env = child_env(args.otel and not label.endswith("-otel-off"))
    ns = f"bench-{label}-{uuid.uuid4().hex[:6]}"
    engine = None
    try:
        url = args.url
        if not url:
            port = free_port()
            engine = Child(f"engine-{label}", [sys.executable, "-m", "iii.testing", "--port", str(port)], env)
            children.append(engine)
            line = engine.lines.get(timeout=20)  # "iii test engine listening on ws://..."
            if not line or "listening" not in line:
                raise RuntimeError(f"test engine did not start: {line!r} {engine.stderr_tail()}")
            url = f"ws://127.0.0.1:{port}"
        if args.tls:
            url = start_tls_proxy(label, url, env, children)
        out["url"] = url
        if args.otel:
            env["III_URL"] = url  # the official SDK sends telemetry there, not to the worker URL
        max_s = str(int(max(60, deadline - time.monotonic()) + 30))
        serve = Child(
            f"serve-{label}",
            [
                python,
                os.path.join(HERE, "serve.py"),
                *("--url", url, "--ns", ns, "--max-seconds", max_s),
                *("--hang-every", str(args.hang_every)),
            ],
            env,
        )
        children.append(serve)
        _, info = serve.expect(("READY",), time.monotonic() + 40)
        out["serve"] = info
        drive = Child(
            f"drive-{label}",
            [
                python,
                os.path.join(HERE, "drive.py"),
                "--url",
                url,
                "--ns",
                ns,
                "--scenarios",
                ",".join(["warmup", *args.scenarios]),
                "--calls",
                str(args.calls),
                "--concurrency",
                str(args.concurrency),
                "--seq-calls",
                str(args.seq_calls),
                "--payload-bytes",
                str(args.payload_bytes),
                "--call-timeout-ms",
                str(args.call_timeout_ms),
                "--scenario-timeout",
                str(args.scenario_timeout),
                "--max-seconds",
                max_s,
            ],
            env,
        )
        children.append(drive)
        _, info = drive.expect(("READY",), time.monotonic() + 60)
        out["drive"] = info
        if info.get("sdk") != out["serve"].get("sdk"):
            out["problems"].append("serve and drive imported different SDKs")
        out["sdk"] = info.get("sdk")
        engine_cpu0 = proc_cpu(engine.proc.pid) if engine else None
        while True:
            tag, value = drive.expect(("RESULT", "DONE"), deadline)
            if tag == "DONE":
                break
            name = value.get("scenario")
            if name == "warmup":
                out["warmup"] = value
            else:
                out["scenarios"][name] = value
            print(f"  [{label}] {summary_line(value)}", flush=True)
        if engine:
            out["engine_cpu_s"] = (proc_cpu(engine.proc.pid) or 0) - (engine_cpu0 or 0)
    except Exception as exc:  # noqa: BLE001 - reported, the other SDK still runs
        out["problems"].append(f"{type(exc).__name__}: {exc}")
        print(f"  [{label}] FAILED: {exc}", flush=True)
    finally:
        for child in reversed(children):
            child.stop()
    return out


def fmt(v: object, digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def error_text(r: dict) -> str:
    """``errors=N`` with the split by cause when there are any."""
    n = r.get("errors") or 0
    if not n:
        return "errors=0"
    return f"errors={n} (timeouts={r.get('timeouts', '?')}, other={r.get('other_errors', '?')})"


def summary_line(r: dict) -> str:
    if "fatal" in r:
        return f"{r['scenario']}: FATAL {r['fatal']}"
    if r.get("scenario") == "warmup":
        return f"warmup: ok={r.get('ok')} {error_text(r)} bad={r.get('bad')} {r.get('error_samples') or ''}"
    s = f"{r['scenario']}: {fmt(r['calls_per_s'])} calls/s, {error_text(r)}"
    if r.get("p50_us") is not None:
        s += f", p50={fmt(r['p50_us'])} us p99={fmt(r['p99_us'])} us"
    if r.get("timed_out"):
        s += " TIMED OUT"
    if r.get("bad"):
        s += f", bad answers={r['bad']}"
    for sample in r.get("error_samples") or []:
        s += f"\n      {sample}"
    return s


def notes(r: dict) -> str:
    parts = []
    if "fatal" in r:
        return "FATAL: " + r["fatal"]
    if r.get("timed_out"):
        parts.append("TIMED OUT")
    if r.get("bad"):
        parts.append(f"bad={r['bad']}")
    if r["scenario"] == "e" and r.get("delivered") is not None and r["delivered"] < r["calls"]:
        parts.append(f"delivered {r['delivered']}/{r['calls']}")
    if r.get("errors"):
        parts.append(f"timeouts={r.get('timeouts', '?')} other={r.get('other_errors', '?')}")
    if r.get("rounds_calls_per_s") and len(r["rounds_calls_per_s"]) > 1:
        parts.append("rounds " + "/".join(fmt(v) for v in r["rounds_calls_per_s"]))
    if r.get("error_samples"):
        parts.append("e.g. " + " | ".join(r["error_samples"][:2]))
    return "; ".join(parts)


def print_sdk(res: dict) -> None:
    print()
    sdk = res.get("sdk") or "?"
    path = (res.get("drive") or {}).get("path", "")
    print(f"== {res['label']} ({sdk} SDK, {path}) ==")
    native = (res.get("drive") or {}).get("native")
    if native:
        mb = res["drive"]["native_mb"]
        warn = "  <-- large: a debug build? use `maturin develop --release`" if mb > 20 else ""
        print(f"   Rust core: {native} ({mb} MB){warn}")
    for p in res["problems"]:
        print(f"   problem: {p}")
    if res.get("rounds", 1) > 1:
        print(f"   median of {res['rounds']} rounds; errors summed over the rounds")
    header = f"{'scenario':<52} {'calls/s':>9} {'p50 us':>8} {'p99 us':>8} {'errors':>6} {'serve us/call':>13} {'drive us/call':>13}  notes"
    print(header)
    print("-" * len(header))
    for name in SCENARIOS:
        r = res["scenarios"].get(name)
        if r is None:
            continue
        if "fatal" in r:
            print(f"{name:<52} {notes(r)}")
            continue
        desc = f"{name} {r['description']}"[:52]
        print(
            f"{desc:<52} {fmt(r['calls_per_s']):>9} {fmt(r['p50_us']):>8} {fmt(r['p99_us']):>8} {r['errors']:>6} "
            f"{fmt(r['server_cpu_us_per_call'], 1):>13} {fmt(r['driver_cpu_us_per_call'], 1):>13}  {notes(r)}"
        )
    if res.get("engine_cpu_s") is not None:
        print(f"(test engine CPU for the whole run, warm-up included: {res['engine_cpu_s']:.2f} s)")


MEDIAN_KEYS = (
    "calls_per_s",
    "p50_us",
    "p99_us",
    "elapsed_s",
    "server_cpu_us_per_call",
    "driver_cpu_us_per_call",
)
SUM_KEYS = ("errors", "timeouts", "other_errors", "bad")
WORST_KEYS = ("ok", "delivered")  # the worst round, so that "delivered 19,990/20,000" shows up


def median(values: list[float]) -> float | None:
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def merge_rounds(label: str, rounds: list[dict]) -> dict:
    """One result per SDK from its rounds: the median of each figure (over the rounds that
    produced the scenario), errors summed, every problem and a few error samples kept."""
    merged: dict = {"label": label, "rounds": len(rounds), "scenarios": {}, "problems": []}
    for i, res in enumerate(rounds, 1):
        merged["problems"] += [f"round {i}: {p}" for p in res["problems"]]
        for key in ("sdk", "drive", "serve", "python", "url"):
            if merged.get(key) is None and res.get(key) is not None:
                merged[key] = res[key]
    engine_cpu = [r["engine_cpu_s"] for r in rounds if r.get("engine_cpu_s") is not None]
    if engine_cpu:
        merged["engine_cpu_s"] = median(engine_cpu)
    for name in SCENARIOS:
        got = [r["scenarios"][name] for r in rounds if name in r["scenarios"]]
        good = [r for r in got if "fatal" not in r]
        if not good:
            if got:
                merged["scenarios"][name] = got[0]
            continue
        m = dict(good[0])
        for key in MEDIAN_KEYS:
            values = [r[key] for r in good if isinstance(r.get(key), (int, float))]
            m[key] = median(values)
        for key in SUM_KEYS:
            m[key] = sum(r.get(key) or 0 for r in good)
        for key in WORST_KEYS:
            values = [r[key] for r in good if isinstance(r.get(key), (int, float))]
            if values:
                m[key] = min(values)
        m["timed_out"] = any(r.get("timed_out") for r in good)
        m["rounds_calls_per_s"] = [r.get("calls_per_s") for r in good]
        samples: list[str] = []
        for r in good:
            samples += [x for x in r.get("error_samples") or [] if x not in samples]
        m["error_samples"] = samples[:4]
        if len(good) < len(got):
            merged["problems"].append(f"{name}: {len(got) - len(good)} round(s) without a result")
        merged["scenarios"][name] = m
    return merged


def ratio(a: object, b: object) -> float | None:
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or b == 0:
        return None
    return a / b


def comparison(ours: dict, official: dict) -> list[dict]:
    rows = []

    def get(res: dict, name: str, key: str):
        r = res["scenarios"].get(name)
        return None if r is None or "fatal" in r else r.get(key)

    def flag(name: str) -> str:
        marks = []
        for label, res in (("ours", ours), ("official", official)):
            r = res["scenarios"].get(name)
            if r is None or "fatal" in r:
                marks.append(f"{label}: no result")
            elif r.get("errors") or r.get("timed_out") or r.get("bad"):
                marks.append(
                    f"{label}: {r.get('errors')} errors ({r.get('timeouts', '?')} timeouts)"
                    + (" + scenario cut short" if r.get("timed_out") else "")
                )
        return "; ".join(marks)

    def add(metric: str, name: str, key: str, better: str) -> None:
        a, b = get(ours, name, key), get(official, name, key)
        rows.append(
            {
                "metric": metric,
                "ours": a,
                "official": b,
                "ratio": ratio(a, b),
                "better": better,
                "note": flag(name),
            }
        )

    add("a round trip p50 (us)", "a", "p50_us", "lower")
    add("a round trip p99 (us)", "a", "p99_us", "lower")
    for name, what in (("b", "async echo"), ("c", "sync echo"), ("d", "16 KiB async echo"), ("e", "void")):
        add(f"{name} throughput {what} (calls/s)", name, "calls_per_s", "higher")
    for name in SCENARIOS:
        add(f"{name} serve CPU per call (us)", name, "server_cpu_us_per_call", "lower")
        add(f"{name} drive CPU per call (us)", name, "driver_cpu_us_per_call", "lower")
    return rows


def print_comparison(rows: list[dict]) -> None:
    print()
    print("== ours / official ==")
    header = f"{'metric':<38} {'ours':>10} {'official':>10} {'ratio':>7}  better  note"
    print(header)
    print("-" * len(header))
    for r in rows:
        digits = 1 if "CPU" in r["metric"] else 0
        print(
            f"{r['metric']:<38} {fmt(r['ours'], digits):>10} {fmt(r['official'], digits):>10} "
            f"{(fmt(r['ratio'], 2) + 'x') if r['ratio'] is not None else '-':>7}  {r['better']:<6}  {r['note']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("III_URL"),
        help="an engine to use (default: start a test engine per SDK)",
    )
    parser.add_argument("--official-python", help="interpreter with the official iii-sdk installed")
    parser.add_argument("--skip-ours", action="store_true", help="only run the official SDK")
    parser.add_argument("--calls", type=int, default=20000, help="calls in scenarios b-e")
    parser.add_argument("--concurrency", type=int, default=1000, help="calls in flight in scenarios b-d")
    parser.add_argument("--seq-calls", type=int, default=2000, help="calls in scenario a")
    parser.add_argument("--payload-bytes", type=int, default=16 * 1024, help="string size in scenario d")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument(
        "--call-timeout-ms",
        type=int,
        default=2000,
        help="timeout of each call (short: a result the engine drops costs only this)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per SDK; tables show the medians")
    parser.add_argument(
        "--hang-every",
        type=int,
        default=0,
        help="the serving worker leaves every Nth echo unanswered (checks the bench's robustness)",
    )
    parser.add_argument(
        "--scenario-timeout", type=float, default=120.0, help="seconds before a scenario is cut short"
    )
    parser.add_argument("--timeout", type=float, default=1500.0, help="overall limit in seconds")
    parser.add_argument("--json", help="write every result to this file")
    parser.add_argument("--tls", action="store_true", help="connect over wss:// through a TLS proxy")
    parser.add_argument(
        "--otel",
        action="store_true",
        help="OpenTelemetry at each SDK's default (on), and ours once more with it off ('ours-otel-off')",
    )
    args = parser.parse_args()
    args.scenarios = [s for s in args.scenarios.split(",") if s]

    start = time.monotonic()
    deadline = start + args.timeout
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    runs: list[tuple[str, str]] = []
    if not args.skip_ours:
        runs.append(("ours", sys.executable))
        if args.otel:
            runs.append(("ours-otel-off", sys.executable))
    if args.official_python:
        runs.append(("official", args.official_python))
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    print(
        f"iii end-to-end benchmark: calls={args.calls} concurrency={args.concurrency} seq={args.seq_calls} "
        f"payload={args.payload_bytes} B, call timeout={args.call_timeout_ms} ms, rounds={args.rounds}, "
        f"engine={'given: ' + args.url if args.url else 'test engine per SDK'}, {os.cpu_count()} CPUs",
        flush=True,
    )
    per_round: dict[str, list[dict]] = {label: [] for label, _ in runs}
    for n in range(1, args.rounds + 1):
        # Alternate the order so that neither SDK always runs on a cold (or warm) machine.
        for label, python in runs if n % 2 else runs[::-1]:
            print(f"round {n}/{args.rounds}: running {label} ({python}) ...", flush=True)
            per_round[label].append(run_sdk(label, python, args, deadline))
    results = {label: merge_rounds(label, rounds) for label, rounds in per_round.items()}
    for res in results.values():
        print_sdk(res)
    rows = None
    if "ours" in results and "official" in results:
        rows = comparison(results["ours"], results["official"])
        print_comparison(rows)
    if "ours" in results and "ours-otel-off" in results:
        print("\n== ours with OpenTelemetry on / off (the official columns are ours, off) ==")
        print_comparison(comparison(results["ours"], results["ours-otel-off"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"args": vars(args), "results": results, "rounds": per_round, "comparison": rows}, f, indent=2
            )
        print(f"\nwrote {args.json}")
    print(f"total {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
