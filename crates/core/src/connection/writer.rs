//! The sending half of a link, shared by one reader at a time and any number of writers.
//! On `wss://` the TLS session lives here too, under the same lock: a writer encrypts its
//! frame into the session and writes the records the same direct way; the reader decrypts
//! through `Received`.
//!
//! NOTE(perf): with the socket behind an async sink, every frame a Python thread sends costs a
//! wake-up of the runtime thread, and those context switches are a large part of a sequential
//! round trip (benches/RESULTS.md, "Callers write their frames into the socket themselves").
//! Here a writer on any thread writes its frame straight into the socket with a non-blocking
//! `try_write` when nothing is queued before it; only what the kernel does not take at once is
//! left to the flusher task. Frames stay whole and in order because all writing happens under
//! one lock.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream as StdStream;
use std::sync::Arc;

use parking_lot::Mutex;
use rustls::ClientConnection;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::Notify;

use super::frame_codec::encode_frame;

/// Registers a duplicate of the socket with the runtime's reactor for `interest`, for as long
/// as the returned handle lives.
pub fn watch(stream: &StdStream, interest: Interest) -> std::io::Result<AsyncFd<StdStream>> {
    let owned = stream.try_clone()?;
    // SAFETY: the AsyncFd owns the duplicated socket, so the descriptor it registers stays
    // open until it is deregistered.
    unsafe { AsyncFd::register_with_interest(owned, interest) }
        .map_err(|e| std::io::Error::other(e.to_string()))
}

struct WriterState {
    /// Bytes accepted but not yet taken by the kernel, oldest first (plain links).
    queued: VecDeque<Vec<u8>>,
    /// Offset already written of the front buffer.
    front_written: usize,
    /// `wss://`: the session. It buffers the records the socket has not taken yet, so
    /// `queued` stays empty.
    tls: Option<ClientConnection>,
    /// `wss://`: records read from the socket that the session has not taken yet.
    input: TlsInput,
    closed: Option<String>,
    /// Frames held back by `defer`, written before the next frame or by `flush_deferred`.
    deferred: Vec<u8>,
    /// How many frames `deferred` holds.
    deferred_frames: usize,
}

/// What one read from a `wss://` socket takes (the plain reader's size, `frame_codec`).
const TLS_READ: usize = 64 * 1024;

/// Received TLS records, read from the socket in one call and handed to the session from
/// memory. NOTE(perf): `ClientConnection::read_tls` reads at most 4 KiB per call from a
/// socket, so a 16 KiB message would take five `recv` calls and a batch of small frames one
/// per 4 KiB; fed from this buffer it takes one. The cipher is not where the time goes
/// (`cargo bench --bench codec -- tls_record`; benches/RESULTS.md, "`wss://`: one recv per
/// 64 KiB of records").
struct TlsInput {
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// The last read filled the caller's buffer, so the session may hold more plaintext.
    plaintext_left: bool,
}

impl TlsInput {
    fn new(tls: bool) -> Self {
        let size = if tls { TLS_READ } else { 0 };
        Self { buf: vec![0; size].into_boxed_slice(), pos: 0, end: 0, plaintext_left: false }
    }

    /// Hands the session what is buffered, reading the socket first when nothing is.
    /// `Ok(0)`: the peer closed the stream.
    fn feed(&mut self, tls: &mut ClientConnection, mut socket: &StdStream) -> std::io::Result<usize> {
        if self.pos == self.end {
            let n = socket.read(&mut self.buf)?;
            if n == 0 {
                return tls.read_tls(&mut &[][..]); // tells the session the stream ended
            }
            (self.pos, self.end) = (0, n);
        }
        let taken = tls.read_tls(&mut &self.buf[self.pos..self.end])?;
        self.pos += taken;
        Ok(taken)
    }
}

/// Held-back frames are written at once beyond this many bytes.
const DEFER_LIMIT: usize = 256 * 1024;

/// ... or this many frames. NOTE(perf): a fan-out's first loop iteration can run for tens of
/// milliseconds (asyncio.gather steps every one of 20,000 tasks before the iteration ends);
/// written only at its end, its first calls reach the engine only then, and the engine and
/// the callee wait meanwhile. Written every 64, they overlap it; a write per 64 small frames
/// costs nothing measurable (benches/RESULTS.md, "Held-back frames go out every 64").
const DEFER_FRAMES: usize = 64;

