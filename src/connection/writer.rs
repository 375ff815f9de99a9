//! The sending half of a link, shared by one reader at a time and any number of writers.
//!
//! NOTE(perf): with the socket behind an async sink, every frame a Python thread sends costs a
//! wake-up of the runtime thread (measured: about a third of the CPU of a sequential round
//! trip goes to context switches). Here a writer on any thread writes its frame straight into
//! the socket with a non-blocking `try_write` when nothing is queued before it; only what the
//! kernel does not take at once is left to the flusher task. Frames stay whole and in order
//! because all writing happens under one lock.

use std::collections::VecDeque;
use std::io::{ErrorKind, Write};
use std::net::TcpStream as StdStream;
use std::sync::Arc;

use parking_lot::Mutex;
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
    /// Bytes accepted but not yet taken by the kernel, oldest first.
    queued: VecDeque<Vec<u8>>,
    /// Offset already written of the front buffer.
    front_written: usize,
    closed: Option<String>,
}

/// The sending half: any thread may write frames; a flusher task writes what is left over.
pub struct Writer {
    stream: Arc<StdStream>,
    state: Mutex<WriterState>,
    backlog: Notify,
}

impl Writer {
    pub fn new(stream: Arc<StdStream>) -> Arc<Self> {
        Arc::new(Self {
            stream,
            state: Mutex::new(WriterState { queued: VecDeque::new(), front_written: 0, closed: None }),
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

    fn send_encoded(&self, frame: Vec<u8>) -> Result<(), String> {
        let mut state = self.state.lock();
        if let Some(reason) = &state.closed {
            return Err(reason.clone());
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
                state.queued.is_empty()
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

    /// Bytes waiting for the socket.
    pub fn backlog_len(&self) -> usize {
        let state = self.state.lock();
        state.queued.iter().map(Vec::len).sum::<usize>() - state.front_written
    }
}
