//! SASL/OAUTHBEARER, server side (RFC 7628) as Kafka's OAuthBearerSaslServer runs it with its
//! default validator, OAuthBearerUnsecuredValidatorCallbackHandler: the client's first message
//! `n,[a=authzid],^Aauth=Bearer <token>^A[key=value^A]*^A` carries an unsecured JWS (`alg` none, no
//! signature) whose claims name the principal (`sub`, or the `unsecuredValidatorPrincipalClaimName`
//! option), when it expires (`exp`, required) and was issued (`iat`, optional), and its scope. A
//! token that does not validate gets RFC 7628's error challenge (`{"status":"invalid_token"}`, or
//! `insufficient_scope` with the scope); the client answers `^A` and the authentication fails with
//! that JSON as its message, as Kafka's does. Pure: the caller passes the time.
//!
//! An unsecured token proves nothing: like Kafka's default handler, it is for development. With
//! Kafka's OAuthBearerValidatorCallbackHandler configured, tokens are signed JWTs instead, checked
//! against the listener's JWKS as Kafka's BrokerJwtValidator checks them: a key found by the
//! token's `kid`, an asymmetric algorithm matching it, the signature, `exp` (required), `nbf` and
//! `iat` within the clock skew, the audience and issuer when configured, and the subject claim.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::AuthError;

/// Kafka's `%x01` separator.
const CONTROL_A: char = '\u{1}';

/// Base64url with or without padding, as Java's URL decoder takes it.
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent));

/// The unsecured validator's options, from the listener's configuration.
pub use crate::config::OAuthBearerSettings as UnsecuredValidator;

/// A client's first message.
#[derive(Debug, PartialEq, Eq)]
pub struct InitialResponse {
    pub authzid: String,
    pub token: String,
    pub extensions: BTreeMap<String, String>,
}

/// A validated token: its principal name and when it expires (ms since the epoch).
#[derive(Debug, PartialEq, Eq)]
pub struct Token {
    pub principal: String,
    pub expires_at_ms: i64,
}

/// Why a token did not validate: RFC 7628's status, the scope it lacks, and the reason (logged).
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid {
    pub scope: Option<String>,
    pub reason: String,
}

impl Invalid {
    fn new(reason: impl Into<String>) -> Invalid {
        Invalid { scope: None, reason: reason.into() }
    }

    /// The error challenge sent to the client, as Kafka writes it.
    pub fn challenge(&self) -> String {
        match &self.scope {
            None => r#"{"status":"invalid_token"}"#.to_string(),
            Some(scope) => format!(r#"{{"status":"insufficient_scope", "scope":"{scope}"}}"#),
        }
    }
}

/// Parses the client's first message as Kafka's OAuthBearerClientInitialResponse does.
pub fn parse_initial_response(message: &[u8]) -> Result<InitialResponse, AuthError> {
    let invalid = |m: &str| AuthError::Invalid(m.to_string());
    let text = std::str::from_utf8(message).map_err(|_| invalid("Invalid OAUTHBEARER client first message"))?;
    let rest = text.strip_prefix("n,").ok_or_else(|| invalid("Invalid OAUTHBEARER client first message"))?;
    let (gs2, rest) = rest.split_once(',').ok_or_else(|| invalid("Invalid OAUTHBEARER client first message"))?;
    let authzid = match gs2 {
        "" => String::new(),
        a => a.strip_prefix("a=").filter(|a| !a.is_empty()).ok_or_else(|| invalid("Invalid OAUTHBEARER client first message"))?.to_string(),
    };
    // ^A kvpair* ^A: the pairs, each ending in ^A, then a final ^A.
    let pairs = rest.strip_prefix(CONTROL_A).and_then(|r| r.strip_suffix(CONTROL_A)).ok_or_else(|| invalid("Invalid OAUTHBEARER client first message"))?;
    let mut auth = None;
    let mut extensions = BTreeMap::new();
    for pair in pairs.split(CONTROL_A).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| invalid("Invalid OAUTHBEARER client first message"))?;
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(invalid("Invalid OAUTHBEARER client first message"));
        }
        if k == "auth" {
            auth = Some(v);
        } else {
            extensions.insert(k.to_string(), v.to_string());
        }
    }
    let auth = auth.ok_or_else(|| invalid("Invalid OAUTHBEARER client first message: 'auth' not specified"))?;
    let (scheme, token) = auth.split_once(' ').ok_or_else(|| invalid("Invalid OAUTHBEARER client first message: invalid 'auth' format"))?;
    let token = token.trim_start_matches(' ');
    let token_chars = |c: char| c.is_ascii_alphanumeric() || "-_~+/.=".contains(c);
    if scheme.is_empty() || token.is_empty() || !token.chars().all(token_chars) {
        return Err(invalid("Invalid OAUTHBEARER client first message: invalid 'auth' format"));
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(invalid(&format!("Invalid scheme in OAUTHBEARER client first message: {scheme}")));
    }
    Ok(InitialResponse { authzid, token: token.to_string(), extensions })
}

