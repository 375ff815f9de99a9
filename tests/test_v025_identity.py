"""iii-sdk 0.25.0's identity contract: the ``engine::workers::register`` metadata, the worker
name and namespace, ``RegistrationRejectedError``, the ``iii ps`` process marker, the
connection-state listener and the ``_queue`` / ``_ws`` compatibility members."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import iii
from iii import (
    III,
    InitOptions,
    NotConnectedError,
    ReconnectionConfig,
    RegistrationRejectedError,
    TelemetryOptions,
    _process_marker,
    register_worker,
)
from iii._client import SDK_VERSION, _detect_project_name
from iii._engine import SDK_FEATURES
from iii.testing import Engine

from conftest import unique, wait_registered, wait_until

FAST = ReconnectionConfig(initial_delay_ms=50, max_delay_ms=200)
IDENTITY_ENV = ("III_WORKER_NAME", "III_NAMESPACE", "III_ISOLATION")


@pytest.fixture(autouse=True)
def _clean_identity_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in IDENTITY_ENV:
        monkeypatch.delenv(name, raising=False)
    # Every client writes a process marker under HOME: keep it out of the real one.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


# -- a recorder of the frames a worker sends ---------------------------------------------------


class FrameRecorder:
    """A loopback TCP proxy in front of an engine that decodes the WebSocket text frames the
    worker sends (client frames are masked; the SDK negotiates no compression)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._streams: list[bytearray] = []
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            sent = bytearray()
            with self._lock:
                self._streams.append(sent)
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, sent), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, record: bytearray | None) -> None:
        try:
            while data := src.recv(65536):
                if record is not None:
                    with self._lock:
                        record += data
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def frames(self) -> list[dict[str, Any]]:
        """Every JSON text frame the worker sent, over all its connections, in order."""
        with self._lock:
            streams = [bytes(s) for s in self._streams]
        out: list[dict[str, Any]] = []
        for data in streams:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                continue
            out += [json.loads(text) for text in _text_frames(data[end + 4 :])]
        return out

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                s.close()


def _text_frames(data: bytes) -> list[str]:
    texts, pos, message, kind = [], 0, b"", 0
    while pos + 2 <= len(data):
        b0, b1 = data[pos], data[pos + 1]
        length, pos = b1 & 0x7F, pos + 2
        if length == 126:
            (length,), pos = struct.unpack(">H", data[pos : pos + 2]), pos + 2
        elif length == 127:
            (length,), pos = struct.unpack(">Q", data[pos : pos + 8]), pos + 8
        mask = data[pos : pos + 4] if b1 & 0x80 else b"\0\0\0\0"
        pos += 4 if b1 & 0x80 else 0
        if pos + length > len(data):
            break  # the rest is still on its way
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(data[pos : pos + length]))
        pos += length
        opcode = b0 & 0x0F
        if opcode in (1, 2):
            kind, message = opcode, payload
        elif opcode == 0:
            message += payload
        else:
            continue  # ping, pong, close
        if b0 & 0x80 and kind == 1:
            texts.append(message.decode())
    return texts


def register_calls(recorder: FrameRecorder) -> list[dict[str, Any]]:
    return [
        f
        for f in recorder.frames()
        if f.get("type") == "invokefunction" and f.get("function_id") == "engine::workers::register"
    ]


@pytest.fixture
def recorder(engine: Engine):
    rec = FrameRecorder(engine.port)
    yield rec
    rec.close()


# -- 1. the engine::workers::register metadata -------------------------------------------------


