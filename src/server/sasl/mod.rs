//! SASL on SASL_PLAINTEXT and SASL_SSL listeners: the server side of a connection's
//! authentication, as Kafka's SaslServerAuthenticator runs it. Before authentication only
//! ApiVersions, SaslHandshake and SaslAuthenticate are served; SaslHandshake v0 switches to raw
//! tokens (each a 4-byte length and the bytes, no Kafka header), v1 to tokens inside
//! SaslAuthenticate. KIP-368: with `connections.max.reauth.ms` a session has a lifetime and a new
//! SaslHandshake on an authenticated connection re-authenticates it (same mechanism, same
//! principal). This state machine decides; the connection task drives it (reads, writes, the
//! failed-authentication delay, closing). No tokio, no sockets. Mechanisms: [`plain`], [`scram`],
//! [`oauthbearer`].

pub mod jwks;
pub mod oauthbearer;
pub mod plain;
pub mod scram;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};

use crate::api::{self, Chunk, ResponseFrame};
use crate::broker::scram::{Credential, Mechanism as ScramMechanism};
use crate::config::{SaslMechanism, SaslSettings};
use crate::protocol::header::{decode_request_header, peek_prefix};
use crate::protocol::versions;

/// Why a mechanism refused a client, in Kafka's two kinds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// Kafka's SaslAuthenticationException: the message is sent to the client as it is.
    Refused(String),
    /// Kafka's SaslException: the client is only told its credentials were invalid for the
    /// mechanism; the detail is for the broker's log.
    Invalid(String),
}

/// The authenticated identity of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// Kafka's principal, `User:<name>`.
    pub principal: String,
    pub mechanism: SaslMechanism,
    /// When the session ends unless re-authenticated (`connections.max.reauth.ms`).
    pub expires_at: Option<Instant>,
}

/// What the connection does with a frame.
#[derive(Debug)]
pub enum Step {
    /// Serve the frame as a request: the connection is authenticated, or it is an ApiVersions
    /// before the handshake.
    Serve,
    /// Send this frame; the exchange goes on, or has completed ([`Authenticator::authenticated`]).
    Reply(ResponseFrame),
    /// Authentication failed: after `connection.failed.authentication.delay.ms`, send the answer
    /// (when Kafka sends one), then close. `reason` is for the log (never a secret).
    Fail { answer: Option<ResponseFrame>, mechanism: Option<SaslMechanism>, reason: String },
}

enum Exchange {
    Plain,
    ScramFirst(ScramMechanism),
    /// Boxed: the remembered exchange is large beside the other variants.
    ScramFinal(Box<scram::AwaitingFinal>),
    /// OAUTHBEARER's first message; or, after a token that did not validate, the error challenge
    /// sent, which the client acknowledges with `^A` before the authentication fails.
    OAuthBearer(Option<String>),
}

enum State {
    /// Before a handshake: ApiVersions and SaslHandshake.
    Handshake,
    /// After a handshake: the mechanism's tokens, raw (handshake v0) or in SaslAuthenticate.
    Exchange { mechanism: SaslMechanism, raw: bool, exchange: Exchange },
    /// A re-authentication asked for another mechanism: its SaslAuthenticate fails (Kafka's
    /// REAUTH_BAD_MECHANISM).
    BadMechanism(String),
    /// Authenticated: requests are served.
    Done,
}

/// Looks up a user's stored SCRAM credential.
pub type CredentialLookup<'a> = &'a dyn Fn(&str, ScramMechanism) -> Option<Credential>;

/// One connection's authentication.
pub struct Authenticator {
    settings: Arc<SaslSettings>,
    state: State,
    authenticated: Option<Authenticated>,
}

impl Authenticator {
    pub fn new(settings: Arc<SaslSettings>) -> Authenticator {
        Authenticator { settings, state: State::Handshake, authenticated: None }
    }

    /// The connection's identity once authenticated (kept while it re-authenticates).
    pub fn authenticated(&self) -> Option<&Authenticated> {
        self.authenticated.as_ref()
    }

