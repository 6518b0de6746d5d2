//! OAUTHBEARER's JWKS endpoint (`sasl.oauthbearer.jwks.endpoint.url` with an `https:` or `http:`
//! URL), fetched as Kafka's RefreshingHttpsJwks fetches it: once before the listener accepts
//! connections, then every `sasl.oauthbearer.jwks.endpoint.refresh.ms`; after a failed fetch
//! again from `….retry.backoff.ms`, doubling up to `….retry.backoff.max.ms`; and early when a
//! token names a key the last JWKS did not hold (at most once per [`MISSING_KEY_MIN_INTERVAL`]).
//! The keys last fetched stay in use while fetches fail. A GET over hyper's HTTP/1 client, over
//! tokio-rustls for https; the answer is bounded by [`MAX_JWKS_BYTES`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Body;

use crate::config::JwksKeys;

/// The largest JWKS document read (a JWKS of a few dozen keys is tens of KiB).
pub const MAX_JWKS_BYTES: usize = 1 << 20;
/// How long one fetch may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// A token with an unknown key fetches the JWKS early, but not more often than this.
pub const MISSING_KEY_MIN_INTERVAL: Duration = Duration::from_secs(10);

/// Fetches the JWKS once (the listener waits for this before it accepts connections), then keeps
/// it fresh on a task that ends with the broker (`stop` changes).
pub async fn start(keys: Arc<JwksKeys>, stop: tokio::sync::watch::Receiver<bool>) {
    let tls = match https_config(&keys) {
        Ok(tls) => tls,
        Err(reason) => {
            // Settings the config check let through but rustls refuses: no fetch can work.
            tracing::error!(url = %keys.url, %reason, "OAUTHBEARER JWKS endpoint: cannot build its TLS; every signed token is refused");
            return;
        }
    };
    let first = refresh(&keys, tls.clone()).await;
    tokio::spawn(refresher(keys, tls, first, stop));
}

/// One fetch into `keys`; whether it worked.
async fn refresh(keys: &JwksKeys, tls: Option<Arc<rustls::ClientConfig>>) -> bool {
    match tokio::time::timeout(FETCH_TIMEOUT, fetch(&keys.url, tls)).await.unwrap_or_else(|_| Err("no answer within 10 s".into())) {
        Ok(set) => {
            tracing::info!(url = %keys.url, keys = set.keys.len(), "OAUTHBEARER JWKS fetched");
            keys.set(set);
            true
        }
        Err(reason) => {
            tracing::warn!(url = %keys.url, %reason, held = keys.loaded(), "OAUTHBEARER JWKS fetch failed; the keys fetched before stay in use");
            false
        }
    }
}

async fn refresher(keys: Arc<JwksKeys>, tls: Option<Arc<rustls::ClientConfig>>, mut ok: bool, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut backoff = keys.retry_backoff_ms.max(1);
    loop {
        let wait = if ok {
            backoff = keys.retry_backoff_ms.max(1);
            Duration::from_millis(keys.refresh_ms.max(1))
        } else {
            let w = Duration::from_millis(backoff);
            backoff = backoff.saturating_mul(2).min(keys.retry_backoff_max_ms.max(keys.retry_backoff_ms).max(1));
            w
        };
        let started = tokio::time::Instant::now();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = keys.missing_key.notified() => {
                // Early, for a key the JWKS did not hold: not more often than the minimum.
                let early = started + MISSING_KEY_MIN_INTERVAL;
                tokio::select! {
                    _ = tokio::time::sleep_until(early.min(started + wait)) => {}
                    _ = stop.changed() => return,
                }
            }
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        // A fetch under way when the broker stops is dropped, its answer never installed.
        ok = tokio::select! {
            biased;
            _ = stop.changed() => return,
            ok = refresh(&keys, tls.clone()) => ok,
        };
    }
}

/// The TLS of an https endpoint: the JAAS options' trust store, else the system's CAs; None for
/// http.
fn https_config(keys: &JwksKeys) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    if !keys.url.to_ascii_lowercase().starts_with("https://") {
        return Ok(None);
    }
    let roots = match &keys.truststore {
        Some(store) => crate::server::tls::roots_of(store)?,
        None => {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(format!("no CA certificate found on the system ({} errors); name a trust store in the OAUTHBEARER JAAS options (ssl.truststore.location)", found.errors.len()));
            }
            roots
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(crate::server::tls::ring_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(Arc::new(config)))
}

/// GETs `url` and reads it as a JWKS with at least one key.
pub async fn fetch(url: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Result<jsonwebtoken::jwk::JwkSet, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    let host = uri.host().ok_or("the URL names no host")?.trim_start_matches('[').trim_end_matches(']').to_string();
    let https = uri.scheme_str().is_some_and(|s| s.eq_ignore_ascii_case("https"));
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let authority = uri.authority().map_or(host.clone(), |a| a.to_string());
    let body = if https {
        let tls = tls.ok_or("an https URL without its TLS settings")?;
        let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| format!("{host} is not a server name: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.map_err(|e| format!("TLS with {host}:{port}: {e}"))?;
        get(hyper_util::rt::TokioIo::new(stream), &authority, &path).await?
    } else {
        get(hyper_util::rt::TokioIo::new(tcp), &authority, &path).await?
    };
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&body).map_err(|e| format!("not a JWKS document: {e}"))?;
    if set.keys.is_empty() {
        return Err("the JWKS holds no key".into());
    }
    Ok(set)
}

