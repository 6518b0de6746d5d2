//! The client side of SASL for a node logging in to another node's SASL listener, as Kafka's
//! PlainSaslClient and ScramSaslClient speak it: the PLAIN token, and SCRAM-SHA-256/512's
//! client-first, client-final and the check of the server's signature (RFC 5802). Pure: no
//! sockets, no clock; the nonce is given by the caller. The SCRAM primitives are the server's
//! (`server::sasl::scram`), so both sides compute the same thing one way.

use std::num::NonZeroU32;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use subtle::ConstantTimeEq;

use crate::broker::scram::{MAX_ITERATIONS, MIN_ITERATIONS, Mechanism};
use crate::server::sasl::scram::{hash, hmac, valid_nonce};

/// Why the client side of an exchange gave up: the server's answer was malformed, weak, or
/// did not prove it knows the credential. Never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SaslClientError(String);

fn refused(reason: impl Into<String>) -> SaslClientError {
    SaslClientError(reason.into())
}

/// PLAIN's one token: `authzid NUL username NUL password`, with an empty authorization id as
/// Kafka's client sends it.
pub fn plain_token(username: &str, password: &str) -> Vec<u8> {
    let mut token = Vec::with_capacity(2 + username.len() + password.len());
    token.push(0);
    token.extend_from_slice(username.as_bytes());
    token.push(0);
    token.extend_from_slice(password.as_bytes());
    token
}

/// RFC 5802 `saslname`: `,` is sent as `=2C` and `=` as `=3D`.
fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// A SCRAM client after its first message, waiting for the server's.
pub struct ScramClient {
    mechanism: Mechanism,
    password: String,
    client_nonce: String,
    client_first_bare: String,
}

/// A SCRAM client after its final message: the server's signature it must see.
pub struct AwaitingServerFinal {
    mechanism: Mechanism,
    server_signature: Vec<u8>,
}

impl ScramClient {
    /// The client's first message (`n,,n=<user>,r=<nonce>`: no channel binding, no
    /// authorization id, as Kafka's client sends it). `nonce` is fresh random printable text.
    pub fn start(mechanism: Mechanism, username: &str, password: &str, nonce: &str) -> Result<(ScramClient, Vec<u8>), SaslClientError> {
        if !valid_nonce(nonce) {
            return Err(refused("no client nonce (the system's random source failed)"));
        }
        let client_first_bare = format!("n={},r={nonce}", encode_saslname(username));
        let first = format!("n,,{client_first_bare}").into_bytes();
        Ok((ScramClient { mechanism, password: password.to_string(), client_nonce: nonce.to_string(), client_first_bare }, first))
    }