/// Validates an unsecured JWS at `now_ms` as Kafka's unsecured validator does: three
/// dot-separated parts with an empty signature, `alg` none, the principal claim a string, `exp`
/// a number of seconds not in the past and after `iat` (when present), `iat` not in the future,
/// and every required scope granted.
pub fn validate_unsecured(token: &str, now_ms: i64, v: &UnsecuredValidator) -> Result<Token, Invalid> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(Invalid::new(format!("Unsecured JWS compact serializations must have 3 dot-separated Base64URL-encoded values: {}", parts.len())));
    }
    if !parts[2].is_empty() {
        return Err(Invalid::new("Unsecured JWS must not contain a digital signature"));
    }
    let json = |part: &str| -> Result<serde_json::Map<String, serde_json::Value>, Invalid> {
        let bytes = URL_SAFE.decode(part).map_err(|_| Invalid::new("malformed Base64 URL encoded value"))?;
        match serde_json::from_slice(&bytes) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            _ => Err(Invalid::new("malformed JSON")),
        }
    };
    let header = json(parts[0])?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("none") {
        return Err(Invalid::new("Unsecured JWS must have an 'alg' header of 'none'"));
    }
    let claims = json(parts[1])?;
    let principal = match claims.get(&v.principal_claim) {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(_) => return Err(Invalid::new(format!("The '{}' claim was not of type String", v.principal_claim))),
        None => return Err(Invalid::new(format!("Required claim missing: {}", v.principal_claim))),
    };
    let seconds = |name: &str| -> Result<Option<i64>, Invalid> {
        match claims.get(name) {
            None => Ok(None),
            Some(serde_json::Value::Number(n)) => n.as_f64().map(|s| Some((s * 1000.0) as i64)).ok_or_else(|| Invalid::new(format!("The '{name}' claim was not of type Number"))),
            Some(_) => Err(Invalid::new(format!("The '{name}' claim was not of type Number"))),
        }
    };
    let issued_at = seconds("iat")?;
    let expires_at = seconds("exp")?.ok_or_else(|| Invalid::new("Required claim missing: exp"))?;
    if let Some(iat) = issued_at
        && iat > now_ms + v.clock_skew_ms
    {
        return Err(Invalid::new(format!("The Issued At value ({iat} ms) is in the future (now = {now_ms} ms)")));
    }
    if now_ms - v.clock_skew_ms >= expires_at {
        return Err(Invalid::new(format!("The indicated time ({now_ms} ms) is on or after the Expiration Time value ({expires_at} ms)")));
    }
    if let Some(iat) = issued_at
        && expires_at <= iat
    {
        return Err(Invalid::new(format!("The Expiration Time time ({expires_at} ms) is not after the Issued At time ({iat} ms)")));
    }
    let granted: Vec<String> = match claims.get(&v.scope_claim) {
        None => vec![],
        Some(serde_json::Value::String(s)) => s.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect(),
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect(),
        Some(_) => return Err(Invalid::new(format!("The '{}' claim was not of type String or List", v.scope_claim))),
    };
    if let Some(missing) = v.required_scope.iter().find(|s| !granted.contains(s)) {
        // Kafka names the required scope as Java prints a list: `[a, b]` (checked against Kafka 4.0).
        return Err(Invalid { scope: Some(format!("[{}]", v.required_scope.join(", "))), reason: format!("The provided scope ({}) was missing a required scope ({missing})", granted.join(" ")) });
    }
    Ok(Token { principal, expires_at_ms: expires_at })
}

