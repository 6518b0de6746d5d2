//! Feature versions (KIP-584): what this broker supports of each feature, the levels finalized
//! for the cluster and their epoch, durable in one checkpoint file written atomically. Knows
//! nothing of requests: UpdateFeatures and ApiVersions read and change it through this module.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use crate::storage::checkpoint::write_atomic;
use crate::storage::io::std::StdIo;

pub const METADATA_VERSION: &str = "metadata.version";
pub const KRAFT_VERSION: &str = "kraft.version";
pub const GROUP_VERSION: &str = "group.version";
pub const TRANSACTION_VERSION: &str = "transaction.version";

/// Kafka's metadata.version level for 4.0-IV3: the API versions Fjord serves are those of
/// Kafka 4.0 at this level, and none of them changes with a lower level, so it is the only one.
pub const METADATA_VERSION_4_0_IV3: i16 = 25;

/// One feature this broker implements: the levels it can run at and the level a new cluster
/// is finalized at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportedFeature {
    pub name: &'static str,
    pub min_level: i16,
    pub max_level: i16,
    pub default_level: i16,
}

/// What Fjord implements, and nothing more:
/// - metadata.version: only 4.0-IV3 (see [`METADATA_VERSION_4_0_IV3`]).
/// - kraft.version 0-1: 1 is a dynamic quorum (KIP-853: controllers added and removed with
///   AddRaftVoter / RemoveRaftVoter), set up through `controller.quorum.bootstrap.servers`; 0 a
///   static one (`controller.quorum.voters`) or a single node. The quorum's kind decides it
///   ([`FeatureStore::set_kraft_version`]); UpdateFeatures is answered without changing it, as
///   Kafka 4.0 answers it.
/// - group.version 0-1: 1 is the KIP-848 consumer group protocol (ConsumerGroupHeartbeat /
///   ConsumerGroupDescribe), which Fjord serves; at 0 both answer UNSUPPORTED_VERSION.
/// - transaction.version 0-2: 0 the classic transaction protocol; 1 writes `__transaction_state`
///   values in their flexible v1 layout; 2 tells producers to speak KIP-890 part 2 (a new epoch
///   from every EndTxn v5, partitions added by their leaders for Produce v12 and TxnOffsetCommit
///   v5), and makes the coordinator's own aborts bump the epoch twice. A new cluster is
///   finalized at 2, as Kafka 4.0 formats one; the coordinator serves both protocols at any
///   level, by the request's version, as Kafka's does.
pub const SUPPORTED: &[SupportedFeature] = &[
    SupportedFeature { name: GROUP_VERSION, min_level: 0, max_level: 1, default_level: 1 },
    SupportedFeature { name: KRAFT_VERSION, min_level: 0, max_level: 1, default_level: 0 },
    SupportedFeature { name: METADATA_VERSION, min_level: METADATA_VERSION_4_0_IV3, max_level: METADATA_VERSION_4_0_IV3, default_level: METADATA_VERSION_4_0_IV3 },
    SupportedFeature { name: TRANSACTION_VERSION, min_level: 0, max_level: 2, default_level: 2 },
];

pub fn supported(name: &str) -> Option<&'static SupportedFeature> {
    SUPPORTED.iter().find(|f| f.name == name)
}

/// How a level change may move (UpdateFeatures' upgrade_type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeType {
    Upgrade,
    SafeDowngrade,
    UnsafeDowngrade,
    Unknown(i8),
}

impl UpgradeType {
    pub fn from_code(code: i8) -> UpgradeType {
        match code {
            1 => UpgradeType::Upgrade,
            2 => UpgradeType::SafeDowngrade,
            3 => UpgradeType::UnsafeDowngrade,
            other => UpgradeType::Unknown(other),
        }
    }
}

/// One requested change: finalize `name` at `level`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureUpdate {
    pub name: String,
    pub level: i16,
    pub upgrade_type: UpgradeType,
}

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// A refused update (Kafka's INVALID_UPDATE_VERSION); the text is Kafka's.
    #[error("Invalid update version {level} for feature {name}. {reason}")]
    InvalidUpdateVersion { name: String, level: i16, reason: String },
    #[error("features file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("features file I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The finalized levels and their epoch (bumped by every change that is applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finalized {
    pub epoch: i64,
    pub levels: BTreeMap<&'static str, i16>,
}

