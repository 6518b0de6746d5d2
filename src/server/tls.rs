//! TLS of SSL listeners: builds each listener's rustls server configuration from its `ssl.*`
//! settings (PEM key stores and trust stores, client authentication, versions, cipher suites)
//! at startup, and swaps it at run time when the stores change (AlterConfigs, or new file
//! content), after Kafka's checks of the new certificate. Reads the store files; never sees a
//! request. The handshake itself is rustls's (tokio-rustls), run by the accept loop.

use std::sync::{Arc, Mutex, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::config::{ClientAuth, KeyStore, PemSource, SslSettings, TlsVersion, TrustStore};

/// Why an SSL listener's TLS configuration could not be built; names the listener and the
/// property, never a secret.
#[derive(Debug, thiserror::Error)]
#[error("listener {listener}: {property}: {reason}")]
pub struct TlsError {
    pub listener: String,
    pub property: &'static str,
    pub reason: String,
}

/// The rustls server configuration of SSL listener `listener`.
pub fn server_config(listener: &str, s: &SslSettings) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    server_config_and_leaf(listener, s).map(|(config, _)| config)
}

/// The server configuration and the certificate it presents (the first of the key store's chain).
fn server_config_and_leaf(listener: &str, s: &SslSettings) -> Result<(Arc<rustls::ServerConfig>, CertificateDer<'static>), TlsError> {
    let err = |property: &'static str, reason: String| TlsError { listener: listener.to_string(), property, reason };
    let provider = Arc::new(provider(s).map_err(|r| err("ssl.cipher.suites", r))?);
    let (chain, key) = key_store(s).map_err(|(p, r)| err(p, r))?;
    let leaf = chain[0].clone();
    let versions = protocol_versions(s);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| err("ssl.enabled.protocols", format!("{e} (do ssl.cipher.suites include one of each enabled version?)")))?;
    let builder = match s.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let (property, roots) = trust_roots(s, "client certificates need a trust store").map_err(|(p, r)| err(p, r))?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Requested { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| err(property, e.to_string()))?)
        }
    };
    let config = builder.with_single_cert(chain, key).map_err(|e| err("ssl.keystore.location", format!("the key does not fit the certificate: {e}")))?;
    Ok((Arc::new(config), leaf))
}

/// The CA certificates of the trust store (`why_needed` says what needs one when there is none).
/// Ok: (the property that named the store, the roots); Err: (property, reason).
fn trust_roots(s: &SslSettings, why_needed: &str) -> Result<(&'static str, rustls::RootCertStore), (&'static str, String)> {
    let Some(store) = &s.truststore else {
        return Err(("ssl.truststore.location", why_needed.to_string()));
    };
    let property = match store {
        TrustStore::Pem(PemSource::Text(_)) => "ssl.truststore.certificates",
        TrustStore::Pem(PemSource::File(_)) | TrustStore::Pkcs12 { .. } => "ssl.truststore.location",
    };
    roots_of(store).map(|roots| (property, roots)).map_err(|reason| (property, reason))
}

/// The CA certificates of a trust store, for rustls.
pub fn roots_of(store: &TrustStore) -> Result<rustls::RootCertStore, String> {
    let certs: Vec<CertificateDer<'static>> = match store {
        TrustStore::Pem(source) => {
            let pem = read_pem(source)?;
            CertificateDer::pem_slice_iter(&pem).collect::<Result<_, _>>().map_err(|e| format!("bad PEM: {e}"))?
        }
        TrustStore::Pkcs12 { path, password } => {
            let p12 = open_pkcs12(path, password.as_ref().map_or("", |p| p.0.as_str()))?;
            p12.entries()
                .filter_map(|(_, e)| match e {
                    p12_keystore::KeyStoreEntry::Certificate(c) => Some(CertificateDer::from(c.as_der().to_vec())),
                    _ => None,
                })
                .collect()
        }
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| format!("not a CA certificate rustls accepts: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no CERTIFICATE in the trust store".into());
    }
    Ok(roots)
}

