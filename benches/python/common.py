"""Helpers shared by serve.py and drive.py. Uses only the API both SDKs (ours and the official
pure-Python ``iii-sdk`` 0.11.0) share: ``register_worker``, ``InitOptions``, ``register_function``,
``trigger``, ``trigger_async``, ``TriggerAction.Void()``, ``shutdown``."""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1


def shutdown_and_exit(iii) -> None:
    """Shuts the worker down (giving up after 3 s) and leaves at once, whatever threads remain."""
    done = threading.Event()
    threading.Thread(target=lambda: (iii.shutdown(), done.set()), daemon=True).start()
    done.wait(3.0)
    os._exit(0)


def die_with_parent() -> None:
    """SIGKILL this process when the process that started it dies (Linux), and also when
    its stdin (a pipe from the orchestrator) closes."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent is already gone
        os._exit(3)

    def watch_stdin() -> None:
        try:
            while sys.stdin.buffer.read(1):
                pass
        except (OSError, ValueError):
            pass
        os._exit(4)

    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()


def watchdog(seconds: float) -> None:
    """Hard limit on the lifetime of this process."""
    timer = threading.Timer(
        seconds, lambda: (emit("FATAL", {"error": f"watchdog after {seconds:g} s"}), os._exit(5))
    )
    timer.daemon = True
    timer.start()


def cpu() -> float:
    """CPU seconds (user + system) used by this whole process so far, every thread included."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def sdk_info() -> dict:
    import iii

    path = os.path.dirname(getattr(iii, "__file__", "") or "")
    kind = "ours" if os.path.exists(os.path.join(path, "_client.py")) else "official"
    info = {"sdk": kind, "path": path, "python": sys.version.split()[0], "executable": sys.executable}
    native = getattr(getattr(iii, "_iii", None), "__file__", None)
    if native:
        # A debug build of the Rust core is many times larger (and slower) than a release one.
        info["native"] = native
        info["native_mb"] = round(os.path.getsize(native) / 1e6, 1)
    return info


def connect(url: str, name: str):
    from iii import InitOptions, register_worker

    if os.environ.get("BENCH_OTEL"):  # bench.py --otel: OpenTelemetry at the SDK's default
        return register_worker(url, InitOptions(worker_name=name))
    return register_worker(url, InitOptions(worker_name=name, otel={"enabled": False}))


_emit_lock = threading.Lock()


def emit(tag: str, value: dict) -> None:
    """One line on stdout for the orchestrator: ``TAG {json}``."""
    with _emit_lock:
        sys.stdout.write(f"{tag} {json.dumps(value)}\n")
        sys.stdout.flush()
