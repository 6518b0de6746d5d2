//! The accept loops: binds every client listener (PLAINTEXT, SASL_PLAINTEXT, and SSL and SASL_SSL
//! with their TLS configuration),
//! applies socket options, enforces max.connections across all of them and
//! max.connections.per.ip for each client address, the connection creation rates of KIP-612
//! (max.connection.creation.rate broker-wide and per listener: accepting waits; an address over
//! its connection_creation_rate quota: its connection is held, then closed), runs each SSL
//! connection's TLS handshake within a deadline, and stops accepting at shutdown while
//! connections drain.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::broker::quotas::RateLimit;
use crate::config::{Config, Listener};
use crate::server::connection::{self, Stream, TlsStream};
use crate::server::tls::{ListenerTls, TlsError};

/// How long a client on an SSL listener has to finish its TLS handshake (Kafka has no property
/// for it; a silent or plaintext client must not hold a connection slot for long).
const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot listen on {addr}: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("TLS configuration of {0}")]
    Tls(#[from] TlsError),
}

/// A client listener bound to its port, ready to serve.
pub struct BoundListener {
    pub listener: Listener,
    pub socket: TcpListener,
    pub local_addr: SocketAddr,
    /// The TLS of an SSL or SASL_SSL listener (reloadable).
    pub tls: Option<Arc<ListenerTls>>,
}

/// Binds every client listener of the node (on a controller-only node, none), building each SSL
/// listener's TLS configuration first so a bad key store stops startup.
pub async fn bind(config: &Config) -> Result<Vec<BoundListener>, BindError> {
    let mut bound = Vec::new();
    let served: Vec<&Listener> = match config.topology.client_listener() {
        Some(_) => config.topology.client_listeners().collect(),
        // A controller-only node serves its controller listener to clients, as before.
        None => config.topology.controller_listener().into_iter().collect(),
    };
    for l in served {
        let tls = match &l.ssl {
            Some(ssl) => Some(Arc::new(ListenerTls::new(&l.name, ssl)?)),
            None => None,
        };
        let addr = format!("{}:{}", l.endpoint.host, l.endpoint.port);
        let io = |source| BindError::Io { addr: addr.clone(), source };
        let socket = TcpListener::bind(&addr).await.map_err(io)?;
        let local_addr = socket.local_addr().map_err(io)?;
        bound.push(BoundListener { listener: l.clone(), socket, local_addr, tls });
    }
    Ok(bound)
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

/// Serves every bound listener until shutdown, then waits for every connection task to finish
/// its current request. max.connections counts the connections of all listeners together.
pub async fn serve(listeners: Vec<BoundListener>, broker: Arc<Broker>) {
    let slots = Arc::new(Semaphore::new(broker.config.max_connections));
    let per_ip = Arc::new(ConnectionsPerIp::new(broker.config.max_connections_per_ip, broker.config.max_connections_per_ip_overrides.clone()));
    let config = &broker.config;
    // Every limit exists even when unlimited (an infinite quota): a dynamic change may set one.
    let limit = |listener: Option<String>| {
        let rate = Arc::new(RateLimit::new(f64::INFINITY, config.quota_window_num, config.quota_window_size_seconds.saturating_mul(1000)));
        broker.register_creation_rate(listener, rate.clone());
        Some(rate)
    };
    let broker_rate = limit(None);
    let count = listeners.len();
    let mut loops = JoinSet::new();
    for l in listeners {
        if let Some(tls) = &l.tls {
            broker.register_listener_tls(tls.clone());
            if broker.config.ssl_reload_check_interval_ms > 0 {
                loops.spawn(check_store_files(tls.clone(), broker.clone()));
            }
        }
        let rates = CreationRates {
            broker: broker_rate.clone(),
            listener: limit(Some(l.listener.name.clone())),
            // Kafka leaves the inter-broker listener out of the broker-wide rate when there are
            // others, so that brokers can always reach each other.
            protected: count > 1 && config.topology.inter_broker_listener_name.as_deref() == Some(l.listener.name.as_str()),
        };
        loops.spawn(serve_one(l, broker.clone(), slots.clone(), per_ip.clone(), rates));
    }
    while loops.join_next().await.is_some() {}
}

/// Every `fjord.ssl.reload.check.interval.ms`, reloads the listener's stores when their files'
/// content changed (what a certificate manager renewing the files expects), until shutdown.
async fn check_store_files(tls: Arc<ListenerTls>, broker: Arc<Broker>) {
    let mut stop = broker.shutdown_signal();
    let interval = Duration::from_millis(broker.config.ssl_reload_check_interval_ms);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {
                let tls = tls.clone();
                // Reads and parses files: off the async workers.
                let _ = tokio::task::spawn_blocking(move || tls.reload_changed_files()).await;
            }
            _ = stop.changed() => return,
        }
    }
}