/// The TLS a node connects to other nodes with on SSL listener `listener` (its
/// `inter.broker.listener.name`, or the controller listener), from that listener's settings as
/// Kafka's client takes them: the trust store checks the peer's certificate (for the host it
/// advertises, or only its chain: `ssl.endpoint.identification.algorithm`), the key store, when
/// there is one, is the client certificate a peer asking for one gets (without one the node
/// offers none, and a listener with `ssl.client.auth=required` refuses it), the versions and
/// cipher suites are the listener's.
pub fn client_config(listener: &str, s: &SslSettings) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let err = |property: &'static str, reason: String| TlsError { listener: listener.to_string(), property, reason };
    let provider = Arc::new(provider(s).map_err(|r| err("ssl.cipher.suites", r))?);
    let (_, roots) = trust_roots(s, "a node needs a trust store to check the certificates of the nodes it connects to").map_err(|(p, r)| err(p, r))?;
    let versions = protocol_versions(s);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone()).with_protocol_versions(&versions).map_err(|e| err("ssl.enabled.protocols", e.to_string()))?;
    let builder = if s.endpoint_identification {
        builder.with_root_certificates(roots)
    } else {
        let roots = Arc::new(roots);
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone()).build().map_err(|e| err("ssl.truststore.location", e.to_string()))?;
        builder.dangerous().with_custom_certificate_verifier(Arc::new(ChainOnly { roots, webpki, algorithms: provider.signature_verification_algorithms }))
    };
    let config = match &s.keystore {
        None => builder.with_no_client_auth(),
        Some(_) => {
            let (chain, key) = key_store(s).map_err(|(p, r)| err(p, r))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| err("ssl.keystore.location", format!("the key does not fit the certificate: {e}")))?
        }
    };
    Ok(Arc::new(config))
}

/// `ssl.endpoint.identification.algorithm` empty: a peer's certificate must chain to the trust
/// store (and its handshake signatures verify), whatever host it is for, as Kafka's client
/// checks it without endpoint identification.
#[derive(Debug)]
struct ChainOnly {
    roots: Arc<rustls::RootCertStore>,
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self, end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>], _server_name: &rustls::pki_types::ServerName<'_>, _ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(&cert, &self.roots, intermediates, now, self.algorithms.all)?;
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &rustls::DigitallySignedStruct) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &rustls::DigitallySignedStruct) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// An SSL listener's TLS as it is now: new connections take the current acceptor; a reload
/// installs another one (connections already open keep the session they negotiated).
pub struct ListenerTls {
    pub listener: String,
    current: RwLock<Arc<Installed>>,
    /// The store files' digest of the last reload that failed: the check does not retry (and
    /// log) the same broken content again.
    failed: Mutex<Option<[u8; 32]>>,
}

/// One built TLS configuration with what it was built from.
struct Installed {
    settings: SslSettings,
    acceptor: tokio_rustls::TlsAcceptor,
    /// The certificate the listener presents.
    leaf: CertificateDer<'static>,
    /// Digest of the store files' content when they were read.
    files: [u8; 32],
}

/// A new TLS configuration, built and checked, not yet serving ([`ListenerTls::install`]).
pub struct Reload(Arc<Installed>);

impl ListenerTls {
    /// Builds the listener's TLS at startup: a bad store is an error.
    pub fn new(listener: &str, settings: &SslSettings) -> Result<ListenerTls, TlsError> {
        let installed = build(listener, settings)?;
        Ok(ListenerTls { listener: listener.to_string(), current: RwLock::new(Arc::new(installed)), failed: Mutex::new(None) })
    }

