"""Where the CPU of a compare.py run goes: the engine's, and the clients' (serving and driving
processes together), per call, for each client. On a 2-core machine the fan-out ceiling of a
client is about 2 cores / (engine CPU per call + client CPU per call), so this shows what
limits each client and how far the engine alone would allow it to go.

  cpu_split.py COMPARE_PY --engine BIN [the client options of compare.py] [--rounds N]
               [--quick | --marginal]

COMPARE_PY is ../shared/peers/compare.py; it is loaded unchanged and only wrapped: its engine is
started as usual, and around every serve/drive pair this samples the engine's CPU time
(/proc/<pid>/stat) and the CPU of the finished client processes (RUSAGE_CHILDREN). A drive run
makes a fixed number of calls (2,000 sequential round trips, then 20,000 + 20,000 + 5,000 +
20,000 in the fan-outs; a quarter of that with --quick), so the figures are averages over every
scenario of the run. Prints one JSON line per client (medians over rounds). A pair that ended
in an error (compare.py leaves it out of its medians too) is left out here.

These figures include what a client spends once per process: starting the interpreter,
importing the SDK, connecting, registering, warming up. With --marginal each pair is preceded
by a --quick pair of the same client (not counted in compare.py's results), and the difference
between the two (when both ran to the end), divided by the difference in calls, is the CPU of
one more call: `*_marginal_us_per_call`, and the ceiling it implies. That is the figure to set
against a per-call budget; a Python client's startup is several microseconds per call of a full
run.
"""

from __future__ import annotations

import json
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from around_compare import load_compare, medians  # noqa: E402

CALLS = 2000 + 20000 + 20000 + 5000 + 20000
CALLS_QUICK = 300 + 2000 + 2000 + 500 + 2000


def _proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    marginal = "--marginal" in sys.argv
    if marginal:
        sys.argv.remove("--marginal")
        if "--quick" in sys.argv:
            sys.exit("--marginal compares full runs with --quick ones; leave --quick out")
    compare, engine = load_compare(sys.argv.pop(1))
    run_pair = compare.run_pair
    samples: dict[str, list[dict[str, float]]] = {}

    def cpu_of(serve_cmd, drive_cmd, quick, otel):
        e0, c0 = _proc_cpu(engine["pid"]), _children_cpu()
        result = run_pair(serve_cmd, drive_cmd, quick, otel)
        return result, _proc_cpu(engine["pid"]) - e0, _children_cpu() - c0

    def measured(serve_cmd, drive_cmd, quick, otel):
        small = cpu_of(serve_cmd, drive_cmd, True, otel) if marginal else None
        result, e, c = cpu_of(serve_cmd, drive_cmd, quick, otel)
        if "error" in result:  # a run cut short made fewer calls: its CPU says nothing per call
            return result
        calls = CALLS_QUICK if quick else CALLS
        row = {"engine_cpu_us_per_call": e / calls * 1e6, "client_cpu_us_per_call": c / calls * 1e6}
        if small is not None and "error" not in small[0]:
            extra = calls - CALLS_QUICK
            row["engine_marginal_us_per_call"] = (e - small[1]) / extra * 1e6
            row["client_marginal_us_per_call"] = (c - small[2]) / extra * 1e6
        label = serve_cmd[0]  # the client's binary, or the python of an SDK's virtualenv
        samples.setdefault(label, []).append(row)
        return result

    compare.run_pair = measured
    compare.main()
    for label, rows in samples.items():
        med = medians(rows, 1)  # the marginal figures may miss in some rows
        total = med["engine_cpu_us_per_call"] + med["client_cpu_us_per_call"]
        med["two_core_ceiling_per_s"] = round(2e6 / total) if total else None
        if "client_marginal_us_per_call" in med:
            total = med["engine_marginal_us_per_call"] + med["client_marginal_us_per_call"]
            med["marginal_two_core_ceiling_per_s"] = round(2e6 / total) if total > 0 else None
        print(json.dumps({"cpu_split": label, **med}), flush=True)


if __name__ == "__main__":
    main()
