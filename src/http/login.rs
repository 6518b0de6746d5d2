//! The web console's login, with an authorizer configured: a user name and password checked
//! against the broker's own credentials (a SCRAM credential of either mechanism, or a PLAIN user
//! of a SASL listener's JAAS configuration), and the sessions that map a cookie to the principal
//! `User:<name>`. Bounded (`fjord.http.console.sessions.max`) and expiring
//! (`fjord.http.console.session.lifetime.ms`). Keeps no password; a session's token is kept only
//! as its SHA-256, so a lookup's timing says nothing of a valid token. Knows nothing of HTTP
//! beyond the cookie header.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::broker::scram::Mechanism;
use crate::config::Config;

/// The session cookie's name.
pub const COOKIE: &str = "fjord_console_session";
/// Random bytes of a session token (256 bits).
const TOKEN_BYTES: usize = 32;

/// A logged-in user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedIn {
    /// `User:<name>`, as a SASL listener names the same user.
    pub principal: Arc<str>,
    pub user: String,
}

struct Entry {
    who: LoggedIn,
    expires: Instant,
}

/// Every open console session, by the SHA-256 of its token.
pub struct Sessions {
    open: Mutex<HashMap<[u8; 32], Entry>>,
    max: usize,
    lifetime: Duration,
}

/// Why a session was not opened.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    /// `fjord.http.console.sessions.max` sessions are open and none expired.
    Full,
    /// The system's random source failed.
    Random,
}

impl Sessions {
    pub fn new(max: usize, lifetime: Duration) -> Sessions {
        Sessions { open: Mutex::new(HashMap::new()), max, lifetime }
    }

