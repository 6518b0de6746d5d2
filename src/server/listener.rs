//! The accept loop: binds the PLAINTEXT listener, applies socket options, enforces
//! max.connections, and stops accepting at shutdown while connections drain.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::config::Config;

pub async fn bind(config: &Config) -> std::io::Result<TcpListener> {
    TcpListener::bind(config.bind_addr()).await
}

fn apply_socket_options(stream: &tokio::net::TcpStream, config: &Config) {
    let _ = stream.set_nodelay(true);
    let sock = socket2::SockRef::from(stream);
    if config.socket_send_buffer_bytes > 0 {
        let _ = sock.set_send_buffer_size(config.socket_send_buffer_bytes as usize);
    }
    if config.socket_receive_buffer_bytes > 0 {
        let _ = sock.set_recv_buffer_size(config.socket_receive_buffer_bytes as usize);
    }
}

/// Accepts until shutdown, then waits for every connection task to finish its current request.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>) {
    let slots = Arc::new(Semaphore::new(broker.config.max_connections));
    let mut stop = broker.shutdown_signal();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, max = broker.config.max_connections, "max.connections reached; closing new connection");
                        continue;
                    };
                    apply_socket_options(&stream, &broker.config);
                    let broker = broker.clone();
                    connections.spawn(async move {
                        super::connection::run(stream, peer, broker).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}
