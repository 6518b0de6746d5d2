//! One task per client connection: read a frame, handle it, write the response, in request
//! order. Requests are handled one at a time, as Kafka mutes a channel while a request is in
//! flight (the next frame is read meanwhile, so its bytes do not wait in the socket), except that a durable-mode produce waiting for its fdatasync does not hold up the
//! produces after it (its answer still goes out first). A malformed frame or header closes this
//! connection only, after the requests before it are answered. On a plain socket responses go
//! out with vectored sends for the encoded fields and sendfile(2) for record batches still in
//! segment files, so record bytes never pass through user space. Over TLS ([`Stream::Tls`]) the
//! bytes must be encrypted: file ranges are read into a bounded buffer (off the async workers)
//! and written through the TLS session with the encoded fields around them.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::api::{self, Chunk, ResponseFrame};
use crate::broker::Broker;
use crate::config::SaslSettings;
use crate::config::principal_mapping::PrincipalMapper;
use crate::protocol::frame::check_request_len;
use crate::server::sasl::{self, Authenticator, Step};
use crate::storage::FileRange;

/// Answers owed at once per connection: durable-mode produces waiting for their fdatasyncs while
/// the connection appends the requests after them (their syncs then share fsyncs). The
/// connection stops reading frames at this many.
const ANSWERS_OWED_MAX: usize = 8;

/// A client connection's byte stream: a plain socket (zero-copy sends) or a TLS session over one.
pub enum Stream {
    Plain(TcpStream),
    /// Boxed: a TLS session holds its buffers inline (over a kilobyte).
    Tls(Box<TlsStream>),
}

/// A server-side TLS session, shared by the connection's reads and writes. They take turns
/// within one task; the lock is taken inside each poll only, never held across an await.
pub struct TlsStream(std::sync::Mutex<tokio_rustls::server::TlsStream<TcpStream>>, PrincipalMapper);

impl TlsStream {
    /// A session of a listener whose `ssl.principal.mapping.rules` are `mapping`.
    pub fn new(stream: tokio_rustls::server::TlsStream<TcpStream>, mapping: PrincipalMapper) -> TlsStream {
        TlsStream(std::sync::Mutex::new(stream), mapping)
    }

    /// Kafka's principal of the client's certificate (mTLS), when it sent one: `User:` and the
    /// name the mapping rules give its subject. Err: no rule applies (Kafka fails the
    /// authentication).
    fn certificate_principal(&self) -> Option<Result<String, String>> {
        let s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        super::tls::certificate_principal(s.get_ref().1, &self.1)
    }

    fn poll<T>(&self, f: impl FnOnce(std::pin::Pin<&mut tokio_rustls::server::TlsStream<TcpStream>>) -> T) -> T {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(std::pin::Pin::new(&mut *s))
    }
}