impl Finalized {
    fn defaults() -> Finalized {
        Finalized { epoch: 0, levels: SUPPORTED.iter().map(|f| (f.name, f.default_level)).collect() }
    }

    /// The finalized level of a feature (0 for one never finalized, as Kafka reads it).
    pub fn level(&self, name: &str) -> i16 {
        self.levels.get(name).copied().unwrap_or(0)
    }
}

const FEATURES_FILE: &str = "fjord-features.checkpoint";
const FEATURES_FILE_VERSION: &str = "0";

pub struct FeatureStore {
    path: PathBuf,
    /// Held for a whole update (check, write, swap) so two updates cannot interleave; readers
    /// (ApiVersions, on async workers) never wait for the file write, only for the swap.
    writer: Mutex<()>,
    state: RwLock<Finalized>,
}

impl FeatureStore {
    /// Loads the finalized levels; a new cluster (no file) finalizes the defaults and writes
    /// them, so a later Fjord with other defaults keeps what this cluster runs at. A stored
    /// level this broker does not support refuses the start, as Kafka refuses one.
    pub fn open(dir: &Path) -> Result<FeatureStore, FeatureError> {
        let path = dir.join(FEATURES_FILE);
        let finalized = match std::fs::read_to_string(&path) {
            Ok(text) => parse(&text).map_err(|reason| FeatureError::Corrupt { path: path.clone(), reason })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let defaults = Finalized::defaults();
                write_atomic(&StdIo, &path, render(&defaults).as_bytes())?;
                defaults
            }
            Err(e) => return Err(e.into()),
        };
        Ok(FeatureStore { path, writer: Mutex::new(()), state: RwLock::new(finalized) })
    }

    pub fn finalized(&self) -> Finalized {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn level(&self, name: &str) -> i16 {
        self.state.read().unwrap_or_else(|e| e.into_inner()).level(name)
    }

    /// Whether KIP-848 consumer groups are enabled (group.version >= 1).
    pub fn consumer_groups_enabled(&self) -> bool {
        self.level(GROUP_VERSION) >= 1
    }

    /// Finalizes kraft.version at `level` (1 in a dynamic quorum, else 0), durably, with an
    /// epoch bump when it changes.
    pub fn set_kraft_version(&self, level: i16) -> Result<(), FeatureError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.finalized();
        if current.level(KRAFT_VERSION) == level {
            return Ok(());
        }
        let mut next = current.clone();
        next.levels.insert(KRAFT_VERSION, level);
        next.epoch = current.epoch + 1;
        write_atomic(&StdIo, &self.path, render(&next).as_bytes())?;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(())
    }

    /// Checks every update, then (unless `validate_only`) applies all of them durably with one
    /// epoch bump; the first refused update refuses the whole request. `node_id` names the
    /// broker in Kafka's refusal texts.
    pub fn update(&self, updates: &[FeatureUpdate], validate_only: bool, node_id: i32) -> Result<Finalized, FeatureError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.finalized();
        let mut next = current.clone();
        for u in updates {
            let feature = check(u, next.level(&u.name), node_id)?;
            // kraft.version follows the quorum's kind: Kafka 4.0's controller answers its
            // upgrade or downgrade with success and leaves it as it was.
            if feature.name != KRAFT_VERSION {
                next.levels.insert(feature.name, u.level);
            }
        }
        if validate_only || next.levels == current.levels {
            return Ok(current);
        }
        next.epoch = current.epoch + 1;
        write_atomic(&StdIo, &self.path, render(&next).as_bytes())?;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = next.clone();
        Ok(next)
    }
}