def test_metadata_on_the_wire_is_0_25s(recorder: FrameRecorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANG", "en_GB.UTF-8")
    worker = register_worker(
        recorder.url,
        InitOptions(worker_name="wire-probe", reconnection_config=FAST, worker_description="does things"),
    )
    try:
        wait_until(lambda: register_calls(recorder))
        (frame,) = register_calls(recorder)
        assert frame["action"] == {"type": "void"}
        assert "invocation_id" not in frame and "namespace" not in frame
        data = frame["data"]
        assert list(data) == [
            "runtime", "version", "name", "os", "pid", "isolation", "namespace", "telemetry",
            "features", "description",
        ]  # fmt: skip
        assert data == {
            "runtime": "python",
            "version": SDK_VERSION,
            "name": "wire-probe",
            "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
            "pid": os.getpid(),
            "isolation": None,
            "namespace": None,
            "telemetry": {"language": "en_GB", "project_name": _detect_project_name(), "framework": "iii-py"},
            "features": list(SDK_FEATURES),
            "description": "does things",
        }
        assert "amplitude_api_key" not in data["telemetry"]
    finally:
        worker.shutdown()


def test_metadata_is_sent_again_after_a_reconnect(engine: Engine, recorder: FrameRecorder) -> None:
    worker = register_worker(recorder.url, InitOptions(worker_name="again", reconnection_config=FAST))
    try:
        wait_until(lambda: len(register_calls(recorder)) == 1)
        old = worker.worker_id
        engine.disconnect_all()
        wait_until(lambda: worker.worker_id not in (None, old) and len(register_calls(recorder)) == 2)
        first, second = register_calls(recorder)
        assert first["data"] == second["data"]
    finally:
        worker.shutdown()


def test_metadata_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("III_WORKER_NAME", "from-orchestrator")
    monkeypatch.setenv("III_ISOLATION", "docker")
    monkeypatch.setenv("III_NAMESPACE", "team")
    monkeypatch.setenv("LANG", "")
    client = III("ws://127.0.0.1:9", InitOptions(worker_name="from-code", reconnection_config=FAST))
    try:
        meta = client._worker_metadata()
        assert meta["name"] == "from-orchestrator", "III_WORKER_NAME wins over InitOptions.worker_name"
        assert meta["isolation"] == "docker"
        assert meta["namespace"] == "team"
        assert meta["telemetry"]["language"] is None
        assert "description" not in meta
        assert client._get_worker_metadata() == meta  # 0.25's name for it
        assert client._worker_name() == "from-orchestrator"
        assert client._worker_namespace() == "team"
    finally:
        client.shutdown()


def test_metadata_defaults_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("III_ISOLATION", "")  # blank is unset
    monkeypatch.setenv("III_NAMESPACE", "  ")  # blank is unset
    options = InitOptions(
        namespace="billing",
        reconnection_config=FAST,
        telemetry=TelemetryOptions(language="fr", project_name="shop", framework="motia"),
    )
    client = III("ws://127.0.0.1:9", options)
    try:
        meta = client._worker_metadata()
        assert meta["name"] == f"{platform.node()}:{os.getpid()}"
        assert meta["isolation"] is None and "isolation" in meta
        assert meta["namespace"] == "billing"
        assert meta["telemetry"] == {"language": "fr", "project_name": "shop", "framework": "motia"}
    finally:
        client.shutdown()
    with pytest.raises(ValueError, match=r"^namespace is empty: InitOptions.namespace was set to ' '\."):
        III("ws://127.0.0.1:9", InitOptions(namespace=" "))


def test_project_name_detection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "checkout"
    project.mkdir()
    assert _detect_project_name(str(project)) == "checkout"
    (project / "pyproject.toml").write_text('[project]\nname = " orders-service "\n')
    expected = "orders-service" if sys.version_info >= (3, 11) else "checkout"
    assert _detect_project_name(str(project)) == expected
    (project / "pyproject.toml").write_text("not toml [")
    assert _detect_project_name(str(project)) == "checkout"
    monkeypatch.chdir(project)
    assert _detect_project_name() == "checkout"
    assert _detect_project_name("/") is None


def test_the_engine_records_the_metadata(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("III_WORKER_NAME", f"env-{unique()}")
    name = os.environ["III_WORKER_NAME"]
    worker = register_worker(engine.url, InitOptions(worker_name="ignored", reconnection_config=FAST))
    try:
        wait_until(lambda: any(w.name == name for w in worker.list_workers()))
        me = next(w for w in worker.list_workers() if w.name == name)
        assert me.id == worker.worker_id
        assert (me.runtime, me.version, me.os) == (
            "python",
            SDK_VERSION,
            f"{platform.system()} {platform.release()} ({platform.machine()})",
        )
        wait_until(lambda: worker.worker_id in engine.worker_features())
        assert engine.worker_features()[worker.worker_id] == list(SDK_FEATURES)
    finally:
        worker.shutdown()


# -- 2. RegistrationRejectedError -------------------------------------------------------------


def test_worker_name_conflict_raises_registration_rejected() -> None:
    with Engine(generation="head") as engine:
        owner = register_worker(engine.url, InitOptions(worker_name="taken", reconnection_config=FAST))
        second = III(engine.url, InitOptions(worker_name="taken", reconnection_config=FAST))
        try:
            wait_until(lambda: second.get_connection_state() == "failed")
            with pytest.raises(RegistrationRejectedError) as caught:
                second._wait_until_connected()
            error = caught.value
            assert isinstance(error, NotConnectedError) and isinstance(error, ConnectionError)
            assert (error.code, error.namespace, error.worker_name) == (
                "WORKER_NAMESPACE_CONFLICT",
                "default",
                "taken",
            )
            assert str(error) == (
                "WORKER_NAMESPACE_CONFLICT: worker 'taken' rejected in namespace 'default' "
                f"(owned by '{error.owner_worker_id}')"
            )
            with pytest.raises(RegistrationRejectedError, match="WORKER_NAMESPACE_CONFLICT"):
                second.trigger({"function_id": "x", "payload": 1})

            async def call_async() -> None:
                await second.trigger_async({"function_id": "x", "payload": 1})

            with pytest.raises(RegistrationRejectedError):
                asyncio.run(call_async())
            workers = engine.worker_ids()
            time.sleep(0.4)  # FAST would have retried several times by now
            assert second.get_connection_state() == "failed", "no reconnection after a fatal rejection"
            assert engine.worker_ids() == workers
            assert second._ws is None
        finally:
            second.shutdown()
            owner.shutdown()


def test_register_worker_raises_the_rejection(tmp_path: Path) -> None:
    # A 0.25 engine answers workerregistered only after engine::workers::register, so the
    # rejection always comes before the connection counts as up.
    with Engine(generation="0.25") as engine:
        owner = register_worker(engine.url, InitOptions(worker_name="once", reconnection_config=FAST))
        try:
            threads = threading.active_count()
            with pytest.raises(RegistrationRejectedError) as caught:
                register_worker(engine.url, InitOptions(worker_name="once", reconnection_config=FAST))
            assert (caught.value.code, caught.value.worker_name) == ("WORKER_NAMESPACE_CONFLICT", "once")
            wait_until(lambda: threading.active_count() <= threads, timeout=5)
            wait_until(lambda: len(_markers(tmp_path / "home")) == 1)  # the owner's only
        finally:
            owner.shutdown()


def test_a_rejection_fails_the_calls_in_flight(make_worker) -> None:
    server, client = make_worker(), make_worker()
    fid = unique("never")

    async def never_answers(data: Any) -> None:
        await asyncio.Event().wait()

    server.register_function(fid, never_answers)
    wait_registered(client, fid)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client.trigger({"function_id": fid, "payload": {}, "timeout_ms": 60_000})
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    wait_until(lambda: client._connection.pending_calls() == 1)
    client._connection.inject(
        b'{"type":"registrationrejected","code":"WORKER_NAMESPACE_CONFLICT","namespace":"ns-1",'
        b'"worker_name":"me","owner_worker_id":"w-1"}'
    )
    thread.join(5)
    assert len(errors) == 1 and isinstance(errors[0], RegistrationRejectedError), errors
    assert (errors[0].namespace, errors[0].worker_name, errors[0].owner_worker_id) == ("ns-1", "me", "w-1")
    wait_until(lambda: client.get_connection_state() == "failed")
    with pytest.raises(RegistrationRejectedError):
        client._wait_until_connected()


def test_a_function_conflict_is_not_fatal(make_worker) -> None:
    worker = make_worker()
    worker._connection.inject(
        b'{"type":"registrationrejected","code":"FUNCTION_NAMESPACE_CONFLICT","namespace":"default",'
        b'"function_id":"f","owner_worker_id":"w-1"}'
    )
    time.sleep(0.2)
    assert worker.get_connection_state() == "connected"
    assert worker.trigger({"function_id": "engine::workers::list", "payload": {}}) is not None


def test_other_connection_failures_stay_plain() -> None:
    client = III("ws://127.0.0.1:9", InitOptions(reconnection_config=ReconnectionConfig(max_retries=0)))
    try:
        with pytest.raises(NotConnectedError) as caught:
            client._wait_until_connected()
        assert not isinstance(caught.value, RegistrationRejectedError)
    finally:
        client.shutdown()


def test_registration_rejected_error_is_the_same_class_everywhere() -> None:
    from iii import _observe, errors

    assert iii.RegistrationRejectedError is errors.RegistrationRejectedError
    assert _observe.RegistrationRejectedError is errors.RegistrationRejectedError
    assert iii.iii.RegistrationRejectedError is errors.RegistrationRejectedError


# -- 3. the process marker --------------------------------------------------------------------


def _markers(home: Path) -> list[Path]:
    return sorted((home / ".iii" / "run").glob(f"worker-{os.getpid()}-*.json"))


def test_process_marker_is_written_and_removed(make_worker, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("III_WORKER_NAME", "marked")
    home = tmp_path / "home"
    before = time.time() * 1000
    worker = make_worker()
    wait_until(lambda: len(_markers(home)) == 1)
    (marker,) = _markers(home)
    content = json.loads(marker.read_text())
    assert list(content) == ["pid", "url", "name", "sdk", "started_at"]
    assert content["pid"] == os.getpid()
    assert content["url"] == worker.get_address()
    assert (content["name"], content["sdk"]) == ("marked", "python")
    assert before - 1000 <= content["started_at"] <= time.time() * 1000
    monkeypatch.delenv("III_WORKER_NAME")  # the engine would refuse a second "marked"
    second = make_worker()
    wait_until(lambda: len(_markers(home)) == 2)
    n = [int(p.stem.rsplit("-", 1)[1]) for p in _markers(home)]
    assert len(set(n)) == 2, "one file per client"
    worker.shutdown()
    assert not marker.exists() and len(_markers(home)) == 1
    second.shutdown()
    assert _markers(home) == []


def test_process_marker_never_delays_register_worker(make_worker, monkeypatch, tmp_path: Path) -> None:
    slow = threading.Event()
    real_write = _process_marker._write

    def hung_home(*args: Any) -> None:
        slow.wait(10)
        real_write(*args)

    monkeypatch.setattr(_process_marker, "_write", hung_home)
    started = time.monotonic()
    worker = make_worker()
    assert time.monotonic() - started < 5
    assert worker.get_connection_state() == "connected"
    assert _markers(tmp_path / "home") == []
    slow.set()
    wait_until(lambda: len(_markers(tmp_path / "home")) == 1)
    worker.shutdown()
    assert _markers(tmp_path / "home") == []


def test_an_unwritable_home_does_not_break_a_worker(make_worker, tmp_path: Path, monkeypatch) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    monkeypatch.setenv("HOME", str(not_a_dir))
    worker = make_worker()
    worker._process_marker.wait_written(5)
    assert worker._process_marker.path is None
    fid = unique()
    worker.register_function(fid, lambda d: d)
    wait_registered(worker, fid)
    assert worker.trigger({"function_id": fid, "payload": 3}) == 3
    worker.shutdown()


def test_announce_process_official_api(tmp_path: Path) -> None:
    from iii.process_marker import announce_process

    remove = announce_process("ws://x:1", "n", tmp_path / "run")
    (marker,) = (tmp_path / "run").glob(f"worker-{os.getpid()}-*.json")
    assert json.loads(marker.read_text())["url"] == "ws://x:1"
    remove()
    remove()
    assert not marker.exists()
    blocked = tmp_path / "blocked"
    blocked.write_text("")
    noop = announce_process("ws://x:1", "n", blocked / "run")
    noop()  # a directory that cannot be made: a no-op remover, no error
    assert iii.process_marker.announce_process is announce_process


def test_marker_is_removed_at_exit(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from iii._process_marker import ProcessMarker\n"
        "m = ProcessMarker('ws://127.0.0.1:1', 'exiting', Path(sys.argv[1]))\n"
        "m.wait_written(5)\n"
        "print(m.path)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=60, check=True
    )
    written = Path(out.stdout.strip())
    assert written.parent == tmp_path and written.name.startswith("worker-")
    assert not written.exists(), "removed by the atexit hook"


# -- 4. the _queue and _ws compatibility members ----------------------------------------------


def test_queue_and_ws_compatibility_members(make_worker) -> None:
    worker = make_worker()
    assert worker._queue == []
    worker._queue.append({"x": 1})  # a copy: changing it changes nothing
    assert worker._queue == []
    assert worker._ws is not None and worker._ws.state.name == "OPEN"
    with pytest.raises(AttributeError):
        worker._ws = None  # type: ignore[misc]
    with pytest.raises(AttributeError):
        worker._queue = []  # type: ignore[misc]
    worker.shutdown()
    assert worker._ws is None


def test_ws_is_none_while_disconnected(engine: Engine, make_worker) -> None:
    worker = make_worker(engine.url)
    assert worker._ws is not None
    engine.stop()
    wait_until(lambda: worker.get_connection_state() != "connected")
    assert worker._ws is None
    engine.restart()
    wait_until(lambda: worker.get_connection_state() == "connected", timeout=10)
    assert worker._ws is not None


# -- 5. add_connection_state_listener / get_address --------------------------------------------


def test_connection_state_listener_contract(make_worker, engine_url: str, caplog) -> None:
    worker = make_worker()
    assert worker.get_address() == engine_url
    seen: list[str] = []
    unsubscribe = worker.add_connection_state_listener(seen.append)
    assert seen == ["connected"], "called at once, on this thread, with the current state"
    twice: list[str] = []
    worker.add_connection_state_listener(twice.append)
    worker.add_connection_state_listener(twice.append)
    assert twice == ["connected", "connected"]

    def broken(state: str) -> None:
        raise RuntimeError("listener bug")

    with caplog.at_level(logging.ERROR, logger="iii"):
        worker.add_connection_state_listener(broken)
    assert any("listener" in r.getMessage() for r in caplog.records)
    gone: list[str] = []
    remove = worker.add_connection_state_listener(gone.append)
    remove()
    remove()  # idempotent
    assert twice.count("connected") == 2
    worker.shutdown()
    wait_until(lambda: seen[-1:] == ["disconnected"])
    assert seen == ["connected", "disconnected"]
    assert twice == ["connected", "connected", "disconnected", "disconnected"]
    assert gone == ["connected"]
    unsubscribe()
    unsubscribe()


def test_an_unknown_rejection_of_the_worker_is_fatal(make_worker) -> None:
    # As iii-sdk 0.25.0: only FUNCTION_NAMESPACE_CONFLICT leaves the worker up.
    worker = make_worker(reconnection_config=FAST)
    worker._connection.inject(
        b'{"type":"registrationrejected","code":"SOMETHING_NEW","namespace":"default",'
        b'"worker_name":"w","owner_worker_id":"w-9"}'
    )
    wait_until(lambda: worker.get_connection_state() == "failed")
    with pytest.raises(RegistrationRejectedError) as caught:
        worker.trigger({"function_id": "x", "payload": 1})
    assert (caught.value.code, caught.value.owner_worker_id) == ("SOMETHING_NEW", "w-9")
