//! `fjord format`: a node's log dirs made ready before its first start, as `kafka-storage.sh
//! format` does. Fjord needs no format step (a node writes its `meta.properties` when it first
//! starts, and a controller naming only itself in `controller.quorum.bootstrap.servers` starts a
//! quorum of one); this one is for a dynamic quorum (KIP-853) that starts with several voters at
//! once, `--initial-controllers`: every controller must know all of them, with their directory
//! ids, before the first election; and `--add-scram`, the SCRAM users a new cluster starts with
//! (written as Kafka's `bootstrap.checkpoint`, which the first active controller puts into the
//! metadata log: `node::cluster::Bootstrap`).
//!
//! What it writes: in the metadata log dir, `meta.properties` with the directory id the list gives
//! this node, and [`INITIAL_CONTROLLERS_FILE`] (the list); in every other log dir,
//! `meta.properties` with the same cluster id and a directory id of its own. At startup a
//! controller whose Raft log is empty and whose metadata log dir holds the list starts the
//! quorum with those voters ([`read_initial_controllers`], `node::discover_voters`); once the log
//! exists, the membership in it is what counts and the file is not read again. Dirs formatted by
//! Kafka's own `kafka-storage.sh format` start the same way: without Fjord's list, the voters
//! come from the bootstrap snapshot Kafka writes ([`read_kafka_initial_controllers`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::broker::metadata::{quorum_cluster_id, read_meta_properties, uuid_to_kafka_string, write_meta_properties};
use crate::config::{Config, Endpoint};
use crate::metadata::records::UserScramCredentialRecord;

/// The initial voters in the metadata log dir, one `id@host:port:directoryId` per line.
pub const INITIAL_CONTROLLERS_FILE: &str = "fjord-initial-controllers";

/// One initial voter: its node id, controller listener endpoint and metadata log dir id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialController {
    pub id: i32,
    pub endpoint: Endpoint,
    pub directory_id: Uuid,
}

impl std::fmt::Display for InitialController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = if self.endpoint.host.contains(':') { format!("[{}]", self.endpoint.host) } else { self.endpoint.host.clone() };
        write!(f, "{}@{host}:{}:{}", self.id, self.endpoint.port, uuid_to_kafka_string(self.directory_id))
    }
}

/// Parses Kafka's `--initial-controllers` value: `id@host:port:directoryId` separated by commas
/// (an IPv6 host in brackets), each id once, at least one.
pub fn parse_initial_controllers(text: &str) -> Result<Vec<InitialController>, String> {
    let mut out: Vec<InitialController> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = |why: &str| format!("initial controller {item:?}: {why} (expected id@host:port:directoryId)");
        let (id, rest) = item.split_once('@').ok_or_else(|| bad("no '@'"))?;
        let id: i32 = id.trim().parse().ok().filter(|i| *i >= 0).ok_or_else(|| bad("the id is not a node id"))?;
        let (host_port, directory) = rest.rsplit_once(':').ok_or_else(|| bad("no directory id"))?;
        let (host, port) = host_port.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(|| bad("the port is not a port number"))?;
        let directory_id = crate::storage::kafka_dir::parse_kafka_uuid(directory).map_err(|_| bad("the directory id is not a Kafka uuid (22 characters of base64)"))?;
        if out.iter().any(|c| c.id == id) {
            return Err(format!("Node id {id} was specified more than once in the initial controllers"));
        }
        out.push(InitialController { id, endpoint: Endpoint { host: host.to_string(), port }, directory_id });
    }
    if out.is_empty() {
        return Err("no initial controllers given".into());
    }
    Ok(out)
}

