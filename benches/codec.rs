//! Micro-benchmarks of the hot path of the Rust core: encoding and decoding the two messages
//! every call produces (`invokefunction`, `invocationresult`) and one round through the
//! pending-call table; the telemetry exporter's span encoding; and what sealing and opening a
//! 16 KiB TLS record costs with each TLS 1.3 cipher (what `wss://` adds, `connection/writer.rs`).
//!
//!     cargo bench --bench codec -- --warm-up-time 1 --measurement-time 2

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use uuid::Uuid;

use iii_core::invocations::{Completion, Outcome, PendingTable};
use iii_protocol::{frames, raw_json, Message};

const INVOCATION_ID: &str = "6f1c2a9e-3b7d-4c1e-9a57-0d2b8e4f6a13";
const FUNCTION_ID: &str = "bench::echo_async";

/// A JSON object of about `size` bytes: `{"s":"xxxx…","n":42}`.
fn payload(size: usize) -> String {
    let filler = size.saturating_sub(16);
    format!(r#"{{"s":"{}","n":42}}"#, "x".repeat(filler))
}

fn sizes() -> [(&'static str, String); 2] {
    [("100B", payload(100)), ("16KiB", payload(16 * 1024))]
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    for (name, data) in sizes() {
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_with_input(BenchmarkId::new("invokefunction", name), &data, |b, data| {
            b.iter(|| {
                frames::invoke_function(
                    Some(black_box(INVOCATION_ID)),
                    black_box(FUNCTION_ID),
                    Some(black_box(data.as_str())),
                    None,
                    None,
                    None,
                )
            })
        });
        g.bench_with_input(BenchmarkId::new("invocationresult", name), &data, |b, data| {
            b.iter(|| {
                frames::invocation_result(
                    black_box(INVOCATION_ID),
                    black_box(FUNCTION_ID),
                    Ok(Some(black_box(data.as_str()))),
                )
            })
        });
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    for (name, data) in sizes() {
        let invoke = frames::invoke_function(Some(INVOCATION_ID), FUNCTION_ID, Some(&data), None, None, None);
        let result = frames::invocation_result(INVOCATION_ID, FUNCTION_ID, Ok(Some(&data)));
        assert!(matches!(Message::decode(invoke.as_bytes()), Ok(Message::InvokeFunction(_))));
        assert!(matches!(Message::decode(result.as_bytes()), Ok(Message::InvocationResult(_))));
        g.throughput(Throughput::Bytes(invoke.len() as u64));
        g.bench_with_input(BenchmarkId::new("invokefunction", name), &invoke, |b, frame| {
            b.iter(|| Message::decode(black_box(frame.as_bytes())).unwrap())
        });
        g.throughput(Throughput::Bytes(result.len() as u64));
        g.bench_with_input(BenchmarkId::new("invocationresult", name), &result, |b, frame| {
            b.iter(|| Message::decode(black_box(frame.as_bytes())).unwrap())
        });
    }
    g.finish();
}

struct Noop;

impl Completion for Noop {
    fn complete(self: Box<Self>, outcome: Outcome) {
        black_box(outcome.is_ok());
    }
}

fn pending(c: &mut Criterion) {
    let mut g = c.benchmark_group("pending_table");
    let table = PendingTable::new();
    let result = raw_json(r#"{"ok":true}"#).unwrap();
    // A few other calls in flight, so the maps are not trivially empty.
    for _ in 0..1000 {
        table
            .insert(Uuid::new_v4(), FUNCTION_ID, Duration::from_secs(3600), 0, Box::new(Noop))
            .ok()
            .expect("table open");
    }
    g.bench_function("insert+complete", |b| {
        b.iter_batched(
            || (Uuid::new_v4(), result.clone()),
            |(id, result)| {
                table
                    .insert(id, FUNCTION_ID, Duration::from_secs(30), 0, Box::new(Noop))
                    .ok()
                    .expect("table open");
                assert!(table.complete(&id, Ok(Some(result))));
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// OTLP/JSON encoding of invocation spans into `OTLP` frames (the telemetry exporter's work
/// per flush); divide by 2000 for the cost per span.
fn telemetry(c: &mut Criterion) {
    let mut g = c.benchmark_group("telemetry");
    g.throughput(Throughput::Elements(2000));
    g.bench_function("encode 2000 spans", |b| {
        b.iter(|| iii_core::telemetry::bench_encode_spans(black_box(2000)))
    });
    g.finish();
}

/// One TLS record of the 16 KiB fan-out each way: sealed by the sender, opened by the receiver
/// (ring's AEADs, which rustls uses with the ring provider).
fn tls_record(c: &mut Criterion) {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305};
    let mut g = c.benchmark_group("tls_record_16KiB");
    g.throughput(Throughput::Bytes(16 * 1024));
    for (name, alg) in
        [("aes128gcm", &AES_128_GCM), ("aes256gcm", &AES_256_GCM), ("chacha20", &CHACHA20_POLY1305)]
    {
        let key = LessSafeKey::new(UnboundKey::new(alg, &vec![7u8; alg.key_len()]).expect("key"));
        let mut record = vec![b'x'; 16 * 1024];
        g.bench_function(name, |b| {
            b.iter(|| {
                let nonce = || Nonce::assume_unique_for_key([1u8; 12]);
                let tag = key.seal_in_place_separate_tag(nonce(), Aad::empty(), &mut record).expect("seal");
                let mut sealed = std::mem::take(&mut record);
                sealed.extend_from_slice(tag.as_ref());
                let plain_len = key.open_in_place(nonce(), Aad::empty(), &mut sealed).expect("open").len();
                sealed.truncate(plain_len);
                record = sealed;
                black_box(&record);
            })
        });
    }
    g.finish();
}

/// A payload string written as JSON: serde_json's escaping against ours (`write_json_str`).
fn json_str(c: &mut Criterion) {
    let mut g = c.benchmark_group("json_str_16KiB");
    let text = "x".repeat(16 * 1024);
    g.throughput(Throughput::Bytes(text.len() as u64));
    let mut out = Vec::with_capacity(20 * 1024);
    g.bench_function("serde_json", |b| {
        b.iter(|| {
            out.clear();
            serde_json::to_writer(&mut out, black_box(text.as_str())).expect("serialises");
        })
    });
    g.bench_function("ours", |b| {
        b.iter(|| {
            out.clear();
            iii_protocol::write_json_str(&mut out, black_box(text.as_str()));
        })
    });
    g.finish();
}

criterion_group!(benches, encode, decode, pending, telemetry, tls_record, json_str);
criterion_main!(benches);