    fn current(&self) -> Arc<Installed> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        self.current().acceptor.clone()
    }

    /// The settings the listener serves with now.
    pub fn settings(&self) -> SslSettings {
        self.current().settings.clone()
    }

    /// What a new connection is served with: the acceptor and the principal mapping rules, of
    /// the same configuration.
    pub fn for_connection(&self) -> (tokio_rustls::TlsAcceptor, crate::config::principal_mapping::PrincipalMapper) {
        let current = self.current();
        (current.acceptor.clone(), current.settings.principal_mapping.clone())
    }

    /// Builds and checks the listener's TLS from `next`, as Kafka's SslFactory validates a
    /// reconfiguration: the stores must open, a trust store cannot appear where there was none,
    /// and the new certificate keeps the subject (unless `ssl.allow.dn.changes`) and every
    /// subject alternative name (unless `ssl.allow.san.changes`) of the current one. `None` when
    /// neither the settings nor the store files' content changed. Err: Kafka's reason.
    pub fn prepare(&self, next: &SslSettings) -> Result<Option<Reload>, String> {
        let current = self.current();
        if *next == current.settings && store_digest(next) == current.files {
            return Ok(None);
        }
        let failed = |reason: String| format!("Validation of dynamic config update of SSLFactory failed: {reason}");
        if current.settings.truststore.is_none() && next.truststore.is_some() {
            return Err(failed("Cannot add SSL truststore to an existing listener for which no truststore was configured.".into()));
        }
        let built = build(&self.listener, next).map_err(|e| failed(e.to_string()))?;
        compatible(&current.leaf, &built.leaf, next.allow_dn_changes, next.allow_san_changes).map_err(failed)?;
        Ok(Some(Reload(Arc::new(built))))
    }

    /// Serves new connections with `reload`.
    pub fn install(&self, reload: Reload) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = reload.0;
        *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = None;
        tracing::info!(listener = %self.listener, "SSL key store and trust store reloaded");
    }

    /// The periodic check (`fjord.ssl.reload.check.interval.ms`): when the store files' content
    /// changed, reloads them through [`Self::prepare`]'s checks. A refused reload is logged once
    /// per content and the listener keeps its current certificate.
    pub fn reload_changed_files(&self) {
        let current = self.current();
        let digest = store_digest(&current.settings);
        if digest == current.files || *self.failed.lock().unwrap_or_else(|e| e.into_inner()) == Some(digest) {
            return;
        }
        match self.prepare(&current.settings) {
            Ok(Some(reload)) => self.install(reload),
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(listener = %self.listener, %reason, "the SSL store files changed but cannot be loaded; the listener keeps its certificate");
                *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(digest);
            }
        }
    }
}

fn build(listener: &str, settings: &SslSettings) -> Result<Installed, TlsError> {
    // The digest first: a file that changes while it is read is seen as changed at the next check.
    let files = store_digest(settings);
    let (config, leaf) = server_config_and_leaf(listener, settings)?;
    Ok(Installed { settings: settings.clone(), acceptor: tokio_rustls::TlsAcceptor::from(config), leaf, files })
}

/// SHA-256 over the content of the key store and trust store files (an unreadable file counts
/// as empty); stores given as property text are part of the settings instead.
fn store_digest(s: &SslSettings) -> [u8; 32] {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    let keystore = match &s.keystore {
        Some(KeyStore::File(path) | KeyStore::Pkcs12 { path, .. }) => Some(path),
        Some(KeyStore::Text { .. }) | None => None,
    };
    let truststore = match &s.truststore {
        Some(TrustStore::Pem(PemSource::File(path)) | TrustStore::Pkcs12 { path, .. }) => Some(path),
        _ => None,
    };
    for path in [keystore, truststore] {
        let content = path.and_then(|p| std::fs::read(p).ok()).unwrap_or_default();
        digest.update((content.len() as u64).to_be_bytes());
        digest.update(&content);
    }
    digest.finalize().into()
}

