//! The worker side of one engine connection.
//!
//! `Connection` is a cheap handle. One lifecycle task (see `lifecycle`) connects, replays
//! registrations and reconnects; it does not own the socket. Inbound frames are read by an
//! attached event loop or by a runtime task (see `link`), never by a writer, so reading never
//! waits for writing; `inbound` says what each frame does. While the link is up, a call goes into the shared pending table and its
//! frame straight into the socket from the caller's thread (see `writer::Writer`); while it is
//! down, frames wait in the lifecycle task's offline queue.

mod blocking;
mod config;
pub(crate) mod endpoint;
mod frame_codec;
pub(crate) mod handshake;
mod inbound;
mod ledger;
mod lifecycle;
mod link;
mod proxy;
#[cfg(test)]
mod tests;
pub(crate) mod tls;
mod writer;

#[cfg(test)]
#[test]
fn invocation_ids_are_version_4_and_distinct() {
    let ids: std::collections::HashSet<Uuid> = (0..10_000).map(|_| invocation_id()).collect();
    assert_eq!(ids.len(), 10_000);
    assert!(ids.iter().all(|id| id.get_version_num() == 4 && id.get_variant() == uuid::Variant::RFC4122));
}

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::mpsc;
use uuid::Uuid;

pub use blocking::{Slot, SlotCompletion};
pub use config::ConnectionConfig;
pub use ledger::Kind as RegistrationKind;
use ledger::Ledger;
pub use link::ExternalReader;

use crate::invocations::{CallError, Completion, PendingTable};
use iii_protocol::{frames, ErrorBody, InvokeFunction, Message, RegistrationRejected, TriggerAction};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    Disconnected,
    Connecting,
    Connected,
    Reconnecting,
    Failed,
}

impl ConnectionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Disconnected => "disconnected",
            ConnectionState::Connecting => "connecting",
            ConnectionState::Connected => "connected",
            ConnectionState::Reconnecting => "reconnecting",
            ConnectionState::Failed => "failed",
        }
    }
}

/// Which engine generation the connection talks to, judged from `workerregistered`: engines
/// after v0.11.0 (docs/protocol.md Part B) send a `reattach_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    Unknown,
    V011,
    Head,
}

