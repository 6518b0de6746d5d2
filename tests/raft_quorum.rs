//! The Raft metadata quorum end to end on loopback: voters in one process, each with its own
//! directory and 127.0.0.1:0 listener; election, commit order, failover, restart catch-up,
//! catch-up through a snapshot, and a single-voter quorum. Every node is stopped by its test.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fjord::raft::node::RaftConfig;
use fjord::raft::state_machine::SnapshotPolicy;
use fjord::raft::{ApplyError, ProposeError, RaftNode, StateMachine};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(10);

/// Records applied payloads in order; its snapshot is their postcard encoding.
#[derive(Debug, Default)]
struct Recorder {
    applied: Mutex<Vec<(u64, Vec<u8>)>>,
    snapshots_installed: AtomicU64,
}

impl Recorder {
    fn payloads(&self) -> Vec<Vec<u8>> {
        self.applied.lock().expect("lock").iter().map(|(_, p)| p.clone()).collect()
    }
    fn entries(&self) -> Vec<(u64, Vec<u8>)> {
        self.applied.lock().expect("lock").clone()
    }
}

impl StateMachine for Recorder {
    fn apply(&self, index: u64, payload: &[u8]) -> Result<(), ApplyError> {
        if payload.starts_with(b"reject") {
            return Err(ApplyError::Rejected("test rejects it".to_string()));
        }
        let mut applied = self.applied.lock().expect("lock");
        assert!(applied.last().is_none_or(|(last, _)| *last < index), "applied in log order, once");
        applied.push((index, payload.to_vec()));
        Ok(())
    }
    fn snapshot(&self) -> (u64, Vec<u8>) {
        let applied = self.applied.lock().expect("lock");
        (applied.last().map(|(i, _)| *i).unwrap_or(0), postcard::to_allocvec(&*applied).expect("encode"))
    }
    fn install_snapshot(&self, _last_index: u64, bytes: &[u8]) -> Result<(), ApplyError> {
        let state: Vec<(u64, Vec<u8>)> = postcard::from_bytes(bytes).map_err(|e| ApplyError::Fatal(e.to_string()))?;
        *self.applied.lock().expect("lock") = state;
        self.snapshots_installed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct Running {
    node: RaftNode,
    machine: Arc<Recorder>,
}

/// Voters in this process, each with a directory and a fixed loopback port.
struct Cluster {
    _root: tempfile::TempDir,
    voters: BTreeMap<u64, String>,
    dirs: BTreeMap<u64, PathBuf>,
    nodes: BTreeMap<u64, Running>,
    tune: fn(RaftConfig) -> RaftConfig,
}

/// Shorter than Kafka's timers, still long enough that a loaded machine (tests in parallel) does
/// not see spurious elections: a follower stands after [1000, 1500) ms without a heartbeat.
fn fast(config: RaftConfig) -> RaftConfig {
    RaftConfig { fetch_timeout_ms: 1000, election_timeout_ms: 500, heartbeat_interval_ms: 100, ..config }
}

impl Cluster {
    async fn start(n: u64, tune: fn(RaftConfig) -> RaftConfig) -> Cluster {
        let root = tempfile::tempdir().expect("tempdir");
        let mut listeners = BTreeMap::new();
        for id in 1..=n {
            listeners.insert(id, TcpListener::bind("127.0.0.1:0").await.expect("bind"));
        }
        let voters: BTreeMap<u64, String> =
            listeners.iter().map(|(id, l)| (*id, l.local_addr().expect("addr").to_string())).collect();
        let dirs = (1..=n).map(|id| (id, root.path().join(format!("node-{id}")).join("fjord-raft"))).collect();
        let mut cluster = Cluster { _root: root, voters, dirs, nodes: BTreeMap::new(), tune };
        for (id, listener) in listeners {
            cluster.start_node(id, Some(listener)).await;
        }
        cluster
    }

    async fn start_node(&mut self, id: u64, listener: Option<TcpListener>) {
        let listener = match listener {
            Some(l) => l,
            None => TcpListener::bind(self.voters[&id].as_str()).await.expect("rebind the voter's port"),
        };
        let machine = Arc::new(Recorder::default());
        let config = (self.tune)(RaftConfig::new(id, self.voters.clone(), self.dirs[&id].clone()));
        let node = RaftNode::start(config, machine.clone()).await.expect("start");
        node.serve(listener);
        self.nodes.insert(id, Running { node, machine });
    }

    async fn stop_node(&mut self, id: u64) {
        if let Some(running) = self.nodes.remove(&id) {
            running.node.shutdown().await;
        }
    }

    /// A running node that leads in an epoch above `above`: (id, epoch).
    async fn leader_above(&self, above: u64) -> (u64, u64) {
        let deadline = Instant::now() + WAIT;
        loop {
            for (id, running) in &self.nodes {
                let status = running.node.status();
                if status.is_leader && status.leader_epoch > above {
                    return (*id, status.leader_epoch);
                }
            }
            assert!(Instant::now() < deadline, "no leader above epoch {above} within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn leader(&self) -> u64 {
        self.leader_above(0).await.0
    }

    /// Proposes through whichever node leads, retrying while there is none; the first answer
    /// that is not NotLeader.
    async fn propose_raw(&self, payload: &[u8]) -> Result<u64, ProposeError> {
        let deadline = Instant::now() + WAIT;
        loop {
            for running in self.nodes.values() {
                match running.node.propose(payload.to_vec()).await {
                    Err(ProposeError::NotLeader { .. }) => {}
                    other => return other,
                }
            }
            assert!(Instant::now() < deadline, "no commit within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn propose(&self, payload: &[u8]) -> u64 {
        self.propose_raw(payload).await.unwrap_or_else(|e| panic!("propose failed: {e}"))
    }

    async fn wait_applied_everywhere(&self, index: u64) {
        for (id, running) in &self.nodes {
            assert!(running.node.wait_for_applied(index, WAIT).await, "node {id} applied {index}");
        }
    }

    async fn stop_all(mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop_node(id).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_elect_a_leader_and_apply_the_same_entries_in_the_same_order() {
    let started = Instant::now();
    let cluster = Cluster::start(3, fast).await;
    cluster.leader().await;
    println!("3 voters with empty dirs: a leader {} ms after the first start", started.elapsed().as_millis());
    let mut last = 0;
    let proposing = Instant::now();
    for i in 0..30u32 {
        last = cluster.propose(format!("record-{i}").as_bytes()).await;
    }
    println!("30 sequential proposals committed and applied on the leader in {} ms", proposing.elapsed().as_millis());
    // A rejected entry commits, changes nothing, and tells its proposer.
    let rejected = cluster.propose_raw(b"reject this").await;
    assert!(matches!(rejected, Err(ProposeError::Rejected { .. })), "{rejected:?}");
    cluster.wait_applied_everywhere(last).await;
    let expected: Vec<Vec<u8>> = (0..30u32).map(|i| format!("record-{i}").into_bytes()).collect();
    let reference = cluster.nodes[&1].machine.entries();
    assert_eq!(cluster.nodes[&1].machine.payloads(), expected);
    for running in cluster.nodes.values() {
        assert_eq!(running.machine.entries(), reference, "same entries at the same indexes");
    }
    // DescribeQuorum's view from the leader: epoch, high watermark, every voter matched.
    let deadline = Instant::now() + WAIT;
    loop {
        let leader = cluster.leader().await;
        let status = cluster.nodes[&leader].node.status();
        assert!(status.leader_id == Some(leader) && status.leader_epoch >= 1, "{status:?}");
        assert_eq!(status.voters.len(), 3);
        if status.committed_index.is_some_and(|c| c > last)
            && status.high_watermark() == status.committed_index.map(|c| c + 1).unwrap_or(0)
            && status.voters.iter().all(|v| v.matched_index >= Some(last) && v.last_contact.is_some())
        {
            break;
        }
        assert!(Instant::now() < deadline, "voters matched: {status:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A follower refuses proposals and names the leader (id and its address).
    let leader = cluster.leader().await;
    let follower = cluster.nodes.keys().copied().find(|id| *id != leader).expect("a follower");
    match cluster.nodes[&follower].node.propose(b"x".to_vec()).await {
        Err(ProposeError::NotLeader { leader: Some((id, addr)) }) => {
            assert_ne!(id, follower);
            assert_eq!(addr, cluster.voters[&id]);
        }
        other => panic!("expected NotLeader with a hint, got {other:?}"),
    }
    cluster.stop_all().await;
}

/// Stops the leader and measures until a proposal commits on a new one; (stop, elected, commit).
async fn failover(tune: fn(RaftConfig) -> RaftConfig, label: &str) {
    let mut cluster = Cluster::start(3, tune).await;
    let before = cluster.propose(b"before").await;
    cluster.wait_applied_everywhere(before).await;
    let (old, old_epoch) = cluster.leader_above(0).await;
    let stopped_at = Instant::now();
    cluster.stop_node(old).await;
    let stop_took = stopped_at.elapsed();
    let (new, _) = cluster.leader_above(old_epoch).await;
    let elected = stopped_at.elapsed();
    let after = cluster.propose(b"after").await;
    let committed = stopped_at.elapsed();
    assert_ne!(new, old);
    println!(
        "raft failover ({label}): leader {old} stopped (shutdown took {} ms) -> leader {new} elected after {} ms, \
         first commit after {} ms",
        stop_took.as_millis(),
        elected.as_millis(),
        committed.as_millis()
    );
    cluster.wait_applied_everywhere(after).await;
    for running in cluster.nodes.values() {
        let payloads = running.machine.payloads();
        assert_eq!(payloads, vec![b"before".to_vec(), b"after".to_vec()]);
    }
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_the_leader_elects_another_and_proposals_continue() {
    failover(fast, "fetch.timeout.ms 1000, election.timeout.ms 500").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_with_kafka_default_timeouts() {
    failover(|c| c, "Kafka defaults: fetch.timeout.ms 2000, election.timeout.ms 1000").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_voter_restarted_from_its_dir_catches_up() {
    let mut cluster = Cluster::start(3, fast).await;
    let leader = cluster.leader().await;
    for i in 0..10u32 {
        cluster.propose(format!("a{i}").as_bytes()).await;
    }
    let follower = cluster.nodes.keys().copied().find(|id| *id != leader).expect("a follower");
    let last = cluster.propose(b"a-last").await;
    cluster.wait_applied_everywhere(last).await;
    cluster.stop_node(follower).await;
    let mut last = 0;
    for i in 0..10u32 {
        last = cluster.propose(format!("b{i}").as_bytes()).await;
    }
    cluster.start_node(follower, None).await;
    let restarted = &cluster.nodes[&follower];
    assert_eq!(restarted.node.recovery().bytes_cut, 0);
    assert!(restarted.node.wait_for_applied(last, WAIT).await, "restarted voter caught up");
    let reference = cluster.nodes[&leader].machine.entries();
    assert_eq!(restarted.machine.entries(), reference, "its state rebuilt from its log, then the tail");
    assert_eq!(restarted.machine.snapshots_installed.load(Ordering::SeqCst), 0, "no snapshot needed");
    cluster.stop_all().await;
}

fn snapshot_often(config: RaftConfig) -> RaftConfig {
    RaftConfig {
        snapshot: SnapshotPolicy { max_record_bytes_between_snapshots: 64, max_snapshot_interval_ms: 0 },
        entries_kept_after_snapshot: 0,
        ..fast(config)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_with_a_wiped_dir_catches_up_through_a_snapshot() {
    let mut cluster = Cluster::start(3, snapshot_often).await;
    let leader = cluster.leader().await;
    let follower = cluster.nodes.keys().copied().find(|id| *id != leader).expect("a follower");
    let mut last = 0;
    for i in 0..20u32 {
        last = cluster.propose(format!("payload-{i:04}").as_bytes()).await;
    }
    cluster.wait_applied_everywhere(last).await;
    cluster.stop_node(follower).await;
    // A snapshot the stopped node's blocking thread is still writing may refill the dir while
    // it is being removed: try again until it is gone.
    let mut wiped = std::fs::remove_dir_all(&cluster.dirs[&follower]);
    for _ in 0..50 {
        if wiped.is_ok() || !cluster.dirs[&follower].exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        wiped = std::fs::remove_dir_all(&cluster.dirs[&follower]);
    }
    assert!(!cluster.dirs[&follower].exists(), "wipe: {wiped:?}");
    for i in 20..40u32 {
        last = cluster.propose(format!("payload-{i:04}").as_bytes()).await;
    }
    // Wait until the leader's log no longer holds the first entries: only a snapshot can help.
    let deadline = Instant::now() + WAIT;
    while cluster.nodes[&leader].node.status().last_applied_index < Some(last)
        || !cluster.dirs[&leader].join("raft-snapshot").exists()
    {
        assert!(Instant::now() < deadline, "leader snapshotted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.start_node(follower, None).await;
    let rejoined = &cluster.nodes[&follower];
    assert!(rejoined.node.wait_for_applied(last, WAIT).await, "wiped voter caught up");
    assert!(rejoined.machine.snapshots_installed.load(Ordering::SeqCst) >= 1, "through a snapshot install");
    let reference = cluster.nodes[&leader].machine.entries();
    assert_eq!(rejoined.machine.entries(), reference);
    assert_eq!(reference.len(), 40);
    assert!(cluster.dirs[&follower].join("raft-snapshot").exists(), "the installed snapshot is on its disk");
    cluster.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_voter_quorum_elects_itself_at_once_and_commits() {
    // Kafka's default timeouts: a lone voter must not wait for them.
    let tmp = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let voters = BTreeMap::from([(1u64, listener.local_addr().expect("addr").to_string())]);
    let dir = tmp.path().join("fjord-raft");
    drop(listener);
    let mut last = 0;
    for round in 0..2 {
        let machine = Arc::new(Recorder::default());
        let started = Instant::now();
        let node = RaftNode::start(RaftConfig::new(1, voters.clone(), dir.clone()), machine.clone()).await.expect("start");
        let elected = node.wait_for_leader(WAIT).await;
        let elected_after = started.elapsed();
        assert_eq!(elected, Some(1));
        let index = node.propose(format!("round-{round}").into_bytes()).await.expect("commit");
        let committed_after = started.elapsed();
        assert!(index > last);
        last = index;
        println!(
            "single voter ({}): leader after {} ms, first commit after {} ms",
            if round == 0 { "empty dir" } else { "restart" },
            elected_after.as_millis(),
            committed_after.as_millis()
        );
        assert!(elected_after < Duration::from_millis(500), "elected without waiting out a timeout: {elected_after:?}");
        let expected: Vec<Vec<u8>> = (0..=round).map(|r| format!("round-{r}").into_bytes()).collect();
        assert_eq!(machine.payloads(), expected, "restart replays the log");
        let status = node.status();
        assert_eq!(status.high_watermark(), index + 1);
        node.shutdown().await;
    }
}