/// Kafka's checks of a new key store's certificate against the current one: the same subject
/// (compared as RFC 2253 text, ignoring case) unless `allow_dn_changes`, every current subject
/// alternative name still present unless `allow_san_changes`.
fn compatible(old: &[u8], new: &[u8], allow_dn_changes: bool, allow_san_changes: bool) -> Result<(), String> {
    if !allow_dn_changes {
        let (old_dn, new_dn) = (certificate_subject(old).unwrap_or_default(), certificate_subject(new).unwrap_or_default());
        if !old_dn.eq_ignore_ascii_case(&new_dn) {
            return Err(format!("Keystore DistinguishedName does not match: existing={{DN={old_dn}}}, new={{DN={new_dn}}}"));
        }
    }
    if !allow_san_changes {
        let (old_sans, new_sans) = (subject_alt_names(old), subject_alt_names(new));
        if !old_sans.iter().all(|s| new_sans.contains(s)) {
            return Err(format!("Keystore SubjectAltNames do not match: existing={{SAN=[{}]}}, new={{SAN=[{}]}}", old_sans.join(", "), new_sans.join(", ")));
        }
    }
    Ok(())
}

/// A certificate's subject alternative names, each as `<kind>:<value>`.
fn subject_alt_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return Vec::new() };
    let Ok(Some(san)) = cert.subject_alternative_name() else { return Vec::new() };
    san.value.general_names.iter().map(|n| n.to_string()).collect()
}

/// rustls's versions of `ssl.enabled.protocols`.
fn protocol_versions(s: &SslSettings) -> Vec<&'static rustls::SupportedProtocolVersion> {
    s.enabled_protocols
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect()
}

/// rustls's provider on *ring*. rustls 0.23.48 deprecates it because *ring* offers no
/// post-quantum key exchange; it stays because it builds with nothing beyond a C compiler, and the
/// Java clients Fjord serves negotiate no post-quantum group either. The one place that says so.
#[allow(deprecated)]
pub fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// ring's provider, its cipher suites cut to `ssl.cipher.suites` when that is set. Kafka names
/// suites as IANA does (TLS_AES_128_GCM_SHA256); rustls's names of TLS 1.3 suites start TLS13_.
fn provider(s: &SslSettings) -> Result<CryptoProvider, String> {
    let mut provider = ring_provider();
    if s.cipher_suites.is_empty() {
        return Ok(provider);
    }
    let iana = |suite: &rustls::SupportedCipherSuite| format!("{:?}", suite.suite()).replacen("TLS13_", "TLS_", 1);
    if let Some(unknown) = s.cipher_suites.iter().find(|n| !provider.cipher_suites.iter().any(|c| &iana(c) == *n)) {
        let known: Vec<String> = provider.cipher_suites.iter().map(iana).collect();
        return Err(format!("{unknown} is not offered; the suites are {}", known.join(", ")));
    }
    provider.cipher_suites.retain(|c| s.cipher_suites.contains(&iana(c)));
    Ok(provider)
}

/// The certificate chain and private key of the key store. Err: (property, reason).
fn key_store(s: &SslSettings) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), (&'static str, String)> {
    let Some(keystore) = &s.keystore else {
        // Settings read as a client's (config::SslSettings::parse_client) never reach a server.
        return Err(("ssl.keystore.location", "an SSL listener needs its certificate and key: ssl.keystore.location, or ssl.keystore.certificate.chain with ssl.keystore.key".into()));
    };
    if let KeyStore::Pkcs12 { path, password } = keystore {
        let p12 = open_pkcs12(path, &password.0).map_err(|r| ("ssl.keystore.location", r))?;
        let (_, entry) = p12.private_key_chain().ok_or(("ssl.keystore.location", "no private key entry in the PKCS12 key store".to_string()))?;
        let chain: Vec<CertificateDer<'static>> = entry.chain().iter().map(|c| CertificateDer::from(c.as_der().to_vec())).collect();
        if chain.is_empty() {
            return Err(("ssl.keystore.location", "the key entry has no certificate chain".into()));
        }
        return Ok((chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(entry.key().to_vec()))));
    }
    let (chain_pem, key_pem, chain_property, key_property) = match keystore {
        KeyStore::File(path) => {
            let pem = read_pem(&PemSource::File(path.clone())).map_err(|r| ("ssl.keystore.location", r))?;
            (pem.clone(), pem, "ssl.keystore.location", "ssl.keystore.location")
        }
        KeyStore::Text { chain, key } => (chain.0.clone().into_bytes(), key.0.clone().into_bytes(), "ssl.keystore.certificate.chain", "ssl.keystore.key"),
        KeyStore::Pkcs12 { .. } => unreachable!("handled above"),
    };
    let chain = CertificateDer::pem_slice_iter(&chain_pem).collect::<Result<Vec<_>, _>>().map_err(|e| (chain_property, format!("bad PEM: {e}")))?;
    if chain.is_empty() {
        return Err((chain_property, "no CERTIFICATE in the key store".into()));
    }
    let key = private_key(&key_pem, s.key_password.as_ref().map(|p| p.0.as_str())).map_err(|r| (key_property, r))?;
    Ok((chain, key))
}

