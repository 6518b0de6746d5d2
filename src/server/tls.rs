//! TLS of SSL listeners: builds each listener's rustls server configuration from its `ssl.*`
//! settings (PEM key stores and trust stores, client authentication, versions, cipher suites)
//! at startup. Reads the store files; never sees a request. The handshake itself is rustls's
//! (tokio-rustls), run by the accept loop.

use std::sync::Arc;

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
    let err = |property: &'static str, reason: String| TlsError { listener: listener.to_string(), property, reason };
    let provider = Arc::new(provider(s).map_err(|r| err("ssl.cipher.suites", r))?);
    let (chain, key) = key_store(s).map_err(|(p, r)| err(p, r))?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = s
        .enabled_protocols
        .iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| err("ssl.enabled.protocols", format!("{e} (do ssl.cipher.suites include one of each enabled version?)")))?;
    let builder = match s.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let Some(store) = &s.truststore else {
                return Err(err("ssl.truststore.location", "client certificates need a trust store".into()));
            };
            let property = match store {
                TrustStore::Pem(PemSource::Text(_)) => "ssl.truststore.certificates",
                TrustStore::Pem(PemSource::File(_)) | TrustStore::Pkcs12 { .. } => "ssl.truststore.location",
            };
            let certs: Vec<CertificateDer<'static>> = match store {
                TrustStore::Pem(source) => {
                    let pem = read_pem(source).map_err(|r| err(property, r))?;
                    CertificateDer::pem_slice_iter(&pem).collect::<Result<_, _>>().map_err(|e| err(property, format!("bad PEM: {e}")))?
                }
                TrustStore::Pkcs12 { path, password } => {
                    let p12 = open_pkcs12(path, password.as_ref().map_or("", |p| p.0.as_str())).map_err(|r| err(property, r))?;
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
                roots.add(cert).map_err(|e| err(property, format!("not a CA certificate rustls accepts: {e}")))?;
            }
            if roots.is_empty() {
                return Err(err(property, "no CERTIFICATE in the trust store".into()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Requested { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| err(property, e.to_string()))?)
        }
    };
    let config = builder.with_single_cert(chain, key).map_err(|e| err("ssl.keystore.location", format!("the key does not fit the certificate: {e}")))?;
    Ok(Arc::new(config))
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
    if let KeyStore::Pkcs12 { path, password } = &s.keystore {
        let p12 = open_pkcs12(path, &password.0).map_err(|r| ("ssl.keystore.location", r))?;
        let (_, entry) = p12.private_key_chain().ok_or(("ssl.keystore.location", "no private key entry in the PKCS12 key store".to_string()))?;
        let chain: Vec<CertificateDer<'static>> = entry.chain().iter().map(|c| CertificateDer::from(c.as_der().to_vec())).collect();
        if chain.is_empty() {
            return Err(("ssl.keystore.location", "the key entry has no certificate chain".into()));
        }
        return Ok((chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(entry.key().to_vec()))));
    }
    let (chain_pem, key_pem, chain_property, key_property) = match &s.keystore {
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

/// Kafka's principal of a client that sent a certificate on an SSL listener (the DEFAULT rule of
/// `ssl.principal.mapping.rules`): `User:` and the certificate's subject as Java's
/// X500Principal.getName() prints it (RFC 2253: the last RDN first, `,` between RDNs, `+` inside
/// one, CN/C/L/ST/STREET/O/OU/DC/UID by name, other attributes as `oid=#<hex of the DER value>`,
/// special characters escaped). `None` when the certificate cannot be parsed.
pub fn certificate_principal(der: &[u8]) -> Option<String> {
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
    Some(format!("User:{}", rdns.join(",")))
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
        assert_eq!(certificate_principal(cert.der()).as_deref(), Some("User:CN=alice,OU=eng,O=Acme\\, Inc.,C=US"));
        assert_eq!(certificate_principal(b"not a certificate"), None);
        assert_eq!(rfc2253_escape("#a+b "), "\\#a\\+b\\ ");
    }

    use super::*;
    use crate::config::Secret;

    fn settings(chain: String, key: String) -> SslSettings {
        SslSettings {
            keystore: KeyStore::Text { chain: Secret(chain), key: Secret(key) },
            key_password: None,
            truststore: None,
            client_auth: ClientAuth::None,
            enabled_protocols: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            cipher_suites: vec![],
        }
    }

    fn self_signed() -> (String, String, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params").self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem(), key)
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
        s.keystore = KeyStore::Pkcs12 { path: ks.clone(), password: Secret("store-pw".into()) };
        s.client_auth = ClientAuth::Required;
        s.truststore = Some(TrustStore::Pkcs12 { path: ts.clone(), password: Some(Secret("trust-pw".into())) });
        server_config("SSL", &s).expect("PKCS12 stores");
        s.keystore = KeyStore::Pkcs12 { path: ks, password: Secret("wrong".into()) };
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
