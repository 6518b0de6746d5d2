//! SCRAM credentials (KIP-554): what AlterUserScramCredentials sets and
//! DescribeUserScramCredentials lists, kept durably in `fjord-scram-credentials.checkpoint`.
//! Like Kafka, it keeps no password and not even the client's salted password: only the salt, the
//! iteration count and the two keys derived from it (RFC 5802's StoredKey and ServerKey), which is
//! what a SCRAM server needs to authenticate the user. Knows nothing of requests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use crate::storage::checkpoint::write_atomic;
use crate::storage::io::std::StdIo;

const FILE: &str = "fjord-scram-credentials.checkpoint";
const VERSION: &str = "0";

/// Fewest iterations Kafka accepts for either mechanism (RFC 7677's minimum).
pub const MIN_ITERATIONS: i32 = 4096;
/// Most iterations Kafka accepts.
pub const MAX_ITERATIONS: i32 = 16384;

/// The SCRAM mechanisms, by their wire type (KIP-554): 1 SCRAM-SHA-256, 2 SCRAM-SHA-512; any other
/// value is Kafka's UNKNOWN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mechanism {
    Sha256,
    Sha512,
}

impl Mechanism {
    pub fn from_type(t: i8) -> Option<Mechanism> {
        match t {
            1 => Some(Mechanism::Sha256),
            2 => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    /// Its SASL mechanism name, as clients and `sasl.enabled.mechanisms` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        [Mechanism::Sha256, Mechanism::Sha512].into_iter().find(|m| m.name() == name)
    }

    pub fn wire_type(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    /// RFC 5802's SaltedPassword = Hi(password, salt, iterations): PBKDF2 with the mechanism's
    /// HMAC over the password's UTF-8 bytes, as Kafka's ScramFormatter computes it. Shared by the
    /// console login and the inter-broker SCRAM client.
    pub fn salted_password(self, password: &str, salt: &[u8], iterations: std::num::NonZeroU32) -> Vec<u8> {
        let (algorithm, len) = match self {
            Mechanism::Sha256 => (ring::pbkdf2::PBKDF2_HMAC_SHA256, 32),
            Mechanism::Sha512 => (ring::pbkdf2::PBKDF2_HMAC_SHA512, 64),
        };
        let mut salted = vec![0u8; len];
        ring::pbkdf2::derive(algorithm, iterations, salt, password.as_bytes(), &mut salted);
        salted
    }

    /// (StoredKey, ServerKey) from a salted password: ClientKey = HMAC(salted, "Client Key"),
    /// StoredKey = H(ClientKey), ServerKey = HMAC(salted, "Server Key").
    pub fn derive_keys(self, salted_password: &[u8]) -> (Vec<u8>, Vec<u8>) {
        macro_rules! keys {
            ($hash:ty) => {{
                let mac = |msg: &[u8]| {
                    let mut m = <Hmac<$hash> as Mac>::new_from_slice(salted_password).expect("HMAC takes a key of any length");
                    m.update(msg);
                    m.finalize().into_bytes().to_vec()
                };
                (<$hash>::digest(mac(b"Client Key")).to_vec(), mac(b"Server Key"))
            }};
        }
        match self {
            Mechanism::Sha256 => keys!(Sha256),
            Mechanism::Sha512 => keys!(Sha512),
        }
    }
}

/// One user's credential for one mechanism.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl Credential {
    /// Whether `password` is this credential's: RFC 5802's SaltedPassword = Hi(password, salt,
    /// iterations) (PBKDF2 with the mechanism's HMAC), its StoredKey compared in constant time with
    /// the stored one. For a login outside SASL (the web console); the password is taken as its
    /// UTF-8 bytes, as Kafka's ScramFormatter takes it. A credential with an iteration count
    /// outside Kafka's bounds never matches (it cannot have been stored by this broker).
    pub fn matches_password(&self, mechanism: Mechanism, password: &str) -> bool {
        use subtle::ConstantTimeEq;
        let Some(iterations) = std::num::NonZeroU32::new(self.iterations as u32).filter(|_| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(&self.iterations)) else { return false };
        let salted = mechanism.salted_password(password, &self.salt, iterations);
        let (stored_key, _) = mechanism.derive_keys(&salted);
        stored_key.ct_eq(&self.stored_key).into()
    }
}

/// An upsertion as the request carries it.
#[derive(Clone, Debug)]
pub struct Upsertion {
    pub user: String,
    pub mechanism: i8,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

/// Why one user's alteration or description failed; `api::error_code::scram` picks the code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("{0}")]
    DuplicateResource(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    UnacceptableCredential(String),
    #[error("Unknown SCRAM mechanism")]
    UnsupportedMechanism,
    #[error("cannot store the credentials: {0}")]
    Storage(String),
}

type Users = BTreeMap<String, BTreeMap<Mechanism, Credential>>;

/// Every user's credentials behind one lock; an alteration is stored before it is seen.
#[derive(Debug)]
pub struct ScramStore {
    dir: PathBuf,
    users: Mutex<Users>,
}

impl ScramStore {
    /// Loads the credentials of `dir` (none when the file does not exist).
    pub fn load(dir: &Path) -> std::io::Result<ScramStore> {
        let path = dir.join(FILE);
        let users = match std::fs::read_to_string(&path) {
            Ok(text) => decode(&text).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} is corrupt", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Users::new(),
            Err(e) => return Err(e),
        };
        Ok(ScramStore { dir: dir.to_path_buf(), users: Mutex::new(users) })
    }

