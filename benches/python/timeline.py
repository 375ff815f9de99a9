"""Where the wall time of a compare.py run goes: who is on a core, and when the engine waits.

  timeline.py COMPARE_PY --engine BIN [the client options of compare.py] [--rounds N] [--quick]
              [--interval-ms 10] [--dump FILE]

COMPARE_PY is ../shared/peers/compare.py, loaded unchanged and only wrapped, as cpu_split.py
does. Around every serve/drive pair a thread samples, every --interval-ms, the on-CPU time of
the engine, the serving and the driving process (every thread's, /proc/<pid>/task/*/schedstat,
nanoseconds). From the samples, per client (medians over rounds):

  alone_ms           time the driving process ran (at least half a core) while the engine and
                     the serving process were idle (under 5 % of a core), after the driver's
                     first call reached the engine: work no other process could overlap
  alone_stretches    how many separate stretches (of at least 3 intervals) that time came in;
                     the start of each fan-out shows as one
  steady_ms          time the engine ran at least 0.75 of a core: the fan-outs once under way
                     (sequential round trips keep it under that)
  steady_cores       cores busy on average during it (engine + serving + driving, of 2)
  steady_engine / steady_serve / steady_drive   each process's share of that, in cores

--dump appends one JSON line per pair to FILE: the client and its samples (interval length in
seconds, then the cores used by the engine, the serving and the driving process).

On 2 cores a fan-out runs at the CPU ceiling (cpu_split.py) only if the three processes keep
both cores busy from its first call to its last: alone time, and steady cores under 2, are
what it loses. The sampling thread costs this process a few percent of a core, the same for
every client, but it moves compare.py's own figures (the round trip most): quote those from a
run without it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from around_compare import load_compare, medians  # noqa: E402


def _oncpu_ns(pid: int) -> dict[str, int]:
    """Each thread's on-CPU time so far. Per thread, as a process's total would drop when one
    of its threads ends."""
    times = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return times
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                times[tid] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # the thread ended between the listing and the read
    return times


def _delta(before: dict[str, int], after: dict[str, int]) -> int:
    return sum(ns - before.get(tid, 0) for tid, ns in after.items())


def _children() -> list[int]:
    pids = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return pids


def _role(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return None
    for role in ("serve", "drive"):
        if role.encode() in args:
            return role
    return None


class Sampler(threading.Thread):
    """Samples the engine and the pair's two processes until stopped."""

    def __init__(self, engine_pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.engine_pid, self.interval = engine_pid, interval
        self.stop = threading.Event()
        # per interval: its length (s), then the cores the engine, serving and driving process
        # used in it (None: the process was not there at both ends)
        self.rows: list[tuple[float, float, float | None, float | None]] = []

    def run(self) -> None:
        roles: dict[int, str | None] = {}
        last_t, last = 0.0, {}  # per process: (pid, each thread's on-CPU ns)
        while not self.stop.wait(self.interval):
            pids = {"engine": self.engine_pid, "serve": 0, "drive": 0}
            for pid in _children():
                if pid not in roles:
                    roles[pid] = _role(pid) if pid != self.engine_pid else None
                if roles[pid] is not None:
                    pids[roles[pid]] = pid
            t = time.perf_counter()
            now = {role: (pid, _oncpu_ns(pid) if pid else {}) for role, pid in pids.items()}
            if last:
                ns = (t - last_t) * 1e9
                # None: the process was not there at both ends of the interval
                cores = [
                    _delta(last[role][1], now[role][1]) / ns
                    if now[role][0] and now[role][0] == last[role][0]
                    else None
                    for role in ("engine", "serve", "drive")
                ]
                self.rows.append((t - last_t, cores[0] or 0.0, cores[1], cores[2]))
            last_t, last = t, now


def analyse(rows: list[tuple[float, float, float | None, float | None]]) -> dict[str, float] | None:
    """The figures of one pair from its samples (see the module's docstring)."""
    steps = [(dt, e, s, d) for dt, e, s, d in rows if s is not None and d is not None]
    if not steps:
        return None
    first = next((i for i, s in enumerate(steps) if s[1] >= 0.05 and s[3] >= 0.05), None)
    if first is None:
        return None
    steps = steps[first:]
    alone = steady = 0.0
    stretches = run = 0
    sums = [0.0, 0.0, 0.0]
    for dt, engine, serve, drive in steps:
        if drive >= 0.5 and engine < 0.05 and serve < 0.05:
            alone += dt
            run += 1
            if run == 3:
                stretches += 1
        else:
            run = 0
        if engine >= 0.75:
            steady += dt
            sums = [a + b * dt for a, b in zip(sums, (engine, serve, drive), strict=True)]
    row = {"alone_ms": alone * 1e3, "alone_stretches": float(stretches), "steady_ms": steady * 1e3}
    if steady:
        row["steady_cores"] = sum(sums) / steady
        row.update(
            {f"steady_{k}": v / steady for k, v in zip(("engine", "serve", "drive"), sums, strict=True)}
        )
    return row


def main() -> None:
    interval, dump = 0.010, None
    if "--interval-ms" in sys.argv:
        i = sys.argv.index("--interval-ms")
        interval = float(sys.argv[i + 1]) / 1e3
        del sys.argv[i : i + 2]
    if "--dump" in sys.argv:
        i = sys.argv.index("--dump")
        dump = sys.argv[i + 1]
        del sys.argv[i : i + 2]
    compare, engine = load_compare(sys.argv.pop(1))
    run_pair = compare.run_pair
    samples: dict[str, list[dict[str, float]]] = {}

    def sampled(serve_cmd, drive_cmd, quick, otel):
        sampler = Sampler(engine["pid"], interval)
        sampler.start()
        try:
            result = run_pair(serve_cmd, drive_cmd, quick, otel)
        finally:
            sampler.stop.set()
            sampler.join()
        if dump:
            with open(dump, "a") as f:
                f.write(json.dumps({"client": serve_cmd[0], "rows": sampler.rows}) + "\n")
        row = analyse(sampler.rows) if "error" not in result else None
        if row is not None:
            samples.setdefault(serve_cmd[0], []).append(row)
        return result

    compare.run_pair = sampled
    compare.main()
    for label, rows in samples.items():
        print(json.dumps({"timeline": label, **medians(rows, 2)}), flush=True)


if __name__ == "__main__":
    main()