impl tokio::io::AsyncRead for &TlsStream {
    fn poll_read(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> std::task::Poll<io::Result<()>> {
        self.poll(|s| s.poll_read(cx, buf))
    }
}

impl tokio::io::AsyncWrite for &TlsStream {
    fn poll_write(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<io::Result<usize>> {
        self.poll(|s| s.poll_write(cx, buf))
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        self.poll(|s| s.poll_flush(cx))
    }

    fn poll_shutdown(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        self.poll(|s| s.poll_shutdown(cx))
    }
}

/// Serves one client connection accepted on listener `listener` (its name: Metadata answers with
/// that listener's endpoints). On a SASL listener (`sasl`) the client authenticates first: until
/// then frames are bounded by `sasl.server.max.receive.size` and go to its [`Authenticator`].
pub async fn run(stream: Stream, peer: SocketAddr, broker: Arc<Broker>, listener: Arc<str>, sasl: Option<Arc<SaslSettings>>) {
    let stream = &stream;
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    let mut auth = sasl.map(Authenticator::new);
    let mut reader = FrameReader::new(if auth.is_some() { broker.config.sasl_server_max_receive_size } else { broker.config.socket_request_max_bytes });
    let mut stop = broker.shutdown_signal();
    let mut owed = Owed(std::collections::VecDeque::new());
    let mut session = api::Session::new(peer, listener);
    // However the connection ends, the telemetry instance it made is forgotten.
    let _telemetry = ForgetTelemetry(&broker, session.id);
    // On an SSL listener a client certificate names the principal through the listener's
    // ssl.principal.mapping.rules; on SASL_SSL the SASL authentication names it.
    if let Stream::Tls(tls) = stream
        && auth.is_none()
    {
        match tls.certificate_principal() {
            None => {}
            Some(Ok(principal)) => session.principal = Arc::from(principal.as_str()),
            Some(Err(reason)) => {
                tracing::warn!(%peer, listener = %session.listener, %reason, "closing connection: authentication failed (ssl.principal.mapping.rules)");
                return;
            }
        }
    }
    let mut answered_at = tokio::time::Instant::now();
    // The frame read while the one before it was being handled (see below).
    let mut ahead: Option<Result<bytes::Bytes, ReadError>> = None;
    loop {
        // Send owed answers as they complete; read the next frame while there is room for one.
        // Idle (connections.max.idle.ms) means nothing owed and no frame for that long since the
        // last answer; a frame once begun must arrive within the same bound.
        let deadline = reader.started.unwrap_or(answered_at) + idle;
        // A client over its quota is muted for its throttle time: no request is read or handled
        // meanwhile (owed answers still go out).
        let muted = session.muted_until.filter(|until| *until > tokio::time::Instant::now());
        if muted.is_none() {
            session.muted_until = None;
        }
        let frame = if muted.is_none()
            && owed.0.len() < ANSWERS_OWED_MAX
            && let Some(frame) = ahead.take()
        {
            frame
        } else {
            tokio::select! {
                biased;
                done = async { (&mut owed.0[0]).await }, if !owed.0.is_empty() => {
                    owed.0.pop_front();
                    if !answer(stream, peer, joined(done)).await {
                        return;
                    }
                    answered_at = tokio::time::Instant::now();
                    continue;
                }
                _ = tokio::time::sleep_until(muted.unwrap_or(deadline)), if muted.is_some() => {
                    // The throttle time is over; an idle clock starts again from here.
                    answered_at = tokio::time::Instant::now();
                    continue;
                }
                frame = reader.next(stream), if muted.is_none() && owed.0.len() < ANSWERS_OWED_MAX && ahead.is_none() => frame,
                _ = tokio::time::sleep_until(deadline), if owed.0.is_empty() => {
                    if reader.started.is_some() {
                        tracing::warn!(%peer, "closing connection: frame body not received in time");
                    } else {
                        tracing::debug!(%peer, "closing idle connection (connections.max.idle.ms)");
                    }
                    return;
                }
                _ = stop.changed(), if owed.0.is_empty() => return,
            }
        };
        if handle_one(&broker, &mut session, &mut auth, stream, peer, &mut reader, &mut owed, &mut ahead, frame).await.is_break() {
            break;
        }
        answered_at = tokio::time::Instant::now();
    }
    // The client is gone or sent a bad frame: the requests before it still get their answers.
    owed.send_all(stream, peer).await;
    if let Stream::Tls(t) = stream {
        // close_notify, so the client sees a clean end of the TLS session.
        let mut w: &TlsStream = t;
        let _ = tokio::time::timeout(Duration::from_secs(1), tokio::io::AsyncWriteExt::shutdown(&mut w)).await;
    }
}

/// On drop, forgets the KIP-714 client instance the connection made and what it pushed, as
/// Kafka's broker does when a connection closes.
struct ForgetTelemetry<'a>(&'a Broker, u64);

impl Drop for ForgetTelemetry<'_> {
    fn drop(&mut self) {
        if let Some(instance) = self.0.client_telemetry.disconnected(self.1)
            && let Some(receiver) = &self.0.telemetry_receiver
        {
            receiver.forget(instance);
        }
    }
}