    /// Applies the deletions (user, mechanism type) and upsertions of one request (see
    /// [`decide`]): the valid ones are stored together before they are seen. Returns one result
    /// per user.
    pub fn alter(&self, deletions: &[(String, i8)], upsertions: &[Upsertion]) -> Vec<(String, Result<(), ScramError>)> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let (changes, mut results) = decide(|u, m| users.get(u).is_some_and(|c| c.contains_key(&m)), deletions, upsertions);
        if changes.is_empty() {
            return results;
        }
        let mut next = users.clone();
        for change in changes {
            match change {
                Change::Delete(user, m) => {
                    if let Some(creds) = next.get_mut(&user) {
                        creds.remove(&m);
                        if creds.is_empty() {
                            next.remove(&user);
                        }
                    }
                }
                Change::Upsert(user, m, c) => drop(next.entry(user).or_default().insert(m, c)),
            }
        }
        match write_atomic(&StdIo, &self.dir.join(FILE), encode(&next).as_bytes()) {
            Ok(()) => *users = next,
            Err(e) => {
                let failed = ScramError::Storage(e.to_string());
                for r in results.iter_mut().filter(|r| r.1.is_ok()) {
                    r.1 = Err(failed.clone());
                }
            }
        }
        results
    }

    /// In a metadata quorum the credentials are the metadata log's: the broker's copy follows
    /// the applied image (nothing is written here).
    pub fn follow(&self, credentials: &BTreeMap<(String, i8), crate::metadata::ScramCredential>) {
        let mut users = Users::new();
        for ((user, t), c) in credentials {
            if let Some(m) = Mechanism::from_type(*t) {
                let c = Credential { salt: c.salt.clone(), stored_key: c.stored_key.clone(), server_key: c.server_key.clone(), iterations: c.iterations };
                users.entry(user.clone()).or_default().insert(m, c);
            }
        }
        *self.users.lock().unwrap_or_else(|e| e.into_inner()) = users;
    }

    /// DescribeUserScramCredentials: for each user asked for (every user with a credential when
    /// `users` is None or empty), the (mechanism type, iterations) of its credentials, or why not.
    pub fn describe(&self, users: Option<&[String]>) -> Vec<(String, Result<Vec<(i8, i32)>, ScramError>)> {
        let stored = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let infos = |creds: &BTreeMap<Mechanism, Credential>| creds.iter().map(|(m, c)| (m.wire_type(), c.iterations)).collect::<Vec<_>>();
        let asked = match users {
            None | Some([]) => return stored.iter().map(|(u, c)| (u.clone(), Ok(infos(c)))).collect(),
            Some(asked) => asked,
        };
        let mut times: BTreeMap<&String, usize> = BTreeMap::new();
        for u in asked {
            *times.entry(u).or_default() += 1;
        }
        times
            .into_iter()
            .map(|(u, n)| {
                let result = if n > 1 {
                    Err(ScramError::DuplicateResource(format!("Cannot describe SCRAM credentials for the same user twice in a single request: {u}")))
                } else {
                    match stored.get(u) {
                        Some(c) => Ok(infos(c)),
                        None => Err(ScramError::ResourceNotFound(format!("Attempt to describe a user credential that does not exist: {u}"))),
                    }
                };
                (u.clone(), result)
            })
            .collect()
    }