/// Whether one update may be applied on top of `current`, with Kafka's reason when not.
fn check(u: &FeatureUpdate, current: i16, node_id: i32) -> Result<&'static SupportedFeature, FeatureError> {
    let refuse = |reason: String| FeatureError::InvalidUpdateVersion { name: u.name.clone(), level: u.level, reason };
    if let UpgradeType::Unknown(_) = u.upgrade_type {
        return Err(refuse("The controller does not support the given upgrade type.".into()));
    }
    if u.level < 0 {
        return Err(refuse("A feature version cannot be less than 0.".into()));
    }
    let Some(feature) = supported(&u.name) else {
        return Err(refuse(format!("Local controller {node_id} does not support this feature.")));
    };
    if u.level < feature.min_level || u.level > feature.max_level {
        return Err(refuse(format!("Local controller {node_id} only supports versions {}-{}", feature.min_level, feature.max_level)));
    }
    if u.level < current && u.upgrade_type == UpgradeType::Upgrade {
        return Err(refuse("Can't downgrade the version of this feature without setting the upgrade type to either safe or unsafe downgrade.".into()));
    }
    Ok(feature)
}

fn render(f: &Finalized) -> String {
    let mut text = format!("{FEATURES_FILE_VERSION}\nepoch {}\n", f.epoch);
    for (name, level) in &f.levels {
        text.push_str(&format!("{name} {level}\n"));
    }
    text
}

