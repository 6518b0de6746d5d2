//! SASL/PLAIN, server side (RFC 4616) as Kafka's PlainSaslServer checks it: one token
//! `authzid NUL username NUL password`, the password compared with the listener's configured one
//! in constant time. Pure: no I/O, no clock.

use std::collections::BTreeMap;

use subtle::ConstantTimeEq;

use super::AuthError;
use crate::config::Secret;

/// The three fields of a PLAIN token.
#[derive(Debug, PartialEq, Eq)]
pub struct PlainToken {
    pub authzid: String,
    pub username: String,
    pub password: String,
}

/// Splits a token on NUL as Kafka does (empty fields kept), and checks what Kafka checks before
/// the password: exactly three fields, a user name and a password.
pub fn parse(token: &[u8]) -> Result<PlainToken, AuthError> {
    // Java decodes the bytes as UTF-8 with replacement; so do we (a bad byte cannot match).
    let text = String::from_utf8_lossy(token);
    let fields: Vec<&str> = text.split('\0').collect();
    if fields.len() != 3 {
        return Err(AuthError::Invalid(format!("Invalid SASL/PLAIN response: expected 3 tokens, got {}", fields.len())));
    }
    let (authzid, username, password) = (fields[0], fields[1], fields[2]);
    if username.is_empty() {
        return Err(AuthError::Refused("Authentication failed: username not specified".into()));
    }
    if password.is_empty() {
        return Err(AuthError::Refused("Authentication failed: password not specified".into()));
    }
    Ok(PlainToken { authzid: authzid.into(), username: username.into(), password: password.into() })
}

/// Authenticates one PLAIN token against the listener's users; the user name on success.
pub fn authenticate(token: &[u8], users: &BTreeMap<String, Secret>) -> Result<String, AuthError> {
    let t = parse(token)?;
    // An unknown user costs the same comparison as a known one.
    let expected = users.get(&t.username).map(|s| s.0.as_str());
    let matches: bool = t.password.as_bytes().ct_eq(expected.unwrap_or("\0unknown user").as_bytes()).into();
    if !matches || expected.is_none() {
        return Err(AuthError::Refused("Authentication failed: Invalid username or password".into()));
    }
    if !t.authzid.is_empty() && t.authzid != t.username {
        return Err(AuthError::Refused("Authentication failed: Client requested an authorization id that is different from username".into()));
    }
    Ok(t.username)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> BTreeMap<String, Secret> {
        [("alice", "alice-secret"), ("bob", "b\u{e9}b")].into_iter().map(|(u, p)| (u.to_string(), Secret(p.to_string()))).collect()
    }

    fn refused(token: &[u8]) -> String {
        match authenticate(token, &users()) {
            Err(AuthError::Refused(m)) => m,
            other => panic!("{:?}: expected a refusal, got {other:?}", String::from_utf8_lossy(token)),
        }
    }

    #[test]
    fn a_right_password_authenticates_with_or_without_a_matching_authzid() {
        assert_eq!(authenticate(b"\0alice\0alice-secret", &users()), Ok("alice".into()));
        assert!(authenticate(b"alice\0alice-secret", &users()).is_err(), "two fields are not a PLAIN token");
        assert_eq!(authenticate(b"alice\0alice\0alice-secret", &users()), Ok("alice".into()));
        assert_eq!(authenticate("\0bob\0b\u{e9}b".as_bytes(), &users()), Ok("bob".into()), "UTF-8 passwords");
    }

    #[test]
    fn wrong_or_unknown_credentials_get_kafkas_message() {
        assert_eq!(refused(b"\0alice\0wrong"), "Authentication failed: Invalid username or password");
        assert_eq!(refused(b"\0alice\0alice-secretX"), "Authentication failed: Invalid username or password");
        assert_eq!(refused(b"\0mallory\0alice-secret"), "Authentication failed: Invalid username or password");
        assert_eq!(refused(b"\0ALICE\0alice-secret"), "Authentication failed: Invalid username or password", "names are case-sensitive");
        assert_eq!(refused(b"bob\0alice\0alice-secret"), "Authentication failed: Client requested an authorization id that is different from username");
    }

    #[test]
    fn empty_fields_and_extra_nuls_are_refused_as_kafka_refuses_them() {
        assert_eq!(refused(b"\0\0alice-secret"), "Authentication failed: username not specified");
        assert_eq!(refused(b"\0alice\0"), "Authentication failed: password not specified");
        for (token, n) in [(&b""[..], 1), (b"alice", 1), (b"\0alice\0alice-secret\0", 4), (b"\0\0\0\0", 5)] {
            match authenticate(token, &users()) {
                Err(AuthError::Invalid(m)) => assert_eq!(m, format!("Invalid SASL/PLAIN response: expected 3 tokens, got {n}")),
                other => panic!("{token:?}: {other:?}"),
            }
        }
        assert!(authenticate(b"\0alice\0alice-secret\xff", &users()).is_err(), "a byte that is not UTF-8 cannot match");
        assert_eq!(parse(b"z\0u\0p"), Ok(PlainToken { authzid: "z".into(), username: "u".into(), password: "p".into() }));
    }
}