    /// Whether requests are being served (authenticated, not in a re-authentication).
    pub fn is_serving(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether the session's lifetime ran out (KIP-368).
    pub fn expired(&self, now: Instant) -> bool {
        self.authenticated.as_ref().and_then(|a| a.expires_at).is_some_and(|at| now >= at)
    }

    /// Whether the connection closes rather than handle `frame`: its session's lifetime ran out
    /// (KIP-368). Kafka closes such a connection when its next request arrives, unless that
    /// request is the SaslHandshake beginning a re-authentication, which it still accepts (a
    /// client idle past its session's end logs in again on the same connection).
    pub fn closes_on(&self, frame: &Bytes, now: Instant) -> bool {
        let reauthenticates = self.settings.max_reauth_ms > 0 && peek_prefix(frame).is_some_and(|p| p.api_key == ApiKey::SaslHandshake as i16);
        self.is_serving() && self.expired(now) && !reauthenticates
    }

    /// Handles one frame read from the connection. `nonce` makes a fresh SCRAM server nonce.
    pub fn on_frame(&mut self, frame: &Bytes, now: Instant, lookup: CredentialLookup, nonce: &dyn Fn() -> String) -> Step {
        if let State::Exchange { raw: true, .. } = self.state {
            return self.token(frame, None, now, lookup, nonce);
        }
        let Some(prefix) = peek_prefix(frame) else {
            return fail(None, None, "a frame shorter than a request header during SASL authentication".into());
        };
        let Ok(key) = ApiKey::try_from(prefix.api_key) else {
            // Once authenticated, a key Kafka does not know is the connection's to judge (the
            // controller listener's private Raft and metadata-fetch APIs).
            if matches!(self.state, State::Done) {
                return Step::Serve;
            }
            return fail(None, None, format!("unknown api key {} during SASL authentication", prefix.api_key));
        };
        let (version, corr) = (prefix.api_version, prefix.correlation_id);
        match (&self.state, key) {
            (State::Done, ApiKey::SaslHandshake) if self.settings.max_reauth_ms > 0 => {}
            // Without a session lifetime a handshake on an authenticated connection is a
            // request like any other: its handler answers ILLEGAL_SASL_STATE, as Kafka's does.
            (State::Done, _) => return Step::Serve,
            (State::Handshake, ApiKey::ApiVersions) => return Step::Serve,
            (State::Handshake, ApiKey::SaslHandshake) => {}
            (State::Handshake, _) => return fail(None, None, format!("Unexpected Kafka request of type {key:?} during SASL handshake.")),
            (State::Exchange { .. } | State::BadMechanism(_), ApiKey::SaslAuthenticate) => {}
            (State::Exchange { .. } | State::BadMechanism(_), _) => {
                // Kafka answers the request with ILLEGAL_SASL_STATE where the answer has an
                // error code of its own (here: the SASL APIs and ApiVersions), then closes.
                let reason = format!("Unexpected Kafka request of type {key:?} during SASL authentication.");
                let answer = match key {
                    ApiKey::SaslHandshake => encode(key, version, corr, &SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code())),
                    ApiKey::ApiVersions => encode(key, 0, corr, &ApiVersionsResponse::default().with_error_code(ResponseError::IllegalSaslState.code())),
                    _ => None,
                };
                return fail(answer, self.mechanism(), reason);
            }
        }
        if !versions::is_served(key, version) {
            return fail(None, None, format!("{key:?} v{version} is not supported"));
        }
        let mut body = frame.clone();
        if let Err(e) = decode_request_header(key, version, &mut body) {
            return fail(None, None, format!("malformed {key:?} header: {e}"));
        }
        match key {
            ApiKey::SaslHandshake => match SaslHandshakeRequest::decode(&mut body, version) {
                Ok(req) => self.handshake(req, version, corr),
                Err(e) => fail(None, None, format!("malformed SaslHandshake: {e}")),
            },
            _ => match SaslAuthenticateRequest::decode(&mut body, version) {
                Ok(req) => self.token(&req.auth_bytes, Some((version, corr)), now, lookup, nonce),
                Err(e) => fail(None, self.mechanism(), format!("malformed SaslAuthenticate: {e}")),
            },
        }
    }

    fn mechanism(&self) -> Option<SaslMechanism> {
        match &self.state {
            State::Exchange { mechanism, .. } => Some(*mechanism),
            _ => self.authenticated.as_ref().map(|a| a.mechanism),
        }
    }