/// Handles one frame read from the connection and sends (or owes) its answer. While the request
/// is handled, the next frame is read into `ahead`: a produce's append then overlaps the receipt
/// of the request after it, instead of the client's bytes waiting in the socket until the answer
/// is out. Requests are still handled one at a time and answered in order; at most one frame is
/// read ahead. `Break`: the connection must close (after the answers owed, which the caller sends).
#[allow(clippy::too_many_arguments)]
async fn handle_one(
    broker: &Arc<Broker>, session: &mut api::Session, auth: &mut Option<Authenticator>, stream: &Stream, peer: SocketAddr, reader: &mut FrameReader, owed: &mut Owed,
    ahead: &mut Option<Result<bytes::Bytes, ReadError>>, frame: Result<bytes::Bytes, ReadError>,
) -> std::ops::ControlFlow<()> {
    use std::ops::ControlFlow::{Break, Continue};
    let frame = match frame {
        Ok(frame) => frame,
        Err(ReadError::Closed(e)) => {
            tracing::debug!(%peer, error = %e, "connection closed");
            return Break(());
        }
        Err(ReadError::BadFrame(e)) => {
            tracing::warn!(%peer, error = %e, limit = "socket.request.max.bytes", "closing connection: bad frame");
            return Break(());
        }
    };
    // Only a produce is handled while answers are owed; any other request first waits for
    // them, so its handling never sees the connection's earlier requests unanswered.
    if !api::may_answer_later(&frame) && !owed.send_all(stream, peer).await {
        return Break(());
    }
    if let Some(auth) = auth.as_mut()
        && let Some(flow) = sasl_step(broker, auth, session, stream, peer, reader, &frame).await
    {
        if flow.is_break() {
            ahead.take();
        }
        return flow;
    }
    let handled = {
        let handling = api::handle_frame(broker, session, frame);
        tokio::pin!(handling);
        loop {
            tokio::select! {
                biased;
                handled = &mut handling => break handled,
                next = reader.next(stream), if ahead.is_none() => *ahead = Some(next),
            }
        }
    };
    match handled {
        Ok(api::Reply::Later(task)) => owed.0.push_back(task),
        Ok(api::Reply::Now(response)) => {
            if !owed.send_all(stream, peer).await || !answer(stream, peer, Ok(response)).await {
                return Break(());
            }
        }
        Err(e) => {
            // The requests before this one are answered before the connection closes.
            if owed.send_all(stream, peer).await {
                answer(stream, peer, Err(e)).await;
            }
            // The frame read ahead, if any, is not handled: the client broke the protocol.
            ahead.take();
            return Break(());
        }
    }
    Continue(())
}

/// Passes a frame of a SASL listener's connection through its authenticator. None: serve it as
/// a request. An expired session (KIP-368) is closed on its next request, unless that is the
/// SaslHandshake of a re-authentication, as Kafka does; a failed authentication is logged (peer,
/// listener, mechanism, reason; never a secret), its answer held back
/// `connection.failed.authentication.delay.ms`, and the connection closed.
async fn sasl_step(
    broker: &Arc<Broker>, auth: &mut Authenticator, session: &mut api::Session, stream: &Stream, peer: SocketAddr, reader: &mut FrameReader, frame: &bytes::Bytes,
) -> Option<std::ops::ControlFlow<()>> {
    use std::ops::ControlFlow::{Break, Continue};
    let now = std::time::Instant::now();
    if auth.closes_on(frame, now) {
        tracing::debug!(%peer, listener = %session.listener, principal = %session.principal, "closing connection: SASL session expired without re-authentication (connections.max.reauth.ms)");
        return Some(Break(()));
    }
    let lookup = |user: &str, m| broker.scram.credential(user, m);
    match auth.on_frame(frame, now, &lookup, &sasl::server_nonce) {
        Step::Serve => None,
        Step::Reply(response) => {
            if !answer(stream, peer, Ok(Some(response))).await {
                return Some(Break(()));
            }
            if auth.is_serving()
                && let Some(who) = auth.authenticated()
            {
                tracing::debug!(%peer, listener = %session.listener, principal = %who.principal, mechanism = %who.mechanism.name(), reauthentication = *session.principal != *api::ANONYMOUS, "SASL authentication succeeded");
                session.principal = Arc::from(who.principal.as_str());
                reader.max = broker.config.socket_request_max_bytes;
            }
            Some(Continue(()))
        }
        Step::Fail { answer: response, mechanism, reason } => {
            let mechanism = mechanism.map_or("none", |m| m.name());
            tracing::info!(%peer, listener = %session.listener, %mechanism, %reason, "closing connection: failed authentication");
            let delay = Duration::from_millis(broker.config.connection_failed_authentication_delay_ms);
            let mut stop = broker.shutdown_signal();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => return Some(Break(())),
            }
            if let Some(r) = response {
                answer(stream, peer, Ok(Some(r))).await;
            }
            Some(Break(()))
        }
    }
}

/// Answers owed, in request order; aborted if the connection ends first.
struct Owed(std::collections::VecDeque<tokio::task::JoinHandle<Result<ResponseFrame, api::FrameError>>>);

impl Owed {
    /// Waits for and sends every owed answer; false when the connection must close.
    async fn send_all(&mut self, stream: &Stream, peer: SocketAddr) -> bool {
        while let Some(task) = self.0.pop_front() {
            if !answer(stream, peer, joined(task.await)).await {
                return false;
            }
        }
        true
    }
}