/// Validates a signed JWT as Kafka's BrokerJwtValidator does (see the module comment).
pub fn validate_jwt(token: &str, s: &crate::config::JwtSettings) -> Result<Token, Invalid> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let header = jsonwebtoken::decode_header(token).map_err(|e| Invalid::new(format!("malformed JWT: {e}")))?;
    let asymmetric = [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS384, Algorithm::PS512, Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA];
    if !asymmetric.contains(&header.alg) {
        return Err(Invalid::new(format!("the JWT's algorithm {:?} is not a public-key signature", header.alg)));
    }
    let kid = header.kid.as_deref().ok_or_else(|| Invalid::new("the JWT names no key (kid)"))?;
    let jwk = s.jwks.find(kid).ok_or_else(|| Invalid::new(format!("no key {kid} in the JWKS")))?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| Invalid::new(format!("key {kid} of the JWKS is unusable: {e}")))?;
    let mut v = Validation::new(header.alg);
    v.leeway = s.clock_skew_seconds;
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp"]);
    if s.expected_audience.is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(&s.expected_audience);
    }
    if let Some(issuer) = &s.expected_issuer {
        v.set_issuer(&[issuer]);
    }
    let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &v).map_err(|e| Invalid::new(format!("the JWT did not validate: {e}")))?;
    let claims = data.claims;
    let principal = match claims.get(&s.sub_claim) {
        Some(serde_json::Value::String(p)) if !p.trim().is_empty() => p.clone(),
        _ => return Err(Invalid::new(format!("the JWT has no string claim {}", s.sub_claim))),
    };
    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    if let Some(iat) = claims.get("iat").and_then(|i| i.as_i64())
        && iat > now_s + s.clock_skew_seconds as i64
    {
        return Err(Invalid::new(format!("the JWT was issued in the future (iat {iat})")));
    }
    let exp = claims.get("exp").and_then(|e| e.as_f64()).ok_or_else(|| Invalid::new("the JWT's exp is not a number"))?;
    Ok(Token { principal, expires_at_ms: (exp * 1000.0) as i64 })
}