fn parse(text: &str) -> Result<Finalized, String> {
    let mut lines = text.lines();
    if lines.next() != Some(FEATURES_FILE_VERSION) {
        return Err("unknown version".into());
    }
    let epoch = lines
        .next()
        .and_then(|l| l.strip_prefix("epoch "))
        .and_then(|e| e.parse::<i64>().ok())
        .filter(|e| *e >= 0)
        .ok_or("missing or bad epoch line")?;
    let mut levels = BTreeMap::new();
    for line in lines {
        let (name, level) = line.split_once(' ').ok_or_else(|| format!("bad line {line:?}"))?;
        let level: i16 = level.parse().map_err(|_| format!("bad level in {line:?}"))?;
        let feature = supported(name).ok_or_else(|| format!("feature {name} is finalized but this broker does not support it"))?;
        if level < feature.min_level || level > feature.max_level {
            return Err(format!("{name} is finalized at {level}; this broker supports {}-{}", feature.min_level, feature.max_level));
        }
        levels.insert(feature.name, level);
    }
    // A feature this broker added since the file was written starts at its lowest level (what
    // the cluster ran before it existed), never silently at a newer default.
    for f in SUPPORTED {
        levels.entry(f.name).or_insert(f.min_level);
    }
    Ok(Finalized { epoch, levels })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(name: &str, level: i16, t: i8) -> FeatureUpdate {
        FeatureUpdate { name: name.into(), level, upgrade_type: UpgradeType::from_code(t) }
    }

    fn reason(r: Result<Finalized, FeatureError>) -> String {
        match r {
            Err(FeatureError::InvalidUpdateVersion { .. }) => r.err().map(|e| e.to_string()).unwrap_or_default(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn kraft_version_follows_the_quorum_and_updates_leave_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = FeatureStore::open(dir.path()).unwrap();
        assert_eq!(store.level(KRAFT_VERSION), 0);
        store.set_kraft_version(1).unwrap();
        assert_eq!((store.level(KRAFT_VERSION), store.finalized().epoch), (1, 1));
        assert_eq!(FeatureStore::open(dir.path()).unwrap().level(KRAFT_VERSION), 1, "durable");
        // Kafka 4.0 answers a kraft.version update with success and changes nothing.
        let f = store.update(&[up(KRAFT_VERSION, 0, 2)], false, 1).unwrap();
        assert_eq!((f.level(KRAFT_VERSION), f.epoch), (1, 1));
        assert!(store.update(&[up(KRAFT_VERSION, 2, 1)], false, 1).is_err(), "outside 0-1");
    }

    #[test]
    fn a_new_cluster_finalizes_the_defaults_and_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = FeatureStore::open(dir.path()).unwrap();
        let f = store.finalized();
        assert_eq!((f.epoch, f.level(GROUP_VERSION), f.level(METADATA_VERSION), f.level(TRANSACTION_VERSION)), (0, 1, 25, 2));
        assert!(dir.path().join(FEATURES_FILE).exists());
    }

    #[test]
    fn an_applied_update_bumps_the_epoch_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = FeatureStore::open(dir.path()).unwrap();
        let f = store.update(&[up(GROUP_VERSION, 0, 2)], false, 1).unwrap();
        assert_eq!((f.epoch, f.level(GROUP_VERSION)), (1, 0));
        assert!(!store.consumer_groups_enabled());
        // The same level again changes nothing, so the epoch stays.
        assert_eq!(store.update(&[up(GROUP_VERSION, 0, 2)], false, 1).unwrap().epoch, 1);
        let reopened = FeatureStore::open(dir.path()).unwrap().finalized();
        assert_eq!((reopened.epoch, reopened.level(GROUP_VERSION)), (1, 0));
        assert_eq!(store.update(&[up(GROUP_VERSION, 1, 1)], false, 1).unwrap().epoch, 2);
    }

    #[test]
    fn validate_only_checks_without_applying() {
        let dir = tempfile::tempdir().unwrap();
        let store = FeatureStore::open(dir.path()).unwrap();
        assert_eq!(store.update(&[up(GROUP_VERSION, 0, 3)], true, 1).unwrap().level(GROUP_VERSION), 1);
        assert_eq!(store.finalized(), FeatureStore::open(dir.path()).unwrap().finalized());
        assert_eq!(store.finalized().epoch, 0);
    }

    #[test]
    fn refusals_carry_kafkas_reasons_and_refuse_the_whole_request() {
        let dir = tempfile::tempdir().unwrap();
        let store = FeatureStore::open(dir.path()).unwrap();
        assert_eq!(
            reason(store.update(&[up(GROUP_VERSION, 5, 1)], false, 1)),
            "Invalid update version 5 for feature group.version. Local controller 1 only supports versions 0-1"
        );
        assert_eq!(reason(store.update(&[up("foo.version", 1, 1)], false, 1)), "Invalid update version 1 for feature foo.version. Local controller 1 does not support this feature.");
        assert_eq!(reason(store.update(&[up(METADATA_VERSION, -1, 3)], false, 1)), "Invalid update version -1 for feature metadata.version. A feature version cannot be less than 0.");
        assert_eq!(
            reason(store.update(&[up(GROUP_VERSION, 0, 1)], false, 1)),
            "Invalid update version 0 for feature group.version. Can't downgrade the version of this feature without setting the upgrade type to either safe or unsafe downgrade."
        );
        assert_eq!(reason(store.update(&[up(GROUP_VERSION, 1, 7)], false, 1)), "Invalid update version 1 for feature group.version. The controller does not support the given upgrade type.");
        assert!(reason(store.update(&[up(METADATA_VERSION, 24, 2)], false, 1)).ends_with("only supports versions 25-25"));
        assert!(reason(store.update(&[up(TRANSACTION_VERSION, 3, 1)], false, 1)).ends_with("only supports versions 0-2"));
        // A good update beside a bad one is not applied either.
        reason(store.update(&[up(GROUP_VERSION, 0, 2), up("foo", 1, 1)], false, 1));
        assert_eq!(store.finalized(), Finalized { epoch: 0, ..Finalized::defaults() });
    }

    #[test]
    fn a_stored_level_this_broker_cannot_run_or_a_damaged_file_refuses_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FEATURES_FILE);
        for bad in ["0\nepoch 3\ngroup.version 2\n", "0\nepoch 3\nfoo.version 1\n", "1\nepoch 3\n", "0\nepoch x\n", "0\nepoch 3\ngroup.version\n"] {
            std::fs::write(&path, bad).unwrap();
            assert!(matches!(FeatureStore::open(dir.path()), Err(FeatureError::Corrupt { .. })), "{bad:?}");
        }
        // A feature missing from the file starts at its lowest level.
        std::fs::write(&path, "0\nepoch 3\nmetadata.version 25\n").unwrap();
        let f = FeatureStore::open(dir.path()).unwrap().finalized();
        assert_eq!((f.epoch, f.level(GROUP_VERSION), f.level(TRANSACTION_VERSION)), (3, 0, 0));
    }
}