/// Parses one `--add-scram` value as Kafka's format does: `MECHANISM=[name=N,password=P]`, with
/// optional `iterations` (default 4096, within Kafka's bounds) and `salt` (base64; default 32
/// random bytes), or `saltedpassword` (base64) with `salt` instead of `password`. Values may be
/// quoted. The credential is derived here: only its keys are kept.
pub fn parse_add_scram(text: &str) -> Result<UserScramCredentialRecord, String> {
    use base64::Engine;
    use crate::broker::scram::{MAX_ITERATIONS, MIN_ITERATIONS, Mechanism};
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = text.trim();
    let (mechanism, config) = text.split_once('=').ok_or_else(|| format!("Failed to find equals sign in SCRAM argument '{text}'"))?;
    let m = Mechanism::from_name(mechanism).ok_or_else(|| format!("The add-scram mechanism {mechanism} is not supported."))?;
    let config = config.strip_prefix('[').ok_or("Expected configuration string to start with [")?;
    let config = config.strip_suffix(']').ok_or("Expected configuration string to end with ]")?;
    let mut parts: BTreeMap<&str, &str> = BTreeMap::new();
    for part in config.split(',') {
        let (key, value) = part.split_once('=').ok_or_else(|| format!("No equals sign found in SCRAM component: {part}"))?;
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        parts.insert(key, value);
    }
    let name = parts.remove("name").ok_or("You must supply 'name' to add-scram")?.to_string();
    let salt = match parts.remove("salt") {
        Some(s) => Some(b64.decode(s).map_err(|_| format!("Failed to decode given salt: {s}"))?),
        None => None,
    };
    let iterations = match parts.remove("iterations") {
        Some(i) => i.parse::<i32>().map_err(|_| format!("Failed to parse iterations count: {i}"))?,
        None => MIN_ITERATIONS,
    };
    // Err: the password, to be salted once the salt is known.
    let salted: Result<Vec<u8>, &str> = match (parts.remove("password"), parts.remove("saltedpassword")) {
        (Some(p), _) => Err(p),
        (None, None) => return Err("You must supply one of 'password' or 'saltedpassword' to add-scram".into()),
        (None, Some(_)) if salt.is_none() => return Err("You must supply 'salt' with 'saltedpassword' to add-scram".into()),
        (None, Some(s)) => Ok(b64.decode(s).map_err(|_| format!("Failed to decode given saltedPassword: {s}"))?),
    };
    if !parts.is_empty() {
        return Err(format!("Unknown SCRAM configurations: {}", parts.keys().copied().collect::<Vec<_>>().join(", ")));
    }
    // Kafka's tool names the mechanism by its Java enum here (SCRAM_SHA_256).
    if iterations < MIN_ITERATIONS {
        return Err(format!("The 'iterations' value must be >= {MIN_ITERATIONS} for add-scram using {}", m.name().replace('-', "_")));
    }
    if iterations > MAX_ITERATIONS {
        return Err(format!("The 'iterations' value must be <= {MAX_ITERATIONS} for add-scram using {}", m.name().replace('-', "_")));
    }
    let salt = match salt {
        Some(s) => s,
        None => {
            let mut s = vec![0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut s).map_err(|_| "no random salt: the system's random source failed".to_string())?;
            s
        }
    };
    let salted = match salted {
        Ok(s) => s,
        Err(password) => m.salted_password(password, &salt, std::num::NonZeroU32::new(iterations as u32).ok_or("iterations must be positive")?),
    };
    let (stored_key, server_key) = m.derive_keys(&salted);
    Ok(UserScramCredentialRecord { name, mechanism: m.wire_type(), salt, stored_key, server_key, iterations })
}

