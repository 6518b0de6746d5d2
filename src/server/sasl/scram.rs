//! SCRAM-SHA-256 and SCRAM-SHA-512, server side (RFC 5802, RFC 7677), against the credentials
//! the broker stores (salt, iterations, StoredKey, ServerKey; never a password). Checks what
//! Kafka's ScramSaslServer checks: the GS2 header (no channel binding: `n,,` or `y,,`), the
//! authorization id, the iteration count, the nonce echoed back, the channel-binding attribute,
//! and the client proof, compared in constant time. Pure: the server nonce and the credential
//! lookup are given by the caller. The primitives are RustCrypto's (hmac, sha2, subtle).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::AuthError;
use crate::broker::scram::{Credential, MIN_ITERATIONS, Mechanism};

/// What the server remembers between the client's first and final messages.
pub struct AwaitingFinal {
    mechanism: Mechanism,
    user: String,
    /// The GS2 header (`n,,`), which the final message's `c=` attribute must carry back.
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    /// The client's nonce followed by the server's.
    nonce: String,
    credential: Credential,
}

fn invalid(reason: impl Into<String>) -> AuthError {
    AuthError::Invalid(reason.into())
}

/// RFC 5802 `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` is malformed.
fn decode_saslname(s: &str) -> Result<String, AuthError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(invalid("Invalid SCRAM user name encoding")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A nonce is printable ASCII without ','.
pub(crate) fn valid_nonce(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// HMAC with the mechanism's hash (also the SCRAM client's, `client::sasl`).
pub(crate) fn hmac(m: Mechanism, key: &[u8], msg: &[u8]) -> Vec<u8> {
    macro_rules! mac {
        ($hash:ty) => {{
            let mut mac = <Hmac<$hash> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
            mac.update(msg);
            mac.finalize().into_bytes().to_vec()
        }};
    }
    match m {
        Mechanism::Sha256 => mac!(Sha256),
        Mechanism::Sha512 => mac!(Sha512),
    }
}

/// The mechanism's hash (also the SCRAM client's).
pub(crate) fn hash(m: Mechanism, data: &[u8]) -> Vec<u8> {
    match m {
        Mechanism::Sha256 => Sha256::digest(data).to_vec(),
        Mechanism::Sha512 => Sha512::digest(data).to_vec(),
    }
}

/// The client's first message: answers with the server's first message, or fails. `lookup`
/// gives the user's stored credential for `mechanism`; `server_nonce` is fresh random printable
/// text.
pub fn client_first(mechanism: Mechanism, message: &[u8], server_nonce: &str, lookup: impl FnOnce(&str) -> Option<Credential>) -> Result<(Vec<u8>, AwaitingFinal), AuthError> {
    let text = std::str::from_utf8(message).map_err(|_| invalid("Invalid SCRAM client first message: not UTF-8"))?;
    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    let (flag, rest) = text.split_once(',').ok_or_else(|| invalid("Invalid SCRAM client first message: no GS2 header"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(invalid("SCRAM channel binding is not supported (the server offers no -PLUS mechanism)")),
        _ => return Err(invalid("Invalid SCRAM client first message: bad GS2 channel binding flag")),
    }
    let (authzid, bare) = rest.split_once(',').ok_or_else(|| invalid("Invalid SCRAM client first message: no GS2 header"))?;
    let authzid = match authzid {
        "" => None,
        a => Some(decode_saslname(a.strip_prefix("a=").ok_or_else(|| invalid("Invalid SCRAM client first message: bad authorization id"))?)?),
    };
    let gs2_header = text[..text.len() - bare.len()].to_string();
    let mut attrs = bare.split(',');
    let user = match attrs.next() {
        Some(a) if a.starts_with("m=") => return Err(invalid("SCRAM mandatory extensions are not supported")),
        Some(a) => decode_saslname(a.strip_prefix("n=").ok_or_else(|| invalid("Invalid SCRAM client first message: no user name"))?)?,
        None => return Err(invalid("Invalid SCRAM client first message: no user name")),
    };
    let client_nonce = attrs.next().and_then(|a| a.strip_prefix("r=")).filter(|n| valid_nonce(n)).ok_or_else(|| invalid("Invalid SCRAM client first message: bad nonce"))?;
    for ext in attrs {
        let (key, value) = ext.split_once('=').ok_or_else(|| invalid("Invalid SCRAM client first message: bad extension"))?;
        // Delegation tokens (KIP-48) authenticate through this extension; Fjord issues none.
        if key == "tokenauth" && value.eq_ignore_ascii_case("true") {
            return Err(invalid("SCRAM delegation token authentication is not supported"));
        }
    }
    if let Some(a) = authzid
        && a != user
    {
        return Err(AuthError::Refused("Authentication failed: Client requested an authorization id that is different from username".into()));
    }
    let credential = lookup(&user).ok_or_else(|| invalid(format!("Authentication failed: Invalid user credentials (no {} credential for the user)", mechanism.name())))?;
    if credential.iterations < MIN_ITERATIONS {
        return Err(invalid(format!("Iterations {} is less than the minimum {MIN_ITERATIONS} for {}", credential.iterations, mechanism.name())));
    }
    if !valid_nonce(server_nonce) {
        return Err(invalid("the server nonce is not printable"));
    }
    let nonce = format!("{client_nonce}{server_nonce}");
    let server_first = format!("r={nonce},s={},i={}", B64.encode(&credential.salt), credential.iterations);
    let state = AwaitingFinal { mechanism, user, gs2_header, client_first_bare: bare.to_string(), server_first: server_first.clone(), nonce, credential };
    Ok((server_first.into_bytes(), state))
}

impl AwaitingFinal {
    /// The client's final message: on a valid proof, the server's final message (its signature,
    /// which proves to the client that the server knows the credential) and the user name.
    pub fn client_final(self, message: &[u8]) -> Result<(Vec<u8>, String), AuthError> {
        let text = std::str::from_utf8(message).map_err(|_| invalid("Invalid SCRAM client final message: not UTF-8"))?;
        // client-final-message = client-final-message-without-proof "," proof; the proof is last.
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(|| invalid("Invalid SCRAM client final message: no proof"))?;
        let mut attrs = without_proof.split(',');
        let binding = attrs.next().and_then(|a| a.strip_prefix("c=")).ok_or_else(|| invalid("Invalid SCRAM client final message: no channel binding"))?;
        if binding != B64.encode(&self.gs2_header) {
            return Err(invalid("Invalid SCRAM client final message: channel binding does not match the GS2 header"));
        }
        let nonce = attrs.next().and_then(|a| a.strip_prefix("r=")).ok_or_else(|| invalid("Invalid SCRAM client final message: no nonce"))?;
        // Not secret, but compared as the proof is.
        if !bool::from(nonce.as_bytes().ct_eq(self.nonce.as_bytes())) {
            return Err(invalid("Invalid client nonce in the final client message."));
        }
        let proof = B64.decode(proof).map_err(|_| invalid("Invalid SCRAM client final message: proof is not base64"))?;
        let m = self.mechanism;
        if proof.len() != self.credential.stored_key.len() {
            return Err(invalid("Invalid client credentials"));
        }
        let auth_message = format!("{},{},{}", self.client_first_bare, self.server_first, without_proof);
        let client_signature = hmac(m, &self.credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(p, s)| p ^ s).collect();
        if !bool::from(hash(m, &client_key).ct_eq(&self.credential.stored_key)) {
            return Err(invalid("Invalid client credentials"));
        }
        let server_signature = hmac(m, &self.credential.server_key, auth_message.as_bytes());
        Ok((format!("v={}", B64.encode(server_signature)).into_bytes(), self.user))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The credential the broker stores for `password` (what AlterUserScramCredentials derives
    /// from the client's salted password).
    pub(crate) fn credential(m: Mechanism, password: &str, salt: &[u8], iterations: u32) -> Credential {
        let mut salted = vec![0u8; if m == Mechanism::Sha256 { 32 } else { 64 }];
        match m {
            Mechanism::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted),
            Mechanism::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, iterations, &mut salted),
        }
        let client_key = hmac(m, &salted, b"Client Key");
        Credential { salt: salt.to_vec(), stored_key: hash(m, &client_key), server_key: hmac(m, &salted, b"Server Key"), iterations: iterations as i32 }
    }

    /// The client's final message for `password`, as a SCRAM client computes it.
    pub(crate) fn client_final_message(m: Mechanism, password: &str, client_first_bare: &str, server_first: &str, gs2_header: &str) -> String {
        let attrs: std::collections::BTreeMap<&str, &str> = server_first.split(',').filter_map(|a| a.split_once('=')).collect();
        let salt = B64.decode(attrs["s"]).expect("salt");
        let iterations: u32 = attrs["i"].parse().expect("iterations");
        let c = credential(m, password, &salt, iterations);
        let mut salted = vec![0u8; if m == Mechanism::Sha256 { 32 } else { 64 }];
        match m {
            Mechanism::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted),
            Mechanism::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), &salt, iterations, &mut salted),
        }
        let client_key = hmac(m, &salted, b"Client Key");
        let without_proof = format!("c={},r={}", B64.encode(gs2_header), attrs["r"]);
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac(m, &c.stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    #[test]
    fn rfc_7677_scram_sha_256_test_vector() {
        // RFC 7677 section 3: user "user", password "pencil".
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = credential(Mechanism::Sha256, "pencil", &salt, 4096);
        let (server_first, state) = client_first(Mechanism::Sha256, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", |u| (u == "user").then(|| cred.clone())).expect("first");
        assert_eq!(String::from_utf8(server_first).unwrap(), "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
        let (server_final, user) = state
            .client_final(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .expect("the RFC's proof is valid");
        assert_eq!(String::from_utf8(server_final).unwrap(), "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        assert_eq!(user, "user");
    }

    fn exchange(m: Mechanism, stored_password: &str, client_password: &str, first: &str, tamper: impl Fn(String) -> String) -> Result<(Vec<u8>, String), AuthError> {
        let cred = credential(m, stored_password, b"0123456789abcdef", 4096);
        let (server_first, state) = client_first(m, first.as_bytes(), "ServerNonce+/x", |u| (u == "alice").then(|| cred.clone()))?;
        let server_first = String::from_utf8(server_first).unwrap();
        let gs2 = &first[..first.len() - first.split(',').skip(2).collect::<Vec<_>>().join(",").len()];
        let bare = &first[gs2.len()..];
        state.client_final(tamper(client_final_message(m, client_password, bare, &server_first, gs2)).as_bytes())
    }

    #[test]
    fn a_generated_scram_sha_512_exchange_authenticates_and_signs_the_server_final_message() {
        let (server_final, user) = exchange(Mechanism::Sha512, "alice-secret", "alice-secret", "n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL", |m| m).expect("valid");
        assert_eq!(user, "alice");
        // The server signature is HMAC(ServerKey, AuthMessage): a client checks it, so do we.
        let cred = credential(Mechanism::Sha512, "alice-secret", b"0123456789abcdef", 4096);
        let bare = "n=alice,r=fyko+d2lbbFgONRv9qkxdawL";
        let server_first = format!("r=fyko+d2lbbFgONRv9qkxdawLServerNonce+/x,s={},i=4096", B64.encode(b"0123456789abcdef"));
        let auth = format!("{bare},{server_first},c=biws,r=fyko+d2lbbFgONRv9qkxdawLServerNonce+/x");
        assert_eq!(String::from_utf8(server_final).unwrap(), format!("v={}", B64.encode(hmac(Mechanism::Sha512, &cred.server_key, auth.as_bytes()))));
        assert_eq!(cred.stored_key.len(), 64);
        // y,, (client supports binding, server offers none) is accepted with its own c= value.
        assert!(exchange(Mechanism::Sha512, "pw", "pw", "y,,n=alice,r=abc", |m| m).is_ok());
        assert!(exchange(Mechanism::Sha256, "pw", "pw", "n,a=alice,n=alice,r=abc", |m| m).is_ok(), "an authzid equal to the user");
    }

    fn invalid_reason(r: Result<(Vec<u8>, String), AuthError>) -> String {
        match r {
            Err(AuthError::Invalid(m)) => m,
            other => panic!("expected an invalid exchange, got {:?}", other.map(|(_, u)| u)),
        }
    }

    #[test]
    fn a_wrong_password_tampered_nonce_binding_or_proof_fails() {
        let first = "n,,n=alice,r=abcdef";
        assert_eq!(invalid_reason(exchange(Mechanism::Sha256, "right", "wrong", first, |m| m)), "Invalid client credentials");
        assert_eq!(invalid_reason(exchange(Mechanism::Sha512, "right", "wrong", first, |m| m)), "Invalid client credentials");
        let nonce = invalid_reason(exchange(Mechanism::Sha256, "pw", "pw", first, |m| m.replace("ServerNonce", "ServerNoncf")));
        assert!(nonce.contains("nonce"), "{nonce}");
        let binding = invalid_reason(exchange(Mechanism::Sha256, "pw", "pw", first, |m| m.replace("c=biws", "c=eSws")));
        assert!(binding.contains("channel binding"), "{binding}");
        assert!(invalid_reason(exchange(Mechanism::Sha256, "pw", "pw", first, |m| m.replace(",p=", ",p=AA"))).len() > 5, "a proof of the wrong length or not base64");
        assert!(invalid_reason(exchange(Mechanism::Sha256, "pw", "pw", first, |m| m.split(",p=").next().unwrap().to_string())).contains("no proof"));
        // The proof covers the whole final message: an attribute added after the nonce breaks it.
        assert_eq!(invalid_reason(exchange(Mechanism::Sha256, "pw", "pw", first, |m| m.replace(",p=", ",x=1,p="))), "Invalid client credentials");
    }

    #[test]
    fn malformed_first_messages_unknown_users_and_weak_credentials_are_refused() {
        let cred = credential(Mechanism::Sha256, "pw", b"salt", 4096);
        let first = |msg: &[u8]| client_first(Mechanism::Sha256, msg, "srv", |u| (u == "alice" || u == "a,b=c").then(|| cred.clone())).map(|(m, _)| String::from_utf8(m).unwrap());
        for (msg, why) in [
            (&b"p=tls-unique,,n=alice,r=abc"[..], "channel binding"),
            (b"x,,n=alice,r=abc", "flag"),
            (b"n,,m=ext,n=alice,r=abc", "mandatory"),
            (b"n,,n=alice", "nonce"),
            (b"n,,n=alice,r=", "nonce"),
            (b"n,,n=alice,r=a\x01b", "nonce"),
            (b"n,,n=al=ice,r=abc", "encoding"),
            (b"n,,u=alice,r=abc", "user name"),
            (b"n,", "GS2"),
            (b"n,,n=bob,r=abc", "Invalid user credentials"),
            (b"n,,n=alice,r=abc,tokenauth=true", "delegation token"),
            (b"n,,n=alice,r=abc\xff", "UTF-8"),
        ] {
            match first(msg) {
                Err(AuthError::Invalid(m)) => assert!(m.contains(why), "{:?}: {m}", String::from_utf8_lossy(msg)),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(msg)),
            }
        }
        assert!(matches!(first(b"n,a=bob,n=alice,r=abc"), Err(AuthError::Refused(m)) if m.contains("authorization id")));
        assert!(first(b"n,,n=a=2Cb=3Dc,r=abc").is_ok(), "=2C and =3D decode to , and =");
        assert!(first(b"n,,n=alice,r=abc,ext=1").is_ok(), "unknown optional extensions are ignored, as Kafka does");
        let weak = Credential { iterations: 4095, ..cred.clone() };
        match client_first(Mechanism::Sha256, b"n,,n=alice,r=abc", "srv", |_| Some(weak)) {
            Err(AuthError::Invalid(m)) => assert!(m.contains("less than the minimum 4096"), "{m}"),
            _ => panic!("too few iterations must fail"),
        }
    }
}