impl Drop for Owed {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// An owed answer's task result as a handler's result.
fn joined(r: Result<Result<ResponseFrame, api::FrameError>, tokio::task::JoinError>) -> Result<Option<ResponseFrame>, api::FrameError> {
    r?.map(Some)
}

/// Sends one request's answer (None: none due); false when the connection must close: the
/// handler's error, or a failed write.
async fn answer(stream: &Stream, peer: SocketAddr, handled: Result<Option<ResponseFrame>, api::FrameError>) -> bool {
    let response = match handled {
        Ok(r) => r,
        Err(e @ (api::FrameError::Encode { .. } | api::FrameError::AnswerLost(_))) => {
            tracing::error!(%peer, error = %e, "closing connection: no response could be made");
            return false;
        }
        Err(e) => {
            tracing::warn!(%peer, error = %e, "closing connection");
            return false;
        }
    };
    if let Some(chunks) = response {
        let written = match stream {
            Stream::Plain(s) => write_frame(s, &chunks).await,
            Stream::Tls(t) => write_frame_tls(t, &chunks).await,
        };
        match written {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                // A segment file was truncated under the fetch: what is left of the response
                // cannot be sent, and a torn frame must never look complete to the client.
                tracing::warn!(%peer, error = %e, "closing connection: fetched range no longer in its segment file");
                return false;
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "write failed");
                return false;
            }
        }
    }
    true
}

/// Why no frame was read.
enum ReadError {
    /// Closed by the client, reset, or cut off mid-frame.
    Closed(io::Error),
    /// A length prefix no request may have (negative, or over socket.request.max.bytes).
    BadFrame(crate::protocol::frame::FrameError),
}

/// Reads length-prefixed frames. Cancel safe: what was read of a frame stays here, so the
/// connection can wait for a frame and for owed answers at once and pick up where it left off.
struct FrameReader {
    max: usize,
    prefix: [u8; 4],
    got: usize,
    /// The frame body once its prefix is in, and its length.
    body: Option<(BytesMut, usize)>,
    /// When the first byte of the frame being read arrived.
    started: Option<tokio::time::Instant>,
}

impl FrameReader {
    fn new(max: usize) -> FrameReader {
        FrameReader { max, prefix: [0; 4], got: 0, body: None, started: None }
    }