/// A written buffer up to this size is kept for the next frames held back.
const RECYCLE_LIMIT: usize = 4 * DEFER_LIMIT;

/// Keeps `written`'s memory for the next frames `defer` holds back. NOTE(perf): otherwise a
/// batch of held-back 16 KiB answers grows a new buffer to 256 KiB and frees it, every batch,
/// and the page faults show in the 16 KiB fan-out (benches/RESULTS.md, "The writer reuses the
/// buffer of held-back frames").
fn recycle(deferred: &mut Vec<u8>, mut written: Vec<u8>) {
    if deferred.is_empty() && written.capacity() > deferred.capacity() && written.capacity() <= RECYCLE_LIMIT
    {
        written.clear();
        *deferred = written;
    }
}

impl WriterState {
    fn has_backlog(&self) -> bool {
        !self.queued.is_empty() || self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }
}

/// Writes the session's pending records until the socket pushes back. `Ok(true)`: all written.
fn write_records(tls: &mut ClientConnection, stream: &StdStream) -> std::io::Result<bool> {
    while tls.wants_write() {
        match tls.write_tls(&mut &*stream) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The sending half: any thread may write frames; a flusher task writes what is left over.
pub struct Writer {
    stream: Arc<StdStream>,
    /// Fixed for the link's life, so plain links never take the lock to read.
    is_tls: bool,
    state: Mutex<WriterState>,
    backlog: Notify,
}

impl Writer {
    pub fn new(stream: Arc<StdStream>, tls: Option<ClientConnection>) -> Arc<Self> {
        Arc::new(Self {
            stream,
            is_tls: tls.is_some(),
            state: Mutex::new(WriterState {
                queued: VecDeque::new(),
                front_written: 0,
                input: TlsInput::new(tls.is_some()),
                tls,
                closed: None,
                deferred: Vec::new(),
                deferred_frames: 0,
            }),
            backlog: Notify::new(),
        })
    }

    /// Sends one frame now if the socket takes it, else queues it behind the others.
    /// Fails only when the link is already known to be dead.
    pub fn send(&self, opcode: u8, payload: &[u8]) -> Result<(), String> {
        let mut frame = Vec::new();
        encode_frame(opcode, payload, &mut frame);
        self.send_encoded(frame)
    }

    /// Sends several frames with as few writes as possible.
    pub fn send_many<'a>(
        &self,
        opcode: u8,
        payloads: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), String> {
        let mut frames = Vec::new();
        for p in payloads {
            encode_frame(opcode, p, &mut frames);
        }
        if frames.is_empty() {
            return Ok(());
        }
        self.send_encoded(frames)
    }

    /// Holds a frame back, to go out with the ones that follow in one write (see
    /// `deferring`). Returns true when it is the first one held: the caller must make
    /// sure `flush_deferred` runs soon.
    pub fn defer(&self, opcode: u8, payload: &[u8]) -> Result<bool, String> {
        let mut state = self.state.lock();
        if let Some(reason) = &state.closed {
            return Err(reason.clone());
        }
        let first = state.deferred.is_empty();
        encode_frame(opcode, payload, &mut state.deferred);
        state.deferred_frames += 1;
        if state.deferred.len() >= DEFER_LIMIT || state.deferred_frames >= DEFER_FRAMES {
            drop(state);
            self.send_encoded(Vec::new())?;
        }
        Ok(first)
    }

    /// Writes the frames held back by `defer`.
    pub fn flush_deferred(&self) -> Result<(), String> {
        self.send_encoded(Vec::new())
    }

    fn send_encoded(&self, frame: Vec<u8>) -> Result<(), String> {
        let mut state = self.state.lock();
        if let Some(reason) = &state.closed {
            return Err(reason.clone());
        }
        // Frames held back go first, in the same write.
        let frame = if state.deferred.is_empty() {
            frame
        } else {
            state.deferred_frames = 0;
            let mut all = std::mem::take(&mut state.deferred);
            all.extend_from_slice(&frame);
            all
        };
        if frame.is_empty() {
            return Ok(());
        }
        if let WriterState { tls: Some(tls), deferred, closed, .. } = &mut *state {
            let behind = tls.wants_write();
            // The session's buffer is unbounded (`set_buffer_limit(None)`): this takes it all,
            // unless the session is already closed.
            let taken = tls.writer().write_all(&frame);
            recycle(deferred, frame);
            if behind && taken.is_ok() {
                return Ok(()); // the flusher already knows
            }
            return match taken.and_then(|()| write_records(tls, &self.stream)) {
                Ok(true) => Ok(()),
                Ok(false) => {
                    drop(state);
                    self.backlog.notify_one();
                    Ok(())
                }
                Err(e) => {
                    let reason = e.to_string();
                    *closed = Some(reason.clone());
                    drop(state);
                    self.backlog.notify_one();
                    Err(reason)
                }
            };
        }
        if !state.queued.is_empty() {
            state.queued.push_back(frame);
            return Ok(());
        }
        let mut written = 0;
        while written < frame.len() {
            match (&*self.stream).write(&frame[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    let reason = e.to_string();
                    state.closed = Some(reason.clone());
                    drop(state);
                    self.backlog.notify_one();
                    return Err(reason);
                }
            }
        }
        if written < frame.len() {
            state.queued.push_back(frame);
            state.front_written = written;
            drop(state);
            self.backlog.notify_one();
        } else {
            recycle(&mut state.deferred, frame);
        }
        Ok(())
    }

    /// Marks the link dead: later sends fail at once and the flusher stops.
    pub fn close(&self, reason: &str) {
        let mut state = self.state.lock();
        if state.closed.is_none() {
            state.closed = Some(reason.to_owned());
        }
        drop(state);
        self.backlog.notify_one();
    }

    /// Writes queued bytes whenever there are some; returns when the link fails or closes.
    pub async fn flush_backlog(&self) -> String {
        loop {
            let notified = self.backlog.notified();
            let idle = {
                let state = self.state.lock();
                if let Some(reason) = &state.closed {
                    return reason.clone();
                }
                !state.has_backlog()
            };
            if idle {
                notified.await;
                continue;
            }
            if let Err(e) = self.write_backlog().await {
                self.close(&e.to_string());
            }
        }
    }

    /// Writes the backlog as the socket drains, waiting for writability through the reactor
    /// only while there is a backlog.
    async fn write_backlog(&self) -> std::io::Result<()> {
        let fd = watch(&self.stream, Interest::WRITABLE)?;
        loop {
            let mut ready = fd.writable().await?;
            let mut state = self.state.lock();
            if let Some(tls) = state.tls.as_mut() {
                if write_records(tls, &self.stream)? {
                    return Ok(());
                }
                ready.clear_ready();
                continue;
            }
            loop {
                let offset = state.front_written;
                let Some(front) = state.queued.front() else {
                    return Ok(());
                };
                match (&*self.stream).write(&front[offset..]) {
                    Ok(n) if offset + n == front.len() => {
                        state.queued.pop_front();
                        state.front_written = 0;
                    }
                    Ok(n) => state.front_written += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        ready.clear_ready();
                        break;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().closed.is_some()
    }

    /// Whether bytes are waiting for the socket.
    pub fn has_backlog(&self) -> bool {
        self.state.lock().has_backlog()
    }

    /// What the reader reads from: the socket, or on `wss://` the session decrypting it.
    pub(super) fn received(&self) -> Received<'_> {
        Received(self)
    }

    /// Whether received bytes wait above the socket (`wss://`: read from it but not handed
    /// out yet), where the socket's readiness will not announce them.
    pub(super) fn input_buffered(&self) -> bool {
        if !self.is_tls {
            return false;
        }
        let state = self.state.lock();
        state.input.pos < state.input.end || state.input.plaintext_left
    }

    /// `wss://`: feeds what the socket has to the session and returns plaintext. Under the
    /// writer's lock, which writers hold only for non-blocking writes.
    fn read_decrypted(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut state = self.state.lock();
        let WriterState { tls, input, .. } = &mut *state;
        let Some(tls) = tls.as_mut() else {
            return (&*self.stream).read(buf);
        };
        let result = loop {
            match tls.reader().read(buf) {
                Ok(n) => {
                    input.plaintext_left = n > 0 && n == buf.len();
                    break Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => input.plaintext_left = false,
                Err(e) => break Err(e),
            }
            match input.feed(tls, &self.stream) {
                Ok(0) => break Ok(0),
                Ok(_) => {
                    if let Err(e) = tls.process_new_packets() {
                        let _ = write_records(tls, &self.stream); // the alert, if it fits
                        break Err(std::io::Error::new(ErrorKind::InvalidData, format!("TLS: {e}")));
                    }
                }
                Err(e) => break Err(e),
            }
        };
        // Reading can make the session answer (a key update): send that like a frame.
        if tls.wants_write() && !matches!(write_records(tls, &self.stream), Ok(true)) {
            drop(state);
            self.backlog.notify_one();
        }
        result
    }
}

/// The byte source of a link's reader (see `Writer::received`).
pub(super) struct Received<'a>(&'a Writer);

impl Read for Received<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_tls {
            self.0.read_decrypted(buf)
        } else {
            (&*self.0.stream).read(buf)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket};
    use tokio_tungstenite::tungstenite::Message;

    use super::*;
    use crate::connection::frame_codec::OP_TEXT;

    /// A writer on one end of a loopback connection, and a WebSocket server on the other.
    fn pair() -> (Arc<Writer>, WebSocket<TcpStream>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.set_nonblocking(true).unwrap();
        let (server, _) = listener.accept().unwrap();
        let peek = server.try_clone().unwrap();
        (Writer::new(Arc::new(client), None), WebSocket::from_raw_socket(server, Role::Server, None), peek)
    }

    fn text(ws: &mut WebSocket<TcpStream>) -> String {
        match ws.read().unwrap() {
            Message::Text(t) => t.to_string(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    #[test]
    fn held_back_frames_wait_for_a_flush() {
        let (writer, mut ws, peek) = pair();
        assert!(writer.defer(OP_TEXT, b"one").unwrap(), "the first held frame asks for a flush");
        assert!(!writer.defer(OP_TEXT, b"two").unwrap());
        peek.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        assert_eq!(peek.peek(&mut byte).unwrap_err().kind(), ErrorKind::WouldBlock, "nothing written yet");
        writer.flush_deferred().unwrap();
        peek.set_nonblocking(false).unwrap();
        assert_eq!((text(&mut ws), text(&mut ws)), ("one".to_owned(), "two".to_owned()));
        assert!(writer.defer(OP_TEXT, b"three").unwrap(), "an empty buffer asks again");
    }

    #[test]
    fn a_frame_sent_directly_goes_after_the_held_ones() {
        let (writer, mut ws, _) = pair();
        writer.defer(OP_TEXT, b"held").unwrap();
        writer.send(OP_TEXT, b"direct").unwrap();
        assert_eq!((text(&mut ws), text(&mut ws)), ("held".to_owned(), "direct".to_owned()));
        writer.flush_deferred().unwrap(); // nothing left: writes nothing
        writer.send(OP_TEXT, b"last").unwrap();
        assert_eq!(text(&mut ws), "last");
    }

    #[test]
    fn a_large_burst_is_written_without_a_flush() {
        let (writer, mut ws, _) = pair();
        let payload = vec![b'x'; 64 * 1024];
        for _ in 0..(DEFER_LIMIT / payload.len()) {
            writer.defer(OP_TEXT, &payload).unwrap();
        }
        // Past the limit the burst went to the socket (what it did not take waits for the
        // flusher, which this test does not run).
        assert!(writer.state.lock().deferred.is_empty());
        assert_eq!(text(&mut ws).len(), payload.len());
    }

    #[test]
    fn many_small_frames_are_written_without_a_flush() {
        let (writer, mut ws, peek) = pair();
        let mut byte = [0u8; 1];
        for round in 0..2 {
            for i in 0..DEFER_FRAMES - 1 {
                writer.defer(OP_TEXT, format!("{round}-{i}").as_bytes()).unwrap();
            }
            peek.set_nonblocking(true).unwrap();
            assert_eq!(peek.peek(&mut byte).unwrap_err().kind(), ErrorKind::WouldBlock, "still held");
            peek.set_nonblocking(false).unwrap();
            writer.defer(OP_TEXT, b"last").unwrap();
            assert!(writer.state.lock().deferred.is_empty(), "the 64th frame writes them all");
            for i in 0..DEFER_FRAMES - 1 {
                assert_eq!(text(&mut ws), format!("{round}-{i}"));
            }
            assert_eq!(text(&mut ws), "last"); // and the count starts again
        }
    }
}