/// The connection creation rates one listener's accepts count against.
struct CreationRates {
    broker: Option<Arc<RateLimit>>,
    listener: Option<Arc<RateLimit>>,
    protected: bool,
}

impl CreationRates {
    fn counted(&self) -> impl Iterator<Item = &RateLimit> {
        self.broker.as_deref().filter(|_| !self.protected).into_iter().chain(self.listener.as_deref())
    }

    /// Counts one new connection; how long accepting must wait to keep to the rates (ms).
    fn record(&self) -> u64 {
        self.counted().map(RateLimit::record).max().unwrap_or(0)
    }

    /// Takes back a connection refused by its address's own quota (as Kafka does).
    fn unrecord(&self) {
        self.counted().for_each(RateLimit::unrecord);
    }
}

async fn serve_one(bound: BoundListener, broker: Arc<Broker>, slots: Arc<Semaphore>, per_ip: Arc<ConnectionsPerIp>, rates: CreationRates) {
    let BoundListener { listener, socket, tls, .. } = bound;
    let name: Arc<str> = Arc::from(listener.name.as_str());
    // OAUTHBEARER's https JWKS: fetched once before the first connection, then kept fresh.
    if let Some(crate::config::JwksSource::Endpoint(keys)) = listener.sasl.as_ref().and_then(|s| s.oauthbearer.jwt.as_ref()).map(|j| &j.jwks) {
        crate::server::sasl::jwks::start(keys.clone(), broker.shutdown_signal()).await;
    }
    let mut stop = broker.shutdown_signal();
    let mut connections = JoinSet::new();
    let open = broker.metrics.connections(&name);
    let created = broker.metrics.connections_created(&name);
    loop {
        tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Over max.connection.creation.rate this listener accepts nothing more
                    // until the rate is back to it (Kafka's acceptor waits the same way).
                    let wait = rates.record();
                    if wait > 0 {
                        tracing::debug!(%peer, listener = %name, wait_ms = wait, "max.connection.creation.rate reached; accepting waits");
                        let stopped = tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(wait)) => false,
                            _ = stop.changed() => true,
                        };
                        if stopped {
                            break;
                        }
                    }
                    // Over its address's connection_creation_rate: not served, and closed
                    // only after the throttle time, as Kafka delays the close.
                    let throttle = broker.quotas.record_connection(peer.ip());
                    if throttle > 0 {
                        rates.unrecord();
                        tracing::debug!(%peer, listener = %name, throttle_ms = throttle, "connection_creation_rate reached for the address; closing the connection after the throttle time");
                        let mut stop = broker.shutdown_signal();
                        connections.spawn(async move {
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_millis(throttle)) => {}
                                _ = stop.changed() => {}
                            }
                            drop(stream);
                        });
                        continue;
                    }
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, max = broker.config.max_connections, "max.connections reached; closing new connection");
                        continue;
                    };
                    let ip_slot = match per_ip.take(peer.ip()) {
                        Ok(slot) => slot,
                        Err(max) => {
                            tracing::info!(%peer, listener = %name, max, "closing new connection: max.connections.per.ip reached for its address");
                            continue;
                        }
                    };
                    apply_socket_options(&stream, &broker.config);
                    created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let (broker, tls, name, sasl) = (broker.clone(), tls.clone(), name.clone(), listener.sasl.clone());
                    let open = OpenConnection::counted(open.clone());
                    connections.spawn(async move {
                        let (_open, _ip_slot) = (open, ip_slot);
                        let stream = match tls {
                            None => Stream::Plain(stream),
                            // The TLS as it is at accept: a reload later leaves this connection alone.
                            Some(tls) => {
                                let (acceptor, mapping) = tls.for_connection();
                                match handshake(&acceptor, stream, peer, &name, &broker).await {
                                    Some(s) => Stream::Tls(Box::new(TlsStream::new(s, mapping))),
                                    None => return,
                                }
                            }
                        };
                        connection::run(stream, peer, broker, name, sasl).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    tracing::warn!(error = %e, listener = %name, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(socket);
    while connections.join_next().await.is_some() {}
}

/// Open connections per client address, against `max.connections.per.ip` and its overrides, over
/// every listener together (as Kafka's ConnectionQuotas counts them).
struct ConnectionsPerIp {
    default_max: usize,
    overrides: BTreeMap<IpAddr, usize>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ConnectionsPerIp {
    fn new(default_max: usize, overrides: BTreeMap<IpAddr, usize>) -> ConnectionsPerIp {
        ConnectionsPerIp { default_max, overrides, open: Mutex::new(HashMap::new()) }
    }

    /// A slot for one more connection from `ip`, held until dropped; Err(limit) when the
    /// address already has its most.
    fn take(self: &Arc<Self>, ip: IpAddr) -> Result<IpSlot, usize> {
        let max = self.overrides.get(&ip).copied().unwrap_or(self.default_max);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            if *n == 0 {
                open.remove(&ip);
            }
            return Err(max);
        }
        *n += 1;
        Ok(IpSlot { quotas: self.clone(), ip })
    }

    #[cfg(test)]
    fn open_from(&self, ip: IpAddr) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).get(&ip).copied().unwrap_or(0)
    }
}