    /// The next whole frame (without its prefix).
    async fn next(&mut self, stream: &Stream) -> Result<bytes::Bytes, ReadError> {
        loop {
            if let Some((body, len)) = &self.body
                && body.len() == *len
            {
                let frame = self.body.take().map(|(body, _)| body.freeze()).unwrap_or_default();
                (self.got, self.started) = (0, None);
                return Ok(frame);
            }
            let read = match stream {
                Stream::Plain(stream) => {
                    stream.readable().await.map_err(ReadError::Closed)?;
                    match &mut self.body {
                        None => stream.try_read(&mut self.prefix[self.got..]),
                        Some((body, len)) => {
                            // Limited to the frame: the next request's bytes stay in the socket.
                            let remaining = *len - body.len();
                            stream.try_read_buf(&mut bytes::BufMut::limit(&mut *body, remaining))
                        }
                    }
                }
                // Cancel safe as the plain reads: a read either returns bytes or none were taken.
                Stream::Tls(t) => {
                    let mut t: &TlsStream = t;
                    match &mut self.body {
                        None => tokio::io::AsyncReadExt::read(&mut t, &mut self.prefix[self.got..]).await,
                        Some((body, len)) => {
                            let remaining = *len - body.len();
                            tokio::io::AsyncReadExt::read_buf(&mut t, &mut bytes::BufMut::limit(&mut *body, remaining)).await
                        }
                    }
                }
            };
            match read {
                Ok(0) => return Err(ReadError::Closed(io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => {
                    self.started.get_or_insert_with(tokio::time::Instant::now);
                    if self.body.is_none() {
                        self.got += n;
                        if self.got == self.prefix.len() {
                            let len = check_request_len(self.prefix, self.max).map_err(ReadError::BadFrame)?;
                            // Uninitialised capacity: zeroing a produce frame first costs a pass over it.
                            self.body = Some((BytesMut::with_capacity(len), len));
                        }
                    }
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
                Err(e) => return Err(ReadError::Closed(e)),
            }
        }
    }
}

/// Most iovecs handed to one sendmsg (Linux accepts 1024).
const WRITEV_MAX_CHUNKS: usize = 256;

/// Most bytes asked of one sendfile call (Linux transfers at most 0x7ffff000 per call).
const SENDFILE_MAX_BYTES: usize = 0x7fff_f000;

/// Buffer for file ranges whose backend has no descriptor (the fault-injecting test backend):
/// the range is read and sent this many bytes at a time, so memory stays bounded per connection.
const FALLBACK_BUFFER_BYTES: usize = 256 * 1024;

/// How a frame went out; tests use it to prove which path carried the record bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    /// Bytes sent from memory (encoded fields) with sendmsg.
    pub memory_bytes: u64,
    /// Bytes sent file-to-socket with sendfile.
    pub sendfile_bytes: u64,
    /// Bytes of file ranges read into memory first (no descriptor).
    pub copied_file_bytes: u64,
    /// Times the socket was full and the writer waited for it.
    pub would_block: u64,
}

/// Writes every chunk of a response frame, in order. File ranges are checked against their
/// files first: a range already cut off (truncated segment) fails before any byte of the frame
/// is sent. Memory chunks go out with vectored sends (MSG_MORE when a file range follows, so the
/// kernel can pack them into the range's first packet), file chunks with sendfile.
pub(crate) async fn write_frame(stream: &TcpStream, chunks: &[Chunk]) -> io::Result<Sent> {
    check_file_ranges(chunks)?;
    let mut sent = Sent::default();
    let mut fallback = Vec::new();
    let mut i = 0;
    while i < chunks.len() {
        match &chunks[i] {
            Chunk::File(r) => {
                send_file_range(stream, r, &mut fallback, &mut sent).await?;
                i += 1;
            }
            Chunk::Memory(_) => {
                let run = chunks[i..].iter().take_while(|c| matches!(c, Chunk::Memory(_))).count();
                let bufs: Vec<&[u8]> = chunks[i..i + run]
                    .iter()
                    .filter_map(|c| match c {
                        Chunk::Memory(b) => Some(&b[..]),
                        Chunk::File(_) => None,
                    })
                    .collect();
                i += run;
                let more = i < chunks.len();
                sent.memory_bytes += send_vectored(stream, &bufs, more, &mut sent.would_block).await?;
            }
        }
    }
    Ok(sent)
}

/// Fails when a file range is already cut off (truncated segment), before any byte of the frame
/// is sent.
fn check_file_ranges(chunks: &[Chunk]) -> io::Result<()> {
    for c in chunks {
        if let Chunk::File(r) = c {
            let len = r.file.len()?;
            if len < r.position + r.len as u64 {
                return Err(r.truncated(len.saturating_sub(r.position) as usize));
            }
        }
    }
    Ok(())
}

/// Bytes gathered before each write through a TLS session: the encoded fields and the file
/// ranges of a response are packed into full TLS records (16 KiB each) instead of one record per
/// chunk, and memory per connection stays bounded.
const TLS_WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// Writes every chunk of a response frame through a TLS session, in order. sendfile cannot
/// encrypt, so file ranges are read into the buffer (on tokio's blocking threads, one hop per
/// buffer: no disk wait on an async worker), packed with the memory chunks, and written.
pub(crate) async fn write_frame_tls(stream: &TlsStream, chunks: &[Chunk]) -> io::Result<Sent> {
    use tokio::io::AsyncWriteExt;
    check_file_ranges(chunks)?;
    let mut sent = Sent::default();
    let mut w = stream;
    let total: usize = chunks.iter().map(|c| match c {
        Chunk::Memory(b) => b.len(),
        Chunk::File(r) => r.len,
    }).sum();
    let mut buf = Vec::with_capacity(total.min(TLS_WRITE_BUFFER_BYTES));
    // The chunk being packed, and how much of it is already in a buffer.
    let (mut i, mut at) = (0, 0);
    while i < chunks.len() {
        buf.clear();
        // (range, bytes into the range, where in buf, length)
        let mut reads: Vec<(FileRange, usize, usize, usize)> = Vec::new();
        while i < chunks.len() && buf.len() < TLS_WRITE_BUFFER_BYTES {
            let room = TLS_WRITE_BUFFER_BYTES - buf.len();
            let len = match &chunks[i] {
                Chunk::Memory(b) => {
                    let n = (b.len() - at).min(room);
                    buf.extend_from_slice(&b[at..at + n]);
                    sent.memory_bytes += n as u64;
                    at += n;
                    b.len()
                }
                Chunk::File(r) => {
                    let n = (r.len - at).min(room);
                    reads.push((r.clone(), at, buf.len(), n));
                    buf.resize(buf.len() + n, 0);
                    sent.copied_file_bytes += n as u64;
                    at += n;
                    r.len
                }
            };
            if at == len {
                (i, at) = (i + 1, 0);
            }
        }
        if !reads.is_empty() {
            let filled = tokio::task::spawn_blocking(move || {
                for (r, skip, pos, n) in &reads {
                    r.read_into(&mut buf[*pos..*pos + *n], *skip)?;
                }
                Ok::<_, io::Error>(buf)
            });
            buf = filled.await.map_err(io::Error::other)??;
        }
        w.write_all(&buf).await?;
    }
    w.flush().await?;
    Ok(sent)
}

/// Sends all of `bufs` with sendmsg, resuming after partial sends and waiting while the socket
/// is full. Returns the bytes sent.
async fn send_vectored(stream: &TcpStream, bufs: &[&[u8]], more: bool, would_block: &mut u64) -> io::Result<u64> {
    let fd = stream.as_raw_fd();
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    let (mut i, mut at, mut total) = (0usize, 0usize, 0u64);
    while i < bufs.len() {
        if bufs[i].len() == at {
            i += 1;
            at = 0;
            continue;
        }
        stream.writable().await?;
        let r = stream.try_io(Interest::WRITABLE, || {
            // Built inside the call: raw iovec pointers are not Send, so they must not live across
            // an await. On the stack, so a send allocates nothing.
            let mut iov = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; WRITEV_MAX_CHUNKS];
            let mut n = 0;
            for (k, b) in bufs[i..].iter().take(WRITEV_MAX_CHUNKS).enumerate() {
                let b = if k == 0 { &b[at..] } else { b };
                iov[k] = libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() };
                n += 1;
            }
            sendmsg(fd, &iov[..n], flags)
        });
        let mut n = match r {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                *would_block += 1;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        while i < bufs.len() && n >= bufs[i].len() - at {
            n -= bufs[i].len() - at;
            i += 1;
            at = 0;
        }
        at += n;
    }
    Ok(total)
}

fn sendmsg(fd: RawFd, iov: &[libc::iovec], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: msghdr is plain data; zeroed is its empty value (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: every iovec points into a live buffer the caller borrows for this call.
    let n = unsafe { libc::sendmsg(fd, &msg, flags) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// Sends one file range: sendfile from the segment file's descriptor, or, for a backend without
/// one, reads through `buf` (at most [`FALLBACK_BUFFER_BYTES`]). A file that ends inside the range
/// is UnexpectedEof; part of the range may have been sent, so the connection must be closed.
async fn send_file_range(stream: &TcpStream, r: &FileRange, buf: &mut Vec<u8>, sent: &mut Sent) -> io::Result<()> {
    // A file under the open-files budget may be closed between calls: hold the open file itself
    // (its descriptor) until the range is sent.
    let pinned = r.file.pinned()?;
    let Some(file_fd) = pinned.as_ref().unwrap_or(&r.file).raw_fd() else {
        let mut done = 0;
        while done < r.len {
            let n = (r.len - done).min(FALLBACK_BUFFER_BYTES);
            buf.resize(n, 0);
            r.read_into(&mut buf[..n], done)?;
            sent.copied_file_bytes += send_vectored(stream, &[&buf[..n]], false, &mut sent.would_block).await?;
            done += n;
        }
        return Ok(());
    };
    let sock = stream.as_raw_fd();
    let end = r.position + r.len as u64;
    let mut offset = r.position as libc::off_t;
    while (offset as u64) < end {
        let want = ((end - offset as u64) as usize).min(SENDFILE_MAX_BYTES);
        stream.writable().await?;
        let res = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the call (the stream and the Arc'd file are
            // borrowed); the kernel advances `offset` by what it sent.
            let n = unsafe { libc::sendfile(sock, file_fd, &mut offset, want) };
            if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
        });
        match res {
            Ok(0) => return Err(r.truncated((offset as u64 - r.position) as usize)),
            Ok(n) => sent.sendfile_bytes += n as u64,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => sent.would_block += 1,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::io::{FaultConfig, FaultyIo, FileIo, IoFile, OpenMode, StdIo};
    use bytes::Bytes;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A connected loopback pair: (the broker's side, the client's side). The broker's send
    /// buffer is shrunk so large frames need many partial sends.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (server, _) = accepted.expect("accept");
        socket2::SockRef::from(&server).set_send_buffer_size(4096).expect("sndbuf");
        (server, client.expect("connect"))
    }

    /// A file holding `len` bytes of a position-dependent pattern, opened through `io`.
    fn pattern_file(io: &dyn FileIo, dir: &tempfile::TempDir, len: usize) -> (Arc<dyn IoFile>, Vec<u8>) {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let f = io.open(&dir.path().join("00000000000000000000.log"), OpenMode::CreateReadWrite).expect("open");
        f.write_all_at(&data, 0).expect("write");
        (f, data)
    }

    /// Writes `chunks`, then closes; returns the writer's result and everything the client read,
    /// the client reading slowly at first so the broker's socket fills.
    async fn send_and_collect(chunks: Vec<Chunk>) -> (io::Result<Sent>, Vec<u8>) {
        let (server, mut client) = pair().await;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match client.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
                if got.len() < 256 * 1024 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            got
        });
        let result = write_frame(&server, &chunks).await;
        drop(server);
        (result, reader.await.expect("reader"))
    }

    fn mem(b: &'static [u8]) -> Chunk {
        Chunk::Memory(Bytes::from_static(b))
    }

    #[tokio::test]
    async fn file_ranges_go_out_with_sendfile_between_memory_chunks_in_order_through_partial_sends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (file, data) = pattern_file(&StdIo, &dir, 3 << 20);
        let range = |position: usize, len: usize| Chunk::File(FileRange { file: file.clone(), position: position as u64, len });
        let chunks = vec![mem(b"head"), range(1000, 2 << 20), mem(b"mid"), mem(b"dle"), range(0, 10), range(5, 1), mem(b"tail")];
        let (result, got) = send_and_collect(chunks).await;
        let sent = result.expect("sent");
        let mut want = b"head".to_vec();
        want.extend_from_slice(&data[1000..1000 + (2 << 20)]);
        want.extend_from_slice(b"middle");
        want.extend_from_slice(&data[..10]);
        want.extend_from_slice(&data[5..6]);
        want.extend_from_slice(b"tail");
        assert!(got == want, "received {} bytes, expected {}", got.len(), want.len());
        assert_eq!(sent.sendfile_bytes, (2 << 20) + 11, "every file byte went through sendfile");
        assert_eq!(sent.memory_bytes, 14);
        assert_eq!(sent.copied_file_bytes, 0);
        assert!(sent.would_block > 0, "a 4 KiB send buffer and a slow reader must force waits: {sent:?}");
    }

    #[tokio::test]
    async fn a_range_past_the_end_of_its_file_fails_before_any_byte_is_sent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (file, _) = pattern_file(&StdIo, &dir, 1000);
        let chunks = vec![mem(b"head"), Chunk::File(FileRange { file, position: 900, len: 200 }), mem(b"tail")];
        let (result, got) = send_and_collect(chunks).await;
        let e = result.expect_err("truncated file");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        assert!(got.is_empty(), "no byte of a frame that cannot be completed: got {}", got.len());
    }

