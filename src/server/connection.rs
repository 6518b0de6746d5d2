//! One task per client connection: read a frame, dispatch it, write the response, in request
//! order (one request at a time, as Kafka mutes a channel while a request is in flight). A
//! malformed frame or header closes this connection only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::api;
use crate::broker::Broker;
use crate::protocol::frame::check_request_len;

pub async fn run(mut stream: TcpStream, peer: SocketAddr, broker: Arc<Broker>) {
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    let max = broker.config.socket_request_max_bytes;
    let mut stop = broker.shutdown_signal();
    let mut session = api::Session::new(peer);
    loop {
        let mut prefix = [0u8; 4];
        let read = tokio::select! {
            r = tokio::time::timeout(idle, stream.read_exact(&mut prefix)) => r,
            _ = stop.changed() => return,
        };
        match read {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return, // closed by the client, or reset
            Err(_) => {
                tracing::debug!(%peer, "closing idle connection (connections.max.idle.ms)");
                return;
            }
        }
        let len = match check_request_len(prefix, max) {
            Ok(len) => len,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                return;
            }
        };
        let mut frame = BytesMut::zeroed(len);
        match tokio::time::timeout(idle, stream.read_exact(&mut frame)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "connection closed mid-frame");
                return;
            }
            Err(_) => {
                tracing::warn!(%peer, "closing connection: frame body not received in time");
                return;
            }
        }
        let response = match api::handle_frame(&broker, &mut session, frame.freeze()).await {
            Ok(r) => r,
            Err(e @ api::FrameError::Encode { .. }) => {
                tracing::error!(%peer, error = %e, "closing connection: response could not be encoded");
                return;
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                return;
            }
        };
        if let Some(chunks) = response {
            if let Err(e) = write_all_chunks(&mut stream, &chunks).await {
                tracing::debug!(%peer, error = %e, "write failed");
                return;
            }
        }
    }
}

/// Most iovecs handed to one writev (Linux accepts 1024).
const WRITEV_MAX_CHUNKS: usize = 256;

/// Writes every chunk, in order, with vectored writes: the record batches of a fetch response
/// go from the log read's buffer to the socket without being copied into the response first.
async fn write_all_chunks(stream: &mut TcpStream, chunks: &[bytes::Bytes]) -> std::io::Result<()> {
    let (mut i, mut at) = (0usize, 0usize);
    while i < chunks.len() {
        let mut slices = Vec::with_capacity((chunks.len() - i).min(WRITEV_MAX_CHUNKS));
        slices.push(std::io::IoSlice::new(&chunks[i][at..]));
        slices.extend(chunks[i + 1..].iter().take(WRITEV_MAX_CHUNKS - 1).map(|c| std::io::IoSlice::new(c)));
        let mut n = stream.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while i < chunks.len() && n >= chunks[i].len() - at {
            n -= chunks[i].len() - at;
            i += 1;
            at = 0;
        }
        at += n;
    }
    Ok(())
}