    fn handshake(&mut self, req: SaslHandshakeRequest, version: i16, corr: i32) -> Step {
        let enabled: Vec<StrBytes> = self.settings.mechanisms.iter().map(|m| StrBytes::from_static_str(m.name())).collect();
        let asked = req.mechanism.to_string();
        let Some(mechanism) = SaslMechanism::parse(&asked).filter(|m| self.settings.mechanisms.contains(m)) else {
            let answer = encode(ApiKey::SaslHandshake, version, corr, &SaslHandshakeResponse::default().with_error_code(ResponseError::UnsupportedSaslMechanism.code()).with_mechanisms(enabled));
            let offered: Vec<&str> = self.settings.mechanisms.iter().map(|m| m.name()).collect();
            return fail(answer, None, format!("Unsupported SASL mechanism {asked} (enabled: {})", offered.join(", ")));
        };
        let ok = SaslHandshakeResponse::default().with_mechanisms(enabled);
        let Some(answer) = encode(ApiKey::SaslHandshake, version, corr, &ok) else {
            return fail(None, None, "cannot encode the SaslHandshake response".into());
        };
        self.state = match &self.authenticated {
            Some(a) if a.mechanism != mechanism => {
                State::BadMechanism(format!("SASL mechanism '{}' requested by client is not supported for re-authentication of mechanism '{}'", mechanism.name(), a.mechanism.name()))
            }
            _ => {
                let exchange = match mechanism {
                    SaslMechanism::Plain => Exchange::Plain,
                    SaslMechanism::ScramSha256 => Exchange::ScramFirst(ScramMechanism::Sha256),
                    SaslMechanism::ScramSha512 => Exchange::ScramFirst(ScramMechanism::Sha512),
                    SaslMechanism::OAuthBearer => Exchange::OAuthBearer(None),
                };
                // Re-authentication needs SaslAuthenticate (v1 handshake), as KIP-368 requires.
                State::Exchange { mechanism, raw: version == 0 && self.authenticated.is_none(), exchange }
            }
        };
        Step::Reply(answer)
    }