/// One connection counted against its address; the count drops with it.
struct IpSlot {
    quotas: Arc<ConnectionsPerIp>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.quotas.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// One open connection in its listener's gauge, from accept until its task ends.
struct OpenConnection(Arc<std::sync::atomic::AtomicI64>);

impl OpenConnection {
    fn counted(gauge: Arc<std::sync::atomic::AtomicI64>) -> OpenConnection {
        gauge.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        OpenConnection(gauge)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The server side of a TLS handshake, within [`TLS_HANDSHAKE_TIMEOUT_MS`] and given up at
/// shutdown. None: the connection is closed (logged with the peer and the reason); nothing else
/// is affected.
async fn handshake(acceptor: &tokio_rustls::TlsAcceptor, stream: tokio::net::TcpStream, peer: SocketAddr, listener: &str, broker: &Broker) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let mut stop = broker.shutdown_signal();
    let deadline = Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS.min(broker.config.connections_max_idle_ms));
    tokio::select! {
        done = tokio::time::timeout(deadline, acceptor.accept(stream)) => match done {
            Ok(Ok(s)) => Some(s),
            Ok(Err(e)) => {
                // rustls calls bytes that are not TLS records "corrupt": say what it usually is.
                let hint = if e.to_string().contains("InvalidContentType") || e.to_string().contains("corrupt message") { " (not TLS: a plaintext client on an SSL listener?)" } else { "" };
                tracing::warn!(%peer, %listener, error = %e, "closing connection: TLS handshake failed{hint}");
                None
            }
            Err(_) => {
                tracing::warn!(%peer, %listener, timeout_ms = deadline.as_millis() as u64, "closing connection: TLS handshake not finished in time");
                None
            }
        },
        _ = stop.changed() => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_gets_its_limit_and_a_closed_connection_frees_its_slot() {
        let q = Arc::new(ConnectionsPerIp::new(2, BTreeMap::from([(ip("10.0.0.9"), 3)])));
        let a = q.take(ip("10.0.0.1")).unwrap();
        let _b = q.take(ip("10.0.0.1")).unwrap();
        assert_eq!(q.take(ip("10.0.0.1")).err(), Some(2), "the default limit");
        assert!(q.take(ip("10.0.0.2")).is_ok(), "another address has its own count");
        drop(a);
        assert_eq!(q.open_from(ip("10.0.0.1")), 1);
        assert!(q.take(ip("10.0.0.1")).is_ok(), "a closed connection gives its slot back");
        let over: Vec<_> = (0..3).map(|_| q.take(ip("10.0.0.9")).unwrap()).collect();
        assert_eq!(q.take(ip("10.0.0.9")).err(), Some(3), "an override replaces the default");
        drop(over);
        assert_eq!(q.open_from(ip("10.0.0.9")), 0);
    }

    #[test]
    fn a_zero_default_admits_only_overridden_addresses() {
        let q = Arc::new(ConnectionsPerIp::new(0, BTreeMap::from([(ip("127.0.0.1"), 1)])));
        assert_eq!(q.take(ip("10.0.0.1")).err(), Some(0));
        assert!(q.open.lock().unwrap().is_empty(), "a refused address leaves no entry behind");
        assert!(q.take(ip("127.0.0.1")).is_ok());
    }

    /// SO_RCVBUF of one accepted loopback connection after `apply_socket_options` with `props`,
    /// and of a connection left as the kernel made it.
    async fn receive_buffers(props: &[(&str, &str)]) -> (usize, usize) {
        let config = Config::from_properties(props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_client, _untouched_client) = (tokio::net::TcpStream::connect(addr).await.unwrap(), tokio::net::TcpStream::connect(addr).await.unwrap());
        let (configured, _) = listener.accept().await.unwrap();
        let (untouched, _) = listener.accept().await.unwrap();
        apply_socket_options(&configured, &config);
        let size = |s: &tokio::net::TcpStream| socket2::SockRef::from(s).recv_buffer_size().unwrap();
        (size(&configured), size(&untouched))
    }

    #[tokio::test]
    async fn the_receive_buffer_is_the_kernels_by_default_and_fixed_when_configured() {
        let (configured, untouched) = receive_buffers(&[]).await;
        assert_eq!(configured, untouched, "by default (-1) SO_RCVBUF is left to the kernel, which autotunes it");
        let (configured, untouched) = receive_buffers(&[("socket.receive.buffer.bytes", "102400")]).await;
        // Linux doubles the value asked for (bookkeeping overhead).
        assert_eq!(configured, 2 * 102400, "Kafka's 102400 is applied when set");
        assert_ne!(configured, untouched);
    }
}