/// One HTTP/1.1 GET on an open connection; the body of a 200 answer, at most MAX_JWKS_BYTES.
async fn get<T>(io: T, authority: &str, path: &str) -> Result<Bytes, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(|e| format!("HTTP handshake: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::ACCEPT, "application/json")
        .header(hyper::header::USER_AGENT, concat!("fjord/", env!("CARGO_PKG_VERSION")))
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let answer = sender.send_request(request).await.map_err(|e| format!("GET {path}: {e}"));
    let result = async {
        let answer = answer?;
        if answer.status() != hyper::StatusCode::OK {
            return Err(format!("GET {path} answered {}", answer.status()));
        }
        let mut body = answer.into_body();
        if body.size_hint().lower() > MAX_JWKS_BYTES as u64 {
            return Err(format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes"));
        }
        let mut out = bytes::BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("reading the JWKS: {e}"))?;
            if let Some(data) = frame.data_ref() {
                if out.len() + data.len() > MAX_JWKS_BYTES {
                    return Err(format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes"));
                }
                out.extend_from_slice(data);
            }
        }
        Ok(out.freeze())
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A loopback HTTP(S) server answering every GET with the current (status, body); the
    /// certificate is made for `localhost` by a CA made here. Returns (port, CA PEM, the answer).
    async fn server(https: bool) -> (u16, String, Arc<Mutex<(u16, Vec<u8>)>>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().signed_by(&key, &ca, &ca_key).unwrap();
        let settings = crate::server::tls::test_settings(cert.pem(), key.serialize_pem());
        let acceptor = tokio_rustls::TlsAcceptor::from(crate::server::tls::server_config("https", &settings).unwrap());
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        let answer = Arc::new(Mutex::new((200u16, Vec::new())));
        let shared = answer.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = socket.accept().await {
                let (acceptor, shared) = (acceptor.clone(), shared.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| {
                        let (status, body) = shared.lock().unwrap().clone();
                        async move { hyper::Response::builder().status(status).body(http_body_util::Full::new(Bytes::from(body))) }
                    });
                    let builder = hyper::server::conn::http1::Builder::new();
                    if https {
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(tls), service).await;
                        }
                    } else {
                        let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(tcp), service).await;
                    }
                });
            }
        });
        (port, ca.pem(), answer)
    }

    fn jwks(kids: &[&str]) -> Vec<u8> {
        let keys: Vec<serde_json::Value> = kids.iter().map(|k| serde_json::json!({"kty": "oct", "k": "c2VjcmV0", "kid": k, "alg": "HS256"})).collect();
        serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap()
    }

    fn keys_for(url: String, ca_pem: Option<&str>) -> Arc<JwksKeys> {
        let store = ca_pem.map(|pem| TrustStore::Pem(crate::config::PemSource::Text(crate::config::Secret(pem.to_string()))));
        Arc::new(JwksKeys::new(url, 100, 10, 40, store))
    }

    use crate::config::TrustStore;

    #[tokio::test]
    async fn an_https_endpoint_is_fetched_against_the_named_trust_store_and_checked() {
        let (port, ca, answer) = server(true).await;
        answer.lock().unwrap().1 = jwks(&["a", "b"]);
        let url = format!("https://localhost:{port}/keys");
        let keys = keys_for(url.clone(), Some(&ca));
        let tls = https_config(&keys).unwrap();
        let set = fetch(&url, tls.clone()).await.unwrap();
        assert_eq!(set.keys.iter().filter_map(|k| k.common.key_id.clone()).collect::<Vec<_>>(), vec!["a", "b"]);
        // Another CA's trust store: the certificate is refused.
        let (_, other_ca, _) = server(true).await;
        let err = fetch(&url, https_config(&keys_for(url.clone(), Some(&other_ca))).unwrap()).await.unwrap_err();
        assert!(err.contains("TLS with localhost"), "{err}");
        // Not 200, not a JWKS, no keys, too large: refused with the reason.
        *answer.lock().unwrap() = (404, b"nope".to_vec());
        assert!(fetch(&url, tls.clone()).await.unwrap_err().contains("404"));
        *answer.lock().unwrap() = (200, b"{\"keys\": 7}".to_vec());
        assert!(fetch(&url, tls.clone()).await.unwrap_err().contains("not a JWKS"));
        *answer.lock().unwrap() = (200, jwks(&[]));
        assert!(fetch(&url, tls.clone()).await.unwrap_err().contains("no key"));
        *answer.lock().unwrap() = (200, vec![b' '; MAX_JWKS_BYTES + 1]);
        assert!(fetch(&url, tls).await.unwrap_err().contains("larger than"));
    }

    #[tokio::test]
    async fn the_refresher_keeps_the_keys_fresh_keeps_the_last_on_failure_and_stops_with_the_broker() {
        let (port, _, answer) = server(false).await;
        answer.lock().unwrap().1 = jwks(&["one"]);
        let keys = keys_for(format!("http://127.0.0.1:{port}/jwks"), None);
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        start(keys.clone(), stop).await;
        assert!(keys.find("one").is_some(), "fetched before the listener serves");
        // Rotated on the server: seen at the next refresh (every 100 ms here).
        answer.lock().unwrap().1 = jwks(&["two"]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while keys.find("two").is_none() {
            assert!(tokio::time::Instant::now() < deadline, "the rotated key was not fetched");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The endpoint fails: the last keys stay.
        answer.lock().unwrap().0 = 500;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(keys.find("two").is_some() && keys.find("one").is_none());
        stop_tx.send(true).unwrap();
        answer.lock().unwrap().0 = 200;
        answer.lock().unwrap().1 = jwks(&["three"]);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(keys.find("three").is_none(), "no fetch after the broker stopped");
    }
}