    /// The stored credential of one user and mechanism (for a SCRAM authenticator).
    pub fn credential(&self, user: &str, mechanism: Mechanism) -> Option<Credential> {
        self.users.lock().unwrap_or_else(|e| e.into_inner()).get(user)?.get(&mechanism).cloned()
    }
}

/// One credential change decided by [`decide`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Upsert(String, Mechanism, Credential),
    Delete(String, Mechanism),
}

/// The changes one AlterUserScramCredentials request makes, decided as Kafka's controller does,
/// given which credentials exist: a user named twice in the request fails with
/// DUPLICATE_RESOURCE and none of its alterations apply; every other one is validated on its
/// own. Returns the changes and one result per user (Ok for each user whose change is listed).
/// Pure: a single node applies the changes to its file, a quorum's controller turns them into
/// metadata records.
pub fn decide(exists: impl Fn(&str, Mechanism) -> bool, deletions: &[(String, i8)], upsertions: &[Upsertion]) -> (Vec<Change>, Vec<(String, Result<(), ScramError>)>) {
    let mut failed: BTreeMap<String, ScramError> = BTreeMap::new();
    let mut deletes: BTreeMap<String, Mechanism> = BTreeMap::new();
    let mut upserts: BTreeMap<String, (Mechanism, &Upsertion)> = BTreeMap::new();
    let twice = || ScramError::DuplicateResource("A user credential cannot be altered twice in the same request".into());
    for (user, t) in deletions {
        if failed.contains_key(user) {
            continue;
        }
        if deletes.remove(user).is_some() {
            failed.insert(user.clone(), twice());
            continue;
        }
        match validate_name(user, *t) {
            Err(e) => drop(failed.insert(user.clone(), e)),
            Ok(m) if !exists(user, m) => {
                failed.insert(user.clone(), ScramError::ResourceNotFound("Attempt to delete a user credential that does not exist".into()));
            }
            Ok(m) => drop(deletes.insert(user.clone(), m)),
        }
    }
    for u in upsertions {
        if failed.contains_key(&u.user) {
            continue;
        }
        if deletes.remove(&u.user).is_some() || upserts.remove(&u.user).is_some() {
            failed.insert(u.user.clone(), twice());
            continue;
        }
        let checked = validate_name(&u.user, u.mechanism).and_then(|m| match u.iterations {
            i if i < MIN_ITERATIONS => Err(ScramError::UnacceptableCredential("Too few iterations".into())),
            i if i > MAX_ITERATIONS => Err(ScramError::UnacceptableCredential("Too many iterations".into())),
            _ => Ok(m),
        });
        match checked {
            Ok(m) => drop(upserts.insert(u.user.clone(), (m, u))),
            Err(e) => drop(failed.insert(u.user.clone(), e)),
        }
    }
    let mut changes: Vec<Change> = deletes.iter().map(|(user, m)| Change::Delete(user.clone(), *m)).collect();
    for (user, (m, u)) in &upserts {
        let (stored_key, server_key) = m.derive_keys(&u.salted_password);
        changes.push(Change::Upsert(user.clone(), *m, Credential { salt: u.salt.clone(), stored_key, server_key, iterations: u.iterations }));
    }
    let applied = deletes.into_keys().chain(upserts.into_keys()).map(|u| (u, Ok(())));
    (changes, applied.chain(failed.into_iter().map(|(u, e)| (u, Err(e)))).collect())
}