    #[tokio::test]
    async fn a_file_that_ends_during_the_send_is_an_error_not_a_short_frame() {
        // The pre-check passed, then the file was cut: sendfile reaches the end of the file early.
        let dir = tempfile::tempdir().expect("tempdir");
        let (file, _) = pattern_file(&StdIo, &dir, 100_000);
        let range = FileRange { file: file.clone(), position: 0, len: 100_000 };
        file.set_len(60_000).expect("truncate");
        let (server, mut client) = pair().await;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let _ = client.read_to_end(&mut got).await;
            got.len()
        });
        let mut sent = Sent::default();
        let e = send_file_range(&server, &range, &mut Vec::new(), &mut sent).await.expect_err("short file");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        assert_eq!(sent.sendfile_bytes, 60_000);
        drop(server);
        assert_eq!(reader.await.expect("reader"), 60_000);

        // The same through the fallback: the read comes up short.
        let faulty = FaultyIo::new(Arc::new(StdIo), FaultConfig::default());
        let dir = tempfile::tempdir().expect("tempdir");
        let (file, _) = pattern_file(&faulty, &dir, 1000);
        let range = FileRange { file, position: 500, len: 1000 };
        let (server, _client) = pair().await;
        let e = send_file_range(&server, &range, &mut Vec::new(), &mut Sent::default()).await.expect_err("short file");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
    }

    #[tokio::test]
    async fn files_without_a_descriptor_are_read_through_a_bounded_buffer() {
        let faulty = FaultyIo::new(Arc::new(StdIo), FaultConfig::default());
        let dir = tempfile::tempdir().expect("tempdir");
        let (file, data) = pattern_file(&faulty, &dir, 1 << 20);
        assert!(file.raw_fd().is_none(), "the fault-injecting backend hides its descriptor");
        let len = FALLBACK_BUFFER_BYTES * 3 + 17;
        let chunks = vec![mem(b"h"), Chunk::File(FileRange { file, position: 3, len }), mem(b"t")];
        let (result, got) = send_and_collect(chunks).await;
        let sent = result.expect("sent");
        let mut want = b"h".to_vec();
        want.extend_from_slice(&data[3..3 + len]);
        want.push(b't');
        assert!(got == want, "received {} bytes, expected {}", got.len(), want.len());
        assert_eq!((sent.copied_file_bytes, sent.sendfile_bytes), (len as u64, 0));
    }

    /// A TLS session over loopback: (the broker's side, the client's side).
    async fn tls_pair() -> (TlsStream, tokio_rustls::client::TlsStream<TcpStream>) {
        use rustls::pki_types::pem::PemObject;
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params").self_signed(&key).expect("cert");
        let settings = crate::server::tls::test_settings(cert.pem(), key.serialize_pem());
        let acceptor = tokio_rustls::TlsAcceptor::from(crate::server::tls::server_config("SSL", &settings).expect("server config"));
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from_pem_slice(cert.pem().as_bytes()).expect("der")).expect("root");
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(crate::server::tls::ring_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let (server, client) = pair().await;
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let (server, client) = tokio::join!(acceptor.accept(server), connector.connect(name, client));
        (TlsStream::new(server.expect("server handshake"), PrincipalMapper::default()), client.expect("client handshake"))
    }

    #[tokio::test]
    async fn over_tls_file_ranges_are_read_and_encrypted_in_order_and_a_cut_range_fails_before_any_byte() {
        let faulty = FaultyIo::new(Arc::new(StdIo), FaultConfig::default());
        let dir = tempfile::tempdir().expect("tempdir");
        let (file, data) = pattern_file(&StdIo, &dir, 1 << 20);
        let dir2 = tempfile::tempdir().expect("tempdir");
        let (hidden, hidden_data) = pattern_file(&faulty, &dir2, 4096);
        let len = TLS_WRITE_BUFFER_BYTES * 2 + 333;
        let chunks = vec![
            mem(b"head"),
            Chunk::File(FileRange { file: file.clone(), position: 7, len }),
            mem(b"mid"),
            Chunk::File(FileRange { file: hidden, position: 10, len: 100 }),
            mem(b"tail"),
        ];
        let (server, mut client) = tls_pair().await;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let _ = client.read_to_end(&mut got).await;
            got
        });
        let sent = write_frame_tls(&server, &chunks).await.expect("sent");
        let mut w = &server;
        tokio::io::AsyncWriteExt::shutdown(&mut w).await.expect("close_notify");
        drop(server);
        let got = reader.await.expect("reader");
        let mut want = b"head".to_vec();
        want.extend_from_slice(&data[7..7 + len]);
        want.extend_from_slice(b"mid");
        want.extend_from_slice(&hidden_data[10..110]);
        want.extend_from_slice(b"tail");
        assert!(got == want, "received {} bytes, expected {}", got.len(), want.len());
        assert_eq!((sent.copied_file_bytes, sent.memory_bytes, sent.sendfile_bytes), (len as u64 + 100, 11, 0));

        // A range past the end of its file: nothing of the frame is sent.
        let (server, mut client) = tls_pair().await;
        let cut = vec![mem(b"head"), Chunk::File(FileRange { file, position: (1 << 20) - 10, len: 100 })];
        let e = write_frame_tls(&server, &cut).await.expect_err("truncated");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        drop(server);
        let mut got = Vec::new();
        let _ = client.read_to_end(&mut got).await;
        assert!(got.is_empty(), "no byte of a frame that cannot be completed: got {}", got.len());
    }

    #[tokio::test]
    async fn many_small_memory_chunks_go_out_whole_beyond_one_sendmsg_worth_of_iovecs() {
        let chunks: Vec<Chunk> = (0..WRITEV_MAX_CHUNKS * 3 + 5).map(|i| Chunk::Memory(Bytes::from(vec![i as u8; 1 + i % 300]))).collect();
        let want: Vec<u8> = chunks.iter().flat_map(|c| match c { Chunk::Memory(b) => b.to_vec(), Chunk::File(_) => unreachable!() }).collect();
        let (result, got) = send_and_collect(chunks).await;
        assert_eq!(result.expect("sent").memory_bytes, want.len() as u64);
        assert!(got == want);
    }
}