/// The initial voters written by `fjord format` in this metadata log dir, if any.
pub fn read_initial_controllers(metadata_log_dir: &Path) -> Result<Option<Vec<InitialController>>, String> {
    let path = metadata_log_dir.join(INITIAL_CONTROLLERS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let list: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    parse_initial_controllers(&list.join(",")).map(Some).map_err(|e| format!("{}: {e}", path.display()))
}

/// The initial voters Kafka's own format left in this metadata log dir (`kafka-storage.sh format
/// --initial-controllers` or `--standalone`): the `VotersRecord` of the bootstrap snapshot in
/// `__cluster_metadata-0`, each voter reached on its endpoint of the `listener` name (the first of
/// `controller.listener.names`), else on its first endpoint.
pub fn read_kafka_initial_controllers(metadata_log_dir: &Path, listener: Option<&str>) -> Result<Option<Vec<InitialController>>, String> {
    use crate::storage::kafka_dir::{CLUSTER_METADATA_DIR, read_bootstrap_voters};
    let Some(voters) = read_bootstrap_voters(&metadata_log_dir.join(CLUSTER_METADATA_DIR))? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(voters.len());
    for voter in voters {
        let endpoint = voter.endpoints.iter().find(|(name, _, _)| listener.is_some_and(|l| name.eq_ignore_ascii_case(l))).or(voter.endpoints.first());
        let Some((_, host, port)) = endpoint else {
            return Err(format!("Kafka's bootstrap snapshot in {} gives voter {} no endpoint", metadata_log_dir.display(), voter.id));
        };
        out.push(InitialController { id: voter.id, endpoint: Endpoint { host: host.clone(), port: *port }, directory_id: voter.directory_id });
    }
    Ok(Some(out).filter(|o| !o.is_empty()))
}

/// The initial voters this metadata log dir was formatted with: `fjord format`'s list, else
/// Kafka's format's ([`read_kafka_initial_controllers`]); with the format that wrote them.
pub fn initial_controllers(metadata_log_dir: &Path, listener: Option<&str>) -> Result<Option<(Vec<InitialController>, &'static str)>, String> {
    if let Some(list) = read_initial_controllers(metadata_log_dir)? {
        return Ok(Some((list, "fjord format --initial-controllers")));
    }
    Ok(read_kafka_initial_controllers(metadata_log_dir, listener)?.map(|list| (list, "kafka-storage.sh format")))
}

/// What `fjord format` was asked for.
#[derive(Debug, Clone)]
pub struct FormatRequest {
    /// `--cluster-id`; None: the id derived from the initial voters, the same on every node.
    pub cluster_id: Option<String>,
    /// `--initial-controllers`; empty: none (a static quorum's controller, or one that joins).
    pub initial_controllers: Vec<InitialController>,
    /// `--add-scram`: the users a new cluster starts with.
    pub scram: Vec<UserScramCredentialRecord>,
    /// `--ignore-formatted`: dirs that hold a `meta.properties` are left as they are.
    pub ignore_formatted: bool,
}

/// The metadata log dir: `metadata.log.dir`, else the first of `log.dirs` (as Kafka's).
pub fn metadata_log_dir(config: &Config) -> PathBuf {
    config.value("metadata.log.dir").filter(|d| !d.trim().is_empty()).map(PathBuf::from).unwrap_or_else(|| config.log_dirs[0].clone())
}

/// Formats this node's log dirs: for a dynamic quorum starting with `request`'s voters, and
/// with the SCRAM users a new cluster starts with; returns one line per thing done. Refused:
/// nothing to do, a node that is not a controller, and what [`format_initial_controllers`] and
/// [`write_bootstrap`] refuse. Every check is made before anything is written.
pub fn format(config: &Config, request: &FormatRequest) -> Result<Vec<String>, String> {
    if request.initial_controllers.is_empty() && request.scram.is_empty() {
        return Err("nothing to format: a node needs no format step; give --initial-controllers (a dynamic quorum starting with several voters) or --add-scram (users a new cluster starts with)".into());
    }
    if !config.topology.roles.controller {
        return Err("fjord format formats a controller: process.roles has no controller role".into());
    }
    let metadata_dir = metadata_log_dir(config);
    let bootstrap = metadata_dir.join(crate::storage::kafka_dir::BOOTSTRAP_CHECKPOINT_FILE);
    // A bootstrap file written before, or a metadata log begun: the users of a new cluster
    // have been given already.
    let bootstrapped = bootstrap.exists() || super::raft_log_exists(&metadata_dir);
    if !request.scram.is_empty() && bootstrapped && !request.ignore_formatted {
        return Err(format!("Metadata directory {} is already formatted (its bootstrap metadata or its log exists). Use --ignore-formatted to leave it as it is.", metadata_dir.display()));
    }
    let mut done = if request.initial_controllers.is_empty() { Vec::new() } else { format_initial_controllers(config, request)? };
    match (request.scram.is_empty(), bootstrapped) {
        (true, _) => {}
        (false, true) => done.push(format!("{} is already formatted: its users left as they are", metadata_dir.display())),
        (false, false) => done.push(write_bootstrap(&bootstrap, &request.scram)?),
    }
    Ok(done)
}

/// Writes the bootstrap metadata a new cluster's first active controller puts into its log
/// (`node::cluster::Bootstrap`): Kafka's `bootstrap.checkpoint` with metadata.version and the users.
fn write_bootstrap(path: &Path, scram: &[UserScramCredentialRecord]) -> Result<String, String> {
    use crate::broker::features::{METADATA_VERSION, METADATA_VERSION_4_0_IV3};
    let boot = crate::storage::kafka_dir::BootstrapMetadata { features: vec![(METADATA_VERSION.to_string(), METADATA_VERSION_4_0_IV3)], scram: scram.to_vec() };
    let bytes = crate::storage::kafka_dir::encode_bootstrap_metadata(&boot)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    crate::storage::checkpoint::write_atomic(&crate::storage::io::std::StdIo, path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let users: Vec<String> = scram.iter().map(|c| c.name.clone()).collect();
    Ok(format!("Wrote the SCRAM users {} in {}: the new cluster's first active controller writes them into its metadata log.", users.join(","), path.display()))
}

/// The dirs of a controller of a dynamic quorum starting with `request`'s voters. Refused: a
/// static quorum (`controller.quorum.voters`), a list without this node's id, a cluster id that
/// is not a Kafka uuid, and dirs already formatted unless `ignore_formatted`.
fn format_initial_controllers(config: &Config, request: &FormatRequest) -> Result<Vec<String>, String> {
    match &config.topology.quorum {
        Some(q) if !q.dynamic => return Err("--initial-controllers starts a dynamic quorum: remove controller.quorum.voters and set controller.quorum.bootstrap.servers".into()),
        None => return Err("--initial-controllers: controller.quorum.bootstrap.servers is not set".into()),
        Some(_) => {}
    }
    let own = request
        .initial_controllers
        .iter()
        .find(|c| c.id == config.node_id)
        .ok_or_else(|| format!("the initial controllers do not include this node (node.id {})", config.node_id))?;
    if let Some(id) = &request.cluster_id {
        crate::storage::kafka_dir::parse_kafka_uuid(id).map_err(|_| format!("cluster id {id:?} is not a Kafka uuid (22 characters of base64)"))?;
    }
    let metadata_dir = metadata_log_dir(config);
    let mut dirs: Vec<PathBuf> = vec![metadata_dir.clone()];
    dirs.extend(config.log_dirs.iter().filter(|d| **d != metadata_dir).cloned());
    // Check every dir before writing to any.
    let mut formatted: Vec<(PathBuf, String)> = Vec::new();
    for dir in &dirs {
        if let Some((held, _)) = read_meta_properties(dir, config.node_id).map_err(|e| e.to_string())? {
            if !request.ignore_formatted {
                return Err(format!("Log directory {} is already formatted. Use --ignore-formatted to ignore this directory and format the others.", dir.display()));
            }
            formatted.push((dir.clone(), held));
        }
    }
    // The dirs formatted before name the cluster: the others join it, never another one.
    let cluster_id = match (formatted.first(), &request.cluster_id) {
        (Some((dir, held)), Some(given)) if held != given => return Err(format!("cluster id {given} differs from {held}, which {} already holds", dir.display())),
        (Some((_, held)), _) => held.clone(),
        (None, Some(given)) => given.clone(),
        (None, None) => quorum_cluster_id(&request.initial_controllers.iter().map(|c| (c.id, c.endpoint.clone())).collect::<BTreeMap<_, _>>()),
    };
    let formatted: Vec<PathBuf> = formatted.into_iter().map(|(d, _)| d).collect();
    let mut done = Vec::new();
    for dir in &dirs {
        if formatted.contains(dir) {
            done.push(format!("{} is already formatted: left as it is", dir.display()));
            continue;
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if *dir == metadata_dir {
            let list: String = request.initial_controllers.iter().map(|c| format!("{c}\n")).collect();
            let text = format!("# The voters this controller's metadata quorum starts with (fjord format --initial-controllers).\n{list}");
            crate::storage::checkpoint::write_atomic(&crate::storage::io::std::StdIo, &dir.join(INITIAL_CONTROLLERS_FILE), text.as_bytes()).map_err(|e| format!("{}: {e}", dir.display()))?;
            write_meta_properties(dir, config.node_id, &cluster_id, own.directory_id).map_err(|e| format!("{}: {e}", dir.display()))?;
            let ids: Vec<String> = request.initial_controllers.iter().map(|c| c.id.to_string()).collect();
            done.push(format!("Formatting metadata directory {} with cluster id {cluster_id} and initial controllers {}.", dir.display(), ids.join(",")));
        } else {
            write_meta_properties(dir, config.node_id, &cluster_id, Uuid::new_v4()).map_err(|e| format!("{}: {e}", dir.display()))?;
            done.push(format!("Formatting data directory {} with cluster id {cluster_id}.", dir.display()));
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uuid_text(n: u8) -> String {
        uuid_to_kafka_string(Uuid::from_bytes([n; 16]))
    }

    #[test]
    fn initial_controllers_parse_as_kafka_writes_them() {
        let text = format!("1@localhost:9093:{},2@[::1]:9094:{}, 3@10.0.0.3:9095:{}", uuid_text(1), uuid_text(2), uuid_text(3));
        let list = parse_initial_controllers(&text).expect("parses");
        assert_eq!(list.len(), 3);
        assert_eq!((list[0].id, list[0].endpoint.host.as_str(), list[0].endpoint.port), (1, "localhost", 9093));
        assert_eq!((list[1].endpoint.host.as_str(), list[1].endpoint.port), ("::1", 9094), "an IPv6 host in brackets");
        assert_eq!(list[2].directory_id, Uuid::from_bytes([3; 16]));
        // What is written reads back the same.
        let again: Vec<String> = list.iter().map(|c| c.to_string()).collect();
        assert_eq!(parse_initial_controllers(&again.join(",")).expect("reparses"), list);
    }

    #[test]
    fn bad_initial_controllers_are_refused_with_the_item() {
        let d = uuid_text(1);
        for (text, says) in [
            (String::new(), "no initial controllers"),
            ("1@host:9093".to_string(), "no port"),
            (format!("x@host:9093:{d}"), "not a node id"),
            (format!("1@host:0:{d}"), "not a port number"),
            ("1@host:9093:short".to_string(), "not a Kafka uuid"),
            (format!("1@:9093:{d}"), "no host"),
            (format!("1host:9093:{d}"), "no '@'"),
            (format!("1@a:1:{d},1@b:2:{d}"), "more than once"),
        ] {
            let e = parse_initial_controllers(&text).expect_err(&text);
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    /// Kafka's format writes the voters into a bootstrap snapshot; each is reached on its
    /// endpoint of the controller listener's name. `fjord format`'s own list wins when both exist.
    #[test]
    fn kafkas_formatted_voters_are_read_on_the_controller_listener() {
        use crate::storage::kafka_dir::test_records::control_batch;
        use crate::storage::kafka_dir::{BOOTSTRAP_SNAPSHOT_FILE, CLUSTER_METADATA_DIR};
        use kafka_protocol::messages::voters_record::{Endpoint as KafkaEndpoint, Voter};
        use kafka_protocol::messages::{BrokerId, VotersRecord};
        use kafka_protocol::protocol::{Encodable, StrBytes};
        let endpoint = |name: &'static str, port: u16| KafkaEndpoint::default().with_name(StrBytes::from_static_str(name)).with_host(StrBytes::from_static_str("127.0.0.1")).with_port(port);
        let voters = VotersRecord::default().with_voters(vec![
            Voter::default().with_voter_id(BrokerId(1)).with_voter_directory_id(Uuid::from_bytes([1; 16])).with_endpoints(vec![endpoint("SECURE", 9193), endpoint("CONTROLLER", 9093)]),
            Voter::default().with_voter_id(BrokerId(2)).with_voter_directory_id(Uuid::from_bytes([2; 16])).with_endpoints(vec![endpoint("OTHER", 9094)]),
        ]);
        let mut value = bytes::BytesMut::new();
        voters.encode(&mut value, 0).expect("encode");
        let tmp = tempfile::tempdir().expect("tempdir");
        assert_eq!(initial_controllers(tmp.path(), Some("CONTROLLER")).expect("nothing formatted"), None);
        std::fs::create_dir(tmp.path().join(CLUSTER_METADATA_DIR)).expect("mkdir");
        std::fs::write(tmp.path().join(CLUSTER_METADATA_DIR).join(BOOTSTRAP_SNAPSHOT_FILE), control_batch(0, &[(6, value.to_vec())])).expect("write");
        let (list, by) = initial_controllers(tmp.path(), Some("CONTROLLER")).expect("reads").expect("voters");
        assert_eq!(by, "kafka-storage.sh format");
        assert_eq!(list.iter().map(|c| (c.id, c.endpoint.port, c.directory_id)).collect::<Vec<_>>(), vec![(1, 9093, Uuid::from_bytes([1; 16])), (2, 9094, Uuid::from_bytes([2; 16]))]);
        std::fs::write(tmp.path().join(INITIAL_CONTROLLERS_FILE), format!("3@127.0.0.1:9095:{}\n", uuid_text(3))).expect("write");
        let (list, by) = initial_controllers(tmp.path(), Some("CONTROLLER")).expect("reads").expect("voters");
        assert_eq!((list.len(), list[0].id, by), (1, 3, "fjord format --initial-controllers"));
    }

    fn controller_config(dir: &Path, extra: &[&str]) -> Config {
        let mut o = vec![
            "process.roles=controller".to_string(),
            "node.id=2".to_string(),
            "controller.listener.names=CONTROLLER".to_string(),
            "listeners=CONTROLLER://127.0.0.1:9094".to_string(),
            "controller.quorum.bootstrap.servers=127.0.0.1:9093,127.0.0.1:9094".to_string(),
            format!("log.dirs={}", dir.join("a").display()),
        ];
        o.extend(extra.iter().map(|s| s.to_string()));
        Config::load(None, &o).expect("config")
    }

    #[test]
    fn format_writes_the_voters_and_each_dirs_meta_properties_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let list = parse_initial_controllers(&format!("1@127.0.0.1:9093:{},2@127.0.0.1:9094:{}", uuid_text(1), uuid_text(2))).expect("list");
        let request = FormatRequest { cluster_id: None, initial_controllers: list.clone(), scram: vec![], ignore_formatted: false };
        let config = controller_config(tmp.path(), &[&format!("metadata.log.dir={}", tmp.path().join("meta").display())]);
        let said = format(&config, &request).expect("formats");
        assert_eq!(said.len(), 2, "{said:?}");
        let meta = tmp.path().join("meta");
        assert_eq!(read_initial_controllers(&meta).expect("reads"), Some(list.clone()));
        let (cluster, dir_id) = read_meta_properties(&meta, 2).expect("read").expect("written");
        assert_eq!(dir_id, Some(Uuid::from_bytes([2; 16])), "the metadata dir gets this node's listed directory id");
        let (data_cluster, data_id) = read_meta_properties(&tmp.path().join("a"), 2).expect("read").expect("written");
        assert_eq!(data_cluster, cluster, "one cluster id in every dir");
        assert_ne!(data_id, dir_id, "a data dir has its own directory id");
        let derived = quorum_cluster_id(&list.iter().map(|c| (c.id, c.endpoint.clone())).collect());
        assert_eq!(cluster, derived, "without --cluster-id every node derives the same id from the voters");
        // Twice: refused, unless told to leave formatted dirs alone.
        let e = format(&config, &request).expect_err("already formatted");
        assert!(e.contains("is already formatted"), "{e}");
        assert!(format(&config, &FormatRequest { ignore_formatted: true, ..request.clone() }).is_ok());
        assert_eq!(read_meta_properties(&meta, 2).expect("read").expect("kept").0, cluster);
        // A dir added later joins the cluster the formatted ones name; another id is refused.
        let grown = controller_config(tmp.path(), &[&format!("metadata.log.dir={}", meta.display()), &format!("log.dirs={},{}", tmp.path().join("a").display(), tmp.path().join("b").display())]);
        let other = uuid_text(9);
        let e = format(&grown, &FormatRequest { cluster_id: Some(other), ignore_formatted: true, ..request.clone() }).expect_err("another cluster");
        assert!(e.contains("differs from"), "{e}");
        format(&grown, &FormatRequest { ignore_formatted: true, ..request.clone() }).expect("the new dir");
        assert_eq!(read_meta_properties(&tmp.path().join("b"), 2).expect("read").expect("written").0, cluster, "the new dir joins the cluster");
    }

    #[test]
    fn format_refuses_what_kafka_refuses() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let list = parse_initial_controllers(&format!("1@127.0.0.1:9093:{}", uuid_text(1))).expect("list");
        let request = FormatRequest { cluster_id: None, initial_controllers: list, scram: vec![], ignore_formatted: false };
        let e = format(&controller_config(tmp.path(), &[]), &request).expect_err("not listed");
        assert!(e.contains("do not include this node"), "{e}");
        let listed = parse_initial_controllers(&format!("2@127.0.0.1:9094:{}", uuid_text(2))).expect("list");
        let e = format(&controller_config(tmp.path(), &[]), &FormatRequest { cluster_id: Some("nope".into()), initial_controllers: listed.clone(), scram: vec![], ignore_formatted: false }).expect_err("bad id");
        assert!(e.contains("not a Kafka uuid"), "{e}");
        let static_quorum = controller_config(tmp.path(), &["controller.quorum.voters=2@127.0.0.1:9094", "controller.quorum.bootstrap.servers="]);
        let e = format(&static_quorum, &FormatRequest { cluster_id: None, initial_controllers: listed, scram: vec![], ignore_formatted: false }).expect_err("static");
        assert!(e.contains("controller.quorum.voters"), "{e}");
        assert!(!tmp.path().join("a").join("meta.properties").exists(), "nothing written when refused");
    }

    #[test]
    fn add_scram_parses_as_kafkas_format_and_derives_the_credential() {
        use crate::broker::scram::{Credential, Mechanism};
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let c = parse_add_scram("SCRAM-SHA-256=[name=alice,password=alice-secret]").expect("parses");
        assert_eq!((c.name.as_str(), c.mechanism, c.iterations, c.salt.len()), ("alice", 1, 4096, 32));
        let credential = |c: &UserScramCredentialRecord| Credential { salt: c.salt.clone(), stored_key: c.stored_key.clone(), server_key: c.server_key.clone(), iterations: c.iterations };
        assert!(credential(&c).matches_password(Mechanism::Sha256, "alice-secret"));
        assert!(!credential(&c).matches_password(Mechanism::Sha256, "alice"));
        let other = parse_add_scram("SCRAM-SHA-256=[name=alice,password=alice-secret]").expect("parses");
        assert_ne!(c.salt, other.salt, "a random salt each time");
        // A given salt and iterations, quoted values; then the same credential from its salted password.
        let salt = b64.encode(b"0123456789abcdef");
        let c = parse_add_scram(&format!(r#" SCRAM-SHA-512=[name="bob",salt="{salt}",iterations=8192,password="bob secret"] "#)).expect("parses");
        assert_eq!((c.name.as_str(), c.mechanism, c.iterations, c.salt.as_slice()), ("bob", 2, 8192, &b"0123456789abcdef"[..]));
        assert!(credential(&c).matches_password(Mechanism::Sha512, "bob secret"));
        let salted = Mechanism::Sha512.salted_password("bob secret", b"0123456789abcdef", std::num::NonZeroU32::new(8192).unwrap());
        let same = parse_add_scram(&format!("SCRAM-SHA-512=[name=bob,salt={salt},iterations=8192,saltedpassword={}]", b64.encode(&salted))).expect("parses");
        assert_eq!(same, c);
        // Refused as Kafka's format refuses them.
        for (arg, why) in [
            ("SCRAM-SHA-256", "Failed to find equals sign"),
            ("SCRAM-SHA-1=[name=a,password=b]", "mechanism SCRAM-SHA-1 is not supported"),
            ("SCRAM-SHA-256=name=a,password=b]", "start with ["),
            ("SCRAM-SHA-256=[name=a,password=b", "end with ]"),
            ("SCRAM-SHA-256=[password=b]", "You must supply 'name'"),
            ("SCRAM-SHA-256=[name=a]", "one of 'password' or 'saltedpassword'"),
            ("SCRAM-SHA-256=[name=a,saltedpassword=AAAA]", "'salt' with 'saltedpassword'"),
            ("SCRAM-SHA-256=[name=a,password=b,colour=red]", "Unknown SCRAM configurations: colour"),
            ("SCRAM-SHA-256=[name=a,password=b,iterations=4095]", "must be >= 4096 for add-scram using SCRAM_SHA_256"),
            ("SCRAM-SHA-256=[name=a,password=b,iterations=16385]", "must be <= 16384"),
            ("SCRAM-SHA-256=[name=a,password=b,iterations=many]", "Failed to parse iterations count"),
            ("SCRAM-SHA-256=[name=a,password=b,salt=!!]", "Failed to decode given salt"),
            ("SCRAM-SHA-256=[name=a,password]", "No equals sign found in SCRAM component"),
        ] {
            let e = parse_add_scram(arg).expect_err(arg);
            assert!(e.contains(why), "{arg}: {e}");
        }
    }

    #[test]
    fn format_add_scram_writes_the_bootstrap_metadata_once() {
        use crate::storage::kafka_dir::{BOOTSTRAP_CHECKPOINT_FILE, read_bootstrap_metadata};
        let tmp = tempfile::tempdir().expect("tempdir");
        // A static quorum's controller: --add-scram needs no --initial-controllers.
        let config = controller_config(tmp.path(), &["controller.quorum.voters=2@127.0.0.1:9094", "controller.quorum.bootstrap.servers="]);
        let alice = parse_add_scram("SCRAM-SHA-256=[name=alice,password=alice-secret]").expect("parses");
        let request = FormatRequest { cluster_id: None, initial_controllers: vec![], scram: vec![alice.clone()], ignore_formatted: false };
        let done = format(&config, &request).expect("formats");
        assert_eq!(done.len(), 1, "{done:?}");
        let boot = read_bootstrap_metadata(&tmp.path().join("a")).expect("reads").expect("written");
        assert_eq!(boot.features, vec![("metadata.version".to_string(), 25)]);
        assert_eq!(boot.scram, vec![alice]);
        let e = format(&config, &request).expect_err("twice");
        assert!(e.contains("already formatted"), "{e}");
        let written = std::fs::read(tmp.path().join("a").join(BOOTSTRAP_CHECKPOINT_FILE)).expect("file");
        let bob = parse_add_scram("SCRAM-SHA-512=[name=bob,password=b]").expect("parses");
        format(&config, &FormatRequest { scram: vec![bob], ignore_formatted: true, ..request.clone() }).expect("left as it is");
        assert_eq!(std::fs::read(tmp.path().join("a").join(BOOTSTRAP_CHECKPOINT_FILE)).expect("file"), written, "--ignore-formatted leaves it");
        let e = format(&config, &FormatRequest { scram: vec![], ..request.clone() }).expect_err("nothing asked");
        assert!(e.contains("nothing to format"), "{e}");
        let broker = controller_config(tmp.path(), &["process.roles=broker", "controller.quorum.voters=1@127.0.0.1:9093", "controller.quorum.bootstrap.servers=", "listeners=PLAINTEXT://127.0.0.1:9092"]);
        let e = format(&broker, &request).expect_err("a broker");
        assert!(e.contains("no controller role"), "{e}");
    }
}