impl Generation {
    pub fn as_str(self) -> &'static str {
        match self {
            Generation::Unknown => "unknown",
            Generation::V011 => "v0.11",
            Generation::Head => "head",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// Where the connection delivers what the engine sends. Called on runtime threads: an
/// implementation must not block.
pub trait EventSink: Send + Sync + 'static {
    /// The engine asks this worker to run one of its functions.
    fn invocation(&self, conn: &Connection, call: InvokeFunction);
    /// Any other message for the worker: `registertrigger` / `unregistertrigger` for a trigger
    /// type it provides, `triggerregistrationresult`, `registrationrejected`.
    fn message(&self, conn: &Connection, message: Message);
    fn state_changed(&self, state: ConnectionState);
    fn log(&self, level: LogLevel, text: &str);
    /// News of one of this worker's observers (docs/protocol.md C.10.3-C.10.4).
    fn observer_news(&self, _news: crate::observe::ObserverNews) {}
    /// An owner hook to run, for functions registered with hooks (docs/protocol.md C.13).
    fn owner_hook(&self, _hook: crate::observe::HookRequest) {}
}

/// How the lifecycle task treats a frame queued while the link is down.
#[derive(Debug, Clone, Copy)]
enum FrameKind {
    /// A call waiting for a result: dropped if its caller already gave up.
    Call(Uuid),
    Plain,
}

enum Command {
    Send(String, FrameKind),
    Shutdown,
}

struct StateInfo {
    state: ConnectionState,
    last_error: Option<String>,
    worker_id: Option<String>,
    reattach_token: Option<String>,
    generation: Generation,
    /// What the last `workerregistered` listed (docs/protocol.md C.3.2): kept across a
    /// disconnect until the next one; empty for engines before 0.25.
    engine_features: Vec<String>,
    /// The engine's fatal `registrationrejected`, once it ended the connection for good.
    rejection: Option<RegistrationRejected>,
}

pub(crate) struct Shared {
    config: ConnectionConfig,
    tx: mpsc::UnboundedSender<Command>,
    pending: PendingTable,
    ledger: Mutex<Ledger>,
    info: Mutex<StateInfo>,
    state_changed: Condvar,
    /// Number of the current link; calls record it so a lost link fails exactly its calls.
    pub(crate) epoch: AtomicU64,
    pub(crate) connected: AtomicBool,
    /// The last engine listed `observe.v1`: calls made in a handler carry `caller` and
    /// `observe_depth` (docs/protocol.md C.3.3). Read on every such call, so not under `info`.
    engine_observes: AtomicBool,
    /// The live link; `None` while disconnected. Set under `ledger`'s lock, so a
    /// registration is either in the replay snapshot or written after it.
    link: Mutex<Option<Arc<link::Link>>>,
    offline_len: AtomicUsize,
    /// Threads in `wait_result` (see `blocking`).
    blocking_waiters: AtomicUsize,
    /// A frame was held back into an empty buffer (see `deferring`).
    flush_requested: AtomicBool,
    pub(crate) shutting_down: AtomicBool,
    pub(crate) sink: Arc<dyn EventSink>,
    /// 0.25's observe family: this worker's observers and owned functions.
    pub(crate) observe: crate::observe::Hub,
    pub(crate) reporter: Arc<crate::observe::Reporter>,
}

thread_local! {
    static DEFERRING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with this thread's frames to live links held back (`Writer::defer`) until the
/// next frame written without it or `Connection::flush_deferred`; `Connection::take_flush_request`
/// says when a flush must be arranged.
///
/// NOTE(perf): the SDK loop answers and calls in bursts (a fan-out of 1000 calls, a batch of
/// invocations answered inline), and one write per frame makes the write system call the
/// largest single cost of the serving process. Held back until the end of the loop's
/// iteration, a burst goes out in one write (benches/RESULTS.md, "The SDK loop holds its
/// frames back until the end of its iteration").
pub fn deferring<R>(f: impl FnOnce() -> R) -> R {
    DEFERRING.set(true);
    let result = f();
    DEFERRING.set(false);
    result
}

/// The optional fields around a call or a result: the namespace of newer engines (absent
/// means `default`, docs/protocol.md Part B), the W3C trace context (docs/protocol.md 10.3)
/// and, on calls only, 0.25's per-call fields (docs/protocol.md C.8): the call's `metadata`
/// (JSON text), its `caller` (JSON text, see `iii_protocol::Caller::asserted`) and its
/// `observe_depth` (left out when absent or 0).
#[derive(Debug, Clone, Copy, Default)]
pub struct Envelope<'a> {
    pub namespace: Option<&'a str>,
    pub traceparent: Option<&'a str>,
    pub baggage: Option<&'a str>,
    pub metadata: Option<&'a str>,
    pub caller: Option<&'a str>,
    pub observe_depth: Option<u32>,
    /// An owner's delivery to its observer's target (docs/protocol.md C.8.3): JSON text.
    pub activation: Option<&'a str>,
}

fn call_frame(
    invocation_id: Option<&str>,
    function_id: &str,
    data: Option<&str>,
    action: Option<&TriggerAction>,
    envelope: Envelope<'_>,
) -> String {
    let frame = frames::invoke_function(
        invocation_id,
        function_id,
        data,
        action,
        envelope.traceparent,
        envelope.baggage,
    );
    let mut frame = match envelope.namespace {
        Some(ns) => frames::with_field(frame, "namespace", ns),
        None => frame,
    };
    if let Some(metadata) = envelope.metadata {
        frame = frames::with_json_field(frame, "metadata", metadata);
    }
    if let Some(caller) = envelope.caller {
        frame = frames::with_json_field(frame, "caller", caller);
    }
    if let Some(depth) = envelope.observe_depth.filter(|d| *d > 0) {
        frame = frames::with_json_field(frame, "observe_depth", &depth.to_string());
    }
    if let Some(activation) = envelope.activation {
        frame = frames::with_json_field(frame, "activation", activation);
    }
    frame
}

/// A random (version 4) UUID for a call. The engine keys calls by id across all workers, so
/// ids must be unique, not secret: a per-thread PRNG seeded from the OS is enough, and spares
/// the `getrandom` system call `Uuid::new_v4` makes for every call.
pub fn invocation_id() -> Uuid {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid()
}

#[derive(Clone)]
pub struct Connection {
    pub(crate) shared: Arc<Shared>,
}

impl Connection {
    /// Starts connecting in the background on `runtime`.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        config: ConnectionConfig,
        sink: Arc<dyn EventSink>,
    ) -> Connection {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            config,
            tx,
            pending: PendingTable::new(),
            ledger: Mutex::new(Ledger::default()),
            info: Mutex::new(StateInfo {
                state: ConnectionState::Connecting,
                last_error: None,
                worker_id: None,
                reattach_token: None,
                generation: Generation::Unknown,
                engine_features: Vec::new(),
                rejection: None,
            }),
            state_changed: Condvar::new(),
            epoch: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            engine_observes: AtomicBool::new(false),
            link: Mutex::new(None),
            offline_len: AtomicUsize::new(0),
            blocking_waiters: AtomicUsize::new(0),
            flush_requested: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            sink,
            observe: Default::default(),
            reporter: Default::default(),
        });
        let conn = Connection { shared };
        runtime.spawn(lifecycle::run(conn.clone(), rx));
        runtime
            .spawn(crate::observe::Reporter::run(conn.shared.reporter.clone(), Arc::downgrade(&conn.shared)));
        conn
    }

    fn check_size(&self, frame: &str) -> Result<(), CallError> {
        let limit = self.shared.config.max_message_size;
        if frame.len() > limit {
            return Err(CallError::TooLarge { size: frame.len(), limit });
        }
        Ok(())
    }

    fn check_offline_room(&self) -> Result<(), CallError> {
        if let Some(err) = self.shared.pending.closed_reason() {
            return Err(err);
        }
        let limit = self.shared.config.offline_queue_limit;
        if !self.shared.connected.load(Ordering::Acquire)
            && self.shared.offline_len.load(Ordering::Acquire) >= limit
        {
            return Err(CallError::OfflineQueueFull { limit });
        }
        Ok(())
    }

    /// Sends a call that expects an answer (sync or enqueue), with the namespace and trace
    /// context of `envelope`. `data` is JSON text. The outcome reaches `completion`, exactly
    /// once; an error returned here means nothing was sent.
    pub fn call(
        &self,
        envelope: Envelope<'_>,
        function_id: &str,
        data: Option<&str>,
        action: Option<&TriggerAction>,
        timeout: Duration,
        completion: Box<dyn Completion>,
    ) -> Result<Uuid, CallError> {
        self.call_as(invocation_id(), envelope, function_id, data, action, timeout, completion)
    }

    /// `call` under an id the caller chose beforehand (`invocation_id()`), so that whoever
    /// completes or abandons the call can name it before `call_as` returns.
    #[allow(clippy::too_many_arguments)]
    pub fn call_as(
        &self,
        id: Uuid,
        envelope: Envelope<'_>,
        function_id: &str,
        data: Option<&str>,
        action: Option<&TriggerAction>,
        timeout: Duration,
        completion: Box<dyn Completion>,
    ) -> Result<Uuid, CallError> {
        let mut buf = Uuid::encode_buffer();
        let id_text = id.hyphenated().encode_lower(&mut buf);
        let frame = call_frame(Some(id_text), function_id, data, action, envelope);
        self.check_size(&frame)?;
        self.check_offline_room()?;
        let epoch = self.shared.epoch.load(Ordering::Acquire);
        self.shared.pending.insert(id, function_id, timeout, epoch, completion).map_err(|(_, e)| e)?;
        if self.send(frame, FrameKind::Call(id)).is_err() {
            self.shared.pending.fail(&id, CallError::Shutdown);
        }
        Ok(id)
    }

    /// Forgets a pending call without completing it: its caller stopped waiting (a cancelled
    /// batch). A late result is then ignored like any unknown id. False if it already ended.
    pub fn abandon(&self, id: &Uuid) -> bool {
        self.shared.pending.forget(id)
    }

    /// Fire-and-forget call (`action: void`, no invocation id), with `envelope`'s fields.
    pub fn call_void(
        &self,
        envelope: Envelope<'_>,
        function_id: &str,
        data: Option<&str>,
    ) -> Result<(), CallError> {
        let frame = call_frame(None, function_id, data, Some(&TriggerAction::Void), envelope);
        self.check_size(&frame)?;
        self.check_offline_room()?;
        self.send(frame, FrameKind::Plain)
    }

    /// Answers an invocation the engine sent to this worker, with the trace context of
    /// `envelope` (its namespace is not used). A result too large to send is replaced by an
    /// error, so the caller is never left waiting.
    pub fn answer(
        &self,
        invocation_id: &str,
        function_id: &str,
        outcome: Result<Option<&str>, &ErrorBody>,
        envelope: Envelope<'_>,
    ) {
        let result = |outcome| {
            let mut frame = frames::invocation_result(invocation_id, function_id, outcome);
            for (key, value) in [("traceparent", envelope.traceparent), ("baggage", envelope.baggage)] {
                if let Some(value) = value {
                    frame = frames::with_field(frame, key, value);
                }
            }
            frame
        };
        let mut frame = result(outcome);
        if let Err(err) = self.check_size(&frame) {
            let body = ErrorBody::new(
                "invocation_failed",
                format!("the function's result could not be sent: {err}"),
            );
            frame = result(Err(&body));
        }
        let _ = self.send(frame, FrameKind::Plain);
    }

    /// Sends a message that is neither a call nor a registration.
    pub fn send_message(&self, message: &Message) -> Result<(), CallError> {
        self.send_text(message.encode())
    }

    /// `send_message` with the message already encoded as JSON text.
    pub fn send_text(&self, frame: String) -> Result<(), CallError> {
        self.check_size(&frame)?;
        self.send(frame, FrameKind::Plain)
    }

    /// Writes a binary frame (telemetry, docs/protocol.md 10.1) on the live link. Never queued:
    /// while disconnected it fails with `NotConnected` and the caller keeps its data.
    pub fn send_binary(&self, frame: &[u8]) -> Result<(), CallError> {
        if let Some(err) = self.shared.pending.closed_reason() {
            return Err(err);
        }
        let limit = self.shared.config.max_message_size;
        if frame.len() > limit {
            return Err(CallError::TooLarge { size: frame.len(), limit });
        }
        let writer = self.live_writer().ok_or_else(|| CallError::NotConnected("the link is down".into()))?;
        writer.send(frame_codec::OP_BINARY, frame).map_err(CallError::NotConnected)
    }

    /// Writes the frame on the live link, or queues it for the lifecycle task (offline queue).
    fn send(&self, frame: String, kind: FrameKind) -> Result<(), CallError> {
        if let Some(err) = self.shared.pending.closed_reason() {
            return Err(err);
        }
        let link = self.shared.link.lock().clone();
        if let Some(link) = link {
            let sent = if DEFERRING.get() {
                link.writer.defer(frame_codec::OP_TEXT, frame.as_bytes()).map(|first| {
                    if first {
                        self.shared.flush_requested.store(true, Ordering::Release);
                    }
                })
            } else {
                link.writer.send(frame_codec::OP_TEXT, frame.as_bytes())
            };
            if sent.is_ok() {
                if let FrameKind::Call(_) = kind {
                    link.note_call();
                }
                return Ok(());
            }
        }
        self.shared.tx.send(Command::Send(frame, kind)).map_err(|_| CallError::Shutdown)
    }

    /// Writes the frames held back on the live link (see `deferring`).
    pub fn flush_deferred(&self) {
        if let Some(writer) = self.live_writer() {
            let _ = writer.flush_deferred();
        }
    }

    /// True once after a frame was held back into an empty buffer: arrange a `flush_deferred`.
    pub fn take_flush_request(&self) -> bool {
        self.shared.flush_requested.load(Ordering::Relaxed)
            && self.shared.flush_requested.swap(false, Ordering::AcqRel)
    }

    fn live_writer(&self) -> Option<Arc<writer::Writer>> {
        self.shared.link.lock().as_ref().map(|link| link.writer.clone())
    }

    /// Hands reading of the live link to the caller's event loop (see `link`): watch
    /// `fd()` and call `pump()`. `None` while disconnected.
    pub fn attach_reader(&self) -> Option<ExternalReader> {
        let link = self.shared.link.lock().clone()?;
        if link.is_ended() {
            return None;
        }
        let handle = inbound::incoming_handler(self.clone(), link.writer.clone());
        Some(ExternalReader::new(link, handle))
    }

    /// Routes one message as if the engine had sent it on the live link.
    pub fn handle_inbound(&self, frame: &[u8]) {
        if let Some(end) = inbound::handle_frame(self, frame) {
            if let Some(link) = self.shared.link.lock().clone() {
                link.end(end);
            }
        }
    }

    /// Records a registration (replayed after every reconnect) and sends it now if connected.
    pub fn register(&self, kind: RegistrationKind, id: &str, message: &Message) -> Result<(), CallError> {
        self.register_frame(kind, id, message.encode())
    }

    /// `register` with the message already encoded as JSON text.
    pub fn register_frame(&self, kind: RegistrationKind, id: &str, frame: String) -> Result<(), CallError> {
        self.check_size(&frame)?;
        let mut ledger = self.shared.ledger.lock();
        ledger.put(kind, id, frame.clone());
        // Under the ledger lock: the lifecycle task's replay snapshot either has this
        // registration or the writer is already live. While disconnected the next replay sends it.
        if let Some(writer) = self.live_writer() {
            let _ = writer.send(frame_codec::OP_TEXT, frame.as_bytes());
        }
        Ok(())
    }

    /// Forgets a registration and sends `frame` (its unregister message, if any) when connected.
    pub fn unregister(&self, kind: RegistrationKind, id: &str, frame: Option<String>) {
        let mut ledger = self.shared.ledger.lock();
        ledger.remove(kind, id);
        if let (Some(frame), Some(writer)) = (frame, self.live_writer()) {
            let _ = writer.send(frame_codec::OP_TEXT, frame.as_bytes());
        }
    }

    pub fn state(&self) -> ConnectionState {
        self.shared.info.lock().state
    }

    pub fn last_error(&self) -> Option<String> {
        self.shared.info.lock().last_error.clone()
    }

    /// The engine generation seen on the current (or last) connection; `Unknown` before the
    /// first `workerregistered`.
    pub fn generation(&self) -> Generation {
        self.shared.info.lock().generation
    }

    /// The protocol features the last `workerregistered` listed (docs/protocol.md C.3.2); empty
    /// before the first one and for engines before 0.25.
    pub fn engine_features(&self) -> Vec<String> {
        self.shared.info.lock().engine_features.clone()
    }

    /// The last engine listed `observe.v1`: calls made from a handler carry `caller` and
    /// `observe_depth` (docs/protocol.md C.8.1).
    pub fn engine_observes(&self) -> bool {
        self.shared.engine_observes.load(Ordering::Relaxed)
    }

    /// The engine's fatal `registrationrejected`, if one ended this connection.
    pub fn rejection(&self) -> Option<RegistrationRejected> {
        self.shared.info.lock().rejection.clone()
    }

    /// The extra headers of every upgrade request.
    pub fn headers(&self) -> &[(String, String)] {
        &self.shared.config.headers
    }

    /// The id the engine gave the current (or last) connection.
    pub fn worker_id(&self) -> Option<String> {
        self.shared.info.lock().worker_id.clone()
    }

    /// Blocks until `done(state)` holds or `timeout` passes; returns the state then.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(ConnectionState) -> bool) -> ConnectionState {
        let deadline = Instant::now() + timeout;
        let mut info = self.shared.info.lock();
        while !done(info.state) {
            if self.shared.state_changed.wait_until(&mut info, deadline).timed_out() {
                break;
            }
        }
        info.state
    }

    pub fn pending_calls(&self) -> usize {
        self.shared.pending.len()
    }

    /// Sends the waiting reports of local calls and their counters now; true when the counters
    /// had anything to send.
    pub fn flush_observe_reports(&self) -> bool {
        self.shared.reporter.flush_now(self)
    }

    /// Sends what the reporter holds (its last chance), fails every pending call, closes the
    /// socket and stops reconnecting. Idempotent.
    pub fn shutdown(&self) {
        if self.shared.shutting_down.swap(true, Ordering::AcqRel) {
            return;
        }
        self.flush_observe_reports();
        self.shared.pending.close(CallError::Shutdown);
        let _ = self.shared.tx.send(Command::Shutdown);
        self.shared.reporter.wake();
    }

    fn set_state(&self, state: ConnectionState, error: Option<String>) {
        {
            let mut info = self.shared.info.lock();
            if info.state == state && error.is_none() {
                return;
            }
            info.state = state;
            if error.is_some() {
                info.last_error = error;
            }
        }
        self.shared.state_changed.notify_all();
        self.shared.sink.state_changed(state);
    }

    /// Logs through the sink (the SDK's logger).
    pub fn log(&self, level: LogLevel, text: &str) {
        self.shared.sink.log(level, text);
    }
}