    /// One token of the exchange: raw (`request` None) or from a SaslAuthenticate (its version
    /// and correlation id).
    fn token(&mut self, token: &[u8], request: Option<(i16, i32)>, now: Instant, lookup: CredentialLookup, nonce: &dyn Fn() -> String) -> Step {
        let reauth = self.authenticated.is_some();
        let failed = |mechanism: Option<SaslMechanism>, code: ResponseError, message: String, reason: String| {
            let answer = request.and_then(|(version, corr)| {
                encode(ApiKey::SaslAuthenticate, version, corr, &SaslAuthenticateResponse::default().with_error_code(code.code()).with_error_message(Some(StrBytes::from_string(message))))
            });
            fail(answer, mechanism, reason)
        };
        let (mechanism, exchange) = match std::mem::replace(&mut self.state, State::Handshake) {
            State::Exchange { mechanism, exchange, .. } => (mechanism, exchange),
            State::BadMechanism(message) => return failed(self.mechanism(), ResponseError::IllegalSaslState, message.clone(), message),
            _ => return fail(None, None, "a SASL token outside an exchange".into()),
        };
        let raw = request.is_none();
        // A credential's own end (an OAUTHBEARER token's expiry), in ms from now.
        let mut credential_lifetime_ms: Option<i64> = None;
        let evaluated = match exchange {
            Exchange::Plain => plain::authenticate(token, &self.settings.plain_users).map(|user| (Vec::new(), Some(user))),
            Exchange::OAuthBearer(Some(challenge)) if token == [0x01] => Err(AuthError::Refused(challenge)),
            Exchange::OAuthBearer(_) => {
                let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
                match oauthbearer::authenticate(token, now_ms, &self.settings.oauthbearer) {
                    Ok(Ok(t)) => {
                        credential_lifetime_ms = Some((t.expires_at_ms - now_ms).max(0));
                        Ok((Vec::new(), Some(t.principal)))
                    }
                    Ok(Err(invalid)) => {
                        tracing::debug!(reason = %invalid.reason, "OAUTHBEARER token refused");
                        let challenge = invalid.challenge();
                        self.state = State::Exchange { mechanism, raw, exchange: Exchange::OAuthBearer(Some(challenge.clone())) };
                        Ok((challenge.into_bytes(), None))
                    }
                    Err(e) => Err(e),
                }
            }
            Exchange::ScramFirst(m) => match scram::client_first(m, token, &nonce(), |user| lookup(user, m)) {
                Ok((server_first, next)) => {
                    self.state = State::Exchange { mechanism, raw, exchange: Exchange::ScramFinal(Box::new(next)) };
                    Ok((server_first, None))
                }
                Err(e) => Err(e),
            },
            Exchange::ScramFinal(awaiting) => awaiting.client_final(token).map(|(server_final, user)| (server_final, Some(user))),
        };
        let (reply, user) = match evaluated {
            Ok(r) => r,
            Err(e) => {
                let (message, reason) = match e {
                    AuthError::Refused(m) => (m.clone(), m),
                    AuthError::Invalid(detail) => {
                        let what = if reauth { "re-authentication" } else { "authentication" };
                        (format!("Authentication failed during {what} due to invalid credentials with SASL mechanism {}", mechanism.name()), detail)
                    }
                };
                return failed(Some(mechanism), ResponseError::SaslAuthenticationFailed, message, reason);
            }
        };
        let mut session_lifetime_ms = 0;
        if let Some(user) = user {
            let principal = format!("User:{user}");
            if let Some(previous) = &self.authenticated
                && previous.principal != principal
            {
                let message = format!("Cannot change principals during re-authentication from {}: {principal}", previous.principal);
                return failed(Some(mechanism), ResponseError::SaslAuthenticationFailed, message.clone(), message);
            }
            // Kafka's session lifetime: connections.max.reauth.ms, cut short by the credential's
            // own expiry (an OAUTHBEARER token's); none when neither is set.
            let max_reauth = (self.settings.max_reauth_ms > 0).then_some(self.settings.max_reauth_ms as i64);
            let lifetime = match (credential_lifetime_ms, max_reauth) {
                (Some(c), Some(m)) => Some(c.min(m)),
                (c, m) => c.or(m),
            };
            let expires_at = lifetime.map(|ms| now + Duration::from_millis(ms as u64));
            session_lifetime_ms = lifetime.unwrap_or(0);
            self.authenticated = Some(Authenticated { principal, mechanism, expires_at });
            self.state = State::Done;
        }
        let answer = match request {
            None => {
                let mut b = BytesMut::with_capacity(4 + reply.len());
                b.put_i32(reply.len() as i32);
                b.put_slice(&reply);
                Some(vec![Chunk::Memory(b.freeze())])
            }
            Some((version, corr)) => {
                let mut resp = SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(reply));
                if version >= 1 {
                    resp = resp.with_session_lifetime_ms(session_lifetime_ms);
                }
                encode(ApiKey::SaslAuthenticate, version, corr, &resp)
            }
        };
        match answer {
            Some(a) => Step::Reply(a),
            None => fail(None, Some(mechanism), "cannot encode the SaslAuthenticate response".into()),
        }
    }
}

fn fail(answer: Option<ResponseFrame>, mechanism: Option<SaslMechanism>, reason: String) -> Step {
    Step::Fail { answer, mechanism, reason }
}

fn encode<M: kafka_protocol::protocol::Encodable>(key: ApiKey, version: i16, corr: i32, body: &M) -> Option<ResponseFrame> {
    match api::encode_response(key, version, corr, body) {
        Ok(frame) => Some(frame),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a SASL response");
            None
        }
    }
}

