"""The process marker ``iii ps`` reads: ``~/.iii/run/worker-<pid>-<n>.json``, one file per
client, as iii-sdk 0.25.0 writes it (``n`` counts the clients of the process from 1).

The file holds ``{"pid", "url", "name", "sdk": "python", "started_at"}`` (milliseconds since
the epoch). It is best effort: a home directory that cannot be written only makes the worker
harder to find, so no error ever reaches the caller. A process killed before it removes its
marker leaves it behind; ``iii ps`` discards markers whose process is gone.

iii-sdk 0.25.0 writes the marker in ``III.__init__`` on the caller's thread. Here
:class:`ProcessMarker` writes it on a short-lived thread of its own, so a slow or hung home
directory (a network mount) never delays ``register_worker``; it is removed at ``shutdown()``
and, failing that, when the interpreter exits.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["ProcessMarker", "announce_process"]

_announced = itertools.count(1)

#: How long ``remove()`` waits for a marker still being written before giving up on it.
_WRITE_WAIT_S = 2.0


def _marker_path(directory: Path | None) -> tuple[Path, Path]:
    directory = directory or Path.home() / ".iii" / "run"
    return directory, directory / f"worker-{os.getpid()}-{next(_announced)}.json"


def _write(directory: Path, marker: Path, url: str, name: str) -> None:
    """Writes the marker whole or not at all: a reader never sees a half-written file (the
    temporary name does not match ``worker-*.json``)."""
    directory.mkdir(parents=True, exist_ok=True)
    content = json.dumps(
        {
            "pid": os.getpid(),
            "url": url,
            "name": name,
            "sdk": "python",
            "started_at": int(time.time() * 1000),
        }
    )
    partial = marker.with_name(f".{marker.name}.tmp")
    try:
        partial.write_text(content)
        os.replace(partial, marker)
    except BaseException:
        _unlink(partial)
        raise


def announce_process(url: str, name: str, directory: Path | None = None) -> Callable[[], None]:
    """Writes this process's marker now and returns a function that removes it (official
    ``iii.process_marker.announce_process``). The remover also runs at interpreter exit."""
    try:
        where, marker = _marker_path(directory)
        _write(where, marker, url, name)
    except Exception:
        return lambda: None

    def remove() -> None:
        atexit.unregister(remove)
        try:
            marker.unlink(missing_ok=True)
        except Exception:
            pass

    atexit.register(remove)
    return remove


class ProcessMarker:
    """A client's marker, written in the background; :meth:`remove` deletes it (idempotent,
    never raises). Also removed at interpreter exit if :meth:`remove` was not called."""

    def __init__(self, url: str, name: str, directory: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._removed = False
        self._path: Path | None = None
        try:
            # Numbered here, in construction order, like the official SDK's markers.
            where, marker = _marker_path(directory)
        except Exception:
            self._removed = True
            self._thread: threading.Thread | None = None
            return
        self._thread = threading.Thread(
            target=self._write, args=(where, marker, url, name), name="iii-process-marker", daemon=True
        )
        atexit.register(self.remove)
        try:
            self._thread.start()
        except Exception:
            self._thread = None
            self.remove()

    @property
    def path(self) -> Path | None:
        """The marker file once written (``None`` before, after removal, or if it failed)."""
        return self._path

    def _write(self, where: Path, marker: Path, url: str, name: str) -> None:
        try:
            _write(where, marker, url, name)
        except Exception:
            return
        with self._lock:
            if not self._removed:
                self._path = marker
                return
        _unlink(marker)  # removed while it was being written

    def wait_written(self, timeout: float | None = None) -> None:
        """Waits for the background write to finish (tests)."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def remove(self) -> None:
        with self._lock:
            if self._removed and self._path is None:
                return
            self._removed = True
        try:
            atexit.unregister(self.remove)
        except Exception:
            pass
        # A write still under way removes its own file when it completes (see `_write`);
        # waiting for it briefly lets shutdown() leave nothing behind in the usual case.
        self.wait_written(_WRITE_WAIT_S)
        with self._lock:
            marker, self._path = self._path, None
        if marker is not None:
            _unlink(marker)


def _unlink(marker: Path) -> None:
    try:
        marker.unlink(missing_ok=True)
    except Exception:
        pass
