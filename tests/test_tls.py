"""wss:// through a TLS-terminating proxy (the way production engines are deployed), with a CA
made for the run and trusted through SSL_CERT_FILE: every call mode, large messages,
reconnection, channels, certificates that must be refused, and forward (CONNECT) proxies."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from iii import (
    III,
    EnqueueResult,
    IIIError,
    InitOptions,
    QueueUnavailableError,
    ReconnectionConfig,
    TriggerAction,
    register_worker,
)
from pki import Authority, Issued
from tls_proxy import TlsProxy

from conftest import has_queue_worker, stream_through_a_channel, unique, wait_registered, wait_until
from proxy import ConnectProxy

MIB = 1024 * 1024


class Pki:
    def __init__(self, directory: Path) -> None:
        self.ca = Authority(directory, "iii-test")
        self.good = self.ca.issue("good", ["localhost", "127.0.0.1"])
        self.expired = self.ca.issue("expired", ["localhost", "127.0.0.1"], expired=True)
        self.wrong_host = self.ca.issue("wrong-host", ["engine.elsewhere.test"])
        self.untrusted = Authority(directory, "stranger").issue("untrusted", ["localhost", "127.0.0.1"])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(autouse=True)
def trust_the_test_ca(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca.cert))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


def _target(engine_url: str) -> tuple[str, int]:
    parts = urlsplit(engine_url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _proxy(identity: Issued, engine_url: str) -> TlsProxy:
    host, port = _target(engine_url)
    return TlsProxy(identity, port, host)


@pytest.fixture
def tls(pki: Pki, engine_url: str) -> Iterator[TlsProxy]:
    proxy = _proxy(pki.good, engine_url)
    yield proxy
    proxy.close()


@pytest.fixture
def wss_worker(tls: TlsProxy) -> Iterator[type[III]]:
    created: list[III] = []

    def make(**options: object) -> III:
        options.setdefault("worker_name", f"tls-{uuid.uuid4().hex[:8]}")
        options.setdefault("reconnection_config", ReconnectionConfig(initial_delay_ms=50, max_delay_ms=200))
        worker = register_worker(tls.url(), InitOptions(**options))  # type: ignore[arg-type]
        created.append(worker)
        return worker

    yield make  # type: ignore[misc]
    for worker in created:
        worker.shutdown()


def test_calls_in_every_mode_over_wss(wss_worker):
    server, client = wss_worker(), wss_worker()
    assert client.get_connection_state() == "connected"
    fid, job = unique("echo"), unique("job")
    jobs: list[object] = []

    async def echo(data):
        return {"echo": data["n"]}

    server.register_function(fid, echo)
    server.register_function(job, jobs.append)
    wait_registered(client, fid)
    wait_registered(client, job)
    assert client.trigger({"function_id": fid, "payload": {"n": 1}}) == {"echo": 1}
    assert asyncio.run(client.trigger_async({"function_id": fid, "payload": {"n": 2}})) == {"echo": 2}
    assert client.trigger({"function_id": job, "payload": {"v": 1}, "action": TriggerAction.Void()}) is None
    enqueue = {"function_id": job, "payload": {"v": 2}, "action": TriggerAction.Enqueue(queue="default")}
    if client.engine_generation == "head" and not has_queue_worker(client):
        with pytest.raises(QueueUnavailableError):
            client.trigger(enqueue)
        enqueue["action"] = TriggerAction.Void()
        client.trigger(enqueue)
    else:
        assert isinstance(client.trigger(enqueue), EnqueueResult)
    wait_until(lambda: len(jobs) == 2)


def test_twenty_mib_both_ways_over_wss(wss_worker):
    server, client = wss_worker(), wss_worker()
    fid = unique("big")
    server.register_function(fid, lambda d: {"size": len(d["data"]), "back": d["data"]})
    wait_registered(client, fid)
    data = "z" * (20 * MIB)
    out = client.trigger({"function_id": fid, "payload": {"data": data}, "timeout_ms": 60_000})
    assert out["size"] == 20 * MIB and out["back"] == data


def test_a_burst_of_results_is_read_to_the_last_one_over_wss(tls, wss_worker, make_worker):
    # Hundreds of results reach the worker in one write, several TLS records read at once and
    # handed to the session from memory: every one of them is handed out, in order of calls.
    server, client = make_worker(), wss_worker()
    fid = unique("burst")
    server.register_function(fid, lambda d: {"i": d["i"]})
    wait_registered(client, fid)
    n = 600

    async def burst() -> list[object]:
        tls.hold()
        calls = [
            asyncio.ensure_future(
                client.trigger_async({"function_id": fid, "payload": {"i": i}, "timeout_ms": 10_000})
            )
            for i in range(n)
        ]

        async def all_held() -> None:  # every result (over 100 bytes each) waits in the proxy
            while tls.held_bytes() < n * 100:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(all_held(), 10)
        tls.release()
        return await asyncio.gather(*calls)

    assert asyncio.run(burst()) == [{"i": i} for i in range(n)]


def test_reconnects_after_a_cut_over_wss(tls, wss_worker):
    server, client = wss_worker(), wss_worker()
    fid = unique("echo")
    server.register_function(fid, lambda d: d["after"])
    wait_registered(client, fid)
    before = tls.accepted
    tls.cut()
    wait_until(lambda: tls.accepted >= before + 2, timeout=10)
    wait_until(lambda: client.get_connection_state() == "connected", timeout=10)

    def answers() -> bool:
        try:
            return (
                client.trigger({"function_id": fid, "payload": {"after": "cut"}, "timeout_ms": 2000}) == "cut"
            )
        except IIIError:
            return False  # the server's replay may still be on its way

    wait_until(answers, timeout=10)


def test_channel_over_wss(wss_worker):
    producer, consumer = wss_worker(), wss_worker()
    blob = bytes(range(256)) * 1024
    assert stream_through_a_channel(producer, consumer, blob) == blob


def _refused(identity: Issued, engine_url: str) -> str:
    proxy = _proxy(identity, engine_url)
    try:
        with pytest.raises(IIIError) as raised:
            register_worker(proxy.url(), InitOptions(worker_name=f"tls-{uuid.uuid4().hex[:8]}"))
        # Refused at the first attempt: register_worker would otherwise retry until its deadline.
        assert proxy.accepted == 1, "a certificate failure must not be retried"
        return str(raised.value)
    finally:
        proxy.close()


def test_certificate_from_an_unknown_authority_is_refused(pki, engine_url):
    message = _refused(pki.untrusted, engine_url)
    assert "localhost" in message and "unknown issuer" in message, message


def test_expired_certificate_is_refused(pki, engine_url):
    message = _refused(pki.expired, engine_url)
    assert "localhost" in message and "expired" in message, message


def test_certificate_for_another_host_is_refused(pki, engine_url):
    message = _refused(pki.wrong_host, engine_url)
    assert "localhost" in message and "not valid for this host name" in message, message


def test_channel_refuses_an_untrusted_certificate(pki, engine_url, make_worker):
    from iii import ChannelReader

    proxy = _proxy(pki.untrusted, engine_url)
    try:
        reader = ChannelReader(proxy.url(), {"channel_id": "c", "access_key": "k", "direction": "read"})
        with pytest.raises(Exception, match="unknown issuer"):
            reader.read_all_sync()
    finally:
        proxy.close()


@pytest.fixture
def connect_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnectProxy]:
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    proxy = ConnectProxy()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("://", "://who:pw@"))
    yield proxy
    proxy.close()


def test_link_and_channels_go_through_an_https_proxy(tls, connect_proxy, wss_worker):
    producer, consumer = wss_worker(), wss_worker()
    assert stream_through_a_channel(producer, consumer, b"through the proxy") == b"through the proxy"
    # Two worker links and two channel ends, all tunnelled to the TLS endpoint by name.
    assert connect_proxy.targets == [f"localhost:{tls.port}"] * 4
    assert set(connect_proxy.authorizations) == {"Basic " + base64.b64encode(b"who:pw").decode()}


def test_no_proxy_bypasses_the_proxy(tls, connect_proxy, wss_worker, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "example.test, localhost")
    worker = wss_worker()
    assert worker.get_connection_state() == "connected"
    assert connect_proxy.targets == []


def test_http_proxy_for_plain_ws(engine, monkeypatch, make_worker):
    proxy = ConnectProxy()
    try:
        monkeypatch.setenv("http_proxy", proxy.url)
        worker = make_worker(engine.url)
        assert worker.get_connection_state() == "connected"
        assert proxy.targets == [f"127.0.0.1:{engine.port}"]
    finally:
        proxy.close()


def test_socks_proxy_fails_with_a_clear_error(engine, monkeypatch):
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(IIIError, match="SOCKS proxies are not supported"):
        register_worker(engine.url, InitOptions(worker_name=f"tls-{uuid.uuid4().hex[:8]}"))