/// A fresh SCRAM server nonce: 16 random bytes from the system's source, as 32 hex digits
/// (alphanumeric, as Kafka's nonces are).
pub fn server_nonce() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    // The system random source does not fail on Linux once booted; if it ever does, the
    // exchange fails rather than use a predictable nonce (an empty nonce is refused).
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        tracing::error!("no system randomness for a SCRAM nonce");
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use kafka_protocol::protocol::{Encodable, HeaderVersion};

    fn settings(mechanisms: &[SaslMechanism], max_reauth_ms: u64) -> Arc<SaslSettings> {
        let plain_users = [("alice".to_string(), Secret("alice-secret".into())), ("bob".to_string(), Secret("bob-secret".into()))].into_iter().collect();
        Arc::new(SaslSettings { mechanisms: mechanisms.to_vec(), plain_users, max_reauth_ms, oauthbearer: Default::default() })
    }

    fn request<R: Encodable + HeaderVersion>(key: ApiKey, version: i16, corr: i32, req: &R) -> Bytes {
        let mut b = BytesMut::new();
        let header = RequestHeader::default().with_request_api_key(key as i16).with_request_api_version(version).with_correlation_id(corr).with_client_id(Some(StrBytes::from_static_str("t")));
        header.encode(&mut b, R::header_version(version)).unwrap();
        req.encode(&mut b, version).unwrap();
        b.freeze()
    }

    fn frame_bytes(f: &ResponseFrame) -> Bytes {
        let mut b = BytesMut::new();
        for c in f {
            match c {
                Chunk::Memory(m) => b.put_slice(m),
                Chunk::File(_) => panic!("no file chunk in a SASL response"),
            }
        }
        b.freeze()
    }

    /// The response body of a frame (length, correlation id, flexible header tags skipped).
    fn response<R: Decodable>(f: &ResponseFrame, version: i16, flexible: bool) -> R {
        let mut b = frame_bytes(f).slice(8..);
        if flexible {
            b = b.slice(1..);
        }
        R::decode(&mut b, version).unwrap()
    }

    fn no_scram(_: &str, _: ScramMechanism) -> Option<Credential> {
        None
    }

    fn nonce() -> String {
        "srvnonce".into()
    }

    fn handshake(a: &mut Authenticator, mechanism: &'static str, version: i16) -> Step {
        a.on_frame(&request(ApiKey::SaslHandshake, version, 1, &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism))), Instant::now(), &no_scram, &nonce)
    }

    fn authenticate(a: &mut Authenticator, token: &[u8], now: Instant, lookup: CredentialLookup) -> Step {
        a.on_frame(&request(ApiKey::SaslAuthenticate, 2, 2, &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token))), now, lookup, &nonce)
    }

    #[test]
    fn plain_over_sasl_authenticate_gives_the_principal_and_the_session_lifetime() {
        let mut a = Authenticator::new(settings(&[SaslMechanism::ScramSha256, SaslMechanism::Plain], 60_000));
        let api_versions = request(ApiKey::ApiVersions, 3, 0, &ApiVersionsRequest::default());
        assert!(matches!(a.on_frame(&api_versions, Instant::now(), &no_scram, &nonce), Step::Serve));
        let Step::Reply(r) = handshake(&mut a, "PLAIN", 1) else { panic!("handshake") };
        let r: SaslHandshakeResponse = response(&r, 1, false);
        assert_eq!(r.error_code, 0);
        assert_eq!(r.mechanisms.iter().map(|m| m.to_string()).collect::<Vec<_>>(), ["SCRAM-SHA-256", "PLAIN"]);
        let now = Instant::now();
        let Step::Reply(r) = authenticate(&mut a, b"\0alice\0alice-secret", now, &no_scram) else { panic!("authenticate") };
        let r: SaslAuthenticateResponse = response(&r, 2, true);
        assert_eq!((r.error_code, r.session_lifetime_ms), (0, 60_000));
        let who = a.authenticated().unwrap();
        assert_eq!((who.principal.as_str(), who.mechanism), ("User:alice", SaslMechanism::Plain));
        assert!(a.is_serving());
        assert!(!a.expired(now + Duration::from_millis(59_999)) && a.expired(now + Duration::from_millis(60_000)));
    }

    #[test]
    fn oauthbearer_gives_the_tokens_principal_a_session_ending_with_the_token_and_the_rfc_7628_challenge() {
        let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let first = |claims: String| format!("n,,\u{1}auth=Bearer {}\u{1}\u{1}", oauthbearer::unsecured_jws(&claims)).into_bytes();
        // The token ends before connections.max.reauth.ms: the session ends with it.
        let mut a = Authenticator::new(settings(&[SaslMechanism::OAuthBearer], 3_600_000));
        assert!(matches!(handshake(&mut a, "OAUTHBEARER", 1), Step::Reply(_)));
        let Step::Reply(r) = authenticate(&mut a, &first(format!(r#"{{"sub":"carol","exp":{}}}"#, now_s + 60)), Instant::now(), &no_scram) else { panic!("a valid token") };
        let r: SaslAuthenticateResponse = response(&r, 2, true);
        assert_eq!(r.error_code, 0);
        assert!((55_000..=60_000).contains(&r.session_lifetime_ms), "the token's remaining life: {}", r.session_lifetime_ms);
        assert_eq!(a.authenticated().unwrap().principal, "User:carol");

        // An expired token: the challenge, then after the client's ^A the failure with it.
        let mut a = Authenticator::new(settings(&[SaslMechanism::OAuthBearer], 0));
        assert!(matches!(handshake(&mut a, "OAUTHBEARER", 1), Step::Reply(_)));
        let Step::Reply(r) = authenticate(&mut a, &first(format!(r#"{{"sub":"carol","exp":{}}}"#, now_s - 60)), Instant::now(), &no_scram) else { panic!("a challenge") };
        let r: SaslAuthenticateResponse = response(&r, 2, true);
        assert_eq!((r.error_code, &r.auth_bytes[..]), (0, &br#"{"status":"invalid_token"}"#[..]));
        let Step::Fail { answer: Some(r), .. } = authenticate(&mut a, &[1], Instant::now(), &no_scram) else { panic!("fails after ^A") };
        let r: SaslAuthenticateResponse = response(&r, 2, true);
        assert_eq!((r.error_code, r.error_message.as_deref()), (58, Some(r#"{"status":"invalid_token"}"#)));
    }

    #[test]
    fn failures_answer_with_kafkas_codes_and_messages() {
        let mut a = Authenticator::new(settings(&[SaslMechanism::Plain], 0));
        let Step::Fail { answer: Some(r), .. } = handshake(&mut a, "GSSAPI", 1) else { panic!("unknown mechanism fails") };
        let r: SaslHandshakeResponse = response(&r, 1, false);
        assert_eq!(r.error_code, 33);
        assert_eq!(r.mechanisms.iter().map(|m| m.to_string()).collect::<Vec<_>>(), ["PLAIN"]);

        let mut a = Authenticator::new(settings(&[SaslMechanism::Plain], 0));
        assert!(matches!(handshake(&mut a, "PLAIN", 1), Step::Reply(_)));
        let Step::Fail { answer: Some(r), mechanism, reason } = authenticate(&mut a, b"\0alice\0nope", Instant::now(), &no_scram) else { panic!("wrong password fails") };
        let r: SaslAuthenticateResponse = response(&r, 2, true);
        assert_eq!((r.error_code, r.error_message.as_deref()), (58, Some("Authentication failed: Invalid username or password")));
        assert_eq!(mechanism, Some(SaslMechanism::Plain));
        assert!(!reason.contains("nope"), "the secret is never in the log line: {reason}");
        assert!(a.authenticated().is_none());

        // SCRAM with no credential: Kafka's generic words.
        let mut a = Authenticator::new(settings(&[SaslMechanism::ScramSha512], 0));
        assert!(matches!(handshake(&mut a, "SCRAM-SHA-512", 1), Step::Reply(_)));
        let Step::Fail { answer: Some(r), .. } = authenticate(&mut a, b"n,,n=carol,r=abc", Instant::now(), &no_scram) else { panic!("unknown user fails") };
        let r: SaslAuthenticateResponse = response(&r, 2, true);
        assert_eq!((r.error_code, r.error_message.as_deref()), (58, Some("Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512")));
    }

    #[test]
    fn requests_before_authentication_close_the_connection() {
        let metadata = request(ApiKey::Metadata, 12, 5, &MetadataRequest::default());
        let mut a = Authenticator::new(settings(&[SaslMechanism::Plain], 0));
        assert!(matches!(a.on_frame(&metadata, Instant::now(), &no_scram, &nonce), Step::Fail { answer: None, .. }));
        let mut a = Authenticator::new(settings(&[SaslMechanism::Plain], 0));
        let Step::Fail { answer: None, .. } = authenticate(&mut a, b"\0alice\0alice-secret", Instant::now(), &no_scram) else { panic!("SaslAuthenticate before the handshake") };
        let mut a = Authenticator::new(settings(&[SaslMechanism::Plain], 0));
        assert!(matches!(handshake(&mut a, "PLAIN", 1), Step::Reply(_)));
        let Step::Fail { answer: Some(r), reason, .. } = handshake(&mut a, "PLAIN", 1) else { panic!("a second handshake mid-exchange") };
        assert_eq!(response::<SaslHandshakeResponse>(&r, 1, false).error_code, 34);
        assert!(reason.contains("during SASL authentication"), "{reason}");
        assert!(matches!(a.on_frame(&Bytes::from_static(b"\0\0"), Instant::now(), &no_scram, &nonce), Step::Fail { answer: None, .. }), "a runt frame");
        // A private api key (the controller listener's Raft RPCs): refused before the login, the
        // connection's own to serve after it.
        let private = Bytes::from_static(&[0x7d, 0x00, 0, 0, 0, 0, 0, 9, 0, 0]);
        let mut a = Authenticator::new(settings(&[SaslMechanism::Plain], 0));
        assert!(matches!(a.on_frame(&private, Instant::now(), &no_scram, &nonce), Step::Fail { answer: None, .. }));
        let mut a = Authenticator::new(settings(&[SaslMechanism::Plain], 0));
        assert!(matches!(handshake(&mut a, "PLAIN", 1), Step::Reply(_)));
        assert!(matches!(authenticate(&mut a, b"\0alice\0alice-secret", Instant::now(), &no_scram), Step::Reply(_)));
        assert!(matches!(a.on_frame(&private, Instant::now(), &no_scram, &nonce), Step::Serve));
    }

    #[test]
    fn a_v0_handshake_switches_to_raw_tokens() {
        let mut a = Authenticator::new(settings(&[SaslMechanism::Plain], 0));
        assert!(matches!(handshake(&mut a, "PLAIN", 0), Step::Reply(_)));
        let Step::Reply(r) = a.on_frame(&Bytes::from_static(b"\0bob\0bob-secret"), Instant::now(), &no_scram, &nonce) else { panic!("raw token") };
        assert_eq!(&frame_bytes(&r)[..], &[0, 0, 0, 0], "an empty raw token answers PLAIN");
        assert_eq!(a.authenticated().unwrap().principal, "User:bob");
        let mut a = Authenticator::new(settings(&[SaslMechanism::Plain], 0));
        assert!(matches!(handshake(&mut a, "PLAIN", 0), Step::Reply(_)));
        assert!(matches!(a.on_frame(&Bytes::from_static(b"\0bob\0x"), Instant::now(), &no_scram, &nonce), Step::Fail { answer: None, .. }), "raw failures close without an answer");
    }

    #[test]
    fn scram_over_sasl_authenticate_and_reauthentication_keeps_the_principal() {
        let cred = scram::tests::credential(ScramMechanism::Sha256, "alice-pw", b"saltsaltsalt", 4096);
        let lookup = move |u: &str, m: ScramMechanism| (u == "alice" && m == ScramMechanism::Sha256).then(|| cred.clone());
        let mut a = Authenticator::new(settings(&[SaslMechanism::ScramSha256, SaslMechanism::Plain], 1000));
        let run = |a: &mut Authenticator, first: &str, password: &str| -> Step {
            assert!(matches!(handshake(a, "SCRAM-SHA-256", 1), Step::Reply(_)));
            let Step::Reply(r) = authenticate(a, first.as_bytes(), Instant::now(), &lookup) else { panic!("server first") };
            let r: SaslAuthenticateResponse = response(&r, 2, true);
            assert_eq!((r.error_code, r.session_lifetime_ms), (0, 0), "no lifetime before the exchange completes");
            let server_first = String::from_utf8(r.auth_bytes.to_vec()).unwrap();
            assert!(server_first.ends_with(",i=4096") && server_first.contains("srvnonce"));
            let fin = scram::tests::client_final_message(ScramMechanism::Sha256, password, &first[3..], &server_first, "n,,");
            authenticate(a, fin.as_bytes(), Instant::now(), &lookup)
        };
        let Step::Reply(r) = run(&mut a, "n,,n=alice,r=c1", "alice-pw") else { panic!("valid proof") };
        let r: SaslAuthenticateResponse = response(&r, 2, true);
        assert!(r.auth_bytes.starts_with(b"v=") && r.session_lifetime_ms == 1000);
        assert_eq!(a.authenticated().unwrap().principal, "User:alice");
        // Re-authentication: same mechanism and principal.
        let Step::Reply(_) = run(&mut a, "n,,n=alice,r=c2", "alice-pw") else { panic!("re-authentication") };
        assert!(a.is_serving());
        // Another mechanism is refused with ILLEGAL_SASL_STATE on its SaslAuthenticate.
        assert!(matches!(handshake(&mut a, "PLAIN", 1), Step::Reply(_)));
        let Step::Fail { answer: Some(r), .. } = authenticate(&mut a, b"\0alice\0alice-secret", Instant::now(), &lookup) else { panic!("mechanism change") };
        let r: SaslAuthenticateResponse = response(&r, 2, true);
        assert_eq!(r.error_code, 34);
        assert!(r.error_message.unwrap().contains("not supported for re-authentication"));
        // Without a session lifetime a handshake after authentication is served (ILLEGAL_SASL_STATE by its handler).
        let mut b = Authenticator::new(settings(&[SaslMechanism::Plain], 0));
        assert!(matches!(handshake(&mut b, "PLAIN", 1), Step::Reply(_)));
        assert!(matches!(authenticate(&mut b, b"\0bob\0bob-secret", Instant::now(), &lookup), Step::Reply(_)));
        assert!(matches!(handshake(&mut b, "PLAIN", 1), Step::Serve));
        assert!(!b.expired(Instant::now() + Duration::from_secs(1 << 30)));
    }

    #[test]
    fn an_expired_session_closes_on_a_request_but_takes_a_reauthentication_handshake() {
        let mut a = Authenticator::new(settings(&[SaslMechanism::Plain], 1000));
        assert!(matches!(handshake(&mut a, "PLAIN", 1), Step::Reply(_)));
        let start = Instant::now();
        assert!(matches!(authenticate(&mut a, b"\0alice\0alice-secret", start, &no_scram), Step::Reply(_)));
        let metadata = request(ApiKey::Metadata, 12, 3, &MetadataRequest::default());
        let again = request(ApiKey::SaslHandshake, 1, 4, &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")));
        assert!(!a.closes_on(&metadata, start + Duration::from_millis(999)), "within the session");
        let late = start + Duration::from_millis(1500);
        assert!(a.closes_on(&metadata, late), "a request after the session's end");
        assert!(!a.closes_on(&again, late), "Kafka re-authenticates an expired session");
        // The re-authentication after the end renews the session from its completion.
        assert!(matches!(a.on_frame(&again, late, &no_scram, &nonce), Step::Reply(_)));
        let Step::Reply(r) = authenticate(&mut a, b"\0alice\0alice-secret", late, &no_scram) else { panic!("re-authentication") };
        let r: SaslAuthenticateResponse = response(&r, 2, true);
        assert_eq!((r.error_code, r.session_lifetime_ms), (0, 1000));
        assert!(!a.closes_on(&metadata, late + Duration::from_millis(999)));
    }

    #[test]
    fn reauthentication_as_another_user_fails() {
        let mut a = Authenticator::new(settings(&[SaslMechanism::Plain], 1000));
        assert!(matches!(handshake(&mut a, "PLAIN", 1), Step::Reply(_)));
        assert!(matches!(authenticate(&mut a, b"\0alice\0alice-secret", Instant::now(), &no_scram), Step::Reply(_)));
        assert!(matches!(handshake(&mut a, "PLAIN", 1), Step::Reply(_)));
        let Step::Fail { answer: Some(r), .. } = authenticate(&mut a, b"\0bob\0bob-secret", Instant::now(), &no_scram) else { panic!("principal change") };
        let r: SaslAuthenticateResponse = response(&r, 2, true);
        assert_eq!((r.error_code, r.error_message.as_deref()), (58, Some("Cannot change principals during re-authentication from User:alice: User:bob")));
    }

    #[test]
    fn server_nonces_are_fresh_and_printable() {
        let (a, b) = (server_nonce(), server_nonce());
        assert_ne!(a, b);
        assert!(a.len() == 32 && a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