fn validate_name(user: &str, mechanism: i8) -> Result<Mechanism, ScramError> {
    if user.is_empty() {
        return Err(ScramError::UnacceptableCredential("Username must not be empty".into()));
    }
    Mechanism::from_type(mechanism).ok_or(ScramError::UnsupportedMechanism)
}

/// The file: a version line, then one line per credential: user (base64, so any name fits),
/// mechanism type, iterations, salt, StoredKey and ServerKey (base64).
fn encode(users: &Users) -> String {
    let mut text = format!("{VERSION}\n");
    for (user, creds) in users {
        for (m, c) in creds {
            let line = [B64.encode(user), m.wire_type().to_string(), c.iterations.to_string(), B64.encode(&c.salt), B64.encode(&c.stored_key), B64.encode(&c.server_key)];
            text.push_str(&line.join(" "));
            text.push('\n');
        }
    }
    text
}

fn decode(text: &str) -> Option<Users> {
    let mut lines = text.lines();
    if lines.next() != Some(VERSION) {
        return None;
    }
    let mut users = Users::new();
    for line in lines {
        let f: Vec<&str> = line.split(' ').collect();
        let [user, m, iterations, salt, stored_key, server_key] = f[..] else { return None };
        let user = String::from_utf8(B64.decode(user).ok()?).ok()?;
        let m = Mechanism::from_type(m.parse().ok()?)?;
        let c = Credential {
            salt: B64.decode(salt).ok()?,
            stored_key: B64.decode(stored_key).ok()?,
            server_key: B64.decode(server_key).ok()?,
            iterations: iterations.parse().ok()?,
        };
        users.entry(user).or_default().insert(m, c);
    }
    Some(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(user: &str, mechanism: i8, iterations: i32) -> Upsertion {
        Upsertion { user: user.into(), mechanism, iterations, salt: b"salt".to_vec(), salted_password: b"salted".to_vec() }
    }

    fn errors(results: Vec<(String, Result<(), ScramError>)>) -> BTreeMap<String, Option<ScramError>> {
        results.into_iter().map(|(u, r)| (u, r.err())).collect()
    }

    #[test]
    fn upserted_credentials_are_described_and_survive_a_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ScramStore::load(dir.path()).expect("load");
        let r = errors(store.alter(&[], &[up("alice", 1, 4096), up("bob", 2, 16384)]));
        assert_eq!(r, BTreeMap::from([("alice".into(), None), ("bob".into(), None)]));
        let r = errors(store.alter(&[], &[up("alice", 2, 8192)]));
        assert_eq!(r["alice"], None, "a second mechanism for the same user");
        let all = store.describe(None);
        assert_eq!(all, vec![("alice".into(), Ok(vec![(1, 4096), (2, 8192)])), ("bob".into(), Ok(vec![(2, 16384)]))]);
        assert_eq!(store.describe(Some(&[])), all, "an empty list asks for everyone");
        let reloaded = ScramStore::load(dir.path()).expect("reload");
        assert_eq!(reloaded.describe(None), all);
        assert_eq!(reloaded.credential("bob", Mechanism::Sha512), store.credential("bob", Mechanism::Sha512));
    }

    #[test]
    fn keys_are_derived_as_rfc_5802_says_and_no_password_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ScramStore::load(dir.path()).expect("load");
        // RFC 7677's example: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==,
        // 4096 iterations. Its SaltedPassword gives these keys; this ServerKey signs the RFC's
        // exchange as the RFC's server-final-message says (v=6rriTRBi23WpRR/...).
        let salted = hex("c4a49510323ab4f952cac1fa99441939e78ea74d6be81ddf7096e87513dc615d");
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("b64");
        let u = Upsertion { user: "user".into(), mechanism: 1, iterations: 4096, salt: salt.clone(), salted_password: salted.clone() };
        assert_eq!(errors(store.alter(&[], &[u]))["user"], None);
        let c = store.credential("user", Mechanism::Sha256).expect("stored");
        assert_eq!(c.salt, salt);
        assert_eq!(B64.encode(&c.stored_key), "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=");
        assert_eq!(B64.encode(&c.server_key), "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=");
        let file = std::fs::read(dir.path().join(FILE)).expect("file");
        assert!(!file.windows(salted.len()).any(|w| w == salted), "the salted password is not stored");
    }

    #[test]
    fn a_password_matches_its_credential_of_either_mechanism_and_nothing_else() {
        // RFC 7677's example: "pencil" with this salt and 4096 iterations has this StoredKey.
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("b64");
        let c = Credential { salt: salt.clone(), stored_key: B64.decode("WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=").expect("b64"), server_key: vec![], iterations: 4096 };
        assert!(c.matches_password(Mechanism::Sha256, "pencil"));
        assert!(!c.matches_password(Mechanism::Sha256, "pencil "));
        assert!(!c.matches_password(Mechanism::Sha256, ""));
        assert!(!c.matches_password(Mechanism::Sha512, "pencil"), "the other mechanism derives other keys");
        assert!(!Credential { iterations: 0, ..c.clone() }.matches_password(Mechanism::Sha256, "pencil"), "iterations out of bounds");
        // A SHA-512 credential as AlterUserScramCredentials stores it from the client's salted password.
        let mut salted = vec![0u8; 64];
        pbkdf2::pbkdf2_hmac::<Sha512>(b"s3cret", b"salt512", 5000, &mut salted);
        let (stored_key, server_key) = Mechanism::Sha512.derive_keys(&salted);
        let c = Credential { salt: b"salt512".to_vec(), stored_key, server_key, iterations: 5000 };
        assert!(c.matches_password(Mechanism::Sha512, "s3cret"));
        assert!(!c.matches_password(Mechanism::Sha512, "s3creT"));
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    #[test]
    fn bad_alterations_get_kafkas_errors_and_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ScramStore::load(dir.path()).expect("load");
        assert_eq!(errors(store.alter(&[], &[up("carol", 1, 5000)]))["carol"], None);
        let r = errors(store.alter(
            &[("dave".into(), 1), ("carol".into(), 1), ("".into(), 1), ("erin".into(), 1)],
            &[up("carol", 2, 5000), up("frank", 3, 5000), up("gina", 1, 4095), up("hank", 1, 16385), up("erin", 1, 5000)],
        ));
        assert_eq!(r["dave"], Some(ScramError::ResourceNotFound("Attempt to delete a user credential that does not exist".into())));
        let twice = Some(ScramError::DuplicateResource("A user credential cannot be altered twice in the same request".into()));
        assert_eq!(r["carol"], twice, "deleted and upserted in one request");
        assert_eq!(r[""], Some(ScramError::UnacceptableCredential("Username must not be empty".into())));
        assert_eq!(r["frank"], Some(ScramError::UnsupportedMechanism));
        assert_eq!(r["gina"], Some(ScramError::UnacceptableCredential("Too few iterations".into())));
        assert_eq!(r["hank"], Some(ScramError::UnacceptableCredential("Too many iterations".into())));
        // erin's deletion failed (no credential); a user with an error is not altered further.
        assert_eq!(r["erin"], Some(ScramError::ResourceNotFound("Attempt to delete a user credential that does not exist".into())));
        assert_eq!(store.describe(None), vec![("carol".into(), Ok(vec![(1, 5000)]))], "nothing else changed");
        assert_eq!(errors(store.alter(&[("carol".into(), 1)], &[]))["carol"], None);
        assert_eq!(store.describe(None), vec![]);
        let d = store.describe(Some(&["x".into(), "x".into(), "y".into()]));
        assert_eq!(d[0].1, Err(ScramError::DuplicateResource("Cannot describe SCRAM credentials for the same user twice in a single request: x".into())));
        assert_eq!(d[1].1, Err(ScramError::ResourceNotFound("Attempt to describe a user credential that does not exist: y".into())));
    }

    #[test]
    fn a_corrupt_file_is_refused_not_guessed_at() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(FILE), "0\nnot a credential\n").expect("write");
        assert!(ScramStore::load(dir.path()).is_err());
        std::fs::write(dir.path().join(FILE), "9\n").expect("write");
        assert!(ScramStore::load(dir.path()).is_err());
    }
}