    /// The server's first message (`r=<nonce>,s=<salt>,i=<iterations>`): the client's final
    /// message, with the proof. Refuses a nonce that does not extend the client's, and an
    /// iteration count outside what a Kafka broker stores (fewer is weak; more only burns CPU).
    pub fn server_first(self, message: &[u8]) -> Result<(Vec<u8>, AwaitingServerFinal), SaslClientError> {
        let m = self.mechanism;
        let text = std::str::from_utf8(message).map_err(|_| refused("the server's first SCRAM message is not UTF-8"))?;
        let mut attrs = text.split(',');
        let nonce = match attrs.next() {
            Some(a) if a.starts_with("m=") => return Err(refused("the server asked for a SCRAM extension the client does not know")),
            Some(a) => a.strip_prefix("r=").ok_or_else(|| refused("the server's first SCRAM message has no nonce"))?,
            None => return Err(refused("an empty server first SCRAM message")),
        };
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() || !valid_nonce(nonce) {
            return Err(refused("the server's SCRAM nonce does not extend the client's"));
        }
        let salt = attrs.next().and_then(|a| a.strip_prefix("s=")).ok_or_else(|| refused("the server's first SCRAM message has no salt"))?;
        let salt = B64.decode(salt).map_err(|_| refused("the server's SCRAM salt is not base64"))?;
        let iterations = attrs.next().and_then(|a| a.strip_prefix("i=")).and_then(|i| i.parse::<i32>().ok()).ok_or_else(|| refused("the server's first SCRAM message has no iteration count"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(refused(format!("the server asks for {iterations} iterations of {}: outside {MIN_ITERATIONS}..={MAX_ITERATIONS}", m.name())));
        }
        let Some(iterations) = NonZeroU32::new(iterations as u32) else { return Err(refused("zero SCRAM iterations")) };
        let salted = m.salted_password(&self.password, &salt, iterations);
        let client_key = hmac(m, &salted, b"Client Key");
        let stored_key = hash(m, &client_key);
        // `biws` is base64 of the GS2 header `n,,` the first message carried.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let client_signature = hmac(m, &stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&client_signature).map(|(k, s)| k ^ s).collect();
        let server_key = hmac(m, &salted, b"Server Key");
        let server_signature = hmac(m, &server_key, auth_message.as_bytes());
        let fin = format!("{without_proof},p={}", B64.encode(proof)).into_bytes();
        Ok((fin, AwaitingServerFinal { mechanism: m, server_signature }))
    }
}

impl AwaitingServerFinal {
    /// The server's final message: `v=<signature>` proves the server holds the credential;
    /// `e=<error>` is its refusal.
    pub fn server_final(self, message: &[u8]) -> Result<(), SaslClientError> {
        let text = std::str::from_utf8(message).map_err(|_| refused("the server's final SCRAM message is not UTF-8"))?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(refused(format!("the server refused the SCRAM exchange: {error}")));
        }
        let signature = text.split(',').next().and_then(|a| a.strip_prefix("v=")).ok_or_else(|| refused("the server's final SCRAM message has no signature"))?;
        let signature = B64.decode(signature).map_err(|_| refused("the server's SCRAM signature is not base64"))?;
        if !bool::from(signature.ct_eq(&self.server_signature)) {
            return Err(refused(format!("the server's {} signature is wrong: it does not hold this user's credential", self.mechanism.name())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::sasl::scram::{client_first, tests::credential};

    #[test]
    fn the_plain_token_is_an_empty_authzid_the_user_and_the_password() {
        assert_eq!(plain_token("broker", "s3cret"), b"\0broker\0s3cret");
        // What the server side parses from it.
        let users = [("broker".to_string(), crate::config::Secret("s3cret".into()))].into_iter().collect();
        assert_eq!(crate::server::sasl::plain::authenticate(&plain_token("broker", "s3cret"), &users), Ok("broker".into()));
        assert!(crate::server::sasl::plain::authenticate(&plain_token("broker", "wrong"), &users).is_err());
    }

    #[test]
    fn rfc_7677_scram_sha_256_client_messages() {
        // RFC 7677 section 3, from the client's side: user "user", password "pencil".
        let (client, first) = ScramClient::start(Mechanism::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(first, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let (fin, awaiting) = client.server_first(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096").unwrap();
        assert_eq!(String::from_utf8(fin).unwrap(), "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        awaiting.server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").expect("the RFC's server signature");
    }

    /// Runs the client against the server implementation with the credential stored for
    /// `stored_password`.
    fn against_server(m: Mechanism, user: &str, stored_password: &str, client_password: &str) -> Result<String, String> {
        let cred = credential(m, stored_password, b"fjord-salt-0123", 4096);
        let (client, first) = ScramClient::start(m, user, client_password, "clientNonce42").unwrap();
        let (server_first, server) = client_first(m, &first, "serverNonce7", |u| (u == user).then(|| cred.clone())).map_err(|e| format!("{e:?}"))?;
        let (fin, awaiting) = client.server_first(&server_first).map_err(|e| e.to_string())?;
        let (server_final, authenticated) = server.client_final(&fin).map_err(|e| format!("{e:?}"))?;
        awaiting.server_final(&server_final).map_err(|e| e.to_string())?;
        Ok(authenticated)
    }

    #[test]
    fn scram_sha_256_and_512_clients_authenticate_against_the_server_side() {
        assert_eq!(against_server(Mechanism::Sha512, "broker", "pw", "pw"), Ok("broker".into()));
        assert_eq!(against_server(Mechanism::Sha256, "broker", "pw", "pw"), Ok("broker".into()));
        // A name with ',' and '=' travels escaped and arrives as it was.
        assert_eq!(against_server(Mechanism::Sha512, "a,b=c", "pw", "pw"), Ok("a,b=c".into()));
        let wrong = against_server(Mechanism::Sha512, "broker", "pw", "not-pw").unwrap_err();
        assert!(wrong.contains("Invalid client credentials"), "{wrong}");
    }

    #[test]
    fn a_server_that_does_not_know_the_credential_or_answers_badly_is_refused() {
        let start = || ScramClient::start(Mechanism::Sha256, "broker", "pw", "abc").unwrap().0;
        let salt = B64.encode(b"salt");
        for (server_first, why) in [
            (format!("r=xyz,s={salt},i=4096"), "does not extend"),
            (format!("r=abc,s={salt},i=4096"), "does not extend"),
            (format!("r=abcdef,s={salt},i=4095"), "outside"),
            (format!("r=abcdef,s={salt},i=1000000"), "outside"),
            ("r=abcdef,s=***,i=4096".to_string(), "base64"),
            ("r=abcdef,i=4096".to_string(), "salt"),
            (format!("m=ext,r=abcdef,s={salt},i=4096"), "extension"),
        ] {
            let e = start().server_first(server_first.as_bytes()).err().unwrap_or_else(|| panic!("{server_first} accepted"));
            assert!(e.to_string().contains(why), "{server_first}: {e}");
        }
        // A server signature from another credential (a server that does not hold the user's).
        let (_, awaiting) = start().server_first(format!("r=abcdef,s={salt},i=4096").as_bytes()).unwrap();
        let forged = format!("v={}", B64.encode([0u8; 32]));
        assert!(awaiting.server_final(forged.as_bytes()).unwrap_err().to_string().contains("signature is wrong"));
        let (_, awaiting) = start().server_first(format!("r=abcdef,s={salt},i=4096").as_bytes()).unwrap();
        assert!(awaiting.server_final(b"e=invalid-proof").unwrap_err().to_string().contains("invalid-proof"));
        assert!(ScramClient::start(Mechanism::Sha256, "broker", "pw", "").is_err(), "an empty nonce");
    }
}