    /// Opens a session for `user` at `now`: its token (hex, for the cookie).
    pub fn open(&self, user: &str, now: Instant) -> Result<String, OpenError> {
        let mut token = [0u8; TOKEN_BYTES];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut token).map_err(|_| OpenError::Random)?;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= self.max {
            open.retain(|_, e| e.expires > now);
        }
        if open.len() >= self.max {
            return Err(OpenError::Full);
        }
        let who = LoggedIn { principal: Arc::from(format!("User:{user}")), user: user.to_string() };
        open.insert(digest(&hex(&token)), Entry { who, expires: now + self.lifetime });
        Ok(hex(&token))
    }

    /// The user of a token, while its session lasts (an expired one is forgotten).
    pub fn get(&self, token: &str, now: Instant) -> Option<LoggedIn> {
        let key = digest(token);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.get(&key) {
            Some(e) if e.expires > now => Some(e.who.clone()),
            Some(_) => {
                open.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends a session (logout); whether it was open.
    pub fn close(&self, token: &str) -> bool {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&digest(token)).is_some()
    }

    /// How long a session lasts (the cookie's Max-Age).
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The session token in a request's `Cookie` headers (RFC 6265: `name=value` pairs separated by
/// `; `, possibly over several headers); the first one named [`COOKIE`].
pub fn session_token<'a>(cookie_headers: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    cookie_headers
        .into_iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value of a new session (`Secure` when the console is served over HTTPS).
pub fn set_cookie(token: &str, max_age: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}", max_age.as_secs())
}

/// The `Set-Cookie` value that makes the browser forget its session.
pub fn clear_cookie(secure: bool) -> String {
    set_cookie("", Duration::ZERO, secure)
}

/// Whether `password` is `user`'s, by the broker's own credentials: a SCRAM credential of either
/// mechanism (the broker keeps no password: the salted password is derived again and its
/// StoredKey compared), or a PLAIN user of any SASL listener's JAAS configuration (compared in
/// constant time). Slow on purpose for SCRAM (its iterations); run off the async workers.
pub fn check_password(config: &Config, scram: &crate::broker::scram::ScramStore, user: &str, password: &str) -> bool {
    if user.is_empty() || password.is_empty() {
        return false;
    }
    // Both mechanisms are always derived, a user without a credential against a throwaway one
    // of the fewest iterations a stored credential has: how long the refusal takes does not
    // tell whether the user exists.
    let mut scram_ok = false;
    for m in [Mechanism::Sha256, Mechanism::Sha512] {
        scram_ok |= match scram.credential(user, m) {
            Some(c) => c.matches_password(m, password),
            None => {
                let decoy = crate::broker::scram::Credential { salt: vec![0; 32], stored_key: vec![0; 64], server_key: vec![], iterations: crate::broker::scram::MIN_ITERATIONS };
                let _ = std::hint::black_box(decoy.matches_password(m, password));
                false
            }
        };
    }
    scram_ok || plain_matches(config.topology.listeners.iter().filter_map(|l| l.sasl.as_deref()).map(|s| &s.plain_users), user, password)
}

/// Whether some listener's PLAIN users give `user` this password.
fn plain_matches<'a>(listeners: impl Iterator<Item = &'a std::collections::BTreeMap<String, crate::config::Secret>>, user: &str, password: &str) -> bool {
    let mut found = false;
    for users in listeners {
        if let Some(expected) = users.get(user) {
            found |= bool::from(password.as_bytes().ct_eq(expected.0.as_bytes()));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn sessions_are_bounded_expire_and_end_at_logout() {
        let s = Sessions::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        let a = s.open("alice", t0).expect("first");
        let b = s.open("bob", t0).expect("second");
        assert_eq!(a.len(), 2 * TOKEN_BYTES, "256 bits, hex");
        assert_ne!(a, b, "tokens are random");
        assert_eq!(s.open("carol", t0), Err(OpenError::Full), "the limit holds while both last");
        assert_eq!(s.get(&a, t0).map(|w| w.principal.to_string()), Some("User:alice".into()));
        assert_eq!(s.get("00", t0), None, "an unknown token");
        assert!(s.close(&b));
        assert!(!s.close(&b), "closed once");
        assert_eq!(s.get(&b, t0), None, "logged out");
        let c = s.open("carol", t0).expect("a slot freed by the logout");
        let later = t0 + Duration::from_secs(61);
        assert_eq!(s.get(&a, later), None, "expired");
        assert_eq!(s.get(&c, t0 + Duration::from_secs(59)).map(|w| w.user), Some("carol".into()));
        // Both expired: a full store makes room by forgetting them.
        s.open("dave", later).expect("expired sessions are dropped when full");
        s.open("erin", later).expect("room for two");
        assert_eq!(s.open("frank", later), Err(OpenError::Full));
    }

    #[test]
    fn the_session_cookie_is_found_among_others_and_set_with_its_attributes() {
        assert_eq!(session_token(["a=1; fjord_console_session=abc; b=2"]), Some("abc"));
        assert_eq!(session_token(["a=1", "fjord_console_session=\"q\""]), Some("q"), "a second header, quoted value");
        assert_eq!(session_token(["fjord_console_session_x=1; xfjord_console_session=2"]), None, "only the exact name");
        assert_eq!(session_token(["fjord_console_session="]), None, "empty");
        assert_eq!(session_token(["garbage;;=;"]), None);
        assert_eq!(set_cookie("t", Duration::from_secs(3600), false), "fjord_console_session=t; HttpOnly; SameSite=Strict; Path=/; Max-Age=3600");
        assert!(set_cookie("t", Duration::from_secs(1), true).ends_with("; Secure"));
        assert!(clear_cookie(true).starts_with("fjord_console_session=; ") && clear_cookie(true).contains("Max-Age=0"));
    }

    #[test]
    fn passwords_are_checked_against_scram_credentials_and_plain_users() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::broker::scram::ScramStore::load(dir.path()).expect("load");
        let mut salted = vec![0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"scram-pw", b"salty", 4096, &mut salted);
        let up = crate::broker::scram::Upsertion { user: "sam".into(), mechanism: 1, iterations: 4096, salt: b"salty".to_vec(), salted_password: salted };
        assert!(store.alter(&[], &[up]).iter().all(|(_, r)| r.is_ok()));
        let jaas = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_pat="plain-pw";"#;
        let props: BTreeMap<String, String> = [
            ("listeners", "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"),
            ("sasl.enabled.mechanisms", "PLAIN"),
            ("listener.name.sasl_plaintext.plain.sasl.jaas.config", jaas),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config = Config::from_properties(props).expect("config");
        assert!(check_password(&config, &store, "sam", "scram-pw"), "SCRAM-SHA-256");
        assert!(!check_password(&config, &store, "sam", "scram-pW"));
        assert!(check_password(&config, &store, "pat", "plain-pw"), "PLAIN");
        assert!(!check_password(&config, &store, "pat", "plain-p"));
        assert!(!check_password(&config, &store, "sam", "plain-pw"), "another user's password");
        assert!(!check_password(&config, &store, "nobody", "x"));
        assert!(!check_password(&config, &store, "", ""), "empty");
    }
}