/// The private key of a PEM store: an encrypted PKCS#8 key (ENCRYPTED PRIVATE KEY, decrypted with
/// `ssl.key.password`, as Kafka's PEM key stores hold them), else a plain PKCS#8, PKCS#1 or SEC1 key.
fn private_key(pem: &[u8], password: Option<&str>) -> Result<PrivateKeyDer<'static>, String> {
    const BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    let text = std::str::from_utf8(pem).map_err(|_| "the PEM is not text".to_string())?;
    if let Some(start) = text.find(BEGIN) {
        let end = text[start..].find(END).map(|e| start + e + END.len()).ok_or("an ENCRYPTED PRIVATE KEY without its END line")?;
        let password = password.ok_or("the key is encrypted: set ssl.key.password")?;
        let (_, der) = pkcs8::der::pem::decode_vec(&text.as_bytes()[start..end]).map_err(|e| format!("bad PEM: {e}"))?;
        let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice()).map_err(|e| format!("not an encrypted PKCS#8 key: {e}"))?;
        let plain = encrypted.decrypt(password).map_err(|e| format!("cannot decrypt the key with ssl.key.password (wrong password or an unsupported cipher): {e}"))?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(plain.as_bytes().to_vec())));
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY): {e}"))
}

/// A PKCS12 store, its MAC checked and its bags decrypted with `password`.
fn open_pkcs12(path: &std::path::Path, password: &str) -> Result<p12_keystore::KeyStore, String> {
    let der = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    p12_keystore::KeyStore::from_pkcs12(&der, password).map_err(|e| format!("cannot open the PKCS12 store {} (wrong password?): {e}", path.display()))
}

fn read_pem(source: &PemSource) -> Result<Vec<u8>, String> {
    match source {
        PemSource::File(path) => std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display())),
        PemSource::Text(text) => Ok(text.0.clone().into_bytes()),
    }
}

/// A certificate's subject as Java's X500Principal.getName() prints it, what Kafka's
/// `ssl.principal.mapping.rules` apply to (RFC 2253: the last RDN first, `,` between RDNs, `+`
/// inside one, CN/C/L/ST/STREET/O/OU/DC/UID by name, other attributes as `oid=#<hex of the DER
/// value>`, special characters escaped). `None` when the certificate cannot be parsed.
/// Kafka's principal of a TLS client's certificate, when it sent one: `User:` and the name
/// `mapping` (`ssl.principal.mapping.rules`) gives its subject. Err: no rule applies (Kafka fails
/// the authentication).
pub fn certificate_principal(session: &rustls::ServerConnection, mapping: &crate::config::principal_mapping::PrincipalMapper) -> Option<Result<String, String>> {
    let cert = session.peer_certificates()?.first()?;
    let subject = certificate_subject(cert)?;
    Some(mapping.name(&subject).map(|name| format!("User:{name}")))
}