/// Authenticates a first message: Ok(Ok(token)) when valid, Ok(Err(invalid)) when the token does
/// not validate (the caller sends the challenge), Err when the message or the authorization id
/// is refused outright.
pub fn authenticate(message: &[u8], now_ms: i64, v: &UnsecuredValidator) -> Result<Result<Token, Invalid>, AuthError> {
    let first = parse_initial_response(message)?;
    let validated = match &v.jwt {
        Some(jwt) => validate_jwt(&first.token, jwt),
        None => validate_unsecured(&first.token, now_ms, v),
    };
    let token = match validated {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    if !first.authzid.is_empty() && first.authzid != token.principal {
        return Err(AuthError::Refused(format!(
            "Authentication failed: Client requested an authorization id ({}) that is different from the token's principal name ({})",
            first.authzid, token.principal
        )));
    }
    Ok(Ok(token))
}

/// An unsecured JWS for tests and tools: `alg` none, the given claims.
#[cfg(test)]
pub fn unsecured_jws(claims: &str) -> String {
    let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!("{}.{}.", e(r#"{"alg":"none"}"#), e(claims))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn first(token: &str) -> Vec<u8> {
        format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}").into_bytes()
    }

    #[test]
    fn a_first_message_is_parsed_as_kafka_parses_it() {
        let m = b"n,a=alice,\x01auth=Bearer abc.def.\x01traceId=42\x01\x01";
        let r = parse_initial_response(m).unwrap();
        assert_eq!((r.authzid.as_str(), r.token.as_str()), ("alice", "abc.def."));
        assert_eq!(r.extensions.get("traceId").map(String::as_str), Some("42"));
        assert_eq!(parse_initial_response(b"n,,\x01\x01"), Err(AuthError::Invalid("Invalid OAUTHBEARER client first message: 'auth' not specified".into())));
        assert_eq!(parse_initial_response(b"n,,\x01auth=Basic abc\x01\x01"), Err(AuthError::Invalid("Invalid scheme in OAUTHBEARER client first message: Basic".into())));
        assert!(parse_initial_response(b"y,,\x01auth=Bearer abc\x01\x01").is_err());
        assert!(parse_initial_response(b"n,,\x01auth=Bearer a b\x01\x01").is_err(), "a space inside the token");
    }

    #[test]
    fn a_valid_unsecured_token_names_its_principal_and_expiry() {
        let jws = unsecured_jws(&format!(r#"{{"sub":"alice","iat":{},"exp":{},"scope":"read write"}}"#, NOW / 1000 - 10, NOW / 1000 + 3600));
        let t = authenticate(&first(&jws), NOW, &UnsecuredValidator::default()).unwrap().unwrap();
        assert_eq!(t, Token { principal: "alice".into(), expires_at_ms: NOW + 3_600_000 });
        let v = UnsecuredValidator { principal_claim: "user".into(), required_scope: vec!["read".into()], ..Default::default() };
        let jws = unsecured_jws(&format!(r#"{{"user":"bob","exp":{},"scope":["read"]}}"#, NOW / 1000 + 60));
        assert_eq!(authenticate(&first(&jws), NOW, &v).unwrap().unwrap().principal, "bob");
    }

    #[test]
    fn invalid_tokens_get_the_rfc_7628_challenge() {
        let v = UnsecuredValidator::default();
        let check = |claims: &str| validate_unsecured(&unsecured_jws(claims), NOW, &v).unwrap_err();
        assert!(check(&format!(r#"{{"sub":"a","exp":{}}}"#, NOW / 1000 - 1)).reason.contains("on or after the Expiration Time"));
        assert!(check(r#"{"sub":"a"}"#).reason.contains("Required claim missing: exp"));
        assert!(check(&format!(r#"{{"exp":{}}}"#, NOW / 1000 + 60)).reason.contains("Required claim missing: sub"));
        assert!(check(&format!(r#"{{"sub":"a","iat":{},"exp":{}}}"#, NOW / 1000 + 100, NOW / 1000 + 200)).reason.contains("in the future"));
        assert_eq!(check(r#"{"sub":"a"}"#).challenge(), r#"{"status":"invalid_token"}"#);
        let signed = format!("{}sig", unsecured_jws(r#"{"sub":"a"}"#));
        assert!(validate_unsecured(&signed, NOW, &v).unwrap_err().reason.contains("must not contain a digital signature"));
        let scoped = UnsecuredValidator { required_scope: vec!["admin".into()], ..Default::default() };
        let e = validate_unsecured(&unsecured_jws(&format!(r#"{{"sub":"a","exp":{},"scope":"read"}}"#, NOW / 1000 + 60)), NOW, &scoped).unwrap_err();
        assert_eq!(e.challenge(), r#"{"status":"insufficient_scope", "scope":"[admin]"}"#);
        let skewed = UnsecuredValidator { clock_skew_ms: 5_000, ..Default::default() };
        assert!(validate_unsecured(&unsecured_jws(&format!(r#"{{"sub":"a","exp":{}}}"#, NOW / 1000 - 1)), NOW, &skewed).is_ok(), "within the allowed clock skew");
    }

    #[test]
    fn an_authorization_id_must_be_the_tokens_principal() {
        let jws = unsecured_jws(&format!(r#"{{"sub":"alice","exp":{}}}"#, NOW / 1000 + 60));
        let m = format!("n,a=mallory,\u{1}auth=Bearer {jws}\u{1}\u{1}");
        assert!(matches!(authenticate(m.as_bytes(), NOW, &UnsecuredValidator::default()), Err(AuthError::Refused(r)) if r.contains("different from the token's principal name")));
    }

    /// A P-256 signer and the JWKS holding its public key as `kid`.
    fn signer(kid: &str) -> (jsonwebtoken::EncodingKey, serde_json::Value) {
        let key = rcgen::KeyPair::generate().unwrap();
        let raw = key.public_key_raw();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..65]), "kid": kid, "use": "sig", "alg": "ES256"});
        (jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der()), jwk)
    }

    fn jwt_settings(jwks: Vec<serde_json::Value>) -> crate::config::JwtSettings {
        crate::config::JwtSettings {
            jwks: crate::config::JwksSource::File(serde_json::from_value(serde_json::json!({ "keys": jwks })).unwrap()),
            expected_audience: vec!["fjord".into()],
            expected_issuer: Some("https://issuer.test".into()),
            sub_claim: "sub".into(),
            scope_claim: "scope".into(),
            clock_skew_seconds: 30,
        }
    }

    fn sign(key: &jsonwebtoken::EncodingKey, kid: &str, claims: serde_json::Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    #[test]
    fn a_signed_jwt_is_checked_against_the_jwks_audience_issuer_and_expiry() {
        let (key, jwk) = signer("k1");
        let (other, _) = signer("k1");
        let s = jwt_settings(vec![jwk]);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let claims = |aud: &str, exp: i64| serde_json::json!({"sub": "frank", "aud": aud, "iss": "https://issuer.test", "iat": now, "exp": exp});
        let t = validate_jwt(&sign(&key, "k1", claims("fjord", now + 600)), &s).unwrap();
        assert_eq!((t.principal.as_str(), t.expires_at_ms), ("frank", (now + 600) * 1000));
        let refused = |token: String| validate_jwt(&token, &s).unwrap_err().reason;
        assert!(refused(sign(&key, "k1", claims("fjord", now - 600))).contains("did not validate"), "expired");
        assert!(refused(sign(&key, "k1", claims("someone-else", now + 600))).contains("did not validate"), "another audience");
        assert!(refused(sign(&key, "k2", claims("fjord", now + 600))).contains("no key k2"));
        assert!(refused(sign(&other, "k1", claims("fjord", now + 600))).contains("did not validate"), "signed by another key");
        let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        hs.kid = Some("k1".into());
        let forged = jsonwebtoken::encode(&hs, &claims("fjord", now + 600), &jsonwebtoken::EncodingKey::from_secret(b"guess")).unwrap();
        assert!(refused(forged).contains("not a public-key signature"));
        assert!(validate_jwt(&unsecured_jws(&format!(r#"{{"sub":"a","exp":{}}}"#, now + 60)), &s).is_err(), "an unsecured token is refused once a JWKS is configured");
    }
}