pub fn certificate_subject(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut rdns: Vec<String> = cert
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let oid = attr.attr_type().to_id_string();
                    let name = match oid.as_str() {
                        "2.5.4.3" => "CN",
                        "2.5.4.6" => "C",
                        "2.5.4.7" => "L",
                        "2.5.4.8" => "ST",
                        "2.5.4.9" => "STREET",
                        "2.5.4.10" => "O",
                        "2.5.4.11" => "OU",
                        "0.9.2342.19200300.100.1.25" => "DC",
                        "0.9.2342.19200300.100.1.1" => "UID",
                        _ => "",
                    };
                    match (name, attr.as_str()) {
                        ("", _) | (_, Err(_)) => {
                            let raw = attr.attr_value().as_bytes();
                            // The value's DER: its tag, its length (short form below 128 bytes), its bytes.
                            let mut der = vec![attr.attr_value().header.tag().0 as u8];
                            if raw.len() < 128 {
                                der.push(raw.len() as u8);
                            } else {
                                let len = (raw.len() as u32).to_be_bytes();
                                let skip = len.iter().take_while(|b| **b == 0).count();
                                der.push(0x80 | (4 - skip) as u8);
                                der.extend_from_slice(&len[skip..]);
                            }
                            der.extend_from_slice(raw);
                            let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
                            format!("{}=#{hex}", if name.is_empty() { oid.as_str() } else { name })
                        }
                        (name, Ok(value)) => format!("{name}={}", rfc2253_escape(value)),
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.reverse();
    Some(rdns.join(","))
}

/// RFC 2253's escaping of an attribute value: `,+"\<>;` anywhere, `#` or a space first, a space last.
fn rfc2253_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') || (i == 0 && (c == '#' || c == ' ')) || (i == last && c == ' ') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Tests' listener settings: this PEM certificate chain and key, the defaults otherwise.
#[cfg(test)]
pub(crate) fn test_settings(chain: String, key: String) -> SslSettings {
    SslSettings {
        keystore: Some(crate::config::KeyStore::Text { chain: crate::config::Secret(chain), key: crate::config::Secret(key) }),
        key_password: None,
        truststore: None,
        client_auth: ClientAuth::None,
        enabled_protocols: vec![TlsVersion::Tls12, TlsVersion::Tls13],
        cipher_suites: vec![],
        principal_mapping: Default::default(),
        allow_dn_changes: false,
        allow_san_changes: false,
        endpoint_identification: true,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_client_certificates_subject_is_kafkas_principal_in_rfc_2253() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc.");
        dn.push(rcgen::DnType::OrganizationalUnitName, "eng");
        dn.push(rcgen::DnType::CommonName, "alice");
        params.distinguished_name = dn;
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(certificate_subject(cert.der()).as_deref(), Some("CN=alice,OU=eng,O=Acme\\, Inc.,C=US"));
        assert_eq!(certificate_subject(b"not a certificate"), None);
        assert_eq!(rfc2253_escape("#a+b "), "\\#a\\+b\\ ");
    }

    use super::*;
    use crate::config::Secret;

    fn settings(chain: String, key: String) -> SslSettings {
        test_settings(chain, key)
    }

    fn self_signed() -> (String, String, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params").self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem(), key)
    }

    /// A PEM key store (key and certificate) for `names`, subject CN=`cn`.
    fn key_store_pem(cn: &str, names: &[&str]) -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).expect("cert");
        format!("{}{}", key.serialize_pem(), cert.pem())
    }

    #[test]
    fn a_reload_takes_new_store_content_and_refuses_another_subject_or_fewer_names() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("broker.pem");
        std::fs::write(&path, key_store_pem("broker", &["localhost", "broker.example"])).expect("write");
        let mut s = settings(String::new(), String::new());
        s.keystore = Some(KeyStore::File(path.clone()));
        let tls = ListenerTls::new("SSL", &s).expect("startup");
        assert!(tls.prepare(&s).expect("unchanged").is_none(), "same settings, same files: nothing to do");
        let first = tls.current().leaf.clone();
        // New content, same subject and names: reloaded.
        std::fs::write(&path, key_store_pem("broker", &["broker.example", "localhost", "extra"])).expect("write");
        let reload = tls.prepare(&s).expect("compatible").expect("changed");
        tls.install(reload);
        assert_ne!(tls.current().leaf, first);
        tls.reload_changed_files();
        assert!(tls.prepare(&s).expect("unchanged").is_none(), "installed content is current");
        // Another subject: refused, unless ssl.allow.dn.changes.
        std::fs::write(&path, key_store_pem("intruder", &["broker.example", "localhost", "extra"])).expect("write");
        let e = tls.prepare(&s).err().expect("subject changed");
        assert!(e.contains("Keystore DistinguishedName does not match") && e.contains("CN=intruder"), "{e}");
        tls.reload_changed_files();
        assert!(tls.current().settings == s && certificate_subject(&tls.current().leaf).as_deref() == Some("CN=broker"), "a refused file keeps the certificate");
        let mut lenient = s.clone();
        lenient.allow_dn_changes = true;
        assert!(tls.prepare(&lenient).expect("DN changes allowed").is_some());
        // A name dropped: refused, unless ssl.allow.san.changes.
        std::fs::write(&path, key_store_pem("broker", &["localhost"])).expect("write");
        let e = tls.prepare(&s).err().expect("names dropped");
        assert!(e.contains("SubjectAltNames do not match"), "{e}");
        lenient.allow_dn_changes = false;
        lenient.allow_san_changes = true;
        assert!(tls.prepare(&lenient).expect("SAN changes allowed").is_some());
        // A broken store is refused with its reason; a trust store cannot be added.
        std::fs::write(&path, "junk").expect("write");
        assert!(tls.prepare(&s).err().expect("broken").contains("ssl.keystore.location"));
        let mut trusting = s.clone();
        trusting.truststore = Some(TrustStore::Pem(PemSource::Text(Secret("x".into()))));
        assert!(tls.prepare(&trusting).err().expect("trust store added").contains("Cannot add SSL truststore"));
    }

    #[test]
    fn the_inter_broker_client_needs_the_listeners_trust_store() {
        let (chain, key, _) = self_signed();
        let mut s = settings(chain.clone(), key);
        let e = client_config("INTERNAL", &s).expect_err("no trust store");
        assert_eq!(e.property, "ssl.truststore.location", "{e}");
        s.truststore = Some(TrustStore::Pem(PemSource::Text(Secret("junk".into()))));
        assert_eq!(client_config("INTERNAL", &s).expect_err("no CA in it").property, "ssl.truststore.certificates");
        s.truststore = Some(TrustStore::Pem(PemSource::Text(Secret(chain))));
        client_config("INTERNAL", &s).expect("trust store and key store");
    }

    /// Whether the inter-broker client config `client` completes a handshake with a server
    /// holding `server` (chain, key), naming the peer `name`.
    async fn handshakes(client: Arc<rustls::ClientConfig>, server: &SslSettings, name: &str) -> bool {
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config("SSL", server).expect("server config"));
        let (a, b) = tokio::io::duplex(1 << 16);
        let name = rustls::pki_types::ServerName::try_from(name.to_string()).expect("name");
        let (server, client) = tokio::join!(acceptor.accept(a), tokio_rustls::TlsConnector::from(client).connect(name, b));
        server.is_ok() && client.is_ok()
    }

    #[tokio::test]
    async fn the_inter_broker_client_checks_the_advertised_host_unless_endpoint_identification_is_empty() {
        // The peer's certificate names localhost only (no IP address).
        let (chain, key, _) = self_signed();
        let peer = settings(chain.clone(), key.clone());
        let mut s = settings(chain.clone(), key);
        s.truststore = Some(TrustStore::Pem(PemSource::Text(Secret(chain))));
        assert!(s.endpoint_identification, "https is Kafka's default");
        let checking = client_config("INTERNAL", &s).expect("client");
        assert!(handshakes(checking.clone(), &peer, "localhost").await, "the advertised host the certificate names");
        assert!(!handshakes(checking, &peer, "127.0.0.1").await, "an address the certificate does not name");
        s.endpoint_identification = false;
        let chain_only = client_config("INTERNAL", &s).expect("client");
        assert!(handshakes(chain_only.clone(), &peer, "127.0.0.1").await, "no host name check");
        // Still only certificates of the trust store.
        let (other_chain, other_key, _) = self_signed();
        assert!(!handshakes(chain_only, &settings(other_chain, other_key), "localhost").await, "a certificate the trust store does not hold");
    }

    #[test]
    fn pem_text_key_stores_build_and_bad_ones_name_the_property() {
        let (chain, key, _) = self_signed();
        server_config("SSL", &settings(chain.clone(), key.clone())).expect("PEM text key store");
        let e = server_config("SSL", &settings(chain.clone(), "junk".into())).expect_err("no key");
        assert_eq!(e.property, "ssl.keystore.key", "{e}");
        let e = server_config("SSL", &settings(String::new(), key.clone())).expect_err("no chain");
        assert_eq!(e.property, "ssl.keystore.certificate.chain", "{e}");
        let (_, other_key, _) = self_signed();
        server_config("SSL", &settings(chain.clone(), other_key)).expect_err("a key that is not the certificate's");
        let mut only13 = settings(chain.clone(), key.clone());
        only13.cipher_suites = vec!["TLS_AES_256_GCM_SHA384".into()];
        only13.enabled_protocols = vec![TlsVersion::Tls13];
        server_config("SSL", &only13).expect("an IANA-named TLS 1.3 suite");
        only13.cipher_suites = vec!["TLS_RSA_WITH_RC4_128_MD5".into()];
        assert_eq!(server_config("SSL", &only13).expect_err("RC4").property, "ssl.cipher.suites");
    }

    #[test]
    fn pkcs12_key_and_trust_stores_are_opened_with_their_passwords() {
        let (chain, _, key) = self_signed();
        let cert = p12_keystore::Certificate::from_der(CertificateDer::from_pem_slice(chain.as_bytes()).expect("der").as_ref()).expect("cert");
        let mut store = p12_keystore::KeyStore::new();
        store.add_entry("broker", p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(key.serialized_der(), [1u8; 20], vec![cert.clone()])));
        let mut trust = p12_keystore::KeyStore::new();
        trust.add_entry("ca", p12_keystore::KeyStoreEntry::Certificate(cert));
        let dir = tempfile::tempdir().expect("dir");
        let (ks, ts) = (dir.path().join("broker.p12"), dir.path().join("trust.p12"));
        std::fs::write(&ks, store.writer("store-pw").write().expect("p12")).expect("write");
        std::fs::write(&ts, trust.writer("trust-pw").write().expect("p12")).expect("write");
        let mut s = settings(String::new(), String::new());
        s.keystore = Some(KeyStore::Pkcs12 { path: ks.clone(), password: Secret("store-pw".into()) });
        s.client_auth = ClientAuth::Required;
        s.truststore = Some(TrustStore::Pkcs12 { path: ts.clone(), password: Some(Secret("trust-pw".into())) });
        server_config("SSL", &s).expect("PKCS12 stores");
        s.keystore = Some(KeyStore::Pkcs12 { path: ks, password: Secret("wrong".into()) });
        let e = server_config("SSL", &s).expect_err("wrong store password");
        assert!(e.reason.contains("wrong password"), "{e}");
    }

    #[test]
    fn an_encrypted_pkcs8_key_is_opened_with_ssl_key_password() {
        use pkcs8::der::pem::LineEnding;
        let (chain, _, key) = self_signed();
        let plain = pkcs8::PrivateKeyInfo::try_from(key.serialized_der()).expect("pkcs8");
        let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &[7u8; 16], &[9u8; 16]).expect("params");
        let encrypted = plain.encrypt_with_params(params, "s3cret").expect("encrypt");
        let pem = encrypted.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF).expect("pem").to_string();
        let mut s = settings(chain, pem);
        let e = server_config("SSL", &s).expect_err("no password");
        assert!(e.reason.contains("ssl.key.password"), "{e}");
        s.key_password = Some(Secret("wrong".into()));
        server_config("SSL", &s).expect_err("wrong password");
        s.key_password = Some(Secret("s3cret".into()));
        server_config("SSL", &s).expect("decrypted");
    }
}
