//! Typed broker configuration under Kafka's own property names, with Kafka's defaults. Parsing of
//! server.properties and `--override`; the table of known broker and topic configs that
//! DescribeConfigs and CreateTopics validate against. No I/O beyond reading the properties file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::storage::LogConfig;

pub mod jaas;
pub mod principal_mapping;

/// How followers copy leaders' logs, under Kafka's property names (see docs/configuration.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationConfig {
    pub fetch_max_bytes: i32,
    pub fetch_response_max_bytes: i32,
    pub fetch_min_bytes: i32,
    pub fetch_wait_max_ms: i32,
    pub fetch_backoff_ms: u64,
    pub socket_timeout_ms: u64,
    pub lag_time_max_ms: i64,
    /// `replication.quota.window.num` and `replication.quota.window.size.seconds`: the
    /// replication throttles' rates are measured over that many samples of that many seconds.
    pub quota_window_num: usize,
    pub quota_window_size_seconds: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            fetch_max_bytes: 1 << 20,
            fetch_response_max_bytes: 10 << 20,
            fetch_min_bytes: 1,
            fetch_wait_max_ms: 500,
            fetch_backoff_ms: 1000,
            socket_timeout_ms: 30_000,
            lag_time_max_ms: 30_000,
            quota_window_num: 11,
            quota_window_size_seconds: 1,
        }
    }
}

/// How a config value is typed, as DescribeConfigs v3+ reports it (Kafka's ConfigType ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    Class = 8,
    Password = 9,
}

/// One known property: its name, Kafka's default (None = null), type and a one-line doc.
pub struct ConfigDef {
    pub name: &'static str,
    pub default: Option<&'static str>,
    pub kind: ConfigType,
    pub doc: &'static str,
}

const fn def(name: &'static str, default: Option<&'static str>, kind: ConfigType, doc: &'static str) -> ConfigDef {
    ConfigDef { name, default, kind, doc }
}

use ConfigType as T;

/// Broker properties Fjord understands. Values not in this table are accepted with a warning,
/// as Kafka does for unknown keys.
pub const BROKER_CONFIGS: &[ConfigDef] = &[
    def("node.id", Some("1"), T::Int, "The node id of this broker."),
    def("broker.id", Some("-1"), T::Int, "Legacy name of node.id."),
    def("process.roles", Some("broker,controller"), T::List, "Roles of this node: broker, controller, or both."),
    def("listeners", Some("PLAINTEXT://127.0.0.1:9092"), T::List, "Named listeners, NAME://host:port, comma-separated."),
    def("advertised.listeners", None, T::String, "Addresses given to clients and other brokers; defaults to listeners (with the bound port)."),
    def("listener.security.protocol.map", Some("SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"), T::String, "Security protocol of each listener name, NAME:PROTOCOL (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL, the controller listener's included); defaults to Kafka's map, with controller listeners PLAINTEXT."),
    def("controller.listener.names", None, T::List, "Listeners the controllers of the metadata quorum are reached on."),
    def("inter.broker.listener.name", None, T::String, "Listener brokers reach each other on; defaults to the listener named PLAINTEXT, else the first broker listener. In a metadata quorum any of the broker's listeners: SSL (the listener's trust store checks the other brokers' certificates, its key store is the client certificate) and SASL_PLAINTEXT / SASL_SSL (the broker logs in with sasl.mechanism.inter.broker.protocol and the username / password of that mechanism's JAAS configuration on the listener)."),
    def("sasl.mechanism.controller.protocol", Some("GSSAPI"), T::String, "SASL mechanism a node logs in to the controller listener with when it is SASL_PLAINTEXT or SASL_SSL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, with the username / password of that mechanism's JAAS configuration on the controller listener. Kafka's default, GSSAPI, and OAUTHBEARER are refused at startup then."),
    def("security.inter.broker.protocol", Some("PLAINTEXT"), T::String, "Kafka's older way to pick the inter-broker listener: the listener named after this protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL). Only one of it and inter.broker.listener.name may be set."),
    def("sasl.mechanism.inter.broker.protocol", Some("GSSAPI"), T::String, "SASL mechanism a broker logs in with on a SASL inter-broker listener: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, one of the listener's sasl.enabled.mechanisms. Kafka's default, GSSAPI, and OAUTHBEARER are refused at startup when the inter-broker listener is SASL."),
    def("ssl.keystore.type", Some("JKS"), T::String, "Format of the listener's key store: PEM or PKCS12; JKS is refused at startup for now."),
    def("ssl.keystore.location", None, T::String, "The listener's key store file: a PEM file holding the private key and the certificate chain, or a PKCS12 file."),
    def("ssl.keystore.password", None, T::Password, "Password of a PKCS12 key store; refused with PEM, as Kafka does (a PEM key's password is ssl.key.password)."),
    def("ssl.keystore.certificate.chain", None, T::Password, "The listener's certificate chain as PEM text in the property (ssl.keystore.type=PEM, with ssl.keystore.key)."),
    def("ssl.keystore.key", None, T::Password, "The listener's private key as PEM text in the property (ssl.keystore.type=PEM, with ssl.keystore.certificate.chain)."),
    def("ssl.key.password", None, T::Password, "Password of an encrypted PKCS#8 private key (BEGIN ENCRYPTED PRIVATE KEY) in the PEM key store."),
    def("ssl.truststore.type", Some("JKS"), T::String, "Format of the trust store of client certificates: PEM or PKCS12; JKS is refused at startup for now."),
    def("ssl.truststore.location", None, T::String, "The CA certificates client certificates are checked against: a PEM file, or a PKCS12 file of certificate entries."),
    def("ssl.truststore.password", None, T::Password, "Password of a PKCS12 trust store (none: an unprotected store); not used with PEM."),
    def("ssl.truststore.certificates", None, T::Password, "CA certificates client certificates are checked against, as PEM text in the property (ssl.truststore.type=PEM)."),
    def("ssl.client.auth", Some("none"), T::String, "Client certificates (mTLS): none, requested (checked when sent) or required (the handshake fails without one)."),
    def("ssl.enabled.protocols", Some("TLSv1.2,TLSv1.3"), T::List, "TLS versions the listener accepts: TLSv1.2 and/or TLSv1.3 (older ones are not offered by rustls)."),
    def("ssl.protocol", Some("TLSv1.3"), T::String, "Kafka: the JSSE SSLContext protocol; Fjord's versions come from ssl.enabled.protocols."),
    def("ssl.cipher.suites", Some(""), T::List, "Cipher suites the listener accepts, by their IANA names (TLS_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, ...); empty = every suite rustls offers."),
    def("ssl.principal.mapping.rules", Some("DEFAULT"), T::String, "How an mTLS client's certificate subject (RFC 2253) becomes its User: principal: rules RULE:pattern/replacement/[LU] and DEFAULT (the subject itself), comma-separated, the first whose pattern matches the whole subject applies; no match fails the authentication."),
    def("ssl.allow.dn.changes", Some("false"), T::Boolean, "Whether a reloaded key store (AlterConfigs, or a changed file) may hold a certificate with another subject; false refuses the reload."),
    def("ssl.allow.san.changes", Some("false"), T::Boolean, "Whether a reloaded key store may drop subject alternative names of the current certificate; false refuses the reload."),
    def("fjord.ssl.reload.check.interval.ms", Some("60000"), T::Long, "Fjord: how often each SSL listener checks its key store and trust store files for new content, in ms, and reloads them (validated as an AlterConfigs reload is); 0 = never."),
    def("ssl.endpoint.identification.algorithm", Some("https"), T::String, "Host name check of a peer broker's certificate by the inter-broker client (the inter-broker listener's value): https checks it is valid for the host the peer advertises, empty only that it chains to the trust store. Clients of a listener are not checked by it."),
    def("sasl.enabled.mechanisms", Some("GSSAPI"), T::List, "SASL mechanisms a SASL_PLAINTEXT or SASL_SSL listener offers: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER (unsecured tokens; GSSAPI is refused at startup)."),
    def("sasl.oauthbearer.jwks.endpoint.url", None, T::String, "OAUTHBEARER with OAuthBearerValidatorCallbackHandler: the JWKS holding the token signers' public keys, a file: URL read at startup or an https: URL fetched at startup and refreshed (its trust store: the ssl.truststore.* options of the OAUTHBEARER JAAS configuration, else the system's CAs)."),
    def("sasl.oauthbearer.jwks.endpoint.refresh.ms", Some("3600000"), T::Long, "How often an https JWKS endpoint is fetched again."),
    def("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", Some("100"), T::Long, "First wait before fetching an https JWKS endpoint again after a failure (doubling after each)."),
    def("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", Some("10000"), T::Long, "Longest wait between fetches of a failing https JWKS endpoint."),
    def("sasl.oauthbearer.expected.audience", None, T::List, "OAUTHBEARER with signed JWTs: audiences a token's aud must name one of (not checked when unset)."),
    def("sasl.oauthbearer.expected.issuer", None, T::String, "OAUTHBEARER with signed JWTs: the issuer a token's iss must be (not checked when unset)."),
    def("sasl.oauthbearer.sub.claim.name", Some("sub"), T::String, "OAUTHBEARER with signed JWTs: the claim naming the principal."),
    def("sasl.oauthbearer.scope.claim.name", Some("scope"), T::String, "OAUTHBEARER with signed JWTs: the claim holding the scope."),
    def("sasl.oauthbearer.clock.skew.seconds", Some("30"), T::Int, "OAUTHBEARER with signed JWTs: clock difference allowed when checking exp, nbf and iat, in seconds."),
    def("sasl.server.callback.handler.class", None, T::Class, "A SASL mechanism's server callback handler, set as listener.name.<listener>.<mechanism>.sasl.server.callback.handler.class; OAUTHBEARER accepts only Kafka's default unsecured-token handler."),
    def("sasl.jaas.config", None, T::Password, "JAAS login module of a SASL mechanism, set as listener.name.<listener>.<mechanism>.sasl.jaas.config (PLAIN: its user_<name>=\"<password>\" options are the users)."),
    def("sasl.server.max.receive.size", Some("524288"), T::Int, "Largest frame a SASL listener reads before the client is authenticated, in bytes."),
    def("connections.max.reauth.ms", Some("0"), T::Long, "KIP-368: a SASL session lasts this many ms and must re-authenticate; 0 = sessions never expire."),
    def("connection.failed.authentication.delay.ms", Some("100"), T::Int, "How long the answer to a failed authentication is held back before the connection closes, in ms."),
    def("controller.quorum.voters", Some(""), T::List, "The metadata quorum's voters, id@host:port, comma-separated (static quorum)."),
    def("controller.quorum.bootstrap.servers", Some(""), T::List, "Controllers to contact to discover a dynamic quorum (KIP-853). On a controller naming only itself: it starts a quorum with itself as its one voter (as after kafka-storage.sh format --standalone). On a controller naming others: it learns the voters from them and waits to be added (kafka-metadata-quorum.sh add-controller, AddRaftVoter); once added, the membership in its metadata log is what counts. On a broker-only node: it learns the voters from them."),
    def("controller.quorum.election.timeout.ms", Some("1000"), T::Long, "Raft: how long a voter waits without a leader before it stands for election."),
    def("controller.quorum.fetch.timeout.ms", Some("2000"), T::Long, "Raft: how long a follower waits without hearing from the leader before it stands for election."),
    def("controller.quorum.request.timeout.ms", Some("2000"), T::Long, "How long a request to another voter or to the active controller waits for its answer."),
    def("broker.session.timeout.ms", Some("9000"), T::Long, "A broker the controller has not heard from for this long is fenced (its leaderships move to other ISR members)."),
    def("initial.broker.registration.timeout.ms", Some("60000"), T::Long, "How long a broker of a quorum may take at startup to reach the controllers (a broker-only node given controller.quorum.bootstrap.servers learns the voters from them) before it gives up and exits."),
    def("broker.heartbeat.interval.ms", Some("2000"), T::Long, "How often a broker in a quorum heartbeats to the active controller."),
    def("offsets.topic.replication.factor", Some("3"), T::Int, "Replication factor of __consumer_offsets in a cluster (capped at the brokers registered when it is made); a single node keeps 1."),
    def("transaction.state.log.replication.factor", Some("3"), T::Int, "Replication factor of __transaction_state in a cluster (capped as offsets.topic.replication.factor)."),
    def("transaction.state.log.min.isr", Some("2"), T::Int, "min.insync.replicas of __transaction_state, set on the topic when it is made (at most its replication factor)."),
    def("log.dirs", None, T::List, "Directories holding the partition logs; log.dir when not set."),
    def("log.dir", Some("./data"), T::String, "Used when log.dirs is not set."),
    def("metadata.log.dir", None, T::String, "Directory of the Raft metadata log in a quorum; the first of log.dirs when not set."),
    def("metadata.log.max.record.bytes.between.snapshots", Some("20971520"), T::Long, "A voter snapshots the metadata image once this many bytes of metadata records were applied since its last snapshot."),
    def("metadata.log.max.snapshot.interval.ms", Some("3600000"), T::Long, "A voter snapshots the metadata image when this long has passed since its last snapshot and anything was applied since; 0 turns the time rule off."),
    def("fjord.peer.address.overrides", Some(""), T::List, "Fjord test hook: FROM=TO pairs of host:port, comma-separated; this node's outbound connections to another node (Raft RPCs, requests to the controller, replica fetches, transaction markers) that would go to FROM go to TO instead, so a fault test can put a proxy it can cut on each directed link. Clients are not affected."),
    def("fjord.metadata.log.entries.kept.after.snapshot", Some("1000"), T::Long, "Fjord: metadata log entries a voter keeps behind its snapshot, so a voter or broker slightly behind catches up from the log rather than a whole snapshot."),
    def("num.partitions", Some("1"), T::Int, "Default partition count of auto-created topics."),
    def("default.replication.factor", Some("1"), T::Int, "Default replication factor of auto-created topics."),
    def("broker.rack", None, T::String, "The rack (or availability zone) of this broker, registered with the controller: replica placement alternates racks so a partition's replicas land on different ones, and with replica.selector.class a consumer naming its rack (client.rack) fetches from a replica there (KIP-392)."),
    def("replica.selector.class", None, T::String, "Which replica a consumer fetches from (KIP-392): not set (or empty) = the leader; org.apache.kafka.common.replica.RackAwareReplicaSelector = a caught-up replica in the consumer's rack (client.rack) when there is one, the leader tells the consumer which; any other class is refused at startup. Every broker serves consumer fetches (Fetch v11+) from its replicas, followers up to their high watermark, as Kafka does."),
    def("auto.create.topics.enable", Some("true"), T::Boolean, "Create topics when metadata asks for an unknown one."),
    def("delete.topic.enable", Some("true"), T::Boolean, "Allow DeleteTopics."),
    def("authorizer.class.name", Some(""), T::String, "The ACL authorizer: empty = none (every request allowed; the ACL APIs answer SECURITY_DISABLED), or org.apache.kafka.metadata.authorizer.StandardAuthorizer (Kafka's rules, ACLs kept by the broker, in a metadata quorum in the metadata log); any other class is refused at startup."),
    def("super.users", Some(""), T::List, "Principals allowed everything whatever the ACLs say, semicolon-separated (User:admin;User:ANONYMOUS). In a metadata quorum it must name the nodes' principal on the inter-broker and controller listeners: their SASL user (User:broker) on SASL listeners, their certificate's principal over SSL with client certificates, User:ANONYMOUS over PLAINTEXT."),
    def("allow.everyone.if.no.acl.found", Some("false"), T::Boolean, "Allow a request on a resource no ACL covers (false: refused unless an ACL allows it)."),
    def("log.segment.bytes", Some("1073741824"), T::Int, "Segment size in bytes before a roll."),
    def("log.roll.ms", None, T::Long, "Segment age in ms before a roll (overrides log.roll.hours)."),
    def("log.roll.hours", Some("168"), T::Int, "Segment age in hours before a roll."),
    def("log.retention.ms", None, T::Long, "Retention time in ms (overrides minutes/hours); -1 = unlimited."),
    def("log.retention.minutes", None, T::Int, "Retention time in minutes (overrides hours)."),
    def("log.retention.hours", Some("168"), T::Int, "Retention time in hours."),
    def("log.retention.bytes", Some("-1"), T::Long, "Retention size per partition in bytes; -1 = unlimited."),
    def("log.retention.check.interval.ms", Some("300000"), T::Long, "How often retention runs, in ms."),
    def("log.index.interval.bytes", Some("4096"), T::Int, "Bytes between offset index entries."),
    def("log.index.size.max.bytes", Some("10485760"), T::Int, "Largest offset (and time) index of a segment, in bytes; a segment whose index is full rolls."),
    def("log.flush.interval.messages", Some("9223372036854775807"), T::Long, "Messages appended before a forced fsync."),
    def("log.flush.interval.ms", None, T::Long, "Ms a message may wait before a forced fsync (null: OS decides)."),
    def("log.flush.scheduler.interval.ms", Some("9223372036854775807"), T::Long, "How often the flusher checks, in ms."),
    def("log.flush.offset.checkpoint.interval.ms", Some("60000"), T::Int, "How often recovery points are checkpointed, in ms."),
    def("log.message.timestamp.type", Some("CreateTime"), T::String, "CreateTime or LogAppendTime."),
    def("log.message.timestamp.before.max.ms", Some("9223372036854775807"), T::Long, "How far in the past a record timestamp may be, in ms."),
    def("log.message.timestamp.after.max.ms", Some("3600000"), T::Long, "How far in the future a record timestamp may be, in ms."),
    def("log.cleanup.policy", Some("delete"), T::List, "delete and/or compact."),
    def("log.cleaner.delete.retention.ms", Some("86400000"), T::Long, "How long tombstones are kept, in ms."),
    def("log.cleaner.enable", Some("true"), T::Boolean, "Run the log cleaner (compaction of cleanup.policy=compact topics)."),
    def("log.cleaner.threads", Some("1"), T::Int, "Cleaners compacting logs at once, each with its share of the dedupe and I/O buffers (totals); 0 compacts nothing. Dynamic."),
    def("log.cleaner.backoff.ms", Some("15000"), T::Long, "Pause of the cleaner when no log needs cleaning, in ms."),
    def("log.cleaner.dedupe.buffer.size", Some("134217728"), T::Long, "Memory for the key map of one cleaning pass, in bytes."),
    def("log.cleaner.io.buffer.size", Some("524288"), T::Int, "Read size of the cleaner, in bytes."),
    def("log.cleaner.min.cleanable.ratio", Some("0.5"), T::Double, "Dirty share of a log before it is cleaned."),
    def("log.cleaner.min.compaction.lag.ms", Some("0"), T::Long, "Records younger than this are not compacted, in ms."),
    def("log.cleaner.max.compaction.lag.ms", Some("9223372036854775807"), T::Long, "Dirty records older than this are compacted whatever the ratio, in ms."),
    def("message.max.bytes", Some("1048588"), T::Int, "Largest record batch accepted, in bytes."),
    def("compression.type", Some("producer"), T::String, "Final compression of topic data; producer = as sent, else uncompressed, gzip, snappy, lz4 or zstd (the broker rewrites other batches)."),
    def("compression.gzip.level", Some("-1"), T::Int, "Level of gzip when the broker compresses: 1-9, -1 = deflate's default."),
    def("compression.lz4.level", Some("9"), T::Int, "Level of lz4 when the broker compresses: 1-17."),
    def("compression.zstd.level", Some("3"), T::Int, "Level of zstd when the broker compresses: -131072 to 22."),
    def("log.segment.delete.delay.ms", Some("60000"), T::Long, "Kafka: wait before deleting a segment's files, in ms; Fjord deletes at once (readers keep their open files)."),
    def("log.preallocate", Some("false"), T::Boolean, "Kafka: preallocate whole segment files; Fjord uses fjord.log.preallocate.step.bytes whatever this says."),
    def("log.local.retention.ms", Some("-2"), T::Long, "Local retention under tiered storage, in ms (tiered storage is off)."),
    def("log.local.retention.bytes", Some("-2"), T::Long, "Local retention under tiered storage, in bytes (tiered storage is off)."),
    def("unclean.leader.election.enable", Some("false"), T::Boolean, "In a cluster, a partition whose ISR has no live replica may get a live replica outside it as leader (data may be lost); a single node never elects another leader."),
    def("min.insync.replicas", Some("1"), T::Int, "Replicas that must acknowledge acks=all."),
    def("socket.request.max.bytes", Some("104857600"), T::Int, "Largest request frame accepted, in bytes."),
    def("socket.send.buffer.bytes", Some("102400"), T::Int, "SO_SNDBUF of client sockets, in bytes; -1 = OS default."),
    def("socket.receive.buffer.bytes", Some("-1"), T::Int, "SO_RCVBUF of client sockets, in bytes; -1 = OS default (the kernel autotunes it). Kafka's default is 102400; Fjord's is -1: a fixed 100 KB window caps a producer at 100 KB per round trip."),
    def("max.connections", Some("2147483647"), T::Int, "Most client connections at once."),
    def("max.connections.per.ip", Some("2147483647"), T::Int, "Most connections from one IP address at once; further connections from it are closed as they arrive. 0 only with overrides."),
    def("quota.window.num", Some("11"), T::Int, "Samples client quota rates are measured over."),
    def("quota.window.size.seconds", Some("1"), T::Int, "Length of one client quota rate sample, in seconds."),
    def("controller.quota.window.num", Some("11"), T::Int, "Samples of controller_mutation_rate: a client's token bucket holds this many windows of its quota."),
    def("controller.quota.window.size.seconds", Some("1"), T::Int, "Length of one controller_mutation_rate sample, in seconds."),
    def("max.connection.creation.rate", Some("2147483647"), T::Int, "Most new connections per second over all client listeners (per listener as listener.name.<listener>.max.connection.creation.rate); over it, accepting waits until the rate is back to it."),
    def("max.connections.per.ip.overrides", Some(""), T::String, "Per IP or host name exceptions to max.connections.per.ip, HOST:COUNT separated by commas."),
    def("connections.max.idle.ms", Some("600000"), T::Long, "Idle connections are closed after this many ms."),
    def("fetch.max.bytes", Some("57671680"), T::Int, "Most bytes one fetch response carries."),
    def("max.request.partition.size.limit", Some("2000"), T::Int, "Most partitions one DescribeTopicPartitions response carries."),
    def("queued.max.requests", Some("500"), T::Int, "Most pieces of disk work queued for the request handler threads; past it handlers wait."),
    def("num.network.threads", None, T::Int, "Threads serving the network: the async runtime's workers, which read and write every connection; one per core when not set (Kafka's default is 3)."),
    def("num.io.threads", Some("8"), T::Int, "Request handler threads: they run every append, read and coordinator write that may block on a disk."),
    def("replica.fetch.max.bytes", Some("1048576"), T::Int, "Bytes a follower asks for per partition in one fetch (at least one batch is returned)."),
    def("replica.fetch.response.max.bytes", Some("10485760"), T::Int, "Bytes a follower asks for in one fetch response."),
    def("replica.fetch.min.bytes", Some("1"), T::Int, "Bytes a follower's fetch waits for, up to replica.fetch.wait.max.ms."),
    def("replica.fetch.wait.max.ms", Some("500"), T::Int, "How long a follower's fetch waits on the leader for replica.fetch.min.bytes, in ms."),
    def("replica.fetch.backoff.ms", Some("1000"), T::Int, "How long a follower waits after a failed fetch before trying again, in ms."),
    def("replica.socket.timeout.ms", Some("30000"), T::Int, "How long a follower waits for a fetch response, in ms."),
    def("replica.lag.time.max.ms", Some("30000"), T::Long, "A follower not caught up for this long leaves the ISR, in ms."),
    def("replica.alter.log.dirs.io.max.bytes.per.second", Some("9223372036854775807"), T::Long, "Most bytes a second a partition move between log dirs (AlterReplicaLogDirs) copies while the partition is served; dynamic (kafka-reassign-partitions.sh --replica-alter-log-dirs-throttle)."),
    def(
        "leader.replication.throttled.rate",
        Some("9223372036854775807"),
        T::Long,
        "Most bytes a second this broker sends, as leader, to followers of the replicas its topics list in leader.replication.throttled.replicas (in-sync followers are never held back, their bytes count); dynamic, listed only where set (kafka-reassign-partitions.sh --throttle).",
    ),
    def(
        "follower.replication.throttled.rate",
        Some("9223372036854775807"),
        T::Long,
        "Most bytes a second this broker fetches, as follower, for the replicas its topics list in follower.replication.throttled.replicas (in-sync replicas are never held back, their bytes count); dynamic, listed only where set (kafka-reassign-partitions.sh --throttle).",
    ),
    def("replication.quota.window.num", Some("11"), T::Int, "Samples the replication throttles' rates are measured over."),
    def("replication.quota.window.size.seconds", Some("1"), T::Int, "Length of one replication throttle rate sample, in seconds."),
    def("group.initial.rebalance.delay.ms", Some("3000"), T::Int, "Delay of an empty group's first rebalance, in ms."),
    def("group.min.session.timeout.ms", Some("6000"), T::Int, "Shortest session timeout a group member may ask for, in ms."),
    def("group.max.session.timeout.ms", Some("1800000"), T::Int, "Longest session timeout a group member may ask for, in ms."),
    def("group.max.size", Some("2147483647"), T::Int, "Most members one consumer group may have."),
    def("group.consumer.session.timeout.ms", Some("45000"), T::Int, "Session timeout of consumer-protocol (KIP-848) members, in ms."),
    def("group.consumer.min.session.timeout.ms", Some("45000"), T::Int, "Smallest consumer.session.timeout.ms a group may set, in ms."),
    def("group.consumer.max.session.timeout.ms", Some("60000"), T::Int, "Largest consumer.session.timeout.ms a group may set, in ms."),
    def("group.consumer.heartbeat.interval.ms", Some("5000"), T::Int, "Heartbeat interval of consumer-protocol members, in ms."),
    def("group.consumer.min.heartbeat.interval.ms", Some("5000"), T::Int, "Smallest consumer.heartbeat.interval.ms a group may set, in ms."),
    def("group.consumer.max.heartbeat.interval.ms", Some("15000"), T::Int, "Largest consumer.heartbeat.interval.ms a group may set, in ms."),
    def("group.consumer.max.size", Some("2147483647"), T::Int, "Most members one consumer-protocol group may have."),
    def(
        "group.consumer.migration.policy",
        Some("bidirectional"),
        T::String,
        "Online migration between the group protocols (KIP-848): upgrade (a classic group with members becomes a consumer group when a consumer-protocol member joins), downgrade (back when its last consumer-protocol member leaves), bidirectional, or disabled.",
    ),
    def("group.coordinator.append.linger.ms", Some("5"), T::Int, "How long the group coordinator lets a consumer-protocol group's changes accumulate before it writes them as one batch, in ms; the heartbeats that made them are answered once it is written (0: each heartbeat writes before it is answered)."),
    def(
        "group.consumer.assignors",
        Some("uniform,range"),
        T::List,
        "Server-side assignors of consumer-protocol groups (uniform, range; class or short names); the first is the default.",
    ),
    def("group.share.session.timeout.ms", Some("45000"), T::Int, "Default share.session.timeout.ms of groups, in ms (share groups are not served)."),
    def("group.share.min.session.timeout.ms", Some("45000"), T::Int, "Smallest share.session.timeout.ms a group may set, in ms."),
    def("group.share.max.session.timeout.ms", Some("60000"), T::Int, "Largest share.session.timeout.ms a group may set, in ms."),
    def("group.share.heartbeat.interval.ms", Some("5000"), T::Int, "Default share.heartbeat.interval.ms of groups, in ms."),
    def("group.share.min.heartbeat.interval.ms", Some("5000"), T::Int, "Smallest share.heartbeat.interval.ms a group may set, in ms."),
    def("group.share.max.heartbeat.interval.ms", Some("15000"), T::Int, "Largest share.heartbeat.interval.ms a group may set, in ms."),
    def("group.share.record.lock.duration.ms", Some("30000"), T::Int, "Default share.record.lock.duration.ms of groups, in ms."),
    def("group.share.min.record.lock.duration.ms", Some("15000"), T::Int, "Smallest share.record.lock.duration.ms a group may set, in ms."),
    def("group.share.max.record.lock.duration.ms", Some("60000"), T::Int, "Largest share.record.lock.duration.ms a group may set, in ms."),
    def("offset.metadata.max.bytes", Some("4096"), T::Int, "Largest metadata string of a committed offset, in bytes."),
    def("offsets.topic.num.partitions", Some("50"), T::Int, "Partitions of __consumer_offsets."),
    def("offsets.topic.segment.bytes", Some("104857600"), T::Int, "Segment size of __consumer_offsets, in bytes."),
    def("offsets.retention.minutes", Some("10080"), T::Int, "Committed offsets of empty groups expire after this."),
    def("offsets.retention.check.interval.ms", Some("600000"), T::Long, "How often committed offsets are checked for expiry, in ms."),
    def("transactional.id.expiration.ms", Some("604800000"), T::Int, "Idle transactional ids expire after this, in ms."),
    def("transaction.max.timeout.ms", Some("900000"), T::Int, "Longest transaction.timeout.ms a producer may ask for, in ms."),
    def("transaction.state.log.num.partitions", Some("50"), T::Int, "Partitions of __transaction_state."),
    def("transaction.state.log.segment.bytes", Some("104857600"), T::Int, "Segment size of __transaction_state, in bytes."),
    def("transaction.abort.timed.out.transaction.cleanup.interval.ms", Some("10000"), T::Int, "How often transactions are checked for their timeout, in ms."),
    def("transaction.remove.expired.transaction.cleanup.interval.ms", Some("3600000"), T::Int, "How often idle transactional ids are checked for expiry, in ms."),
    def(
        "producer.id.expiration.ms",
        Some("86400000"),
        T::Int,
        "A producer id is forgotten by a partition once its last batch's timestamp is this many ms old and it has no open transaction there (its next batch is then taken as an unknown producer's); dynamic.",
    ),
    def("producer.id.expiration.check.interval.ms", Some("600000"), T::Int, "How often partitions look for expired producer ids, in ms."),
    def("num.recovery.threads.per.data.dir", Some("2"), T::Int, "Threads per log dir that load (and after an unclean stop recover) partitions at startup and flush them at shutdown."),
    def("shutdown.timeout.ms", Some("10000"), T::Long, "Fjord: how long in-flight requests may finish at shutdown, in ms."),
    def("io.backend", Some("auto"), T::String, "Fjord: storage I/O backend: auto, uring or std."),
    def(
        "fjord.log.flush.on.acks.all",
        Some("false"),
        T::Boolean,
        "Fjord durable mode: answer acks=all produce only after the partition's data is fdatasynced (group commit shares fsyncs).",
    ),
    def(
        "fjord.log.preallocate.step.bytes",
        Some("8388608"),
        T::Long,
        "Fjord: bytes of disk the active segment reserves at a time ahead of its appends (fallocate, the file size unchanged; given back at roll and close); 0 = no preallocation.",
    ),
    def(
        "fjord.log.writeback.step.bytes",
        Some("2097152"),
        T::Long,
        "Fjord: each time the active segment grows by this many bytes, its new pages are queued for writeback (sync_file_range, no wait, no durability promise), so the fsync after a roll finds little left and does not stall appends behind the file system's journal (lower p99 with frequent rolls; bursts faster than the disk are then not absorbed by the page cache); 0 = leave writeback to the kernel.",
    ),
    def(
        "fjord.log.drop.behind.bytes",
        Some("268435456"),
        T::Long,
        "Fjord: pages of the active segment this many bytes behind its end, already queued for writeback, are dropped from the page cache (fadvise DONTNEED; pages not yet written stay), and so are a sealed segment's last ones once the next segment is this long, so appends reuse the memory just freed instead of growing the page cache. Consumers further behind read from disk (with fjord.fetch.readahead.bytes ahead of them). Needs fjord.log.writeback.step.bytes > 0 and at least that large (off when the step is 0 and this is not set); 0 = keep pages until the kernel reclaims them, as Kafka does.",
    ),
    def(
        "fjord.log.open.files.max",
        Some("0"),
        T::Int,
        "Fjord: most segment and index files kept open at once, broker-wide; files past it are closed least recently used first and reopened on their next use, so descriptors do not grow with the partition count. 0 = derived from the open-files limit (RLIMIT_NOFILE) at startup, leaving a quarter of it (at least 256) to sockets and other files.",
    ),
    def(
        "fjord.http.listener",
        Some("127.0.0.1:9644"),
        T::String,
        "Fjord: host:port of the HTTP listener serving /metrics (Prometheus text), /health and /ready; none = no HTTP listener. Startup fails when it cannot be bound, as for the Kafka listeners.",
    ),
    def(
        "telemetry.max.bytes",
        Some("1048576"),
        T::Int,
        "Largest client telemetry push (KIP-714 PushTelemetry metrics, compressed size) accepted, in bytes; a larger one gets TELEMETRY_TOO_LARGE.",
    ),
    def(
        "fjord.client.telemetry.enabled",
        Some("false"),
        T::Boolean,
        "Fjord: the built-in client telemetry receiver. When true, ApiVersions advertises GetTelemetrySubscriptions and PushTelemetry, so clients push the metrics their subscriptions ask for, and the latest pushed values are on /metrics. When false, as Kafka without a metric reporter that receives telemetry, the two APIs are answered but not advertised, and pushes are accepted and dropped.",
    ),
    def(
        "fjord.client.telemetry.instances.max",
        Some("16384"),
        T::Int,
        "Fjord: most client instances whose telemetry state (subscription, last push, pushed values) is kept, as Kafka's fixed cache of 16384; past it the least recently seen is forgotten. An instance is also forgotten after max(60 s, 3 push intervals) without a request.",
    ),
    def(
        "fjord.client.telemetry.decompressed.max.bytes",
        Some("16777216"),
        T::Int,
        "Fjord: largest telemetry payload the receiver decompresses, in bytes; a push that inflates past it is refused with INVALID_RECORD (telemetry.max.bytes bounds the compressed size).",
    ),
    def("fjord.http.connections.max", Some("16"), T::Int, "Fjord: most open HTTP connections; more are closed at accept."),
    def("fjord.http.request.timeout.ms", Some("10000"), T::Long, "Fjord: how long an HTTP client has to send a request's headers, in ms; a slower one is disconnected."),
    def("fjord.http.connection.max.ms", Some("60000"), T::Long, "Fjord: longest life of an HTTP connection, in ms (a keep-alive scraper reconnects after it)."),
    def("fjord.http.console.readonly", Some("false"), T::Boolean, "Fjord: the web console at / only shows: its create, delete, produce and reset actions are hidden and the server refuses them (403)."),
    def("fjord.http.console.sessions.max", Some("100"), T::Int, "Fjord: most web console logins open at once (with an authorizer); a login past it is refused (429) until one ends or expires."),
    def("fjord.http.console.session.lifetime.ms", Some("28800000"), T::Long, "Fjord: how long a web console login lasts, in ms; then the console asks for the password again."),
    def(
        "fjord.fetch.readahead.bytes",
        Some("16777216"),
        T::Long,
        "Fjord: how far ahead of a consumer reading a segment the disk is asked to read (fadvise WILLNEED, asked for half a window at a time, never near the end of the data), so a consumer behind what the page cache holds finds its next fetches already read; 0 = leave it to the kernel's read-ahead.",
    ),
];

/// Group-level configs (Kafka 4.0's GroupConfig, resource type GROUP): name, the broker property
/// that supplies its default (None: a fixed default), type, doc.
pub const GROUP_CONFIGS: &[(&str, Option<&str>, ConfigType, &str)] = &[
    ("consumer.heartbeat.interval.ms", Some("group.consumer.heartbeat.interval.ms"), T::Int, "Heartbeat interval of the group's consumer-protocol members, in ms."),
    ("consumer.session.timeout.ms", Some("group.consumer.session.timeout.ms"), T::Int, "Session timeout of the group's consumer-protocol members, in ms."),
    ("share.auto.offset.reset", None, T::String, "Where a share group starts reading a partition: latest or earliest."),
    ("share.heartbeat.interval.ms", Some("group.share.heartbeat.interval.ms"), T::Int, "Heartbeat interval of share group members, in ms."),
    ("share.record.lock.duration.ms", Some("group.share.record.lock.duration.ms"), T::Int, "How long a share group member holds a record, in ms."),
    ("share.session.timeout.ms", Some("group.share.session.timeout.ms"), T::Int, "Session timeout of share group members, in ms."),
];

/// Most partitions one CreateTopics or CreatePartitions request may ask for, summed over its
/// topics (a topic with num_partitions -1 counts num.partitions). Kafka has no property for it: its
/// controller refuses such a CreateTopics with POLICY_VIOLATION "Excessively large number of
/// partitions per request." (a constant in Kafka 4.0, checked against the reference broker).
pub const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;

/// Most metadata records one admin request may write in Kafka (a constant there, no property):
/// CreateTopics counts one per topic, one per partition and one per config override of each topic
/// it would create; above it every topic gets POLICY_VIOLATION "Unable to perform excessively
/// large batch operation." (so one topic of 10,000 partitions is refused, 9,999 is not).
pub const MAX_RECORDS_PER_USER_OP: i64 = 10_000;

/// Default of share.auto.offset.reset (Kafka's).
pub const SHARE_AUTO_OFFSET_RESET_DEFAULT: &str = "latest";

pub fn group_def(name: &str) -> Option<&'static (&'static str, Option<&'static str>, ConfigType, &'static str)> {
    GROUP_CONFIGS.iter().find(|d| d.0 == name)
}

/// Topic-level configs: name, the broker property that supplies its default, type, doc.
pub const TOPIC_CONFIGS: &[(&str, &str, ConfigType, &str)] = &[
    ("cleanup.policy", "log.cleanup.policy", T::List, "delete and/or compact."),
    ("compression.gzip.level", "compression.gzip.level", T::Int, "Level of gzip when the broker compresses (compression.type=gzip): 1-9, -1 = deflate's default."),
    ("compression.lz4.level", "compression.lz4.level", T::Int, "Level of lz4 when the broker compresses (compression.type=lz4): 1-17."),
    ("compression.type", "compression.type", T::String, "Final compression of the topic's data: producer keeps the producer's codec; uncompressed, gzip, snappy, lz4 or zstd makes the broker rewrite batches sent in another codec."),
    ("compression.zstd.level", "compression.zstd.level", T::Int, "Level of zstd when the broker compresses (compression.type=zstd): -131072 to 22."),
    ("delete.retention.ms", "log.cleaner.delete.retention.ms", T::Long, "How long tombstones are kept, in ms."),
    ("file.delete.delay.ms", "log.segment.delete.delay.ms", T::Long, "Kafka: wait before deleting a segment's files, in ms. Fjord deletes at once (readers keep their open files); accepted for compatibility."),
    ("flush.messages", "log.flush.interval.messages", T::Long, "Messages appended before a forced fsync."),
    ("flush.ms", "log.flush.interval.ms", T::Long, "Ms before a forced fsync."),
    ("follower.replication.throttled.replicas", "", T::List, "Replicas whose fetching, on the broker named, follower.replication.throttled.rate bounds while they are out of sync ('*': every partition on every broker, or partition:broker,...)."),
    ("index.interval.bytes", "log.index.interval.bytes", T::Int, "Bytes between offset index entries."),
    ("leader.replication.throttled.replicas", "", T::List, "Replicas whose serving of out-of-sync followers, on the broker named as leader, leader.replication.throttled.rate bounds ('*': every partition on every broker, or partition:broker,...)."),
    ("local.retention.bytes", "log.local.retention.bytes", T::Long, "Local retention under tiered storage, in bytes (-2: retention.bytes); tiered storage is off: accepted for compatibility."),
    ("local.retention.ms", "log.local.retention.ms", T::Long, "Local retention under tiered storage, in ms (-2: retention.ms); tiered storage is off: accepted for compatibility."),
    ("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", T::Long, "Dirty records older than this are compacted whatever the ratio, in ms."),
    ("max.message.bytes", "message.max.bytes", T::Int, "Largest record batch accepted, in bytes."),
    ("message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms", T::Long, "How far in the future a record timestamp may be, in ms."),
    ("message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms", T::Long, "How far in the past a record timestamp may be, in ms."),
    ("message.timestamp.type", "log.message.timestamp.type", T::String, "CreateTime or LogAppendTime."),
    ("min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", T::Double, "Dirty share of the log before it is cleaned."),
    ("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", T::Long, "Records younger than this are not compacted, in ms."),
    ("min.insync.replicas", "min.insync.replicas", T::Int, "Replicas that must acknowledge acks=all; above 1 a single node answers acks=all with NOT_ENOUGH_REPLICAS."),
    ("preallocate", "log.preallocate", T::Boolean, "Kafka: preallocate whole segment files. Fjord reserves the active segment's space step by step (fjord.log.preallocate.step.bytes) whatever this says; accepted for compatibility."),
    ("remote.log.copy.disable", "", T::Boolean, "Tiered storage: stop copying segments to remote storage; tiered storage is off: accepted for compatibility."),
    ("remote.log.delete.on.disable", "", T::Boolean, "Tiered storage: delete remote data when it is turned off; tiered storage is off: accepted for compatibility."),
    ("remote.storage.enable", "", T::Boolean, "Tiered storage; true is refused as Kafka refuses it on a broker without tiered storage."),
    ("retention.bytes", "log.retention.bytes", T::Long, "Retention size per partition in bytes."),
    ("retention.ms", "log.retention.ms", T::Long, "Retention time in ms; -1 = unlimited."),
    ("segment.bytes", "log.segment.bytes", T::Int, "Segment size in bytes before a roll."),
    ("segment.index.bytes", "log.index.size.max.bytes", T::Int, "Largest offset (and time) index of a segment, in bytes; a segment whose index is full rolls."),
    ("segment.jitter.ms", "", T::Long, "Most ms taken off segment.ms for a segment's roll, chosen per segment, so partitions do not roll together."),
    ("segment.ms", "log.roll.ms", T::Long, "Segment age in ms before a roll."),
    ("unclean.leader.election.enable", "unclean.leader.election.enable", T::Boolean, "In a cluster, the controller may elect a live replica outside the ISR when no ISR replica is live (as Kafka's); a single node is its partitions' only replica, so no election happens there."),
];

/// Defaults of topic configs without a broker synonym (Kafka's).
fn topic_only_default(name: &str) -> Option<&'static str> {
    match name {
        "follower.replication.throttled.replicas" | "leader.replication.throttled.replicas" => Some(""),
        "remote.log.copy.disable" | "remote.log.delete.on.disable" | "remote.storage.enable" => Some("false"),
        "segment.jitter.ms" => Some("0"),
        _ => None,
    }
}

/// Checks one topic config value as Kafka's validators do, with Kafka's message (names and
/// bounds checked against Kafka 4.0: `kafka-configs --alter` with each bad value answers
/// INVALID_CONFIG and these words). `name` is the name the value was given under.
pub fn check_topic_value(name: &str, value: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("Invalid value {value} for configuration {name}: {why}"));
    let topic = TOPIC_CONFIGS.iter().find(|d| d.0 == name || (!d.1.is_empty() && d.1 == name)).map_or(name, |d| d.0);
    let long = |kind: &str| -> Result<i64, String> {
        let n = value.trim().parse::<i64>().map_err(|_| format!("Invalid value {value} for configuration {name}: Not a number of type {kind}"))?;
        if kind == "INT" && i32::try_from(n).is_err() {
            return Err(format!("Invalid value {value} for configuration {name}: Not a number of type INT"));
        }
        Ok(n)
    };
    let at_least = |kind: &str, min: i64| -> Result<(), String> {
        if long(kind)? < min {
            return bad(&format!("Value must be at least {min}"));
        }
        Ok(())
    };
    let between = |min: i64, max: i64| -> Result<(), String> {
        let n = long("INT")?;
        if n < min {
            return bad(&format!("Value must be at least {min}"));
        }
        if n > max {
            return bad(&format!("Value must be no more than {max}"));
        }
        Ok(())
    };
    let boolean = || match value.trim().to_ascii_lowercase().as_str() {
        "true" | "false" => Ok(()),
        _ => bad("Expected value to be either true or false"),
    };
    use crate::records::recompress as rc;
    match topic {
        "cleanup.policy" => match value.split(',').map(str::trim).find(|p| *p != "delete" && *p != "compact") {
            // A list is checked item by item, and the message names the item (Kafka's ValidList).
            Some(item) => Err(format!("Invalid value {item} for configuration {name}: String must be one of: compact, delete")),
            None => Ok(()),
        },
        "compression.type" => match value {
            "uncompressed" | "zstd" | "lz4" | "snappy" | "gzip" | "producer" => Ok(()),
            _ => bad("String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"),
        },
        "compression.gzip.level" => {
            let n = long("INT")?;
            if n != rc::GZIP_LEVEL_DEFAULT as i64 && !(rc::GZIP_LEVEL_MIN as i64..=rc::GZIP_LEVEL_MAX as i64).contains(&n) {
                return bad("Value must be between 1 and 9 or equal to -1");
            }
            Ok(())
        }
        "compression.lz4.level" => between(rc::LZ4_LEVEL_MIN as i64, rc::LZ4_LEVEL_MAX as i64),
        "compression.zstd.level" => between(rc::ZSTD_LEVEL_MIN as i64, rc::ZSTD_LEVEL_MAX as i64),
        "segment.bytes" => at_least("INT", 14),
        "segment.index.bytes" => at_least("INT", 4),
        "segment.ms" | "max.compaction.lag.ms" => at_least("LONG", 1),
        "flush.messages" => at_least("LONG", 1),
        "flush.ms" | "delete.retention.ms" | "min.compaction.lag.ms" | "file.delete.delay.ms" | "segment.jitter.ms" | "message.timestamp.before.max.ms"
        | "message.timestamp.after.max.ms" => at_least("LONG", 0),
        "retention.ms" => at_least("LONG", -1),
        "retention.bytes" => long("LONG").map(|_| ()),
        "local.retention.ms" | "local.retention.bytes" => at_least("LONG", -2),
        "max.message.bytes" | "index.interval.bytes" => at_least("INT", 0),
        "min.insync.replicas" => at_least("INT", 1),
        // Kafka names the parsed double ("2.0" for "2").
        "min.cleanable.dirty.ratio" => match value.trim().parse::<f64>() {
            Err(_) => bad("Not a number of type DOUBLE"),
            Ok(r) if r < 0.0 => Err(format!("Invalid value {r:?} for configuration {name}: Value must be at least 0")),
            Ok(r) if r > 1.0 => Err(format!("Invalid value {r:?} for configuration {name}: Value must be no more than 1")),
            Ok(_) => Ok(()),
        },
        "message.timestamp.type" => match value {
            "CreateTime" | "LogAppendTime" => Ok(()),
            _ => bad("String must be one of: CreateTime, LogAppendTime"),
        },
        "preallocate" | "unclean.leader.election.enable" | "remote.log.copy.disable" | "remote.log.delete.on.disable" => boolean(),
        "remote.storage.enable" => {
            boolean()?;
            if value.trim().eq_ignore_ascii_case("true") {
                return Err("Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage.".into());
            }
            Ok(())
        }
        "leader.replication.throttled.replicas" | "follower.replication.throttled.replicas" => {
            let items: Vec<&str> = value.split(',').map(str::trim).filter(|i| !i.is_empty()).collect();
            let replica = |i: &str| i.split_once(':').is_some_and(|(p, b)| p.parse::<i32>().is_ok() && b.parse::<i32>().is_ok());
            if items == ["*"] || items.iter().all(|i| replica(i)) {
                return Ok(());
            }
            Err(format!(
                "Invalid value [{value}] for configuration {name}: {name} must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],..."
            ))
        }
        _ => Ok(()),
    }
}

/// Topic settings that are not the log's (the log's are [`LogConfig`]): parsed once when a topic
/// is created or its configs (or the broker defaults) change, read per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSettings {
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `leader.replication.throttled.replicas`: the partitions this broker's leader throttle
    /// bounds (entries for this broker only).
    pub leader_throttled: ThrottledReplicas,
    /// `follower.replication.throttled.replicas`: the partitions this broker's follower throttle
    /// bounds (entries for this broker only).
    pub follower_throttled: ThrottledReplicas,
}

impl Default for TopicSettings {
    fn default() -> Self {
        TopicSettings { min_insync_replicas: 1, leader_throttled: ThrottledReplicas::None, follower_throttled: ThrottledReplicas::None }
    }
}

/// The partitions of one topic a `leader.` / `follower.replication.throttled.replicas` list
/// throttles on one broker, as Kafka's TopicConfigHandler hands them to its
/// ReplicationQuotaManager: `*` is every partition; else each `partition:broker` entry naming this
/// broker (the leader serving, or the follower fetching) throttles that partition here, and
/// entries naming other brokers are theirs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ThrottledReplicas {
    #[default]
    None,
    All,
    /// Sorted, without duplicates, never empty.
    Partitions(std::sync::Arc<[i32]>),
}

impl ThrottledReplicas {
    /// Parses a list already checked by [`check_topic_value`]; an entry that does not parse is
    /// left out.
    pub fn parse(value: &str, broker_id: i32) -> ThrottledReplicas {
        let value = value.trim();
        if value == "*" {
            return ThrottledReplicas::All;
        }
        let mut partitions: Vec<i32> = value
            .split(',')
            .filter_map(|entry| entry.split_once(':'))
            .filter(|(_, b)| b.trim().parse::<i32>() == Ok(broker_id))
            .filter_map(|(p, _)| p.trim().parse::<i32>().ok())
            .collect();
        partitions.sort_unstable();
        partitions.dedup();
        if partitions.is_empty() { ThrottledReplicas::None } else { ThrottledReplicas::Partitions(partitions.into()) }
    }

    pub fn contains(&self, partition: i32) -> bool {
        match self {
            ThrottledReplicas::None => false,
            ThrottledReplicas::All => true,
            ThrottledReplicas::Partitions(p) => p.binary_search(&partition).is_ok(),
        }
    }
}

pub fn broker_def(name: &str) -> Option<&'static ConfigDef> {
    BROKER_CONFIGS.iter().find(|d| d.name == name)
}

/// Whether a property is one Fjord knows, also under Kafka's per-listener prefix
/// (`listener.name.<listener>.ssl.client.auth`) and as a SASL mechanism's JAAS configuration
/// (`[listener.name.<listener>.]<mechanism>.sasl.jaas.config`).
fn is_known_key(key: &str) -> bool {
    let key = match key.strip_prefix("listener.name.").and_then(|rest| rest.split_once('.')) {
        Some((_, rest)) => rest,
        None => key,
    };
    let key = match key.split_once('.') {
        Some((mechanism, rest @ ("sasl.jaas.config" | "sasl.server.callback.handler.class"))) if SaslMechanism::parse(&mechanism.to_ascii_uppercase()).is_some() || mechanism == "gssapi" => rest,
        _ => key,
    };
    broker_def(key).is_some()
}

pub fn topic_def(name: &str) -> Option<&'static (&'static str, &'static str, ConfigType, &'static str)> {
    TOPIC_CONFIGS.iter().find(|d| d.0 == name)
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("line {line}: expected key=value")]
    Syntax { line: usize },
    #[error("invalid value {value:?} for {name}: {reason}")]
    Invalid { name: String, value: String, reason: String },
    /// A value Kafka's validators refuse, in Kafka's words (see [`check_topic_value`]).
    #[error("{0}")]
    Refused(String),
}

/// A listener endpoint: `PLAINTEXT://host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

/// Kafka's listener security protocols, all four served (SASL_SSL: SSL's TLS with SASL inside).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's id of the protocol (as broker registrations carry it).
    pub fn id(self) -> i16 {
        match self {
            Self::Plaintext => 0,
            Self::Ssl => 1,
            Self::SaslPlaintext => 2,
            Self::SaslSsl => 3,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(Self::Plaintext),
            "SSL" => Some(Self::Ssl),
            "SASL_PLAINTEXT" => Some(Self::SaslPlaintext),
            "SASL_SSL" => Some(Self::SaslSsl),
            _ => None,
        }
    }
}

/// One named listener of `listeners` (`NAME://host:port`), with its security protocol and, for
/// an SSL or SASL_SSL listener, its TLS settings, for a SASL listener its SASL settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub endpoint: Endpoint,
    pub ssl: Option<SslSettings>,
    pub sasl: Option<std::sync::Arc<SaslSettings>>,
}

/// A SASL mechanism Fjord serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    OAuthBearer,
}

impl SaslMechanism {
    /// The mechanism's IANA name, as clients send it in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::OAuthBearer => "OAUTHBEARER",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Plain, Self::ScramSha256, Self::ScramSha512, Self::OAuthBearer].into_iter().find(|m| m.name() == s)
    }
}

/// A SASL listener's settings (`sasl.enabled.mechanisms`, the mechanisms' JAAS configurations,
/// `connections.max.reauth.ms`), each read under the listener's prefix first as Kafka reads them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaslSettings {
    /// `sasl.enabled.mechanisms`, in the configured order (SaslHandshake lists them so).
    pub mechanisms: Vec<SaslMechanism>,
    /// PLAIN's users and their passwords (the `user_<name>` options of its JAAS configuration).
    pub plain_users: BTreeMap<String, Secret>,
    /// `connections.max.reauth.ms`: a session's lifetime; 0 = no expiry.
    pub max_reauth_ms: u64,
    /// OAUTHBEARER's unsecured validator options.
    pub oauthbearer: OAuthBearerSettings,
}

/// OAUTHBEARER's token validation, as Kafka's default server callback handler
/// (OAuthBearerUnsecuredValidatorCallbackHandler) reads it from the OAuthBearerLoginModule's
/// options: `unsecuredValidatorPrincipalClaimName` (default `sub`),
/// `unsecuredValidatorScopeClaimName` (default `scope`), `unsecuredValidatorRequiredScope`
/// (space-separated) and `unsecuredValidatorAllowableClockSkewMs` (default 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthBearerSettings {
    pub principal_claim: String,
    pub scope_claim: String,
    pub required_scope: Vec<String>,
    pub clock_skew_ms: i64,
    /// Signed JWTs instead (Kafka's OAuthBearerValidatorCallbackHandler), when configured.
    pub jwt: Option<JwtSettings>,
}

impl Default for OAuthBearerSettings {
    fn default() -> Self {
        OAuthBearerSettings { principal_claim: "sub".into(), scope_claim: "scope".into(), required_scope: vec![], clock_skew_ms: 0, jwt: None }
    }
}

/// OAUTHBEARER with signed JWTs, as Kafka's OAuthBearerValidatorCallbackHandler reads its
/// settings: the keys of `sasl.oauthbearer.jwks.endpoint.url` (a `file:` URL read at startup, or
/// an `https:` / `http:` endpoint fetched and refreshed by the listener, see [`JwksKeys`]),
/// `sasl.oauthbearer.expected.audience` / `.expected.issuer` (checked when set),
/// `sasl.oauthbearer.sub.claim.name`, `sasl.oauthbearer.scope.claim.name` and
/// `sasl.oauthbearer.clock.skew.seconds`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtSettings {
    /// The signers' public keys.
    pub jwks: JwksSource,
    pub expected_audience: Vec<String>,
    pub expected_issuer: Option<String>,
    pub sub_claim: String,
    pub scope_claim: String,
    pub clock_skew_seconds: u64,
}

/// Where the JWT signers' keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    /// A `file:` URL's JWKS, read and checked at startup.
    File(jsonwebtoken::jwk::JwkSet),
    /// An `https:` (or `http:`) endpoint: the keys as last fetched by the listener's refresher.
    Endpoint(std::sync::Arc<JwksKeys>),
}

impl JwksSource {
    /// The key with id `kid`. From an endpoint, a key it does not hold asks the refresher for a
    /// fetch (a signer's new key is found without waiting for the refresh interval).
    pub fn find(&self, kid: &str) -> Option<jsonwebtoken::jwk::Jwk> {
        match self {
            JwksSource::File(set) => set.find(kid).cloned(),
            JwksSource::Endpoint(keys) => keys.find(kid),
        }
    }
}

/// An OAUTHBEARER JWKS endpoint, as Kafka's RefreshingHttpsJwks takes it: refreshed every
/// `sasl.oauthbearer.jwks.endpoint.refresh.ms` (default 1 hour), after a failure retried from
/// `sasl.oauthbearer.jwks.endpoint.retry.backoff.ms` (100) doubling up to `….retry.backoff.max.ms`
/// (10 s), and fetched early when a token names a key it does not hold. An https endpoint's
/// certificate is checked against the `ssl.truststore.*` options of the listener's OAUTHBEARER
/// JAAS configuration (Kafka builds its socket factory from those options), else the system's
/// CA certificates. The keys live here; the fetching is the listener's (server::sasl::jwks).
#[derive(Debug)]
pub struct JwksKeys {
    pub url: String,
    pub refresh_ms: u64,
    pub retry_backoff_ms: u64,
    pub retry_backoff_max_ms: u64,
    pub truststore: Option<TrustStore>,
    keys: std::sync::RwLock<Option<jsonwebtoken::jwk::JwkSet>>,
    /// A token named a key that is not held: the refresher fetches early.
    pub missing_key: tokio::sync::Notify,
}

impl JwksKeys {
    pub fn new(url: String, refresh_ms: u64, retry_backoff_ms: u64, retry_backoff_max_ms: u64, truststore: Option<TrustStore>) -> JwksKeys {
        JwksKeys { url, refresh_ms, retry_backoff_ms, retry_backoff_max_ms, truststore, keys: std::sync::RwLock::new(None), missing_key: tokio::sync::Notify::new() }
    }

    pub fn find(&self, kid: &str) -> Option<jsonwebtoken::jwk::Jwk> {
        let found = self.keys.read().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|set| set.find(kid).cloned());
        if found.is_none() {
            self.missing_key.notify_one();
        }
        found
    }

    /// Installs a fetched JWKS.
    pub fn set(&self, set: jsonwebtoken::jwk::JwkSet) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Some(set);
    }

    /// Whether a JWKS was fetched.
    pub fn loaded(&self) -> bool {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}

/// Two settings are the same when they name the same endpoint the same way.
impl PartialEq for JwksKeys {
    fn eq(&self, o: &JwksKeys) -> bool {
        (&self.url, self.refresh_ms, self.retry_backoff_ms, self.retry_backoff_max_ms, &self.truststore) == (&o.url, o.refresh_ms, o.retry_backoff_ms, o.retry_backoff_max_ms, &o.truststore)
    }
}

impl Eq for JwksKeys {}

/// Kafka's OAUTHBEARER server callback handler for signed JWTs.
const OAUTHBEARER_JWT_HANDLER: &str = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler";

impl JwtSettings {
    fn parse(c: &Config, listener: &str) -> Result<JwtSettings, ConfigError> {
        let invalid = |name: &str, value: String, reason: String| ConfigError::Invalid { name: name.into(), value, reason: format!("listener {listener}: {reason}") };
        let get = |name: &str| c.listener_value(listener, name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        const URL: &str = "sasl.oauthbearer.jwks.endpoint.url";
        let url = get(URL).ok_or_else(|| invalid(URL, String::new(), "OAuthBearerValidatorCallbackHandler needs the JWKS: set it to a file: or https: URL".into()))?;
        let jwks = if let Some(path) = url.strip_prefix("file://").or_else(|| url.strip_prefix("file:")) {
            let text = std::fs::read_to_string(path).map_err(|e| invalid(URL, url.clone(), format!("cannot read the JWKS: {e}")))?;
            let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text).map_err(|e| invalid(URL, url.clone(), format!("not a JWKS document: {e}")))?;
            if jwks.keys.is_empty() {
                return Err(invalid(URL, url.clone(), "the JWKS holds no key".into()));
            }
            JwksSource::File(jwks)
        } else {
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("https://") || lower.starts_with("http://")) || url.parse::<hyper::Uri>().map_or(true, |u| u.host().is_none()) {
                return Err(invalid(URL, url.clone(), "expected a file:, https: or http: URL".into()));
            }
            let ms = |name: &str, default: u64| -> Result<u64, ConfigError> {
                match get(name) {
                    None => Ok(default),
                    Some(v) => v.parse::<u64>().map_err(|_| invalid(name, v.clone(), "expected milliseconds, 0 or more".into())),
                }
            };
            let refresh_ms = ms("sasl.oauthbearer.jwks.endpoint.refresh.ms", 3_600_000)?;
            let backoff = ms("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", 100)?;
            let backoff_max = ms("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", 10_000)?;
            // The https endpoint's trust store: the OAUTHBEARER JAAS configuration's ssl.truststore.* options.
            let options = c
                .set_value(&format!("listener.name.{}.oauthbearer.sasl.jaas.config", listener.to_ascii_lowercase()))
                .and_then(|text| jaas::parse(&text).ok())
                .map(|m| m.options)
                .unwrap_or_default();
            let opt = |name: &str| options.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
            let truststore = match (opt("ssl.truststore.location"), opt("ssl.truststore.certificates")) {
                (None, None) => None,
                (Some(path), None) if opt("ssl.truststore.type").is_some_and(|t| t.eq_ignore_ascii_case("PKCS12")) => Some(TrustStore::Pkcs12 { path: PathBuf::from(path), password: opt("ssl.truststore.password").map(Secret) }),
                (Some(path), None) => Some(TrustStore::Pem(PemSource::File(PathBuf::from(path)))),
                (None, Some(text)) => Some(TrustStore::Pem(PemSource::Text(Secret(text)))),
                (Some(path), Some(_)) => return Err(invalid("sasl.jaas.config", path, "the OAUTHBEARER JAAS options set both ssl.truststore.location and ssl.truststore.certificates".into())),
            };
            JwksSource::Endpoint(std::sync::Arc::new(JwksKeys::new(url.clone(), refresh_ms, backoff, backoff_max, truststore)))
        };
        let skew = get("sasl.oauthbearer.clock.skew.seconds").unwrap_or_else(|| "30".into());
        let clock_skew_seconds = skew.parse::<u64>().map_err(|_| invalid("sasl.oauthbearer.clock.skew.seconds", skew.clone(), "expected seconds, 0 or more".into()))?;
        Ok(JwtSettings {
            jwks,
            expected_audience: get("sasl.oauthbearer.expected.audience").map(|a| a.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()).unwrap_or_default(),
            expected_issuer: get("sasl.oauthbearer.expected.issuer"),
            sub_claim: get("sasl.oauthbearer.sub.claim.name").unwrap_or_else(|| "sub".into()),
            scope_claim: get("sasl.oauthbearer.scope.claim.name").unwrap_or_else(|| "scope".into()),
            clock_skew_seconds,
        })
    }
}

/// Kafka's default OAUTHBEARER server callback handler: unsecured tokens.
const OAUTHBEARER_UNSECURED_HANDLER: &str = "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler";

impl SaslSettings {
    fn parse(c: &Config, listener: &str) -> Result<SaslSettings, ConfigError> {
        let lower = listener.to_ascii_lowercase();
        let invalid = |name: &str, value: String, reason: String| ConfigError::Invalid { name: name.into(), value, reason: format!("listener {listener}: {reason}") };
        let list = c.listener_value(listener, "sasl.enabled.mechanisms").unwrap_or_default();
        let mut mechanisms = Vec::new();
        for m in list.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let parsed = match m {
                "GSSAPI" => return Err(invalid("sasl.enabled.mechanisms", list.clone(), "GSSAPI (Kerberos) is not served; set sasl.enabled.mechanisms to PLAIN, SCRAM-SHA-256 and/or SCRAM-SHA-512 (Kafka's default is GSSAPI)".into())),
                other => SaslMechanism::parse(other).ok_or_else(|| invalid("sasl.enabled.mechanisms", list.clone(), format!("unknown mechanism {other}: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER are served")))?,
            };
            if !mechanisms.contains(&parsed) {
                mechanisms.push(parsed);
            }
        }
        if mechanisms.is_empty() {
            return Err(invalid("sasl.enabled.mechanisms", list, "a SASL listener needs at least one mechanism".into()));
        }
        let mut plain_users = BTreeMap::new();
        let mut oauthbearer = OAuthBearerSettings::default();
        if mechanisms.contains(&SaslMechanism::OAuthBearer) {
            let key = "oauthbearer.sasl.server.callback.handler.class";
            match c.listener_value(listener, key).or_else(|| c.listener_value(listener, "sasl.server.callback.handler.class")).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) {
                None => {}
                Some(class) if class == OAUTHBEARER_UNSECURED_HANDLER => {}
                Some(class) if class == OAUTHBEARER_JWT_HANDLER => oauthbearer.jwt = Some(JwtSettings::parse(c, listener)?),
                Some(class) => {
                    return Err(invalid(&format!("listener.name.{lower}.{key}"), class, format!("OAUTHBEARER validates with {OAUTHBEARER_UNSECURED_HANDLER} (the default) or {OAUTHBEARER_JWT_HANDLER}")));
                }
            }
        }
        for m in &mechanisms {
            let module = match login_module(c, listener, *m)? {
                Some(found) => found,
                None if *m == SaslMechanism::Plain => {
                    let key = format!("listener.name.{lower}.{}.sasl.jaas.config", m.name().to_ascii_lowercase());
                    return Err(invalid(&key, String::new(), "PLAIN needs its users: set it to org.apache.kafka.common.security.plain.PlainLoginModule required user_<name>=\"<password>\";".into()));
                }
                // SCRAM's credentials are the broker's (AlterUserScramCredentials): the
                // login module adds nothing a listener needs.
                None => continue,
            };
            let name = module.0;
            let module = module.1;
            if *m == SaslMechanism::Plain {
                plain_users = module.options.iter().filter_map(|(k, v)| Some((k.strip_prefix("user_")?.to_string(), Secret(v.clone())))).collect();
            }
            if *m == SaslMechanism::OAuthBearer {
                let option = |k: &str| module.options.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
                if let Some(v) = option("unsecuredValidatorPrincipalClaimName") {
                    oauthbearer.principal_claim = v;
                }
                if let Some(v) = option("unsecuredValidatorScopeClaimName") {
                    oauthbearer.scope_claim = v;
                }
                if let Some(v) = option("unsecuredValidatorRequiredScope") {
                    oauthbearer.required_scope = v.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect();
                }
                if let Some(v) = option("unsecuredValidatorAllowableClockSkewMs") {
                    oauthbearer.clock_skew_ms = v.parse::<i64>().ok().filter(|n| *n >= 0 && *n <= i32::MAX as i64).ok_or_else(|| invalid(&name, "[hidden]".into(), format!("Allowable clock skew millis must be a number, 0 or more: {v}")))?;
                }
            }
        }
        let reauth = c.listener_value(listener, "connections.max.reauth.ms").unwrap_or_else(|| "0".into());
        let max_reauth_ms = reauth.trim().parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| invalid("connections.max.reauth.ms", reauth.clone(), "expected a number of ms, 0 or more".into()))? as u64;
        Ok(SaslSettings { mechanisms, plain_users, max_reauth_ms, oauthbearer })
    }
}

/// The JAAS login module of `mechanism` on `listener`, with the property it was read from. Kafka's
/// broker reads only `listener.name.<listener>.<mechanism>.sasl.jaas.config` (else its static JAAS
/// file, which Fjord does not read). Kafka 4.0 checked: with a SASL listener's login module set
/// only as `sasl.jaas.config` (it warns "should be prefixed with SASL mechanism name, ignoring
/// config"), `<mechanism>.sasl.jaas.config` or `listener.name.<listener>.sasl.jaas.config`, its
/// broker stops at startup for want of a JAAS entry; set beside the prefixed one, they are
/// ignored. Fjord stops likewise, with Kafka's message and the property to set. Both sides of a
/// listener read it here: the server its users, the node's own client its `username` / `password`.
fn login_module(c: &Config, listener: &str, mechanism: SaslMechanism) -> Result<Option<(String, jaas::LoginModule)>, ConfigError> {
    let lower = listener.to_ascii_lowercase();
    let invalid = |name: &str, reason: String| ConfigError::Invalid { name: name.into(), value: "[hidden]".into(), reason: format!("listener {listener}: {reason}") };
    let mechanism_key = format!("{}.sasl.jaas.config", mechanism.name().to_ascii_lowercase());
    let name = format!("listener.name.{lower}.{mechanism_key}");
    let set = |name: &str| c.set_value(name).filter(|v| !v.trim().is_empty());
    let Some(text) = set(&name) else {
        let unread = [mechanism_key.clone(), format!("listener.name.{lower}.sasl.jaas.config"), "sasl.jaas.config".to_string()];
        if let Some(other) = unread.iter().find(|k| set(k).is_some()) {
            return Err(invalid(
                &name,
                format!(
                    "Could not find a 'KafkaServer' or '{lower}.KafkaServer' entry in the JAAS configuration. System property 'java.security.auth.login.config' is not set (Kafka's words: its broker reads a listener's {} login module only from {name}, and ignores {other}; set {name})",
                    mechanism.name()
                ),
            ));
        }
        return Ok(None);
    };
    let module = jaas::parse(&text).map_err(|e| invalid(&name, e.to_string()))?;
    let expected = match mechanism {
        SaslMechanism::Plain => "org.apache.kafka.common.security.plain.PlainLoginModule",
        SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => "org.apache.kafka.common.security.scram.ScramLoginModule",
        SaslMechanism::OAuthBearer => "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule",
    };
    if module.class != expected {
        return Err(invalid(&name, format!("{} needs {expected}, not {}", mechanism.name(), module.class)));
    }
    Ok(Some((name, module)))
}

/// How this node logs in to another node's SASL listener (a broker to the inter-broker listener,
/// `sasl.mechanism.inter.broker.protocol`; a node to the controller listener,
/// `sasl.mechanism.controller.protocol`): the mechanism and the `username` / `password` options
/// of that mechanism's JAAS login module on the listener, as Kafka's broker logs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaslClientSettings {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: Secret,
}

impl SaslClientSettings {
    /// Reads the login for `listener` with the mechanism named by `mechanism_key`, checked as
    /// Kafka checks it (the mechanism must be one the listener enables), and refusing at startup
    /// what Fjord cannot do: GSSAPI (Kafka's default) and OAUTHBEARER.
    fn parse(c: &Config, listener: &str, enabled: Option<&[SaslMechanism]>, mechanism_key: &str) -> Result<SaslClientSettings, ConfigError> {
        let value = c.value(mechanism_key).unwrap_or_else(|| "GSSAPI".into()).trim().to_string();
        let invalid = |reason: String| ConfigError::Invalid { name: mechanism_key.into(), value: value.clone(), reason };
        let mechanism = match value.as_str() {
            "GSSAPI" => {
                return Err(invalid(format!("GSSAPI (Kerberos) is not served, and it is Kafka's default: set {mechanism_key} to PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 for listener {listener}")));
            }
            "OAUTHBEARER" => return Err(invalid(format!("a node does not log in with OAUTHBEARER: set {mechanism_key} to PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 for listener {listener}"))),
            other => SaslMechanism::parse(other).ok_or_else(|| invalid(format!("unknown mechanism {other}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")))?,
        };
        // A node serving the listener checks the mechanism is one it enables (Kafka's rule); a
        // broker-only node reaching the controllers cannot know theirs.
        if let Some(enabled) = enabled
            && !enabled.contains(&mechanism)
        {
            return Err(invalid(format!("{mechanism_key} must be included in sasl.enabled.mechanisms of listener {listener} when SASL is used there")));
        }
        let key = format!("listener.name.{}.{}.sasl.jaas.config", listener.to_ascii_lowercase(), mechanism.name().to_ascii_lowercase());
        let missing = |what: &str| ConfigError::Invalid {
            name: key.clone(),
            value: "[hidden]".into(),
            reason: format!("this node logs in to listener {listener} with {}: its login module needs {what} (username=\"<user>\" password=\"<password>\")", mechanism.name()),
        };
        let Some((_, module)) = login_module(c, listener, mechanism)? else {
            return Err(missing("the node's own credentials"));
        };
        let option = |k: &str| module.options.get(k).filter(|v| !v.is_empty()).cloned();
        let username = option("username").ok_or_else(|| missing("a username"))?;
        let password = option("password").ok_or_else(|| missing("a password"))?;
        Ok(SaslClientSettings { mechanism, username, password: Secret(password) })
    }
}

/// The ACL authorizer's settings (`super.users`, `allow.everyone.if.no.acl.found`); the broker
/// has an authorizer when `authorizer.class.name` names Kafka's StandardAuthorizer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    pub super_users: std::collections::BTreeSet<String>,
    pub allow_everyone_if_no_acl_found: bool,
}

/// The one `replica.selector.class` Fjord accepts (KIP-392's rack-aware selection).
pub const RACK_AWARE_REPLICA_SELECTOR: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";

/// The one `authorizer.class.name` Fjord accepts (its rules are those of `broker::acl`).
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// A value that must never reach a log line (PEM keys, passwords).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[hidden]")
    }
}

/// Where a PEM store comes from: a file (`*.location`) or the property's own text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PemSource {
    File(PathBuf),
    Text(Secret),
}

/// `ssl.client.auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// A TLS version of `ssl.enabled.protocols`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// An SSL listener's TLS settings (`ssl.*`, each overridable per listener with Kafka's
/// `listener.name.<lower-case name>.ssl.*`), checked without reading any file:
/// `server::tls` reads the stores and builds the TLS configuration at startup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SslSettings {
    /// The certificate chain and key: one PEM file holding both, or the two texts. None only in
    /// the settings of a listener this node reaches without serving it (a broker-only node's
    /// controller listener): it then offers no client certificate, as Kafka's client without a
    /// key store.
    pub keystore: Option<KeyStore>,
    /// `ssl.key.password`: decrypts an encrypted PKCS#8 key.
    pub key_password: Option<Secret>,
    /// CA certificates client certificates are checked against.
    pub truststore: Option<TrustStore>,
    pub client_auth: ClientAuth,
    /// `ssl.enabled.protocols`, in the configured order.
    pub enabled_protocols: Vec<TlsVersion>,
    /// `ssl.cipher.suites` (IANA names); empty = every suite of the provider.
    pub cipher_suites: Vec<String>,
    /// `ssl.principal.mapping.rules`: an mTLS client's principal from its certificate subject.
    pub principal_mapping: principal_mapping::PrincipalMapper,
    /// `ssl.allow.dn.changes` and `ssl.allow.san.changes`: whether a reloaded key store may
    /// change the certificate's subject, or drop subject alternative names.
    pub allow_dn_changes: bool,
    pub allow_san_changes: bool,
    /// `ssl.endpoint.identification.algorithm` of this listener as a client's (the inter-broker
    /// listener's): `https` (Kafka's default) checks that a peer broker's certificate is valid
    /// for the host it advertises; empty checks only that the certificate chains to the trust
    /// store.
    pub endpoint_identification: bool,
}

/// The listener's certificate chain and private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyStore {
    /// `ssl.keystore.location` with `ssl.keystore.type=PEM`: a PEM file with the key and the chain.
    File(PathBuf),
    /// `ssl.keystore.certificate.chain` and `ssl.keystore.key` (PEM).
    Text { chain: Secret, key: Secret },
    /// `ssl.keystore.location` with `ssl.keystore.type=PKCS12` and `ssl.keystore.password`.
    Pkcs12 { path: PathBuf, password: Secret },
}

/// Where the CA certificates that check client certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustStore {
    Pem(PemSource),
    /// `ssl.truststore.type=PKCS12`: its certificate entries, `ssl.truststore.password` if set.
    Pkcs12 { path: PathBuf, password: Option<Secret> },
}

/// Whether a property's value is secret (never shown by DescribeConfigs, never logged): passwords
/// and the PEM keys and certificates given as property text, also under a listener prefix.
pub fn is_sensitive(name: &str) -> bool {
    name.contains("password")
        || ["ssl.keystore.key", "ssl.keystore.certificate.chain", "ssl.truststore.certificates", "sasl.jaas.config"].iter().any(|s| name.ends_with(s))
}

/// What this node is (`process.roles`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessRoles {
    pub broker: bool,
    pub controller: bool,
}

/// The metadata quorum this node belongs to: its voters, by node id (`controller.quorum.voters`).
/// Absent on a single node that is its own quorum of one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumConfig {
    /// Empty on a node given `controller.quorum.bootstrap.servers` that name other controllers,
    /// until startup learns them from one of `bootstrap` (`node::discover_voters`); a controller
    /// then joins the quorum when the operator adds it (AddRaftVoter, KIP-853).
    pub voters: BTreeMap<i32, Endpoint>,
    /// `controller.quorum.bootstrap.servers` where the voters are not listed.
    pub bootstrap: Vec<Endpoint>,
    /// The cluster id the controllers answered when the voters were learned from `bootstrap`.
    pub cluster_id: Option<String>,
    /// A dynamic quorum (KIP-853): set up through `controller.quorum.bootstrap.servers` (a
    /// quorum of one, or joining other controllers), whose voters change with AddRaftVoter and
    /// RemoveRaftVoter; false for `controller.quorum.voters` (a static quorum, kraft.version 0).
    pub dynamic: bool,
    /// The voters' metadata log dir ids, when a dynamic quorum starts from initial voters given
    /// with them (`fjord format --initial-controllers`); empty otherwise.
    pub directory_ids: BTreeMap<i32, uuid::Uuid>,
}

/// Client telemetry (KIP-714 GetTelemetrySubscriptions and PushTelemetry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// `telemetry.max.bytes`: the largest push accepted, checked before anything is decompressed.
    pub max_bytes: i32,
    /// `fjord.client.telemetry.enabled`: the built-in receiver; the APIs are advertised only with it.
    pub enabled: bool,
    /// `fjord.client.telemetry.instances.max`: client instances kept.
    pub instances_max: usize,
    /// `fjord.client.telemetry.decompressed.max.bytes`: the receiver's bound on a decompressed push.
    pub decompressed_max_bytes: usize,
}

/// The HTTP listener of `/metrics`, `/health` and `/ready` (`fjord.http.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// Where to bind; None: `fjord.http.listener=none`.
    pub listener: Option<Endpoint>,
    pub connections_max: usize,
    pub request_timeout_ms: u64,
    pub connection_max_ms: u64,
    /// `fjord.http.console.readonly`: the console refuses every mutating action.
    pub console_readonly: bool,
    /// `fjord.http.listener=https://...`: the listener's TLS settings (`fjord.http.ssl.*`).
    pub tls: Option<SslSettings>,
    /// `fjord.http.console.sessions.max`: console logins open at once.
    pub console_sessions_max: usize,
    /// `fjord.http.console.session.lifetime.ms`: how long a console login lasts.
    pub console_session_lifetime_ms: u64,
}

/// The prefix of the HTTP listener's TLS settings: `fjord.http.ssl.keystore.location`, ...
pub const HTTP_SSL_PREFIX: &str = "fjord.http.";

/// `fjord.http.listener`: `host:port` or `http://host:port`, `https://host:port` (true: TLS), or
/// `none`.
fn parse_http_listener(value: &str) -> Result<Option<(Endpoint, bool)>, ConfigError> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let scheme = |s: &str| value.get(..s.len()).filter(|p| p.eq_ignore_ascii_case(s)).map(|_| &value[s.len()..]);
    let (hostport, https) = match (scheme("https://"), scheme("http://")) {
        (Some(rest), _) => (rest, true),
        (None, Some(rest)) => (rest, false),
        (None, None) => (value, false),
    };
    parse_host_port("fjord.http.listener", value, hostport).map(|e| Some((e, https)))
}

/// `host:port` (an IPv6 host in brackets).
fn parse_host_port(name: &str, value: &str, hostport: &str) -> Result<Endpoint, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid { name: name.into(), value: value.into(), reason: reason.into() };
    let (host, port) = hostport.rsplit_once(':').ok_or_else(|| invalid("missing port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse().map_err(|_| invalid("bad port"))?;
    let host = if host.is_empty() { "0.0.0.0".to_string() } else { host.to_string() };
    Ok(Endpoint { host, port })
}

/// `fjord.peer.address.overrides`: `FROM=TO,...`, both `host:port`. A fault test's hook: each node
/// is given its own view of where its peers are (a proxy per directed link that the test can
/// cut), while `controller.quorum.voters` and the advertised listeners stay the same on every
/// node (the voters name the cluster and seed the Raft membership; a broker's registration holds
/// one endpoint for all its peers). Kafka has no such setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerAddressOverrides(BTreeMap<String, String>);

impl PeerAddressOverrides {
    pub fn parse(value: &str) -> Result<PeerAddressOverrides, ConfigError> {
        const NAME: &str = "fjord.peer.address.overrides";
        let mut map = BTreeMap::new();
        for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (from, to) = item.split_once('=').ok_or_else(|| ConfigError::Invalid { name: NAME.into(), value: value.into(), reason: format!("expected FROM=TO, got {item}") })?;
            let from = parse_host_port(NAME, value, from.trim())?;
            let to = parse_host_port(NAME, value, to.trim())?;
            map.insert(format!("{}:{}", from.host, from.port), format!("{}:{}", to.host, to.port));
        }
        Ok(PeerAddressOverrides(map))
    }

    /// Where a connection to `hostport` goes: its override, else itself.
    pub fn apply<'a>(&'a self, hostport: &'a str) -> &'a str {
        self.0.get(hostport).map(String::as_str).unwrap_or(hostport)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `max.connections.per.ip` and `max.connections.per.ip.overrides` (`HOST:COUNT,...`; a host name
/// counts for every address it resolves to at startup), checked as Kafka checks them: counts are
/// not negative, every host is an address or resolves, and the default may be 0 only when some
/// override lets a client in.
fn connections_per_ip(c: &Config) -> Result<(usize, BTreeMap<std::net::IpAddr, usize>), ConfigError> {
    use std::net::ToSocketAddrs;
    const DEFAULT: &str = "max.connections.per.ip";
    const OVERRIDES: &str = "max.connections.per.ip.overrides";
    let count = |name: &str, value: &str| -> Result<usize, ConfigError> {
        let n: i64 = value.trim().parse().map_err(|_| ConfigError::Invalid { name: name.into(), value: value.into(), reason: "not a number".into() })?;
        if !(0..=i32::MAX as i64).contains(&n) {
            return Err(ConfigError::Invalid { name: name.into(), value: value.into(), reason: "must be between 0 and 2147483647".into() });
        }
        Ok(n as usize)
    };
    let default = count(DEFAULT, &c.string(DEFAULT))?;
    let text = c.string(OVERRIDES);
    let mut overrides = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let invalid = |reason: String| ConfigError::Invalid { name: OVERRIDES.into(), value: text.clone(), reason };
        let (host, n) = item.rsplit_once(':').ok_or_else(|| invalid(format!("expected HOST:COUNT, got {item}")))?;
        let n = count(OVERRIDES, n)?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<std::net::IpAddr> = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (host, 0).to_socket_addrs().map(|a| a.map(|a| a.ip()).collect()).unwrap_or_default(),
        };
        if addrs.is_empty() {
            return Err(invalid(format!("contains invalid addresses : {host}")));
        }
        for ip in addrs {
            overrides.insert(ip, n);
        }
    }
    if default == 0 && overrides.is_empty() {
        return Err(ConfigError::Invalid { name: DEFAULT.into(), value: "0".into(), reason: format!("can be set to zero only if {OVERRIDES} property is set") });
    }
    Ok((default, overrides))
}

/// `listeners` / `advertised.listeners`: `NAME://host:port` items, names unique (upper-cased, as
/// Kafka compares them).
fn parse_named_endpoints(name: &str, value: &str) -> Result<Vec<(String, Endpoint)>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { name: name.into(), value: value.into(), reason };
    let mut out: Vec<(String, Endpoint)> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (listener, hostport) = item.split_once("://").ok_or_else(|| invalid(format!("expected NAME://host:port, got {item}")))?;
        let listener = listener.trim().to_ascii_uppercase();
        if listener.is_empty() || !listener.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(invalid(format!("bad listener name in {item}")));
        }
        if out.iter().any(|(n, _)| *n == listener) {
            return Err(invalid("Each listener must have a different name".into()));
        }
        out.push((listener, parse_host_port(name, value, hostport)?));
    }
    if out.is_empty() {
        return Err(invalid("no listener".into()));
    }
    Ok(out)
}

/// `controller.quorum.bootstrap.servers` without `controller.quorum.voters` on a controller
/// (`own`: its controller listener's bound and advertised endpoints). Naming only this
/// controller, it starts a quorum with itself as its one voter, as Kafka 4.0's stock
/// server.properties runs after `kafka-storage.sh format --standalone`. Naming other
/// controllers, it joins their quorum (as after `format --no-initial-controllers`): it learns the
/// voters from them at startup and waits, replicating nothing of its own, until the operator adds
/// it (`kafka-metadata-quorum.sh add-controller`, AddRaftVoter, KIP-853).
fn standalone_quorum(value: &str, node_id: i32, own: Option<(&Endpoint, Option<&Endpoint>)>) -> Result<QuorumConfig, ConfigError> {
    const NAME: &str = "controller.quorum.bootstrap.servers";
    let invalid = |reason: String| ConfigError::Invalid { name: NAME.into(), value: value.into(), reason };
    let servers = bootstrap_servers(value)?;
    let Some((bound, advertised)) = own else {
        return Err(invalid("this controller has no controller listener (controller.listener.names)".to_string()));
    };
    let names_this_node = |server: &Endpoint| match advertised {
        Some(a) => server.port == a.port && (server.host == a.host || is_local_host(&server.host)) || server == bound,
        None => server.port == bound.port && (server.host == bound.host || is_local_host(&server.host)),
    };
    match servers.as_slice() {
        [server] if names_this_node(server) => {
            let endpoint = advertised.cloned().unwrap_or_else(|| server.clone());
            Ok(QuorumConfig { voters: BTreeMap::from([(node_id, endpoint)]), bootstrap: Vec::new(), cluster_id: None, dynamic: true, directory_ids: BTreeMap::new() })
        }
        [] => Err(invalid("no controller".to_string())),
        _ => Ok(QuorumConfig { voters: BTreeMap::new(), bootstrap: servers, cluster_id: None, dynamic: true, directory_ids: BTreeMap::new() }),
    }
}

/// `controller.quorum.bootstrap.servers`: `host:port` items.
fn bootstrap_servers(value: &str) -> Result<Vec<Endpoint>, ConfigError> {
    const NAME: &str = "controller.quorum.bootstrap.servers";
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| parse_host_port(NAME, value, s)).collect()
}

/// Whether `host` names this machine: a loopback or wildcard address, or a name or address that
/// resolves only to addresses a socket can bind here.
fn is_local_host(host: &str) -> bool {
    use std::net::ToSocketAddrs;
    let Ok(addrs) = (host, 0u16).to_socket_addrs() else { return false };
    let addrs: Vec<std::net::SocketAddr> = addrs.collect();
    !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback() || a.ip().is_unspecified() || std::net::UdpSocket::bind((a.ip(), 0)).is_ok())
}

/// `controller.quorum.voters`: `id@host:port` items.
fn parse_voters(value: &str) -> Result<BTreeMap<i32, Endpoint>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { name: "controller.quorum.voters".into(), value: value.into(), reason };
    let mut voters = BTreeMap::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, hostport) = item.split_once('@').ok_or_else(|| invalid(format!("expected id@host:port, got {item}")))?;
        let id: i32 = id.trim().parse().map_err(|_| invalid(format!("bad node id in {item}")))?;
        if id < 0 || voters.insert(id, parse_host_port("controller.quorum.voters", value, hostport.trim())?).is_some() {
            return Err(invalid(format!("node id {id} negative or listed twice")));
        }
    }
    Ok(voters)
}

/// The listeners, roles and quorum of a node, checked as Kafka checks them (KafkaConfig's
/// listener and KRaft validations), with what Fjord does not serve yet refused by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub roles: ProcessRoles,
    /// Every listener, in `listeners` order.
    pub listeners: Vec<Listener>,
    pub controller_listener_names: Vec<String>,
    pub inter_broker_listener_name: Option<String>,
    /// How this broker logs in to the other brokers when the inter-broker listener is SASL (in a
    /// metadata quorum).
    pub inter_broker_sasl: Option<SaslClientSettings>,
    /// TLS to the controllers when the controller listener is SSL or SASL_SSL (in a quorum): its
    /// trust store checks their certificates, its key store is this node's client certificate.
    pub controller_ssl: Option<SslSettings>,
    /// How this node logs in to the controllers when the controller listener is SASL
    /// (`sasl.mechanism.controller.protocol`).
    pub controller_sasl: Option<SaslClientSettings>,
    /// `advertised.listeners` by listener name.
    pub advertised: BTreeMap<String, Endpoint>,
    pub quorum: Option<QuorumConfig>,
}

impl Topology {
    fn parse(c: &Config, node_id: i32) -> Result<Topology, ConfigError> {
        let invalid = |name: &str, reason: String| ConfigError::Invalid { name: name.into(), value: c.string(name), reason };
        let mut roles = ProcessRoles { broker: false, controller: false };
        for role in c.string("process.roles").split(',').map(|r| r.trim()).filter(|r| !r.is_empty()) {
            match role {
                "broker" => roles.broker = true,
                "controller" => roles.controller = true,
                other => return Err(invalid("process.roles", format!("unknown role {other}"))),
            }
        }
        if !roles.broker && !roles.controller {
            return Err(invalid("process.roles", "at least one of broker, controller".into()));
        }
        let controller_listener_names: Vec<String> = c.string("controller.listener.names").split(',').map(|n| n.trim().to_ascii_uppercase()).filter(|n| !n.is_empty()).collect();
        let explicit_map = c.explicit.get("listener.security.protocol.map");
        let mut protocols: BTreeMap<String, SecurityProtocol> = [("PLAINTEXT", SecurityProtocol::Plaintext), ("SSL", SecurityProtocol::Ssl), ("SASL_PLAINTEXT", SecurityProtocol::SaslPlaintext), ("SASL_SSL", SecurityProtocol::SaslSsl)]
            .into_iter()
            .map(|(n, p)| (n.to_string(), p))
            .collect();
        match explicit_map {
            Some(map) => {
                protocols.clear();
                for item in map.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let (n, p) = item.split_once(':').ok_or_else(|| invalid("listener.security.protocol.map", format!("expected NAME:PROTOCOL, got {item}")))?;
                    let p = SecurityProtocol::parse(p).ok_or_else(|| invalid("listener.security.protocol.map", format!("unknown security protocol in {item}")))?;
                    protocols.insert(n.trim().to_ascii_uppercase(), p);
                }
            }
            // Kafka maps controller listener names to PLAINTEXT when the map is not set.
            None => protocols.extend(controller_listener_names.iter().map(|n| (n.clone(), SecurityProtocol::Plaintext))),
        }
        let mut listeners = Vec::new();
        for (name, endpoint) in parse_named_endpoints("listeners", &c.string("listeners"))? {
            let protocol = *protocols.get(&name).ok_or_else(|| invalid("listeners", format!("listener {name} has no security protocol in listener.security.protocol.map")))?;
            let ssl = match protocol {
                SecurityProtocol::Plaintext | SecurityProtocol::SaslPlaintext => None,
                SecurityProtocol::Ssl | SecurityProtocol::SaslSsl => Some(SslSettings::parse(c, &name)?),
            };
            let sasl = match protocol {
                SecurityProtocol::Plaintext | SecurityProtocol::Ssl => None,
                SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl => Some(std::sync::Arc::new(SaslSettings::parse(c, &name)?)),
            };
            if endpoint.port != 0 && listeners.iter().any(|l: &Listener| l.endpoint.port == endpoint.port) {
                return Err(invalid("listeners", "Each listener must have a different port unless set to 0".into()));
            }
            listeners.push(Listener { name, protocol, endpoint, ssl, sasl });
        }
        let advertised = match c.explicit.get("advertised.listeners") {
            Some(v) => parse_named_endpoints("advertised.listeners", v)?.into_iter().collect(),
            None => BTreeMap::new(),
        };
        if let Some(name) = advertised.keys().find(|n| !listeners.iter().any(|l| &l.name == *n)) {
            return Err(invalid("advertised.listeners", format!("{name} is not a listener")));
        }
        let is_controller_listener = |n: &str| controller_listener_names.iter().any(|c| c == n);
        // A controller advertises its controller listener for the quorum (Kafka 4.0's own
        // server.properties does); it is never one of the broker's endpoints.
        if !roles.controller
            && let Some(name) = advertised.keys().find(|n| is_controller_listener(n))
        {
            return Err(invalid("advertised.listeners", format!("controller listener {name} may not be advertised by a broker-only node")));
        }
        let client_listeners: Vec<&Listener> = listeners.iter().filter(|l| !is_controller_listener(&l.name)).collect();
        if !roles.broker && let Some(l) = client_listeners.first() {
            // Kafka: a controller-only node's listeners are its controller listeners only.
            return Err(invalid("listeners", format!("{} is not a controller listener: a controller-only node serves no clients", l.name)));
        }
        if roles.broker && client_listeners.is_empty() {
            return Err(invalid("listeners", "a broker needs at least one listener that is not a controller listener".into()));
        }
        let inter_broker_listener_name = match (c.explicit.get("inter.broker.listener.name"), c.explicit.get("security.inter.broker.protocol")) {
            (Some(_), Some(_)) => return Err(invalid("security.inter.broker.protocol", "Only one of inter.broker.listener.name and security.inter.broker.protocol should be set.".into())),
            (Some(n), None) => {
                let n = n.trim().to_ascii_uppercase();
                if !client_listeners.iter().any(|l| l.name == n) {
                    return Err(invalid("inter.broker.listener.name", format!("{n} is not one of the broker's listeners")));
                }
                Some(n)
            }
            // Kafka takes the protocol's name as the listener's name.
            (None, Some(p)) => {
                let p = p.trim().to_ascii_uppercase();
                if SecurityProtocol::parse(&p).is_none() {
                    return Err(invalid("security.inter.broker.protocol", format!("unknown security protocol {p}")));
                }
                if !client_listeners.iter().any(|l| l.name == p) {
                    return Err(invalid("security.inter.broker.protocol", format!("no broker listener is named {p}")));
                }
                Some(p)
            }
            // Kafka's default is security.inter.broker.protocol (PLAINTEXT) taken as a listener name.
            (None, None) => client_listeners.iter().find(|l| l.name == "PLAINTEXT").or(client_listeners.first()).map(|l| l.name.clone()),
        };
        let quorum = match (c.explicit.get("controller.quorum.voters"), c.explicit.get("controller.quorum.bootstrap.servers")) {
            (Some(v), _) => Some(QuorumConfig { voters: parse_voters(v)?, bootstrap: Vec::new(), cluster_id: None, dynamic: false, directory_ids: BTreeMap::new() }).filter(|q| !q.voters.is_empty()),
            // A broker-only node asks the controllers who the voters are when it starts.
            (None, Some(b)) if !b.trim().is_empty() && !roles.controller => {
                let bootstrap = bootstrap_servers(b)?;
                Some(QuorumConfig { voters: BTreeMap::new(), bootstrap, cluster_id: None, dynamic: true, directory_ids: BTreeMap::new() })
            }
            (None, Some(b)) if !b.trim().is_empty() => {
                let own = listeners.iter().find(|l| is_controller_listener(&l.name)).map(|l| (&l.endpoint, advertised.get(&l.name)));
                Some(standalone_quorum(b, node_id, own)?)
            }
            _ => None,
        };
        let (mut inter_broker_sasl, mut controller_ssl, mut controller_sasl) = (None, None, None);
        match &quorum {
            // A single node without a quorum is its own controller, as before: both roles.
            None if !(roles.broker && roles.controller) => {
                return Err(invalid("process.roles", "a node that is not both broker and controller needs controller.quorum.voters".into()));
            }
            None => {}
            Some(q) => {
                // A broker of a quorum logs in to the others on a SASL inter-broker listener.
                if roles.broker
                    && let Some(l) = inter_broker_listener_name.as_ref().and_then(|n| listeners.iter().find(|l| &l.name == n))
                    && l.sasl.is_some()
                {
                    let enabled = l.sasl.as_ref().map(|s| s.mechanisms.as_slice());
                    inter_broker_sasl = Some(SaslClientSettings::parse(c, &l.name, enabled, "sasl.mechanism.inter.broker.protocol")?);
                }
                // How this node reaches the controllers (Raft RPCs, registrations, heartbeats,
                // metadata fetches): the first controller listener's protocol, with its
                // listener.name.<l>.ssl.* and JAAS settings (a broker-only node reads them too).
                if let Some(name) = controller_listener_names.first() {
                    let protocol = *protocols.get(name).ok_or_else(|| invalid("listener.security.protocol.map", format!("controller listener {name} has no security protocol in the map")))?;
                    if matches!(protocol, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl) {
                        // As a client: the key store only when it has one (a controller, which
                        // serves the listener, has its own from the listener's settings).
                        controller_ssl = Some(SslSettings::parse_client(c, name)?);
                    }
                    if matches!(protocol, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl) {
                        let served = listeners.iter().find(|l| &l.name == name).and_then(|l| l.sasl.as_ref()).map(|s| s.mechanisms.clone());
                        controller_sasl = Some(SaslClientSettings::parse(c, name, served.as_deref(), "sasl.mechanism.controller.protocol")?);
                    }
                }
                if controller_listener_names.is_empty() {
                    return Err(invalid("controller.listener.names", "must be set when controller.quorum.voters is".into()));
                }
                let controller_listener = listeners.iter().find(|l| is_controller_listener(&l.name));
                if roles.controller {
                    if controller_listener.is_none() {
                        return Err(invalid("listeners", format!("a controller needs a listener named in controller.listener.names ({})", controller_listener_names.join(","))));
                    }
                    // A controller joining through bootstrap servers (KIP-853) is no voter yet.
                    if !q.voters.contains_key(&node_id) && q.bootstrap.is_empty() {
                        return Err(invalid("controller.quorum.voters", format!("this controller's node.id {node_id} is not a voter")));
                    }
                } else if let Some(l) = controller_listener {
                    return Err(invalid("listeners", format!("controller listener {} may not be a listener of a broker-only node", l.name)));
                } else if q.voters.contains_key(&node_id) {
                    // Kafka: a broker-only node's id must not be among the voters.
                    return Err(invalid("controller.quorum.voters", format!("this broker-only node's node.id {node_id} is a voter; a voter must have the controller role")));
                }
            }
        }
        Ok(Topology { roles, listeners, controller_listener_names, inter_broker_listener_name, inter_broker_sasl, controller_ssl, controller_sasl, advertised, quorum })
    }

    /// The first listener clients use (none on a controller-only node).
    pub fn client_listener(&self) -> Option<&Listener> {
        self.client_listeners().next()
    }

    /// Every listener clients use, in `listeners` order.
    pub fn client_listeners(&self) -> impl Iterator<Item = &Listener> {
        self.listeners.iter().filter(|l| !self.controller_listener_names.contains(&l.name))
    }

    /// The listener the quorum's voters and the brokers reach this controller on.
    pub fn controller_listener(&self) -> Option<&Listener> {
        self.listeners.iter().find(|l| self.controller_listener_names.contains(&l.name))
    }
}

impl SslSettings {
    /// The TLS settings of SSL listener `listener`, each `ssl.*` property read under the
    /// listener's prefix first (`listener.name.<lower-case name>.ssl.*`), as Kafka reads them.
    pub fn parse(c: &Config, listener: &str) -> Result<SslSettings, ConfigError> {
        Self::parse_with(&|name| c.listener_value(listener, name), &format!("listener {listener}"), true)
    }

    /// The TLS settings this node connects to listener `listener` with, read as [`Self::parse`]
    /// reads them but the key store optional: Kafka's client side needs only the trust store, and
    /// offers the key store's certificate when it has one and the server asks for it
    /// (`ssl.client.auth`).
    pub fn parse_client(c: &Config, listener: &str) -> Result<SslSettings, ConfigError> {
        Self::parse_with(&|name| c.listener_value(listener, name), &format!("listener {listener}"), false)
    }

    /// The TLS settings under another prefix (the HTTP listener's `fjord.http.ssl.*`): each
    /// `ssl.*` property read as `<prefix>ssl.*` first, else the broker-wide value, as a Kafka
    /// listener's prefix is read.
    pub fn parse_prefixed(c: &Config, prefix: &str) -> Result<SslSettings, ConfigError> {
        Self::parse_with(&|name| c.set_value(&format!("{prefix}{name}")).or_else(|| c.value(name)), &format!("{prefix}ssl.*"), true)
    }

    /// `key_store_required`: a listener this node serves needs its certificate and key.
    fn parse_with(value: &dyn Fn(&str) -> Option<String>, listener: &str, key_store_required: bool) -> Result<SslSettings, ConfigError> {
        let get = |name: &str| value(name).filter(|v| !v.trim().is_empty());
        let invalid = |name: &str, value: String, reason: String| ConfigError::Invalid { name: name.into(), value, reason: format!("{listener}: {reason}") };
        // true: PKCS12, false: PEM.
        let store_type = |name: &str| -> Result<bool, ConfigError> {
            let t = get(name).unwrap_or_default();
            match t.trim().to_ascii_uppercase().as_str() {
                "PEM" => Ok(false),
                "PKCS12" => Ok(true),
                "JKS" => Err(invalid(name, t.clone(), format!("JKS stores are not served yet: convert the store to PKCS12 (keytool -importkeystore -deststoretype PKCS12) or PEM and set {name}"))),
                _ => Err(invalid(name, t.clone(), "expected PEM or PKCS12 (JKS is not served yet)".into())),
            }
        };
        // Empty is a value here (no host name check), unlike for the other properties.
        let algorithm = value("ssl.endpoint.identification.algorithm").unwrap_or_else(|| "https".into());
        let endpoint_identification = match algorithm.trim() {
            "" => false,
            a if a.eq_ignore_ascii_case("https") => true,
            _ => return Err(invalid("ssl.endpoint.identification.algorithm", algorithm.clone(), "expected https, or empty for no host name check".into())),
        };
        let (location, chain, key) = (get("ssl.keystore.location"), get("ssl.keystore.certificate.chain"), get("ssl.keystore.key"));
        if location.is_none() && chain.is_none() && key.is_none() {
            if !key_store_required {
                return Self::parse_rest(None, None, &get, &invalid, &store_type, endpoint_identification);
            }
            return Err(invalid("ssl.keystore.location", String::new(), "an SSL listener needs its certificate and key: ssl.keystore.location, or ssl.keystore.certificate.chain with ssl.keystore.key".into()));
        }
        let pkcs12 = store_type("ssl.keystore.type")?;
        let keystore_password = get("ssl.keystore.password");
        if pkcs12 {
            let Some(path) = location else {
                return Err(invalid("ssl.keystore.location", String::new(), "a PKCS12 key store is a file: set ssl.keystore.location".into()));
            };
            // Kafka's words for the same mistake.
            let password = keystore_password.ok_or_else(|| invalid("ssl.keystore.password", String::new(), "SSL key store is specified, but key store password is not specified.".into()))?;
            if chain.is_some() || key.is_some() {
                return Err(invalid("ssl.keystore.key", "[hidden]".into(), "ssl.keystore.certificate.chain and ssl.keystore.key are PEM settings (ssl.keystore.type=PEM)".into()));
            }
            let keystore = KeyStore::Pkcs12 { path: PathBuf::from(path.trim()), password: Secret(password) };
            return Self::parse_rest(Some(keystore), None, &get, &invalid, &store_type, endpoint_identification);
        }
        if keystore_password.is_some() {
            // Kafka's words for the same mistake.
            return Err(invalid("ssl.keystore.password", "[hidden]".into(), "SSL key store password cannot be specified with PEM format, only key password may be specified".into()));
        }
        let keystore = match (location, chain, key) {
            (Some(path), None, None) => KeyStore::File(PathBuf::from(path.trim())),
            (None, Some(chain), Some(key)) => KeyStore::Text { chain: Secret(chain), key: Secret(key) },
            (None, _, _) => return Err(invalid("ssl.keystore.key", "[hidden]".into(), "ssl.keystore.certificate.chain and ssl.keystore.key go together".into())),
            (Some(path), _, _) => return Err(invalid("ssl.keystore.location", path, "set either ssl.keystore.location or ssl.keystore.certificate.chain with ssl.keystore.key, not both".into())),
        };
        Self::parse_rest(Some(keystore), get("ssl.key.password").map(Secret), &get, &invalid, &store_type, endpoint_identification)
    }

    /// The settings after the key store: trust store, client authentication, versions, suites.
    fn parse_rest(
        keystore: Option<KeyStore>, key_password: Option<Secret>, get: &dyn Fn(&str) -> Option<String>, invalid: &dyn Fn(&str, String, String) -> ConfigError,
        store_type: &dyn Fn(&str) -> Result<bool, ConfigError>, endpoint_identification: bool,
    ) -> Result<SslSettings, ConfigError> {
        let truststore = match (get("ssl.truststore.location"), get("ssl.truststore.certificates")) {
            (None, None) => None,
            (Some(path), None) if store_type("ssl.truststore.type")? => Some(TrustStore::Pkcs12 { path: PathBuf::from(path.trim()), password: get("ssl.truststore.password").map(Secret) }),
            (Some(path), None) => Some(TrustStore::Pem(PemSource::File(PathBuf::from(path.trim())))),
            (None, Some(_)) if store_type("ssl.truststore.type")? => {
                return Err(invalid("ssl.truststore.certificates", "[hidden]".into(), "certificates in the property are PEM (ssl.truststore.type=PEM)".into()));
            }
            (None, Some(text)) => Some(TrustStore::Pem(PemSource::Text(Secret(text)))),
            (Some(path), Some(_)) => return Err(invalid("ssl.truststore.location", path, "set either ssl.truststore.location or ssl.truststore.certificates, not both".into())),
        };
        let auth = get("ssl.client.auth").unwrap_or_else(|| "none".into());
        let client_auth = match auth.trim().to_ascii_lowercase().as_str() {
            "none" => ClientAuth::None,
            "requested" => ClientAuth::Requested,
            "required" => ClientAuth::Required,
            _ => return Err(invalid("ssl.client.auth", auth, "expected none, requested or required".into())),
        };
        if client_auth != ClientAuth::None && truststore.is_none() {
            return Err(invalid("ssl.client.auth", auth, "client certificates need the CAs to check them against: set ssl.truststore.location or ssl.truststore.certificates (ssl.truststore.type=PEM)".into()));
        }
        let protocols = get("ssl.enabled.protocols").unwrap_or_default();
        let mut enabled_protocols = Vec::new();
        for p in protocols.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let v = match p {
                "TLSv1.2" => TlsVersion::Tls12,
                "TLSv1.3" => TlsVersion::Tls13,
                _ => return Err(invalid("ssl.enabled.protocols", protocols.clone(), format!("{p} is not offered: TLSv1.2 and TLSv1.3 are"))),
            };
            if !enabled_protocols.contains(&v) {
                enabled_protocols.push(v);
            }
        }
        if enabled_protocols.is_empty() {
            return Err(invalid("ssl.enabled.protocols", protocols, "at least one of TLSv1.2, TLSv1.3".into()));
        }
        let cipher_suites = get("ssl.cipher.suites").unwrap_or_default().split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        let rules = get("ssl.principal.mapping.rules").unwrap_or_else(|| "DEFAULT".into());
        let principal_mapping = principal_mapping::PrincipalMapper::parse(&rules).map_err(|reason| invalid("ssl.principal.mapping.rules", rules.clone(), reason))?;
        let flag = |name: &str| -> Result<bool, ConfigError> {
            match get(name).map(|v| v.trim().to_ascii_lowercase()) {
                None => Ok(false),
                Some(v) if v == "true" => Ok(true),
                Some(v) if v == "false" => Ok(false),
                Some(v) => Err(invalid(name, v, "Expected value to be either true or false".into())),
            }
        };
        Ok(SslSettings {
            keystore,
            key_password,
            truststore,
            client_auth,
            enabled_protocols,
            cipher_suites,
            principal_mapping,
            allow_dn_changes: flag("ssl.allow.dn.changes")?,
            allow_san_changes: flag("ssl.allow.san.changes")?,
            endpoint_identification,
        })
    }
}

/// Broker properties Fjord accepts (so a Kafka server.properties starts it) without applying
/// them, and why: set explicitly, each is logged once at startup, never silently ignored
/// (docs/configuration.md has the whole table).
pub const ACCEPTED_NOT_APPLIED: &[(&str, &str)] = &[
    ("log.preallocate", "Fjord reserves the active segment's space step by step (fjord.log.preallocate.step.bytes)"),
    ("log.segment.delete.delay.ms", "Fjord deletes segment files at once; readers keep the files they opened"),
    ("log.local.retention.ms", "tiered storage is off"),
    ("log.local.retention.bytes", "tiered storage is off"),
];

/// Broker configs changed at run time (AlterConfigs / IncrementalAlterConfigs on a BROKER
/// resource), as in Kafka: values for this broker override cluster-wide defaults (resource name
/// ""), which override the static properties.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DynamicBrokerConfigs {
    pub per_broker: BTreeMap<String, String>,
    pub cluster_default: BTreeMap<String, String>,
}

/// Prefixes of security settings Kafka lets operators change at run time. Fjord stores and
/// reports them; a listener's key store and trust store (`listener.name.<l>.ssl.*` of
/// [`SSL_RECONFIGURABLE_CONFIGS`]) take effect for new connections once the new stores are
/// checked (`server::tls::ListenerTls`).
const DYNAMIC_SECURITY_PREFIXES: &[&str] = &["ssl.", "sasl.", "listener.name."];

/// Kafka's throttle of moves between log dirs (QuotaConfig), in bytes a second.
pub const MOVE_IO_RATE: &str = "replica.alter.log.dirs.io.max.bytes.per.second";

/// Kafka's replication throttles (QuotaConfig), in bytes a second: what a leader sends to, and a
/// follower fetches for, the out-of-sync replicas topics list as throttled.
pub const LEADER_REPLICATION_THROTTLED_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_REPLICATION_THROTTLED_RATE: &str = "follower.replication.throttled.rate";

/// Broker configs Kafka defines only as dynamic ones (DynamicConfig.Broker, not KafkaConfig):
/// DescribeConfigs lists them only where they are set, as Kafka does.
pub const LISTED_ONLY_WHEN_SET: &[&str] = &[LEADER_REPLICATION_THROTTLED_RATE, FOLLOWER_REPLICATION_THROTTLED_RATE];

/// The `ssl.*` properties Kafka reconfigures at run time (SslConfigs.RECONFIGURABLE_CONFIGS): the
/// key store and the trust store. Dynamically they are set per listener only
/// (`listener.name.<l>.ssl.keystore.location`); the other `ssl.*` properties of a listener take
/// effect at the next start, as in Kafka.
pub const SSL_RECONFIGURABLE_CONFIGS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.truststore.certificates",
];

/// Most `num.network.threads` accepted: each is an OS thread of the async runtime.
const NETWORK_THREADS_MAX: i64 = 1024;

/// Broker properties that may change at run time, and do take effect at once: the log defaults
/// topics inherit (every partition's settings are recomputed), the cleaner's buffers, the
/// producer id expiration (read by each expiration pass), the move and replication throttles and
/// the connection creation rates (broker-wide, and per listener through the `listener.name.`
/// prefix).
pub fn is_dynamic_broker_config(name: &str) -> bool {
    TOPIC_CONFIGS.iter().any(|(_, synonym, _, _)| *synonym == name)
        || matches!(
            name,
            "log.retention.minutes" | "log.retention.hours" | "log.roll.hours" | "log.cleaner.dedupe.buffer.size" | "log.cleaner.io.buffer.size" | "log.cleaner.threads" | "producer.id.expiration.ms"
                | MOVE_IO_RATE | LEADER_REPLICATION_THROTTLED_RATE | FOLLOWER_REPLICATION_THROTTLED_RATE | "max.connection.creation.rate"
        )
        || DYNAMIC_SECURITY_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The broker's configuration: the properties explicitly set, plus typed values computed once.
/// Values read through `value` (the log defaults among them) also see dynamic changes.
#[derive(Clone, Debug)]
pub struct Config {
    /// Properties set by the file or overrides (what DescribeConfigs reports as STATIC_BROKER_CONFIG).
    pub explicit: BTreeMap<String, String>,
    /// Changed at run time; shared by every clone of this config.
    pub dynamic: std::sync::Arc<std::sync::RwLock<DynamicBrokerConfigs>>,
    pub node_id: i32,
    pub listener: Endpoint,
    pub advertised: Option<Endpoint>,
    /// Every listener, the roles and the quorum ([`Topology`]).
    pub topology: Topology,
    pub log_dirs: Vec<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics: bool,
    pub delete_topic_enable: bool,
    /// `authorizer.class.name` with `super.users` and `allow.everyone.if.no.acl.found`: `None`
    /// without an authorizer (Kafka's default: every request allowed).
    pub authorizer: Option<AuthorizerConfig>,
    /// `replica.selector.class` is Kafka's RackAwareReplicaSelector (KIP-392).
    pub rack_aware_replica_selector: bool,
    pub message_max_bytes: i32,
    pub socket_request_max_bytes: usize,
    pub socket_send_buffer_bytes: i32,
    pub socket_receive_buffer_bytes: i32,
    pub max_connections: usize,
    /// `max.connections.per.ip`, and its `.overrides` by address (host names resolved at startup).
    pub max_connections_per_ip: usize,
    pub max_connections_per_ip_overrides: BTreeMap<std::net::IpAddr, usize>,
    /// `fjord.peer.address.overrides`: where this node's connections to other nodes go instead.
    pub peer_address_overrides: PeerAddressOverrides,
    /// `quota.window.num` and `quota.window.size.seconds`: client quota rates are measured over
    /// that many samples of that many seconds.
    pub quota_window_num: usize,
    pub quota_window_size_seconds: u64,
    /// `controller.quota.window.num` and `controller.quota.window.size.seconds`: the
    /// controller_mutation_rate token buckets hold that many windows.
    pub controller_quota_window_num: usize,
    pub controller_quota_window_size_seconds: u64,
    pub connections_max_idle_ms: u64,
    /// `fjord.ssl.reload.check.interval.ms`: how often SSL listeners look for new store files; 0 = never.
    pub ssl_reload_check_interval_ms: u64,
    /// `sasl.server.max.receive.size`: largest frame read before a SASL client is authenticated.
    pub sasl_server_max_receive_size: usize,
    /// `connection.failed.authentication.delay.ms`.
    pub connection_failed_authentication_delay_ms: u64,
    pub fetch_max_bytes: i32,
    pub max_request_partition_size_limit: i32,
    pub log_retention_check_interval_ms: u64,
    pub log_flush_scheduler_interval_ms: u64,
    pub log_flush_offset_checkpoint_interval_ms: u64,
    pub shutdown_timeout_ms: u64,
    pub io_backend: String,
    /// `fjord.log.open.files.max`: the open-files budget of segment and index files; 0 = derived
    /// from RLIMIT_NOFILE when the storage backend is chosen ([`crate::storage::io::budget`]).
    pub log_open_files_max: usize,
    /// `num.recovery.threads.per.data.dir`.
    pub num_recovery_threads_per_data_dir: usize,
    /// `num.io.threads`: the request handler pool ([`crate::broker::io_pool`]).
    pub num_io_threads: usize,
    /// `num.network.threads`: the async runtime's worker threads (None: one per core).
    pub num_network_threads: Option<usize>,
    /// `queued.max.requests`: jobs waiting for a handler thread.
    pub queued_max_requests: usize,
    /// How followers fetch from leaders (`replica.fetch.*`, `replica.socket.timeout.ms`,
    /// `replica.lag.time.max.ms`).
    pub replication: ReplicationConfig,
    /// `fjord.log.flush.on.acks.all` (durable mode): an acks=all produce is answered only once
    /// its records are fdatasynced, so an acknowledged record survives power loss. acks=0/1 and
    /// the flush.messages / flush.ms policy are unchanged.
    pub log_flush_on_acks_all: bool,
    /// Client telemetry (KIP-714): `telemetry.max.bytes` and `fjord.client.telemetry.*`.
    pub telemetry: TelemetryConfig,
    /// The HTTP listener (`fjord.http.*`).
    pub http: HttpConfig,
    pub group_initial_rebalance_delay_ms: u64,
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    pub group_max_size: i32,
    pub group_consumer_session_timeout_ms: i32,
    pub group_consumer_heartbeat_interval_ms: i32,
    pub group_consumer_max_size: i32,
    /// group.coordinator.append.linger.ms.
    pub group_coordinator_append_linger_ms: u64,
    /// group.consumer.migration.policy.
    pub group_consumer_migration_policy: crate::group::MigrationPolicy,
    /// group.consumer.assignors as short names ("uniform", "range"), in the configured order.
    pub group_consumer_assignors: Vec<String>,
    pub offset_metadata_max_bytes: i32,
    pub offsets_topic_num_partitions: i32,
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: u64,
    pub offsets_topic_segment_bytes: i32,
    pub transactional_id_expiration_ms: i64,
    pub transaction_max_timeout_ms: i32,
    pub transaction_state_log_num_partitions: i32,
    pub transaction_state_log_segment_bytes: i32,
    /// `transaction.state.log.min.isr`: `min.insync.replicas` of `__transaction_state` when made.
    pub transaction_state_log_min_isr: i32,
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,
    pub transaction_remove_expired_transaction_cleanup_interval_ms: u64,
    /// `producer.id.expiration.ms` at startup; the expiration pass reads the current value
    /// ([`Config::producer_id_expiration_ms`]), which AlterConfigs may change.
    pub producer_id_expiration_ms: i64,
    /// `producer.id.expiration.check.interval.ms` (static, as in Kafka).
    pub producer_id_expiration_check_interval_ms: u64,
    pub log_cleaner_enable: bool,
    pub log_cleaner_backoff_ms: u64,
    pub log_cleaner_dedupe_buffer_size: usize,
    pub log_cleaner_io_buffer_size: usize,
}

/// Parses `key=value` lines; `#` and `!` start comments, as in Java properties files.
pub fn parse_properties(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .or_else(|| line.split_once(':'))
            .ok_or(ConfigError::Syntax { line: i + 1 })?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

impl Config {
    /// Builds the configuration from explicitly set properties; everything else takes Kafka's default.
    pub fn from_properties(mut explicit: BTreeMap<String, String>) -> Result<Config, ConfigError> {
        for key in explicit.keys() {
            if !is_known_key(key) && !key.starts_with("fjord.") {
                tracing::warn!(key = %key, "the configuration was supplied but isn't a known config");
            }
        }
        // node.id and broker.id name one thing: the one set stands for the other too, so both
        // describe as set (Kafka's KafkaConfig does the same before it reads either). A negative
        // broker.id (Kafka's "not set") leaves node.id at Fjord's default.
        for (set, other) in [("node.id", "broker.id"), ("broker.id", "node.id")] {
            let Some(v) = explicit.get(set).filter(|v| v.trim().parse::<i32>().map_or(true, |n| n >= 0)).cloned() else { continue };
            explicit.entry(other.to_string()).or_insert(v);
        }
        let probe = Config {
            explicit,
            dynamic: Default::default(),
            node_id: 1,
            listener: Endpoint { host: "127.0.0.1".into(), port: 9092 },
            advertised: None,
            topology: Topology {
                roles: ProcessRoles { broker: true, controller: true },
                listeners: vec![],
                controller_listener_names: vec![],
                inter_broker_listener_name: None,
                inter_broker_sasl: None,
                controller_ssl: None,
                controller_sasl: None,
                advertised: BTreeMap::new(),
                quorum: None,
            },
            log_dirs: vec![],
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics: true,
            delete_topic_enable: true,
            authorizer: None,
            rack_aware_replica_selector: false,
            message_max_bytes: 0,
            socket_request_max_bytes: 0,
            socket_send_buffer_bytes: 0,
            socket_receive_buffer_bytes: 0,
            max_connections: 0,
            max_connections_per_ip: 0,
            max_connections_per_ip_overrides: BTreeMap::new(),
            peer_address_overrides: PeerAddressOverrides::default(),
            quota_window_num: 11,
            quota_window_size_seconds: 1,
            controller_quota_window_num: 11,
            controller_quota_window_size_seconds: 1,
            connections_max_idle_ms: 0,
            ssl_reload_check_interval_ms: 0,
            sasl_server_max_receive_size: 524288,
            connection_failed_authentication_delay_ms: 100,
            fetch_max_bytes: 0,
            max_request_partition_size_limit: 0,
            log_retention_check_interval_ms: 0,
            log_flush_scheduler_interval_ms: 0,
            log_flush_offset_checkpoint_interval_ms: 0,
            shutdown_timeout_ms: 0,
            io_backend: String::new(),
            log_open_files_max: 0,
            num_recovery_threads_per_data_dir: 1,
            num_io_threads: 8,
            num_network_threads: None,
            queued_max_requests: 500,
            replication: ReplicationConfig::default(),
            log_flush_on_acks_all: false,
            telemetry: TelemetryConfig { max_bytes: 1_048_576, enabled: false, instances_max: 16_384, decompressed_max_bytes: 16 << 20 },
            http: HttpConfig { listener: None, connections_max: 1, request_timeout_ms: 1, connection_max_ms: 1, console_readonly: false, tls: None, console_sessions_max: 1, console_session_lifetime_ms: 1 },
            group_initial_rebalance_delay_ms: 0,
            group_min_session_timeout_ms: 0,
            group_max_session_timeout_ms: 0,
            group_max_size: 0,
            group_consumer_session_timeout_ms: 0,
            group_consumer_heartbeat_interval_ms: 0,
            group_consumer_max_size: 0,
            group_coordinator_append_linger_ms: 0,
            group_consumer_migration_policy: crate::group::MigrationPolicy::Bidirectional,
            group_consumer_assignors: vec![],
            offset_metadata_max_bytes: 0,
            offsets_topic_num_partitions: 0,
            offsets_retention_ms: 0,
            offsets_retention_check_interval_ms: 0,
            offsets_topic_segment_bytes: 0,
            transactional_id_expiration_ms: 0,
            transaction_max_timeout_ms: 0,
            transaction_state_log_num_partitions: 0,
            transaction_state_log_segment_bytes: 0,
            transaction_state_log_min_isr: 1,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: 0,
            transaction_remove_expired_transaction_cleanup_interval_ms: 0,
            producer_id_expiration_ms: 0,
            producer_id_expiration_check_interval_ms: 0,
            log_cleaner_enable: true,
            log_cleaner_backoff_ms: 0,
            log_cleaner_dedupe_buffer_size: 0,
            log_cleaner_io_buffer_size: 0,
        };
        let c = &probe;
        let http_listener = parse_http_listener(&c.string("fjord.http.listener"))?;
        let node_id = c.int("node.id")?;
        let log_dirs_value = c
            .explicit
            .get("log.dirs")
            .or_else(|| c.explicit.get("log.dir"))
            .cloned()
            .unwrap_or_else(|| "./data".into());
        let log_dirs: Vec<PathBuf> = log_dirs_value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        if log_dirs.is_empty() {
            return Err(ConfigError::Invalid {
                name: "log.dirs".into(),
                value: log_dirs_value,
                reason: "no directory".into(),
            });
        }
        for (name, why) in ACCEPTED_NOT_APPLIED {
            if let Some(v) = c.explicit.get(*name) {
                tracing::warn!(key = %name, value = %v, why, "accepted for compatibility, not applied");
            }
        }
        let topology = Topology::parse(&c, node_id)?;
        // The client listener (or, on a controller-only node, the controller listener) is what
        // `listener` names; `advertised` is its advertised.listeners entry.
        let served = topology.client_listener().or(topology.controller_listener()).cloned().ok_or_else(|| ConfigError::Invalid { name: "listeners".into(), value: c.string("listeners"), reason: "no listener to serve".into() })?;
        let listener = served.endpoint.clone();
        let advertised = topology.advertised.get(&served.name).cloned();
        let io_backend = c.string("io.backend");
        if !matches!(io_backend.as_str(), "auto" | "uring" | "std") {
            return Err(ConfigError::Invalid {
                name: "io.backend".into(),
                value: io_backend,
                reason: "expected auto, uring or std".into(),
            });
        }
        let positive = |name: &str, v: i64| -> Result<i64, ConfigError> {
            if v <= 0 {
                return Err(ConfigError::Invalid { name: name.into(), value: v.to_string(), reason: "must be > 0".into() });
            }
            Ok(v)
        };
        let (per_ip, per_ip_overrides) = connections_per_ip(&c)?;
        // max.connection.creation.rate is read where it is applied (it may change at run time):
        // here only checked, broker-wide and per listener.
        c.connection_creation_rate(None)?;
        for l in topology.client_listeners() {
            c.connection_creation_rate(Some(&l.name))?;
        }
        // So are the replication throttles (dynamic in Kafka; a static value applies here too).
        c.replication_throttled_rate(LEADER_REPLICATION_THROTTLED_RATE)?;
        c.replication_throttled_rate(FOLLOWER_REPLICATION_THROTTLED_RATE)?;
        let config = Config {
            node_id,
            listener,
            advertised,
            topology,
            log_dirs,
            num_partitions: positive("num.partitions", c.long("num.partitions")?)? as i32,
            default_replication_factor: c.int("default.replication.factor")? as i16,
            auto_create_topics: c.boolean("auto.create.topics.enable")?,
            delete_topic_enable: c.boolean("delete.topic.enable")?,
            authorizer: c.authorizer()?,
            rack_aware_replica_selector: c.rack_aware_replica_selector()?,
            message_max_bytes: positive("message.max.bytes", c.long("message.max.bytes")?)? as i32,
            socket_request_max_bytes: positive("socket.request.max.bytes", c.long("socket.request.max.bytes")?)? as usize,
            socket_send_buffer_bytes: c.int("socket.send.buffer.bytes")?,
            socket_receive_buffer_bytes: c.int("socket.receive.buffer.bytes")?,
            max_connections: positive("max.connections", c.long("max.connections")?)? as usize,
            max_connections_per_ip: per_ip,
            max_connections_per_ip_overrides: per_ip_overrides,
            peer_address_overrides: PeerAddressOverrides::parse(&c.string("fjord.peer.address.overrides"))?,
            quota_window_num: positive("quota.window.num", c.long("quota.window.num")?)?.min(i32::MAX as i64) as usize,
            quota_window_size_seconds: positive("quota.window.size.seconds", c.long("quota.window.size.seconds")?)?.min(i32::MAX as i64) as u64,
            controller_quota_window_num: positive("controller.quota.window.num", c.long("controller.quota.window.num")?)?.min(i32::MAX as i64) as usize,
            controller_quota_window_size_seconds: positive("controller.quota.window.size.seconds", c.long("controller.quota.window.size.seconds")?)?.min(i32::MAX as i64) as u64,
            connections_max_idle_ms: positive("connections.max.idle.ms", c.long("connections.max.idle.ms")?)? as u64,
            ssl_reload_check_interval_ms: match c.long("fjord.ssl.reload.check.interval.ms")? {
                v if v < 0 => return Err(ConfigError::Invalid { name: "fjord.ssl.reload.check.interval.ms".into(), value: v.to_string(), reason: "must be >= 0 (0 = never)".into() }),
                v => v as u64,
            },
            sasl_server_max_receive_size: positive("sasl.server.max.receive.size", c.long("sasl.server.max.receive.size")?)? as usize,
            connection_failed_authentication_delay_ms: c.long("connection.failed.authentication.delay.ms")?.max(0) as u64,
            fetch_max_bytes: positive("fetch.max.bytes", c.long("fetch.max.bytes")?)? as i32,
            max_request_partition_size_limit: positive("max.request.partition.size.limit", c.long("max.request.partition.size.limit")?)? as i32,
            log_retention_check_interval_ms: positive("log.retention.check.interval.ms", c.long("log.retention.check.interval.ms")?)? as u64,
            log_flush_scheduler_interval_ms: positive("log.flush.scheduler.interval.ms", c.long("log.flush.scheduler.interval.ms")?)? as u64,
            log_flush_offset_checkpoint_interval_ms: positive(
                "log.flush.offset.checkpoint.interval.ms",
                c.long("log.flush.offset.checkpoint.interval.ms")?,
            )? as u64,
            shutdown_timeout_ms: c.long("shutdown.timeout.ms")?.max(0) as u64,
            io_backend,
            log_open_files_max: c.long("fjord.log.open.files.max")?.max(0) as usize,
            num_recovery_threads_per_data_dir: positive("num.recovery.threads.per.data.dir", c.long("num.recovery.threads.per.data.dir")?)? as usize,
            num_io_threads: positive("num.io.threads", c.long("num.io.threads")?)? as usize,
            num_network_threads: match c.explicit.get("num.network.threads") {
                Some(_) => match positive("num.network.threads", c.long("num.network.threads")?)? {
                    n if n > NETWORK_THREADS_MAX => return Err(ConfigError::Invalid { name: "num.network.threads".into(), value: n.to_string(), reason: format!("at most {NETWORK_THREADS_MAX}") }),
                    n => Some(n as usize),
                },
                None => None,
            },
            queued_max_requests: positive("queued.max.requests", c.long("queued.max.requests")?)? as usize,
            replication: ReplicationConfig {
                fetch_max_bytes: positive("replica.fetch.max.bytes", c.long("replica.fetch.max.bytes")?)?.min(i32::MAX as i64) as i32,
                fetch_response_max_bytes: positive("replica.fetch.response.max.bytes", c.long("replica.fetch.response.max.bytes")?)?.min(i32::MAX as i64) as i32,
                fetch_min_bytes: positive("replica.fetch.min.bytes", c.long("replica.fetch.min.bytes")?)?.min(i32::MAX as i64) as i32,
                fetch_wait_max_ms: positive("replica.fetch.wait.max.ms", c.long("replica.fetch.wait.max.ms")?)?.min(i32::MAX as i64) as i32,
                fetch_backoff_ms: c.long("replica.fetch.backoff.ms")?.max(0) as u64,
                socket_timeout_ms: positive("replica.socket.timeout.ms", c.long("replica.socket.timeout.ms")?)? as u64,
                lag_time_max_ms: positive("replica.lag.time.max.ms", c.long("replica.lag.time.max.ms")?)?,
                quota_window_num: positive("replication.quota.window.num", c.long("replication.quota.window.num")?)?.min(i32::MAX as i64) as usize,
                quota_window_size_seconds: positive("replication.quota.window.size.seconds", c.long("replication.quota.window.size.seconds")?)?.min(i32::MAX as i64) as u64,
            },
            log_flush_on_acks_all: c.boolean("fjord.log.flush.on.acks.all")?,
            telemetry: TelemetryConfig {
                max_bytes: positive("telemetry.max.bytes", c.long("telemetry.max.bytes")?)?.min(i32::MAX as i64) as i32,
                enabled: c.boolean("fjord.client.telemetry.enabled")?,
                instances_max: positive("fjord.client.telemetry.instances.max", c.long("fjord.client.telemetry.instances.max")?)? as usize,
                decompressed_max_bytes: positive("fjord.client.telemetry.decompressed.max.bytes", c.long("fjord.client.telemetry.decompressed.max.bytes")?)? as usize,
            },
            http: HttpConfig {
                listener: http_listener.as_ref().map(|(e, _)| e.clone()),
                tls: match http_listener {
                    Some((_, true)) => Some(SslSettings::parse_prefixed(c, HTTP_SSL_PREFIX)?),
                    _ => None,
                },
                console_sessions_max: positive("fjord.http.console.sessions.max", c.long("fjord.http.console.sessions.max")?)? as usize,
                console_session_lifetime_ms: positive("fjord.http.console.session.lifetime.ms", c.long("fjord.http.console.session.lifetime.ms")?)? as u64,
                connections_max: positive("fjord.http.connections.max", c.long("fjord.http.connections.max")?)? as usize,
                request_timeout_ms: positive("fjord.http.request.timeout.ms", c.long("fjord.http.request.timeout.ms")?)? as u64,
                connection_max_ms: positive("fjord.http.connection.max.ms", c.long("fjord.http.connection.max.ms")?)? as u64,
                console_readonly: c.boolean("fjord.http.console.readonly")?,
            },
            group_initial_rebalance_delay_ms: c.long("group.initial.rebalance.delay.ms")?.max(0) as u64,
            group_min_session_timeout_ms: c.int("group.min.session.timeout.ms")?,
            group_max_session_timeout_ms: c.int("group.max.session.timeout.ms")?,
            group_max_size: positive("group.max.size", c.long("group.max.size")?)? as i32,
            group_consumer_session_timeout_ms: c.consumer_group_timeout("session.timeout.ms")?,
            group_consumer_heartbeat_interval_ms: c.consumer_group_timeout("heartbeat.interval.ms")?,
            group_consumer_max_size: positive("group.consumer.max.size", c.long("group.consumer.max.size")?)? as i32,
            group_coordinator_append_linger_ms: match c.int("group.coordinator.append.linger.ms")? {
                v if v < 0 => return Err(ConfigError::Invalid { name: "group.coordinator.append.linger.ms".into(), value: v.to_string(), reason: "must be at least 0".into() }),
                v => v as u64,
            },
            group_consumer_assignors: c.consumer_group_assignors()?,
            group_consumer_migration_policy: {
                let v = c.string("group.consumer.migration.policy");
                crate::group::MigrationPolicy::parse(&v).ok_or_else(|| ConfigError::Invalid { name: "group.consumer.migration.policy".into(), value: v.clone(), reason: "one of disabled, upgrade, downgrade, bidirectional".into() })?
            },
            offset_metadata_max_bytes: c.int("offset.metadata.max.bytes")?.max(0),
            offsets_topic_num_partitions: positive("offsets.topic.num.partitions", c.long("offsets.topic.num.partitions")?)? as i32,
            offsets_retention_ms: positive("offsets.retention.minutes", c.long("offsets.retention.minutes")?)? * 60_000,
            offsets_retention_check_interval_ms: positive(
                "offsets.retention.check.interval.ms",
                c.long("offsets.retention.check.interval.ms")?,
            )? as u64,
            offsets_topic_segment_bytes: positive("offsets.topic.segment.bytes", c.long("offsets.topic.segment.bytes")?)? as i32,
            transactional_id_expiration_ms: positive("transactional.id.expiration.ms", c.long("transactional.id.expiration.ms")?)?,
            transaction_max_timeout_ms: positive("transaction.max.timeout.ms", c.long("transaction.max.timeout.ms")?)? as i32,
            transaction_state_log_num_partitions: positive("transaction.state.log.num.partitions", c.long("transaction.state.log.num.partitions")?)? as i32,
            transaction_state_log_segment_bytes: positive("transaction.state.log.segment.bytes", c.long("transaction.state.log.segment.bytes")?)? as i32,
            transaction_state_log_min_isr: positive("transaction.state.log.min.isr", c.long("transaction.state.log.min.isr")?)?.min(i16::MAX as i64) as i32,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: positive(
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                c.long("transaction.abort.timed.out.transaction.cleanup.interval.ms")?,
            )? as u64,
            transaction_remove_expired_transaction_cleanup_interval_ms: positive(
                "transaction.remove.expired.transaction.cleanup.interval.ms",
                c.long("transaction.remove.expired.transaction.cleanup.interval.ms")?,
            )? as u64,
            producer_id_expiration_ms: c.producer_id_expiration_ms()?,
            producer_id_expiration_check_interval_ms: positive(
                "producer.id.expiration.check.interval.ms",
                c.int("producer.id.expiration.check.interval.ms")? as i64,
            )? as u64,
            log_cleaner_enable: c.boolean("log.cleaner.enable")?,
            log_cleaner_backoff_ms: positive("log.cleaner.backoff.ms", c.long("log.cleaner.backoff.ms")?)? as u64,
            log_cleaner_dedupe_buffer_size: positive("log.cleaner.dedupe.buffer.size", c.long("log.cleaner.dedupe.buffer.size")?)? as usize,
            log_cleaner_io_buffer_size: positive("log.cleaner.io.buffer.size", c.long("log.cleaner.io.buffer.size")?)? as usize,
            explicit: probe.explicit.clone(),
            dynamic: Default::default(),
        };
        // log.cleaner.threads is read at each cleaner pass (it is dynamic): a bad one stops startup.
        config.log_cleaner_threads()?;
        // Validate the log defaults once so a bad value stops startup, not the first CreateTopics.
        config.log_config(&BTreeMap::new())?;
        Ok(config)
    }

    /// Reads a properties file and applies `key=value` overrides on top.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Config, ConfigError> {
        let mut explicit = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.into(), source })?;
                parse_properties(&text)?
            }
            None => BTreeMap::new(),
        };
        for (i, o) in overrides.iter().enumerate() {
            let (k, v) = o.split_once('=').ok_or(ConfigError::Syntax { line: i + 1 })?;
            explicit.insert(k.trim().to_string(), v.trim().to_string());
        }
        Config::from_properties(explicit)
    }

    /// The dynamic value of a property, if one is set: per broker first, then cluster default.
    pub fn dynamic_value(&self, name: &str) -> Option<(String, bool)> {
        let d = self.dynamic.read().unwrap_or_else(|e| e.into_inner());
        d.per_broker.get(name).map(|v| (v.clone(), true)).or_else(|| d.cluster_default.get(name).map(|v| (v.clone(), false)))
    }

    /// The value set explicitly, dynamically or statically (no default).
    fn set_value(&self, name: &str) -> Option<String> {
        self.dynamic_value(name).map(|(v, _)| v).or_else(|| self.explicit.get(name).cloned())
    }

    /// A broker property as DescribeConfigs shows it: set (dynamically or statically), else its
    /// default. Unlike `value`, a default that Kafka derives from another property stays null
    /// (log.retention.ms when only log.retention.hours decides), as Kafka 4.0 describes it.
    pub fn described_value(&self, name: &str) -> Option<String> {
        self.set_value(name).or_else(|| broker_def(name).and_then(|d| d.default.map(str::to_string)))
    }

    /// The effective value of a broker property: dynamic, else explicit, else Kafka's default;
    /// None = null.
    pub fn value(&self, name: &str) -> Option<String> {
        if let Some(v) = self.set_value(name) {
            return Some(v);
        }
        // Properties whose default derives from another one, as in Kafka.
        match name {
            "log.retention.ms" => {
                if let Some(m) = self.set_value("log.retention.minutes") {
                    return m.parse::<i64>().ok().map(|m| (m * 60_000).to_string());
                }
                let h: i64 = self.value("log.retention.hours")?.parse().ok()?;
                return Some((h * 3_600_000).to_string());
            }
            "log.roll.ms" => {
                let h: i64 = self.value("log.roll.hours")?.parse().ok()?;
                return Some((h * 3_600_000).to_string());
            }
            _ => {}
        }
        broker_def(name).and_then(|d| d.default.map(str::to_string))
    }

    /// The current `producer.id.expiration.ms` (dynamic value first), checked as Kafka checks it:
    /// an INT of at least 1, refused in Kafka's words.
    pub fn producer_id_expiration_ms(&self) -> Result<i64, ConfigError> {
        self.int_at_least("producer.id.expiration.ms", 1).map(i64::from)
    }

    /// An INT property as it is now, at least `min`; refused in Kafka's words otherwise.
    fn int_at_least(&self, name: &str, min: i32) -> Result<i32, ConfigError> {
        let v = self.string(name);
        let n: i32 = v.trim().parse().map_err(|_| ConfigError::Refused(format!("Invalid value {v} for configuration {name}: Not a number of type INT")))?;
        if n < min {
            return Err(ConfigError::Refused(format!("Invalid value {n} for configuration {name}: Value must be at least {min}")));
        }
        Ok(n)
    }

    /// `log.cleaner.threads`, as it is now (a dynamic broker config, as in Kafka): how many
    /// cleaners compact logs at once; 0 compacts nothing. At least 0 (Kafka's words when not).
    pub fn log_cleaner_threads(&self) -> Result<usize, ConfigError> {
        self.int_at_least("log.cleaner.threads", 0).map(|n| n as usize)
    }

    fn string(&self, name: &str) -> String {
        self.value(name).unwrap_or_default()
    }

    pub fn long(&self, name: &str) -> Result<i64, ConfigError> {
        let v = self.string(name);
        v.parse().map_err(|_| ConfigError::Invalid { name: name.into(), value: v, reason: "not a number".into() })
    }

    fn int(&self, name: &str) -> Result<i32, ConfigError> {
        let v = self.string(name);
        v.parse().map_err(|_| ConfigError::Invalid { name: name.into(), value: v, reason: "not an int".into() })
    }

    /// A group config's value: the group's override, else the broker's default for it.
    pub fn group_config_value(&self, overrides: &BTreeMap<String, String>, name: &str) -> Option<String> {
        if let Some(v) = overrides.get(name) {
            return Some(v.clone());
        }
        match group_def(name)?.1 {
            Some(broker_name) => self.value(broker_name),
            None => Some(SHARE_AUTO_OFFSET_RESET_DEFAULT.to_string()),
        }
    }

    /// Checks a group's proposed overrides as Kafka's GroupConfig does: known names, integers of
    /// at least 1 (1000 for the record lock), within the broker's group.{consumer,share}.min/max
    /// bounds, and sessions longer than heartbeat intervals.
    pub fn validate_group_configs(&self, overrides: &BTreeMap<String, String>) -> Result<(), String> {
        if let Some(k) = overrides.keys().find(|k| group_def(k).is_none()) {
            return Err(format!("Unknown group config name: {k}"));
        }
        let int = |name: &str| -> Result<i64, String> {
            let v = self.group_config_value(overrides, name).unwrap_or_default();
            let n: i32 = v.trim().parse().map_err(|_| format!("Invalid value {v} for configuration {name}: Not a number of type INT"))?;
            let least = if name == "share.record.lock.duration.ms" { 1000 } else { 1 };
            if n < least {
                return Err(format!("Invalid value {n} for configuration {name}: Value must be at least {least}"));
            }
            Ok(n as i64)
        };
        let bound = |name: &str, bounds: &str| -> Result<i64, String> {
            let v = int(name)?;
            let (kind, what) = bounds.split_once('.').unwrap_or((bounds, ""));
            let min = self.long(&format!("group.{kind}.min.{what}")).map_err(|e| e.to_string())?;
            let max = self.long(&format!("group.{kind}.max.{what}")).map_err(|e| e.to_string())?;
            if v < min {
                return Err(format!("{name} must be greater than or equal to group.{kind}.min.{what}"));
            }
            if v > max {
                return Err(format!("{name} must be less than or equal to group.{kind}.max.{what}"));
            }
            Ok(v)
        };
        let ch = bound("consumer.heartbeat.interval.ms", "consumer.heartbeat.interval.ms")?;
        let cs = bound("consumer.session.timeout.ms", "consumer.session.timeout.ms")?;
        let sh = bound("share.heartbeat.interval.ms", "share.heartbeat.interval.ms")?;
        let ss = bound("share.session.timeout.ms", "share.session.timeout.ms")?;
        bound("share.record.lock.duration.ms", "share.record.lock.duration.ms")?;
        if cs <= ch {
            return Err("consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms".into());
        }
        if ss <= sh {
            return Err("share.session.timeout.ms must be greater than share.heartbeat.interval.ms".into());
        }
        let reset = self.group_config_value(overrides, "share.auto.offset.reset").unwrap_or_default();
        if reset != "latest" && reset != "earliest" {
            return Err(format!("Invalid value {reset} for configuration share.auto.offset.reset: String must be one of: latest, earliest"));
        }
        Ok(())
    }

    /// group.consumer.X, checked against group.consumer.min.X and group.consumer.max.X.
    fn consumer_group_timeout(&self, suffix: &str) -> Result<i32, ConfigError> {
        let name = format!("group.consumer.{suffix}");
        let (v, min, max) = (self.int(&name)?, self.int(&format!("group.consumer.min.{suffix}"))?, self.int(&format!("group.consumer.max.{suffix}"))?);
        if v < min || v > max || v <= 0 {
            return Err(ConfigError::Invalid { name, value: v.to_string(), reason: format!("must be within [{min}, {max}]") });
        }
        Ok(v)
    }

    fn consumer_group_assignors(&self) -> Result<Vec<String>, ConfigError> {
        let v = self.string("group.consumer.assignors");
        let mut out = Vec::new();
        for a in v.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            let short = crate::group::assignor::short_name(a)
                .ok_or_else(|| ConfigError::Invalid { name: "group.consumer.assignors".into(), value: v.clone(), reason: format!("unknown assignor {a} (uniform, range)") })?;
            out.push(short.to_string());
        }
        if out.is_empty() {
            return Err(ConfigError::Invalid { name: "group.consumer.assignors".into(), value: v, reason: "at least one assignor".into() });
        }
        Ok(out)
    }

    /// `replica.selector.class`: whether the leader points consumers at a replica in their rack.
    fn rack_aware_replica_selector(&self) -> Result<bool, ConfigError> {
        match self.string("replica.selector.class").trim() {
            "" => Ok(false),
            RACK_AWARE_REPLICA_SELECTOR => Ok(true),
            other => Err(ConfigError::Invalid {
                name: "replica.selector.class".into(),
                value: other.into(),
                reason: format!("Fjord selects replicas as Kafka's {RACK_AWARE_REPLICA_SELECTOR}: set it, or leave the property empty for leader-only fetching"),
            }),
        }
    }

    /// `authorizer.class.name`, `super.users` and `allow.everyone.if.no.acl.found`; an unknown
    /// class name stops startup (a broker that silently authorized nothing would be worse).
    fn authorizer(&self) -> Result<Option<AuthorizerConfig>, ConfigError> {
        let class = self.string("authorizer.class.name");
        match class.trim() {
            "" => return Ok(None),
            STANDARD_AUTHORIZER => {}
            other => {
                return Err(ConfigError::Invalid {
                    name: "authorizer.class.name".into(),
                    value: other.into(),
                    reason: format!("Fjord's authorizer follows Kafka's StandardAuthorizer: set {STANDARD_AUTHORIZER}, or leave it empty for none"),
                });
            }
        }
        let super_users = self.string("super.users").split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
        Ok(Some(AuthorizerConfig { super_users, allow_everyone_if_no_acl_found: self.boolean("allow.everyone.if.no.acl.found")? }))
    }

    fn boolean(&self, name: &str) -> Result<bool, ConfigError> {
        let v = self.string(name);
        match v.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(ConfigError::Invalid { name: name.into(), value: v, reason: "expected true or false".into() }),
        }
    }

    /// A broker-only byte count (`>= 0`), if set.
    fn broker_bytes(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        match self.value(name).map(|v| (v.parse::<i64>(), v)) {
            None => Ok(None),
            Some((Ok(n), _)) if n >= 0 => Ok(Some(n as u64)),
            Some((_, v)) => Err(ConfigError::Invalid { name: name.into(), value: v, reason: "expected bytes >= 0".into() }),
        }
    }

    /// The effective value of a topic config: topic override, else the broker-level synonym.
    pub fn topic_value(&self, overrides: &BTreeMap<String, String>, name: &str) -> Option<String> {
        if let Some(v) = overrides.get(name) {
            return Some(v.clone());
        }
        let (_, synonym, _, _) = topic_def(name)?;
        if synonym.is_empty() {
            return topic_only_default(name).map(str::to_string);
        }
        self.value(synonym)
    }

    /// The topic settings that are not the log's, from a topic's overrides and the broker defaults.
    pub fn topic_settings(&self, overrides: &BTreeMap<String, String>) -> Result<TopicSettings, ConfigError> {
        let mut t = TopicSettings::default();
        if let Some(v) = self.topic_value(overrides, "min.insync.replicas") {
            check_topic_value("min.insync.replicas", &v).map_err(ConfigError::Refused)?;
            t.min_insync_replicas = v.trim().parse().unwrap_or(1);
        }
        let throttled = |name: &str| -> Result<ThrottledReplicas, ConfigError> {
            match overrides.get(name) {
                Some(v) => {
                    check_topic_value(name, v).map_err(ConfigError::Refused)?;
                    Ok(ThrottledReplicas::parse(v, self.node_id))
                }
                None => Ok(ThrottledReplicas::None),
            }
        };
        t.leader_throttled = throttled("leader.replication.throttled.replicas")?;
        t.follower_throttled = throttled("follower.replication.throttled.replicas")?;
        Ok(t)
    }

    /// A replication throttle's rate (`name`: [`LEADER_REPLICATION_THROTTLED_RATE`] or
    /// [`FOLLOWER_REPLICATION_THROTTLED_RATE`]) as now configured, in bytes a second, checked as
    /// Kafka checks it (a LONG of at least 0, refused in Kafka's words). `u64::MAX` is Kafka's
    /// default, Long.MAX_VALUE: unthrottled.
    pub fn replication_throttled_rate(&self, name: &str) -> Result<u64, ConfigError> {
        let v = self.value(name).unwrap_or_default();
        match v.trim().parse::<i64>() {
            Ok(i64::MAX) => Ok(u64::MAX),
            Ok(n) if n >= 0 => Ok(n as u64),
            Ok(_) => Err(ConfigError::Refused(format!("Invalid value {v} for configuration {name}: Value must be at least 0"))),
            Err(_) => Err(ConfigError::Refused(format!("Invalid value {v} for configuration {name}: Not a number of type LONG"))),
        }
    }

    /// Every topic config's effective value checked as Kafka checks it: a topic override under the
    /// topic name, a broker default under the broker property's name.
    fn check_topic_values(&self, overrides: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        for (name, synonym, _, _) in TOPIC_CONFIGS {
            let (given_as, value) = match overrides.get(*name) {
                Some(v) => (*name, Some(v.clone())),
                None if synonym.is_empty() => continue,
                None => (*synonym, self.value(synonym)),
            };
            if let Some(v) = value {
                check_topic_value(given_as, &v).map_err(ConfigError::Refused)?;
            }
        }
        Ok(())
    }

    /// The storage settings of a topic: its overrides on top of the broker defaults.
    pub fn log_config(&self, overrides: &BTreeMap<String, String>) -> Result<LogConfig, ConfigError> {
        let get = |name: &str| -> Result<Option<i64>, ConfigError> {
            match self.topic_value(overrides, name) {
                None => Ok(None),
                Some(v) => v.parse::<i64>().map(Some).map_err(|_| ConfigError::Invalid {
                    name: name.into(),
                    value: v,
                    reason: "not a number".into(),
                }),
            }
        };
        self.check_topic_values(overrides)?;
        let mut lc = LogConfig::default();
        if let Some(v) = get("segment.index.bytes")? {
            lc.segment_index_bytes = v as u64;
        }
        if let Some(v) = get("segment.jitter.ms")? {
            lc.segment_jitter_ms = v;
        }
        let level = |name: &str, default: i32| -> Result<i32, ConfigError> { Ok(get(name)?.map_or(default, |v| v as i32)) };
        use crate::records::recompress::{self as rc, TopicCompression};
        lc.compression = match self.topic_value(overrides, "compression.type").as_deref().unwrap_or("producer") {
            "uncompressed" => TopicCompression::Uncompressed,
            "gzip" => TopicCompression::Gzip { level: level("compression.gzip.level", rc::GZIP_LEVEL_DEFAULT)? },
            "snappy" => TopicCompression::Snappy,
            "lz4" => TopicCompression::Lz4 { level: level("compression.lz4.level", rc::LZ4_LEVEL_DEFAULT)? },
            "zstd" => TopicCompression::Zstd { level: level("compression.zstd.level", rc::ZSTD_LEVEL_DEFAULT)? },
            _ => TopicCompression::Producer,
        };
        if let Some(v) = get("segment.bytes")? {
            if v < 14 {
                return Err(ConfigError::Invalid { name: "segment.bytes".into(), value: v.to_string(), reason: "must be >= 14".into() });
            }
            lc.segment_bytes = v as u64;
        }
        if let Some(v) = get("segment.ms")? {
            lc.segment_ms = v;
        }
        if let Some(v) = get("retention.ms")? {
            lc.retention_ms = v;
        }
        if let Some(v) = get("retention.bytes")? {
            lc.retention_bytes = v;
        }
        if let Some(v) = get("index.interval.bytes")? {
            lc.index_interval_bytes = v.max(0) as u64;
        }
        if let Some(v) = get("max.message.bytes")? {
            if v < 0 {
                return Err(ConfigError::Invalid { name: "max.message.bytes".into(), value: v.to_string(), reason: "must be >= 0".into() });
            }
            lc.max_message_bytes = v as usize;
        }
        if let Some(v) = get("message.timestamp.before.max.ms")? {
            lc.message_timestamp_before_max_ms = v;
        }
        if let Some(v) = get("message.timestamp.after.max.ms")? {
            lc.message_timestamp_after_max_ms = v;
        }
        if let Some(v) = get("flush.messages")? {
            lc.flush_interval_messages = v;
        }
        if let Some(v) = get("flush.ms")? {
            lc.flush_interval_ms = v;
        }
        if let Some(v) = self.topic_value(overrides, "message.timestamp.type") {
            lc.message_timestamp_type = match v.as_str() {
                "CreateTime" => crate::storage::TimestampType::CreateTime,
                "LogAppendTime" => crate::storage::TimestampType::LogAppendTime,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "message.timestamp.type".into(),
                        value: v,
                        reason: "expected CreateTime or LogAppendTime".into(),
                    })
                }
            };
        }
        if let Some(v) = get("delete.retention.ms")? {
            lc.delete_retention_ms = v;
        }
        if let Some(v) = get("min.compaction.lag.ms")? {
            lc.min_compaction_lag_ms = v.max(0);
        }
        if let Some(v) = get("max.compaction.lag.ms")? {
            if v <= 0 {
                return Err(ConfigError::Invalid { name: "max.compaction.lag.ms".into(), value: v.to_string(), reason: "must be > 0".into() });
            }
            lc.max_compaction_lag_ms = v;
        }
        if let Some(v) = self.topic_value(overrides, "min.cleanable.dirty.ratio") {
            match v.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => lc.min_cleanable_dirty_ratio = r,
                _ => {
                    return Err(ConfigError::Invalid { name: "min.cleanable.dirty.ratio".into(), value: v, reason: "expected a number in [0, 1]".into() })
                }
            }
        }
        // Broker settings only (no topic synonym): how the disk is used, not what the topic keeps.
        if let Some(n) = self.broker_bytes("fjord.log.preallocate.step.bytes")? {
            lc.preallocate_step_bytes = n;
        }
        if let Some(n) = self.broker_bytes("fjord.log.writeback.step.bytes")? {
            lc.writeback_step_bytes = n;
        }
        if let Some(n) = self.broker_bytes("fjord.log.drop.behind.bytes")? {
            let unusable = n > 0 && (lc.writeback_step_bytes == 0 || n < lc.writeback_step_bytes);
            // The default follows the writeback step: turning the step off turns drop-behind off.
            let n = if unusable && !self.explicit.contains_key("fjord.log.drop.behind.bytes") { 0 } else { n };
            if n > 0 && (lc.writeback_step_bytes == 0 || n < lc.writeback_step_bytes) {
                return Err(ConfigError::Invalid {
                    name: "fjord.log.drop.behind.bytes".into(),
                    value: n.to_string(),
                    reason: "needs fjord.log.writeback.step.bytes > 0 and no larger: only pages queued for writeback can be dropped".into(),
                });
            }
            lc.drop_behind_bytes = n;
        }
        if let Some(n) = self.broker_bytes("fjord.fetch.readahead.bytes")? {
            lc.readahead_bytes = n;
        }
        if let Some(v) = self.topic_value(overrides, "cleanup.policy") {
            for p in v.split(',').map(str::trim) {
                if p != "delete" && p != "compact" {
                    return Err(ConfigError::Invalid { name: "cleanup.policy".into(), value: v.clone(), reason: "expected delete and/or compact".into() });
                }
            }
            lc.cleanup_policy = v;
        }
        Ok(lc)
    }

    /// The address the listener binds to.
    pub fn bind_addr(&self) -> String {
        format!("{}:{}", self.listener.host, self.listener.port)
    }

    /// The endpoint given to clients in Metadata: advertised.listeners, else the bound address
    /// (a wildcard host is advertised as 127.0.0.1, a port of 0 as the port actually bound).
    pub fn advertised_endpoint(&self, bound: SocketAddr) -> Endpoint {
        self.advertised_endpoint_of(self.advertised.as_ref(), &self.listener, bound)
    }

    /// As [`Config::advertised_endpoint`], for any listener: its advertised.listeners entry, else
    /// where it is bound.
    pub fn listener_advertised_endpoint(&self, listener: &Listener, bound: SocketAddr) -> Endpoint {
        self.advertised_endpoint_of(self.topology.advertised.get(&listener.name), &listener.endpoint, bound)
    }

    fn advertised_endpoint_of(&self, advertised: Option<&Endpoint>, endpoint: &Endpoint, bound: SocketAddr) -> Endpoint {
        if let Some(a) = advertised {
            return a.clone();
        }
        let host = match endpoint.host.as_str() {
            "0.0.0.0" | "::" => "127.0.0.1".to_string(),
            h => h.to_string(),
        };
        Endpoint { host, port: bound.port() }
    }

    /// A listener's value of `name`: `listener.name.<lower-case listener>.<name>` when set (Kafka's
    /// per-listener override), else the broker-wide value.
    pub fn listener_value(&self, listener: &str, name: &str) -> Option<String> {
        self.set_value(&format!("listener.name.{}.{name}", listener.to_ascii_lowercase())).or_else(|| self.value(name))
    }

    /// `max.connection.creation.rate` as now configured (dynamic changes included): broker-wide
    /// (None), or a listener's (`listener.name.<l>.max.connection.creation.rate`, else the
    /// broker-wide value). An INT at least 0, as Kafka defines it; i32::MAX is no limit.
    pub fn connection_creation_rate(&self, listener: Option<&str>) -> Result<u32, ConfigError> {
        const NAME: &str = "max.connection.creation.rate";
        let (name, v) = match listener {
            None => (NAME.to_string(), self.value(NAME)),
            Some(l) => (format!("listener.name.{}.{NAME}", l.to_ascii_lowercase()), self.listener_value(l, NAME)),
        };
        let v = v.unwrap_or_default();
        match v.trim().parse::<i32>() {
            Ok(n) if n >= 0 => Ok(n as u32),
            _ => Err(ConfigError::Invalid { name, value: v, reason: "expected an INT at least 0".into() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn peer_address_overrides_map_one_address_to_another_and_refuse_malformed_pairs() {
        assert!(Config::from_properties(BTreeMap::new()).unwrap().peer_address_overrides.is_empty(), "none by default");
        let c = Config::from_properties(props(&[("fjord.peer.address.overrides", "127.0.0.1:9093=127.0.0.1:20001, 127.0.0.1:9096=127.0.0.1:20002")])).unwrap();
        let o = &c.peer_address_overrides;
        assert_eq!(o.apply("127.0.0.1:9093"), "127.0.0.1:20001");
        assert_eq!(o.apply("127.0.0.1:9096"), "127.0.0.1:20002");
        assert_eq!(o.apply("127.0.0.1:9094"), "127.0.0.1:9094", "an address without an override is left alone");
        for bad in ["127.0.0.1:9093", "127.0.0.1:9093=", "=127.0.0.1:1", "127.0.0.1:x=127.0.0.1:1", "127.0.0.1:1=127.0.0.1"] {
            let err = Config::from_properties(props(&[("fjord.peer.address.overrides", bad)])).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("fjord.peer.address.overrides"), "{bad:?} refused by name: {err:?}");
        }
    }

    #[test]
    fn connections_per_ip_and_its_overrides_are_checked_as_kafka_checks_them() {
        let c = Config::from_properties(BTreeMap::new()).unwrap();
        assert_eq!((c.max_connections_per_ip, c.max_connections_per_ip_overrides.len()), (i32::MAX as usize, 0), "Kafka's defaults");
        let c = Config::from_properties(props(&[("max.connections.per.ip", "5"), ("max.connections.per.ip.overrides", "127.0.0.1:10, [::1]:0,localhost:7")])).unwrap();
        assert_eq!(c.max_connections_per_ip, 5);
        assert!(c.max_connections_per_ip_overrides.contains_key(&"::1".parse().unwrap()), "an IPv6 address in brackets");
        assert_eq!(c.max_connections_per_ip_overrides.get(&"127.0.0.1".parse().unwrap()), Some(&7), "a later host name's addresses override an earlier entry");
        let refused = |pairs: &[(&str, &str)]| Config::from_properties(props(pairs)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused(&[("max.connections.per.ip", "0")]).contains("can be set to zero only if max.connections.per.ip.overrides"));
        assert!(Config::from_properties(props(&[("max.connections.per.ip", "0"), ("max.connections.per.ip.overrides", "127.0.0.1:2")])).is_ok());
        assert!(refused(&[("max.connections.per.ip", "-1")]).contains("max.connections.per.ip"));
        assert!(refused(&[("max.connections.per.ip.overrides", "127.0.0.1")]).contains("HOST:COUNT"));
        assert!(refused(&[("max.connections.per.ip.overrides", "127.0.0.1:x")]).contains("not a number"));
        assert!(refused(&[("max.connections.per.ip.overrides", "no-such-host.invalid:3")]).contains("invalid addresses"));
    }

    #[test]
    fn defaults_are_kafkas() {
        let c = Config::from_properties(BTreeMap::new()).unwrap();
        assert_eq!(c.listener, Endpoint { host: "127.0.0.1".into(), port: 9092 });
        assert_eq!(c.message_max_bytes, 1048588);
        assert_eq!(c.socket_request_max_bytes, 104857600);
        assert_eq!(c.value("log.retention.ms").as_deref(), Some("604800000"));
        assert_eq!(c.log_dirs, vec![PathBuf::from("./data")]);
    }

    #[test]
    fn node_id_and_broker_id_stand_for_each_other_as_in_kafka() {
        let c = |pairs: &[(&str, &str)]| Config::from_properties(props(pairs)).unwrap();
        let b = c(&[("broker.id", "3")]);
        assert_eq!((b.node_id, b.explicit.get("node.id").map(String::as_str)), (3, Some("3")));
        let n = c(&[("node.id", "2")]);
        assert_eq!((n.node_id, n.explicit.get("broker.id").map(String::as_str)), (2, Some("2")));
        // Kafka's "not set" broker.id leaves Fjord's default node id; neither set: node 1.
        let unset = c(&[("broker.id", "-1")]);
        assert_eq!((unset.node_id, unset.explicit.contains_key("node.id")), (1, false));
        assert_eq!(c(&[]).node_id, 1);
        assert_eq!(c(&[("node.id", "4"), ("broker.id", "4")]).node_id, 4);
        assert!(Config::from_properties(props(&[("broker.id", "-x")])).is_err(), "a broker.id that is no number is refused");
    }

    #[test]
    fn retention_minutes_override_hours() {
        let c = Config::from_properties(props(&[("log.retention.minutes", "5")])).unwrap();
        assert_eq!(c.value("log.retention.ms").as_deref(), Some("300000"));
        assert_eq!(c.log_config(&BTreeMap::new()).unwrap().retention_ms, 300000);
    }

    #[test]
    fn topic_override_beats_broker_default() {
        let c = Config::from_properties(props(&[("log.segment.bytes", "1000")])).unwrap();
        assert_eq!(c.log_config(&BTreeMap::new()).unwrap().segment_bytes, 1000);
        let o = props(&[("segment.bytes", "2000")]);
        assert_eq!(c.log_config(&o).unwrap().segment_bytes, 2000);
    }

    #[test]
    fn the_preallocation_step_is_a_broker_setting_of_8_mib_that_0_turns_off() {
        let c = Config::from_properties(BTreeMap::new()).unwrap();
        assert_eq!(c.log_config(&BTreeMap::new()).unwrap().preallocate_step_bytes, 8 << 20);
        assert!(broker_def("fjord.log.preallocate.step.bytes").is_some_and(|d| !d.doc.is_empty()));
        let c = Config::from_properties(props(&[("fjord.log.preallocate.step.bytes", "0")])).unwrap();
        assert_eq!(c.log_config(&BTreeMap::new()).unwrap().preallocate_step_bytes, 0);
        assert!(Config::from_properties(props(&[("fjord.log.preallocate.step.bytes", "-1")])).is_err());
        assert!(Config::from_properties(props(&[("fjord.log.preallocate.step.bytes", "8MiB")])).is_err());
    }

    #[test]
    fn the_writeback_step_is_a_broker_setting_of_2_mib_by_default() {
        let c = Config::from_properties(BTreeMap::new()).unwrap();
        assert_eq!(c.log_config(&BTreeMap::new()).unwrap().writeback_step_bytes, 2 << 20);
        assert!(broker_def("fjord.log.writeback.step.bytes").is_some_and(|d| !d.doc.is_empty()));
        let c = Config::from_properties(props(&[("fjord.log.writeback.step.bytes", "4194304")])).unwrap();
        assert_eq!(c.log_config(&BTreeMap::new()).unwrap().writeback_step_bytes, 4 << 20);
        assert!(Config::from_properties(props(&[("fjord.log.writeback.step.bytes", "-4")])).is_err());
    }

    #[test]
    fn the_http_listener_is_on_loopback_by_default_off_with_none_and_its_limits_are_positive() {
        let c = Config::from_properties(props(&[])).unwrap();
        assert_eq!(c.http.listener, Some(Endpoint { host: "127.0.0.1".into(), port: 9644 }));
        assert_eq!((c.http.connections_max, c.http.request_timeout_ms, c.http.connection_max_ms), (16, 10_000, 60_000));
        assert_eq!(Config::from_properties(props(&[("fjord.http.listener", "none")])).unwrap().http.listener, None);
        assert_eq!(Config::from_properties(props(&[("fjord.http.listener", "NONE")])).unwrap().http.listener, None);
        let c = Config::from_properties(props(&[("fjord.http.listener", "0.0.0.0:0")])).unwrap();
        assert_eq!(c.http.listener, Some(Endpoint { host: "0.0.0.0".into(), port: 0 }));
        for bad in ["9644", "host:port", "127.0.0.1:70000", ""] {
            assert!(Config::from_properties(props(&[("fjord.http.listener", bad)])).is_err(), "{bad:?}");
        }
        assert!(Config::from_properties(props(&[("fjord.http.connections.max", "0")])).is_err());
        assert!(Config::from_properties(props(&[("fjord.http.request.timeout.ms", "-1")])).is_err());
        assert!(broker_def("fjord.http.listener").is_some_and(|d| !d.doc.is_empty()));
    }

    #[test]
    fn an_https_http_listener_reads_its_tls_settings_under_fjord_http_ssl_as_a_listener_reads_ssl() {
        let c = Config::from_properties(props(&[("fjord.http.listener", "http://127.0.0.1:0")])).unwrap();
        assert_eq!((c.http.listener.clone(), c.http.tls.clone()), (Some(Endpoint { host: "127.0.0.1".into(), port: 0 }), None));
        assert!(Config::from_properties(props(&[("fjord.http.listener", "https://127.0.0.1:0")])).is_err(), "https needs a key store");
        let c = Config::from_properties(props(&[
            ("fjord.http.listener", "HTTPS://[::1]:8443"),
            ("fjord.http.ssl.keystore.type", "PKCS12"),
            ("fjord.http.ssl.keystore.location", "/etc/fjord/http.p12"),
            ("fjord.http.ssl.keystore.password", "pw"),
            ("ssl.enabled.protocols", "TLSv1.3"),
            ("ssl.keystore.location", "/etc/fjord/kafka.pem"),
        ]))
        .unwrap();
        assert_eq!(c.http.listener, Some(Endpoint { host: "::1".into(), port: 8443 }));
        let tls = c.http.tls.expect("TLS");
        assert_eq!(tls.keystore.unwrap(), KeyStore::Pkcs12 { path: PathBuf::from("/etc/fjord/http.p12"), password: Secret("pw".into()) }, "the fjord.http. value first");
        assert_eq!(tls.enabled_protocols, vec![TlsVersion::Tls13], "else the broker-wide ssl.* value");
        let e = Config::from_properties(props(&[("fjord.http.listener", "https://127.0.0.1:0"), ("fjord.http.ssl.keystore.location", "k.pem"), ("fjord.http.ssl.keystore.type", "JKS")])).unwrap_err();
        assert!(e.to_string().contains("fjord.http.ssl.*"), "{e}");
        let c = Config::from_properties(props(&[])).unwrap();
        assert_eq!((c.http.console_sessions_max, c.http.console_session_lifetime_ms), (100, 28_800_000));
        assert!(Config::from_properties(props(&[("fjord.http.console.sessions.max", "0")])).is_err());
    }

    #[test]
    fn drop_behind_is_256_mib_by_default_and_needs_a_writeback_step_no_larger() {
        let c = Config::from_properties(props(&[])).unwrap();
        assert_eq!(c.log_config(&BTreeMap::new()).unwrap().drop_behind_bytes, 256 << 20);
        let c = Config::from_properties(props(&[("fjord.log.writeback.step.bytes", "0")])).unwrap();
        assert_eq!(c.log_config(&BTreeMap::new()).unwrap().drop_behind_bytes, 0, "the default follows the step off");
        let c = Config::from_properties(props(&[("fjord.log.drop.behind.bytes", "0")])).unwrap();
        assert_eq!(c.log_config(&BTreeMap::new()).unwrap().drop_behind_bytes, 0, "off as Kafka keeps pages");
        assert!(broker_def("fjord.log.drop.behind.bytes").is_some_and(|d| !d.doc.is_empty()));
        let c = Config::from_properties(props(&[("fjord.log.writeback.step.bytes", "2097152"), ("fjord.log.drop.behind.bytes", "33554432")])).unwrap();
        assert_eq!(c.log_config(&BTreeMap::new()).unwrap().drop_behind_bytes, 32 << 20);
        assert!(Config::from_properties(props(&[("fjord.log.writeback.step.bytes", "0"), ("fjord.log.drop.behind.bytes", "33554432")])).is_err(), "no writeback step");
        assert!(Config::from_properties(props(&[("fjord.log.writeback.step.bytes", "2097152"), ("fjord.log.drop.behind.bytes", "1048576")])).is_err(), "smaller than the step");
    }

    #[test]
    fn listeners_roles_and_the_quorum_are_checked_as_kafka_checks_them() {
        let single = Config::from_properties(BTreeMap::new()).unwrap().topology;
        assert_eq!((single.roles, single.quorum.clone()), (ProcessRoles { broker: true, controller: true }, None));
        assert_eq!(single.client_listener().map(|l| l.name.as_str()), Some("PLAINTEXT"));

        let voters = ("controller.quorum.voters", "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293");
        let combined = [("listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"), ("controller.listener.names", "CONTROLLER"), voters];
        let c = Config::from_properties(props(&combined)).unwrap();
        let t = &c.topology;
        assert_eq!(t.quorum.as_ref().map(|q| q.voters.len()), Some(3));
        assert_eq!(t.client_listener().map(|l| l.endpoint.port), Some(9092));
        assert_eq!(t.controller_listener().map(|l| (l.name.as_str(), l.protocol)), Some(("CONTROLLER", SecurityProtocol::Plaintext)));
        assert_eq!(t.inter_broker_listener_name.as_deref(), Some("PLAINTEXT"));
        assert_eq!(c.bind_addr(), "127.0.0.1:9092", "clients are served on the broker listener");

        let broker_only = [("process.roles", "broker"), ("node.id", "4"), ("listeners", "PLAINTEXT://127.0.0.1:9094"), ("controller.listener.names", "CONTROLLER"), voters];
        assert!(Config::from_properties(props(&broker_only)).is_ok(), "a broker-only node need not be a voter");
        let controller_with_clients = [("process.roles", "controller"), ("node.id", "2"), ("listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9193"), ("controller.listener.names", "CONTROLLER"), voters];
        assert!(Config::from_properties(props(&controller_with_clients)).is_err(), "a controller-only node has no client listener");
        let broker_voter = [("process.roles", "broker"), ("node.id", "2"), ("listeners", "PLAINTEXT://127.0.0.1:9094"), ("controller.listener.names", "CONTROLLER"), voters];
        assert!(Config::from_properties(props(&broker_voter)).is_err(), "a broker-only node may not be a voter");
        let controller_only = [("process.roles", "controller"), ("node.id", "2"), ("listeners", "CONTROLLER://127.0.0.1:9193"), ("controller.listener.names", "CONTROLLER"), voters];
        let c = Config::from_properties(props(&controller_only)).unwrap();
        assert_eq!((c.topology.client_listener(), c.bind_addr()), (None, "127.0.0.1:9193".to_string()));

        let refused = |extra: &[(&str, &str)], why: &str| {
            let mut all: BTreeMap<String, String> = props(&combined);
            all.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            assert!(Config::from_properties(all).is_err(), "{why}");
        };
        refused(&[("node.id", "9")], "a controller must be a voter");
        refused(&[("controller.listener.names", "")], "voters without a controller listener");
        refused(&[("listeners", "PLAINTEXT://127.0.0.1:9092,PLAINTEXT://127.0.0.1:9093")], "listener names are unique");
        refused(&[("listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9092")], "ports are unique");
        refused(&[("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT")], "CONTROLLER has no protocol in an explicit map");
        refused(&[("listener.security.protocol.map", "PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT")], "Kafka's default mechanism, GSSAPI, is not served");
        refused(&[("listener.security.protocol.map", "PLAINTEXT:SSL,CONTROLLER:PLAINTEXT")], "an SSL listener without a key store");
        let mut ssl_between_brokers: BTreeMap<String, String> = props(&combined);
        ssl_between_brokers.extend(props(&[("listener.security.protocol.map", "PLAINTEXT:SSL,CONTROLLER:PLAINTEXT"), ("ssl.keystore.type", "PEM"), ("ssl.keystore.location", "/k.pem")]));
        assert!(Config::from_properties(ssl_between_brokers).is_ok(), "in a quorum brokers may reach each other over SSL");
        refused(
            &[("listener.security.protocol.map", "PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT"), ("sasl.enabled.mechanisms", "PLAIN"), ("listener.name.plaintext.plain.sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required user_a=\"b\";")],
            "SASL between brokers with Kafka's default mechanism, GSSAPI",
        );
        refused(&[("advertised.listeners", "EXTERNAL://example:9092")], "advertised names are listeners");
        let mut advertised_controller: BTreeMap<String, String> = props(&combined);
        advertised_controller.insert("advertised.listeners".into(), "PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093".into());
        assert!(Config::from_properties(advertised_controller).is_ok(), "a controller advertises its controller listener (Kafka 4.0's server.properties does)");
        refused(&[("process.roles", "broker")], "a broker-only node has no controller listener");
        refused(&[("inter.broker.listener.name", "CONTROLLER")], "brokers reach each other on a broker listener");
        refused(&[("controller.quorum.voters", "1@127.0.0.1:9093,1@127.0.0.1:9193")], "a voter listed twice");
        let mut bootstrap = props(&[("controller.quorum.bootstrap.servers", "127.0.0.1:9093")]);
        bootstrap.insert("listeners".into(), "PLAINTEXT://127.0.0.1:9092".into());
        assert!(Config::from_properties(bootstrap).is_err(), "a node without a controller listener cannot start a quorum of its own");
    }

    #[test]
    fn kafka_4_stock_server_properties_start_a_quorum_of_one_through_bootstrap_servers() {
        // Kafka 4.0's config/server.properties, as shipped (but the log dir).
        let stock = [
            ("process.roles", "broker,controller"),
            ("node.id", "1"),
            ("controller.quorum.bootstrap.servers", "localhost:9093"),
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            ("inter.broker.listener.name", "PLAINTEXT"),
            ("advertised.listeners", "PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093"),
            ("controller.listener.names", "CONTROLLER"),
            ("listener.security.protocol.map", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"),
            ("num.network.threads", "3"),
            ("num.io.threads", "8"),
            ("transaction.state.log.replication.factor", "1"),
            ("transaction.state.log.min.isr", "1"),
        ];
        let c = Config::from_properties(props(&stock)).expect("Kafka's stock config");
        let quorum = c.topology.quorum.as_ref().expect("a quorum");
        assert_eq!(quorum.voters, BTreeMap::from([(1, Endpoint { host: "localhost".into(), port: 9093 })]), "this node, at its advertised controller endpoint, is the one voter");
        assert_eq!(c.num_network_threads, Some(3));
        assert_eq!(c.transaction_state_log_min_isr, 1);
        let with = |extra: &[(&str, &str)]| {
            let mut all = props(&stock);
            all.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            Config::from_properties(all)
        };
        let standalone = |r: Result<Config, ConfigError>| r.map(|c| c.topology.quorum.map(|q| q.voters.keys().copied().collect::<Vec<_>>()));
        assert_eq!(standalone(with(&[("advertised.listeners", "PLAINTEXT://localhost:9092"), ("controller.quorum.bootstrap.servers", "127.0.0.1:9093")])).ok(), Some(Some(vec![1])), "the bound controller port on a local address names this node too");
        let joining = |r: Result<Config, ConfigError>| r.ok().and_then(|c| c.topology.quorum).map(|q| (q.voters.len(), q.bootstrap.len()));
        assert_eq!(joining(with(&[("controller.quorum.bootstrap.servers", "localhost:9093,otherhost:9093")])), Some((0, 2)), "other controllers too: joins their quorum (AddRaftVoter)");
        assert_eq!(joining(with(&[("controller.quorum.bootstrap.servers", "localhost:9193")])), Some((0, 1)), "another controller's port");
        assert_eq!(joining(with(&[("controller.quorum.bootstrap.servers", "192.0.2.1:9093")])), Some((0, 1)), "an address of another machine");
        assert_eq!(standalone(with(&[("controller.quorum.voters", "1@localhost:9093,2@localhost:9193")])).ok(), Some(Some(vec![1, 2])), "controller.quorum.voters wins");
        assert!(with(&[("num.network.threads", "0")]).is_err());
        assert!(with(&[("num.network.threads", "100000")]).is_err(), "bounded: each is an OS thread");
        assert!(with(&[("transaction.state.log.min.isr", "0")]).is_err());
        let broker_only = with(&[("process.roles", "broker"), ("node.id", "2"), ("listeners", "PLAINTEXT://:9092"), ("advertised.listeners", "PLAINTEXT://localhost:9092")]).expect("a broker-only node");
        let quorum = broker_only.topology.quorum.expect("in a quorum");
        assert!(quorum.voters.is_empty(), "learned from the controllers at startup");
        assert_eq!(quorum.bootstrap, vec![Endpoint { host: "localhost".into(), port: 9093 }]);
        let defaults = Config::from_properties(props(&[("listeners", "PLAINTEXT://127.0.0.1:9092")])).unwrap();
        assert_eq!((defaults.num_network_threads, defaults.transaction_state_log_min_isr), (None, 2), "one worker per core; Kafka's min ISR default");
    }

    #[test]
    fn brokers_of_a_quorum_log_in_to_a_sasl_inter_broker_listener_with_their_jaas_username_and_password() {
        let base = [
            ("listeners", "INTERNAL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"),
            ("listener.security.protocol.map", "INTERNAL:SASL_SSL,CONTROLLER:PLAINTEXT"),
            ("controller.listener.names", "CONTROLLER"),
            ("controller.quorum.voters", "1@127.0.0.1:9093"),
            ("inter.broker.listener.name", "INTERNAL"),
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", "/k.pem"),
            ("listener.name.internal.sasl.enabled.mechanisms", "SCRAM-SHA-512,PLAIN"),
            ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512"),
            ("listener.name.internal.scram-sha-512.sasl.jaas.config", r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="broker-secret";"#),
            ("listener.name.internal.plain.sasl.jaas.config", r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-pw" user_admin="admin-pw";"#),
        ];
        let c = Config::from_properties(props(&base)).expect("a SASL_SSL inter-broker listener");
        let login = c.topology.inter_broker_sasl.clone().expect("the broker's login");
        assert_eq!((login.mechanism, login.username.as_str(), login.password.0.as_str()), (SaslMechanism::ScramSha512, "broker", "broker-secret"));
        assert!(!format!("{login:?}").contains("broker-secret"), "the password never reaches Debug output");
        let with = |extra: &[(&str, &str)]| {
            let mut p = props(&base);
            p.extend(props(extra));
            Config::from_properties(p)
        };
        // PLAIN: the broker's username / password beside the user_<name> entries.
        let plain = with(&[("sasl.mechanism.inter.broker.protocol", "PLAIN")]).expect("PLAIN between brokers").topology.inter_broker_sasl.unwrap();
        assert_eq!((plain.mechanism, plain.username.as_str(), plain.password.0.as_str()), (SaslMechanism::Plain, "admin", "admin-pw"));
        // SCRAM-SHA-256 over SASL_PLAINTEXT.
        let scram_256 = |jaas_key: &'static str| {
            with(&[
                ("listener.security.protocol.map", "INTERNAL:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT"),
                ("listener.name.internal.sasl.enabled.mechanisms", "SCRAM-SHA-256"),
                ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-256"),
                (jaas_key, r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="b2" password="p2";"#),
            ])
        };
        let sha256 = scram_256("listener.name.internal.scram-sha-256.sasl.jaas.config").expect("SCRAM-SHA-256 between brokers");
        assert_eq!(sha256.topology.inter_broker_sasl.map(|l| (l.mechanism, l.username)), Some((SaslMechanism::ScramSha256, "b2".into())));
        // Kafka's broker reads the login module under the listener's and the mechanism's prefix
        // only: set otherwise, it stops at startup for want of a JAAS entry (Kafka 4.0 checked).
        for unread in ["scram-sha-256.sasl.jaas.config", "listener.name.internal.sasl.jaas.config", "sasl.jaas.config"] {
            let e = scram_256(unread).expect_err(unread).to_string();
            assert!(e.contains("Could not find a 'KafkaServer' or 'internal.KafkaServer' entry in the JAAS configuration"), "{e}");
            assert!(e.contains("listener.name.internal.scram-sha-256.sasl.jaas.config") && e.contains(&format!("ignores {unread}")) && !e.contains("p2"), "{e}");
        }
        // Kafka's older security.inter.broker.protocol names the listener by its protocol.
        let mut old = props(&base);
        old.remove("inter.broker.listener.name");
        old.insert("listeners".into(), "SASL_SSL://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093".into());
        old.insert("listener.security.protocol.map".into(), "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT".into());
        old.insert("security.inter.broker.protocol".into(), "SASL_SSL".into());
        old.insert("sasl.enabled.mechanisms".into(), "SCRAM-SHA-512".into());
        old.insert("listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config".into(), r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="pw";"#.into());
        let c = Config::from_properties(old.clone()).expect("security.inter.broker.protocol=SASL_SSL");
        assert_eq!((c.topology.inter_broker_listener_name.as_deref(), c.topology.inter_broker_sasl.map(|l| l.username)), (Some("SASL_SSL"), Some("broker".into())));
        old.insert("inter.broker.listener.name".into(), "SASL_SSL".into());
        assert!(Config::from_properties(old).unwrap_err().to_string().contains("Only one of inter.broker.listener.name and security.inter.broker.protocol"));

        let refused = |extra: &[(&str, &str)]| with(extra).expect_err("refused").to_string();
        let mut gssapi = props(&base);
        gssapi.remove("sasl.mechanism.inter.broker.protocol");
        let e = Config::from_properties(gssapi).unwrap_err().to_string();
        assert!(e.contains("sasl.mechanism.inter.broker.protocol") && e.contains("GSSAPI (Kerberos) is not served") && e.contains("Kafka's default"), "{e}");
        assert!(refused(&[("sasl.mechanism.inter.broker.protocol", "OAUTHBEARER"), ("listener.name.internal.sasl.enabled.mechanisms", "OAUTHBEARER")]).contains("OAUTHBEARER"));
        assert!(refused(&[("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-256")]).contains("must be included in sasl.enabled.mechanisms"), "Kafka's rule");
        assert!(refused(&[("sasl.mechanism.inter.broker.protocol", "MD5")]).contains("unknown mechanism"));
        let missing = refused(&[("listener.name.internal.scram-sha-512.sasl.jaas.config", "")]);
        assert!(missing.contains("listener.name.internal.scram-sha-512.sasl.jaas.config") && missing.contains("credentials"), "{missing}");
        let no_password = refused(&[("listener.name.internal.scram-sha-512.sasl.jaas.config", r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="broker";"#)]);
        assert!(no_password.contains("a password"), "{no_password}");
        assert!(refused(&[("listener.name.internal.scram-sha-512.sasl.jaas.config", r#"org.apache.kafka.common.security.scram.ScramLoginModule required password="x";"#)]).contains("a username"));
        // The controller listener: SASL_SSL with PLAIN, read by a controller and by a broker-only node.
        let controller = [
            ("listener.security.protocol.map", "INTERNAL:SASL_SSL,CONTROLLER:SASL_SSL"),
            ("listener.name.controller.sasl.enabled.mechanisms", "PLAIN"),
            ("sasl.mechanism.controller.protocol", "PLAIN"),
            ("listener.name.controller.plain.sasl.jaas.config", r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="node" password="node-pw" user_node="node-pw";"#),
        ];
        let c = with(&controller).expect("a SASL_SSL controller listener");
        let t = &c.topology;
        assert_eq!(t.controller_listener().map(|l| l.protocol), Some(SecurityProtocol::SaslSsl));
        assert!(t.controller_ssl.is_some(), "TLS to the controllers");
        assert_eq!(t.controller_sasl.as_ref().map(|l| (l.mechanism, l.username.as_str(), l.password.0.as_str())), Some((SaslMechanism::Plain, "node", "node-pw")));
        let mut broker_only = props(&base);
        broker_only.extend(props(&controller));
        broker_only.extend(props(&[("process.roles", "broker"), ("node.id", "4"), ("listeners", "INTERNAL://127.0.0.1:9094")]));
        let c = Config::from_properties(broker_only).expect("a broker-only node reaching a SASL_SSL controller listener");
        assert_eq!(c.topology.controller_sasl.map(|l| l.username), Some("node".into()));
        assert!(c.topology.controller_ssl.is_some());
        let mut controller_gssapi = controller.to_vec();
        controller_gssapi.retain(|(k, _)| *k != "sasl.mechanism.controller.protocol");
        let e = refused(&controller_gssapi);
        assert!(e.contains("sasl.mechanism.controller.protocol") && e.contains("GSSAPI (Kerberos) is not served"), "{e}");
        let mut no_login = controller.to_vec();
        no_login[3] = ("listener.name.controller.plain.sasl.jaas.config", r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_node="node-pw";"#);
        assert!(refused(&no_login).contains("a username"), "the node's own login is required");
        let ssl_controller = with(&[("listener.security.protocol.map", "INTERNAL:SASL_SSL,CONTROLLER:SSL")]).expect("an SSL controller listener");
        assert!(ssl_controller.topology.controller_ssl.is_some() && ssl_controller.topology.controller_sasl.is_none());
        assert!(with(&[]).unwrap().topology.controller_ssl.is_none(), "PLAINTEXT by default");
        // A broker-only node reaching an SSL controller listener needs only the trust store (the
        // key store, when set, is offered to a controller asking for client certificates).
        let trust_only = props(&[
            ("process.roles", "broker"),
            ("node.id", "4"),
            ("listeners", "PLAINTEXT://127.0.0.1:9092"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:SSL"),
            ("controller.listener.names", "CONTROLLER"),
            ("controller.quorum.voters", "1@127.0.0.1:9093"),
            ("inter.broker.listener.name", "PLAINTEXT"),
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.location", "/ca.pem"),
        ]);
        let ssl = Config::from_properties(trust_only.clone()).expect("a trust store alone").topology.controller_ssl.expect("TLS to the controllers");
        assert_eq!((ssl.keystore, ssl.truststore), (None, Some(TrustStore::Pem(PemSource::File("/ca.pem".into())))));
        let mut with_keystore = trust_only.clone();
        with_keystore.extend(props(&[("ssl.keystore.type", "PEM"), ("ssl.keystore.location", "/k.pem")]));
        assert_eq!(Config::from_properties(with_keystore).unwrap().topology.controller_ssl.unwrap().keystore, Some(KeyStore::File("/k.pem".into())));
        // A controller serves the listener: there the key store stays required.
        let mut controller_without = trust_only;
        controller_without.extend(props(&[("process.roles", "broker,controller"), ("node.id", "1"), ("listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093")]));
        let e = Config::from_properties(controller_without).unwrap_err().to_string();
        assert!(e.contains("ssl.keystore.location") && e.contains("needs its certificate and key"), "{e}");

        // A single node (no quorum) has no inter-broker traffic: nothing to log in with.
        let single = Config::from_properties(props(&[("listeners", "SASL_PLAINTEXT://127.0.0.1:9092"), ("sasl.enabled.mechanisms", "SCRAM-SHA-256")])).expect("a single SASL node");
        assert!(single.topology.inter_broker_sasl.is_none());
    }

    #[test]
    fn sasl_listeners_take_mechanisms_and_plain_users_from_kafkas_properties() {
        let base = [
            ("listeners", "PLAINTEXT://127.0.0.1:9092,SASL_PLAINTEXT://127.0.0.1:9093,SECURE://127.0.0.1:9094"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SECURE:SASL_SSL"),
            ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-256"),
            ("listener.name.sasl_plaintext.plain.sasl.jaas.config", r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret" user_bob="bob pw";"#),
            ("listener.name.secure.sasl.enabled.mechanisms", "SCRAM-SHA-512"),
            ("listener.name.secure.connections.max.reauth.ms", "60000"),
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", "/etc/fjord/broker.pem"),
        ];
        let c = Config::from_properties(props(&base)).expect("SASL listeners");
        let t = &c.topology;
        let sasl = t.listeners[1].sasl.as_ref().expect("SASL settings");
        assert_eq!(sasl.mechanisms, vec![SaslMechanism::Plain, SaslMechanism::ScramSha256]);
        assert_eq!(sasl.plain_users.iter().map(|(u, p)| (u.as_str(), p.0.as_str())).collect::<Vec<_>>(), vec![("alice", "alice-secret"), ("bob", "bob pw")]);
        assert_eq!(sasl.max_reauth_ms, 0);
        assert!(t.listeners[1].ssl.is_none() && t.listeners[0].sasl.is_none());
        let secure = &t.listeners[2];
        assert_eq!(secure.protocol, SecurityProtocol::SaslSsl);
        assert!(secure.ssl.is_some(), "SASL_SSL has the TLS of SSL");
        let s = secure.sasl.as_ref().expect("SASL settings");
        assert_eq!((s.mechanisms.clone(), s.max_reauth_ms), (vec![SaslMechanism::ScramSha512], 60_000));
        assert_eq!((c.sasl_server_max_receive_size, c.connection_failed_authentication_delay_ms), (524288, 100), "Kafka's defaults");
        assert!(!format!("{sasl:?}").contains("alice-secret"), "passwords never reach Debug output");
        assert!(is_sensitive("listener.name.sasl_plaintext.plain.sasl.jaas.config"));
        assert!(is_known_key("listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config") && is_known_key("plain.sasl.jaas.config"));
        assert!(is_known_key("listener.name.secure.connections.max.reauth.ms") && is_known_key("listener.name.ssl.ssl.client.auth"));
        assert!(!is_known_key("listener.name.x.no.such.key") && !is_known_key("md5.sasl.jaas.config"));

        let refused = |extra: &[(&str, &str)], why: &str| {
            let mut p = props(&base);
            p.extend(props(extra));
            Config::from_properties(p).expect_err(why).to_string()
        };
        assert!(refused(&[("sasl.enabled.mechanisms", "GSSAPI")], "Kerberos").contains("GSSAPI (Kerberos) is not served"));
        let jwt = ("listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class", "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler");
        assert!(refused(&[("sasl.enabled.mechanisms", "OAUTHBEARER"), jwt], "no JWKS").contains("needs the JWKS"));
        assert!(refused(&[("sasl.enabled.mechanisms", "OAUTHBEARER"), jwt, ("sasl.oauthbearer.jwks.endpoint.url", "ftp://idp/jwks")], "ftp").contains("expected a file:, https: or http: URL"));
        assert!(refused(&[("sasl.enabled.mechanisms", "OAUTHBEARER"), jwt, ("sasl.oauthbearer.jwks.endpoint.url", "https://idp/jwks"), ("sasl.oauthbearer.jwks.endpoint.refresh.ms", "soon")], "refresh").contains("expected milliseconds"));
        // An https endpoint: its timings, and the trust store from the OAUTHBEARER JAAS options.
        let mut p = props(&base);
        p.extend(props(&[
            ("sasl.enabled.mechanisms", "OAUTHBEARER"),
            jwt,
            ("sasl.oauthbearer.jwks.endpoint.url", "https://idp:8443/jwks"),
            ("sasl.oauthbearer.jwks.endpoint.refresh.ms", "60000"),
            ("listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config", r#"org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required ssl.truststore.location="/etc/idp-ca.pem";"#),
        ]));
        let c = Config::from_properties(p).expect("an https JWKS endpoint");
        let l = c.topology.listeners.iter().find(|l| l.name == "SASL_PLAINTEXT").expect("listener");
        let Some(JwksSource::Endpoint(keys)) = l.sasl.as_ref().and_then(|s| s.oauthbearer.jwt.as_ref()).map(|j| j.jwks.clone()) else { panic!("an endpoint") };
        assert_eq!((keys.url.as_str(), keys.refresh_ms, keys.retry_backoff_ms, keys.retry_backoff_max_ms), ("https://idp:8443/jwks", 60_000, 100, 10_000));
        assert_eq!(keys.truststore, Some(TrustStore::Pem(PemSource::File("/etc/idp-ca.pem".into()))));
        assert!(refused(&[("sasl.enabled.mechanisms", "OAUTHBEARER"), ("listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class", "com.example.Mine")], "another class").contains("OAUTHBEARER validates with"));
        assert!(refused(&[("sasl.enabled.mechanisms", "DIGEST-MD5")], "unknown").contains("unknown mechanism DIGEST-MD5"));
        assert!(refused(&[("listener.name.sasl_plaintext.plain.sasl.jaas.config", "")], "PLAIN without users").contains("PLAIN needs its users"));
        assert!(refused(&[("listener.name.sasl_plaintext.plain.sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required;")], "the wrong module").contains("PlainLoginModule"));
        let bad = refused(&[("listener.name.sasl_plaintext.plain.sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"s3cret")], "unclosed");
        assert!(bad.contains("not closed") && !bad.contains("s3cret"), "{bad}");
        assert!(refused(&[("listener.name.secure.connections.max.reauth.ms", "-1")], "negative lifetime").contains("connections.max.reauth.ms"));
        // Un-prefixed forms are not read, as in Kafka: alone they stop startup with Kafka's message;
        // beside the prefixed one they are ignored.
        for unread in ["plain.sasl.jaas.config", "sasl.jaas.config"] {
            let mut p = props(&base);
            let users = p.remove("listener.name.sasl_plaintext.plain.sasl.jaas.config").expect("the listener's users");
            p.insert(unread.into(), users.clone());
            let e = Config::from_properties(p.clone()).expect_err(unread).to_string();
            assert!(e.contains("Could not find a 'KafkaServer' or 'sasl_plaintext.KafkaServer' entry") && e.contains("set listener.name.sasl_plaintext.plain.sasl.jaas.config"), "{e}");
            // (With sasl.jaas.config set, any mechanism without its prefixed login module stops
            // startup as above: here one listener enables PLAIN alone.)
            let beside = props(&[
                ("listeners", "SASL_PLAINTEXT://127.0.0.1:9093"),
                ("sasl.enabled.mechanisms", "PLAIN"),
                ("listener.name.sasl_plaintext.plain.sasl.jaas.config", &users),
                (unread, "org.apache.kafka.common.security.plain.PlainLoginModule required user_carol=c;"),
            ]);
            let c = Config::from_properties(beside).expect("the prefixed one read");
            let users = &c.topology.listeners[0].sasl.as_ref().unwrap().plain_users;
            assert!(users.contains_key("alice") && !users.contains_key("carol"), "{unread} ignored");
        }
    }

    #[test]
    fn principal_mapping_rules_are_read_per_listener_and_an_invalid_rule_stops_startup() {
        let base = [("listeners", "SSL://127.0.0.1:0,INTERNAL://127.0.0.1:0"), ("listener.security.protocol.map", "SSL:SSL,INTERNAL:SSL"), ("ssl.keystore.type", "PEM"), ("ssl.keystore.location", "/k.pem")];
        let mut all = props(&base);
        all.insert("listener.name.internal.ssl.principal.mapping.rules".into(), "RULE:^CN=(.*?),.*$/$1/L".into());
        all.insert("listener.name.internal.ssl.allow.san.changes".into(), "true".into());
        let c = Config::from_properties(all.clone()).expect("valid rules");
        let ssl = |i: usize| c.topology.listeners[i].ssl.clone().expect("SSL");
        assert_eq!(ssl(0).principal_mapping.name("CN=A,O=x").as_deref(), Ok("CN=A,O=x"), "DEFAULT without the property");
        assert_eq!(ssl(1).principal_mapping.name("CN=A,O=x").as_deref(), Ok("a"));
        assert!(!ssl(0).allow_san_changes && ssl(1).allow_san_changes && !ssl(1).allow_dn_changes);
        // ssl.endpoint.identification.algorithm: https by default, empty turns the check off.
        assert!(ssl(0).endpoint_identification && ssl(1).endpoint_identification);
        let mut off = all.clone();
        off.insert("listener.name.internal.ssl.endpoint.identification.algorithm".into(), String::new());
        let c_off = Config::from_properties(off.clone()).expect("empty algorithm");
        assert!(c_off.topology.listeners[0].ssl.as_ref().unwrap().endpoint_identification && !c_off.topology.listeners[1].ssl.as_ref().unwrap().endpoint_identification);
        off.insert("listener.name.internal.ssl.endpoint.identification.algorithm".into(), "ldaps".into());
        assert!(Config::from_properties(off).expect_err("unknown algorithm").to_string().contains("expected https, or empty"));
        all.insert("ssl.principal.mapping.rules".into(), "RULE:^CN=(.*)$/$1/Lx".into());
        let e = Config::from_properties(all.clone()).expect_err("invalid rule").to_string();
        assert!(e.contains("ssl.principal.mapping.rules") && e.contains("unmatched substring: `x`"), "{e}");
        all.remove("ssl.principal.mapping.rules");
        all.insert("ssl.allow.dn.changes".into(), "yes".into());
        assert!(Config::from_properties(all.clone()).is_err());
        all.remove("ssl.allow.dn.changes");
        all.insert("fjord.ssl.reload.check.interval.ms".into(), "-1".into());
        assert!(Config::from_properties(all).is_err());
    }

    #[test]
    fn ssl_listeners_take_their_settings_under_kafkas_names_with_per_listener_overrides() {
        let base = [
            ("listeners", "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093,INTERNAL://127.0.0.1:9094"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,SSL:SSL,INTERNAL:SSL"),
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", "/etc/fjord/broker.pem"),
            ("listener.name.internal.ssl.keystore.location", "/etc/fjord/internal.pem"),
            ("listener.name.internal.ssl.client.auth", "required"),
            ("listener.name.internal.ssl.truststore.type", "PEM"),
            ("listener.name.internal.ssl.truststore.certificates", "-----BEGIN CERTIFICATE-----"),
            ("listener.name.internal.ssl.enabled.protocols", "TLSv1.3"),
        ];
        let c = Config::from_properties(props(&base)).expect("three listeners");
        let t = &c.topology;
        assert_eq!(t.client_listeners().map(|l| (l.name.as_str(), l.protocol)).collect::<Vec<_>>(), vec![("PLAINTEXT", SecurityProtocol::Plaintext), ("SSL", SecurityProtocol::Ssl), ("INTERNAL", SecurityProtocol::Ssl)]);
        assert_eq!(t.inter_broker_listener_name.as_deref(), Some("PLAINTEXT"), "Kafka's default: the listener named PLAINTEXT");
        let ssl = t.listeners[1].ssl.as_ref().expect("SSL settings");
        assert_eq!(ssl.keystore, Some(KeyStore::File("/etc/fjord/broker.pem".into())));
        assert_eq!((ssl.client_auth, ssl.truststore.is_none()), (ClientAuth::None, true));
        assert_eq!(ssl.enabled_protocols, vec![TlsVersion::Tls12, TlsVersion::Tls13]);
        let internal = t.listeners[2].ssl.as_ref().expect("SSL settings");
        assert_eq!(internal.keystore, Some(KeyStore::File("/etc/fjord/internal.pem".into())));
        assert_eq!(internal.client_auth, ClientAuth::Required);
        assert!(matches!(internal.truststore, Some(TrustStore::Pem(PemSource::Text(_)))));
        assert_eq!(internal.enabled_protocols, vec![TlsVersion::Tls13]);
        assert!(!format!("{internal:?}").contains("BEGIN"), "PEM text never reaches Debug output");
        assert!(t.listeners[0].ssl.is_none());
        assert!(is_sensitive("listener.name.internal.ssl.keystore.key") && is_sensitive("ssl.key.password") && !is_sensitive("ssl.keystore.location"));

        let refused = |extra: &[(&str, &str)], why: &str| {
            let mut p = props(&base);
            p.extend(props(extra));
            let e = Config::from_properties(p).expect_err(why);
            e.to_string()
        };
        assert!(refused(&[("ssl.keystore.type", "JKS")], "JKS").contains("not served yet"));
        assert!(refused(&[("ssl.keystore.type", "PKCS12")], "PKCS12 without its password").contains("password is not specified"));
        let mut p12 = props(&base);
        p12.extend(props(&[("listener.name.ssl.ssl.keystore.type", "PKCS12"), ("listener.name.ssl.ssl.keystore.location", "/k.p12"), ("listener.name.ssl.ssl.keystore.password", "pw")]));
        let c = Config::from_properties(p12).expect("a PKCS12 key store");
        assert_eq!(c.topology.listeners[1].ssl.as_ref().and_then(|s| s.keystore.clone()), Some(KeyStore::Pkcs12 { path: "/k.p12".into(), password: Secret("pw".into()) }));
        assert!(refused(&[("ssl.keystore.password", "x")], "a keystore password with PEM").contains("only key password"));
        assert!(refused(&[("ssl.client.auth", "requested")], "client auth without a truststore").contains("truststore"));
        assert!(refused(&[("ssl.client.auth", "sometimes")], "unknown client auth").contains("requested"));
        assert!(refused(&[("ssl.enabled.protocols", "TLSv1.1")], "old TLS").contains("TLSv1.1"));
        assert!(refused(&[("ssl.keystore.key", "k")], "a location and a key").contains("not both"));
        assert!(refused(&[("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,SSL:SASL_SSL,INTERNAL:SSL")], "SASL_SSL").contains("GSSAPI (Kerberos) is not served"));
        let mut no_store = props(&base);
        no_store.remove("ssl.keystore.location");
        assert!(Config::from_properties(no_store).expect_err("no keystore").to_string().contains("ssl.keystore.location"));
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(Config::from_properties(props(&[("num.partitions", "0")])).is_err());
        assert!(Config::from_properties(props(&[("listeners", "SSL://x:1")])).is_err());
        assert!(Config::from_properties(props(&[("auto.create.topics.enable", "yes")])).is_err());
        assert!(Config::from_properties(props(&[("process.roles", "broker")])).is_err(), "no quorum to join");
        assert!(Config::from_properties(props(&[("process.roles", "controller, broker")])).is_ok());
        let c = Config::from_properties(BTreeMap::new()).unwrap();
        assert!(c.log_config(&props(&[("cleanup.policy", "shred")])).is_err());
        assert!(c.log_config(&props(&[("retention.ms", "soon")])).is_err());
    }

    #[test]
    fn the_replica_selector_is_kafkas_rack_aware_one_or_none_and_unknown_classes_stop_startup() {
        assert!(!Config::from_properties(BTreeMap::new()).unwrap().rack_aware_replica_selector, "leader-only by default");
        assert!(Config::from_properties(props(&[("replica.selector.class", RACK_AWARE_REPLICA_SELECTOR)])).unwrap().rack_aware_replica_selector);
        let e = Config::from_properties(props(&[("replica.selector.class", "com.example.Nearest")])).unwrap_err();
        assert!(e.to_string().contains("RackAwareReplicaSelector"), "{e}");
        assert!(broker_def("broker.rack").is_some(), "broker.rack is a known property");
    }

    #[test]
    fn the_authorizer_is_kafkas_standard_one_or_none_and_unknown_classes_stop_startup() {
        assert_eq!(Config::from_properties(BTreeMap::new()).unwrap().authorizer, None, "no authorizer by default");
        let c = Config::from_properties(props(&[
            ("authorizer.class.name", STANDARD_AUTHORIZER),
            ("super.users", "User:admin; User:ANONYMOUS;"),
            ("allow.everyone.if.no.acl.found", "true"),
        ]))
        .unwrap();
        let a = c.authorizer.expect("authorizer");
        assert_eq!(a.super_users.iter().map(String::as_str).collect::<Vec<_>>(), ["User:ANONYMOUS", "User:admin"]);
        assert!(a.allow_everyone_if_no_acl_found);
        let a = Config::from_properties(props(&[("authorizer.class.name", STANDARD_AUTHORIZER)])).unwrap().authorizer.expect("authorizer");
        assert!(a.super_users.is_empty() && !a.allow_everyone_if_no_acl_found, "Kafka's defaults");
        let e = Config::from_properties(props(&[("authorizer.class.name", "kafka.security.authorizer.AclAuthorizer")])).unwrap_err();
        assert!(e.to_string().contains("authorizer.class.name"), "{e}");
    }

    #[test]
    fn compression_type_and_levels_become_the_logs_codec() {
        use crate::records::recompress::TopicCompression as C;
        let c = Config::from_properties(BTreeMap::new()).unwrap();
        assert_eq!(c.log_config(&BTreeMap::new()).unwrap().compression, C::Producer);
        assert_eq!(c.log_config(&props(&[("compression.type", "zstd")])).unwrap().compression, C::Zstd { level: 3 });
        assert_eq!(c.log_config(&props(&[("compression.type", "lz4")])).unwrap().compression, C::Lz4 { level: 9 });
        assert_eq!(c.log_config(&props(&[("compression.type", "gzip")])).unwrap().compression, C::Gzip { level: -1 });
        assert_eq!(c.log_config(&props(&[("compression.type", "zstd"), ("compression.zstd.level", "-5")])).unwrap().compression, C::Zstd { level: -5 });
        let b = Config::from_properties(props(&[("compression.type", "gzip"), ("compression.gzip.level", "9")])).unwrap();
        assert_eq!(b.log_config(&BTreeMap::new()).unwrap().compression, C::Gzip { level: 9 }, "the broker default");
        assert_eq!(b.log_config(&props(&[("compression.type", "uncompressed")])).unwrap().compression, C::Uncompressed);
        assert!(Config::from_properties(props(&[("compression.type", "brotli")])).is_err(), "a bad broker default stops startup");
    }

    #[test]
    fn bad_topic_values_get_kafkas_words() {
        // Each message as Kafka 4.0 answers `kafka-configs --alter --add-config` (INVALID_CONFIG).
        let c = Config::from_properties(BTreeMap::new()).unwrap();
        let refused = |k: &str, v: &str| c.log_config(&props(&[(k, v)])).err().map(|e| e.to_string());
        for (k, v, msg) in [
            ("compression.type", "foo", "Invalid value foo for configuration compression.type: String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"),
            ("compression.zstd.level", "23", "Invalid value 23 for configuration compression.zstd.level: Value must be no more than 22"),
            ("compression.zstd.level", "-131073", "Invalid value -131073 for configuration compression.zstd.level: Value must be at least -131072"),
            ("compression.gzip.level", "0", "Invalid value 0 for configuration compression.gzip.level: Value must be between 1 and 9 or equal to -1"),
            ("compression.gzip.level", "10", "Invalid value 10 for configuration compression.gzip.level: Value must be between 1 and 9 or equal to -1"),
            ("compression.lz4.level", "18", "Invalid value 18 for configuration compression.lz4.level: Value must be no more than 17"),
            ("compression.lz4.level", "0", "Invalid value 0 for configuration compression.lz4.level: Value must be at least 1"),
            ("segment.index.bytes", "3", "Invalid value 3 for configuration segment.index.bytes: Value must be at least 4"),
            ("remote.storage.enable", "true", "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage."),
            ("min.insync.replicas", "0", "Invalid value 0 for configuration min.insync.replicas: Value must be at least 1"),
            ("unclean.leader.election.enable", "maybe", "Invalid value maybe for configuration unclean.leader.election.enable: Expected value to be either true or false"),
            ("segment.jitter.ms", "-1", "Invalid value -1 for configuration segment.jitter.ms: Value must be at least 0"),
            ("local.retention.ms", "-3", "Invalid value -3 for configuration local.retention.ms: Value must be at least -2"),
            ("file.delete.delay.ms", "-1", "Invalid value -1 for configuration file.delete.delay.ms: Value must be at least 0"),
            ("segment.ms", "0", "Invalid value 0 for configuration segment.ms: Value must be at least 1"),
            ("flush.messages", "0", "Invalid value 0 for configuration flush.messages: Value must be at least 1"),
            ("retention.ms", "-2", "Invalid value -2 for configuration retention.ms: Value must be at least -1"),
            ("retention.ms", "soon", "Invalid value soon for configuration retention.ms: Not a number of type LONG"),
            ("segment.bytes", "13", "Invalid value 13 for configuration segment.bytes: Value must be at least 14"),
            ("segment.bytes", "3000000000", "Invalid value 3000000000 for configuration segment.bytes: Not a number of type INT"),
            ("index.interval.bytes", "-1", "Invalid value -1 for configuration index.interval.bytes: Value must be at least 0"),
            ("message.timestamp.after.max.ms", "-1", "Invalid value -1 for configuration message.timestamp.after.max.ms: Value must be at least 0"),
            ("max.compaction.lag.ms", "0", "Invalid value 0 for configuration max.compaction.lag.ms: Value must be at least 1"),
            ("min.cleanable.dirty.ratio", "2", "Invalid value 2.0 for configuration min.cleanable.dirty.ratio: Value must be no more than 1"),
            ("message.timestamp.type", "x", "Invalid value x for configuration message.timestamp.type: String must be one of: CreateTime, LogAppendTime"),
            ("cleanup.policy", "x", "Invalid value x for configuration cleanup.policy: String must be one of: compact, delete"),
        ] {
            assert_eq!(refused(k, v).as_deref(), Some(msg), "{k}={v}");
        }
        for (k, v) in [
            ("compression.zstd.level", "-131072"),
            ("compression.gzip.level", "-1"),
            ("segment.index.bytes", "4"),
            ("preallocate", "true"),
            ("retention.bytes", "-5"),
            ("local.retention.ms", "5"),
            ("leader.replication.throttled.replicas", "*"),
            ("follower.replication.throttled.replicas", "0:1,1:1"),
            ("remote.storage.enable", "false"),
        ] {
            assert_eq!(refused(k, v), None, "{k}={v} is accepted, as by Kafka");
        }
        assert!(refused("leader.replication.throttled.replicas", "x").is_some_and(|m| m.contains("must be the literal '*'")));
    }

    #[test]
    fn replication_throttles_are_parsed_for_this_broker_and_their_rates_checked_as_kafka_checks_them() {
        let c = Config::from_properties(props(&[("node.id", "2")])).unwrap();
        let t = c.topic_settings(&props(&[("leader.replication.throttled.replicas", "0:1,1:2,3:2"), ("follower.replication.throttled.replicas", "*")])).unwrap();
        assert_eq!(t.leader_throttled, ThrottledReplicas::Partitions(vec![1, 3].into()), "only the entries naming broker 2");
        assert_eq!(t.follower_throttled, ThrottledReplicas::All);
        assert_eq!(c.topic_settings(&BTreeMap::new()).unwrap().leader_throttled, ThrottledReplicas::None);
        assert!(c.topic_settings(&props(&[("follower.replication.throttled.replicas", "0-1")])).is_err());
        // Unset: Kafka's Long.MAX_VALUE, unthrottled; 0 is allowed as by Kafka.
        assert_eq!(c.replication_throttled_rate(LEADER_REPLICATION_THROTTLED_RATE).unwrap(), u64::MAX);
        c.dynamic.write().unwrap().per_broker.insert(FOLLOWER_REPLICATION_THROTTLED_RATE.into(), "0".into());
        assert_eq!(c.replication_throttled_rate(FOLLOWER_REPLICATION_THROTTLED_RATE).unwrap(), 0);
        // Kafka 4.0's answers to kafka-configs --alter with these values (INVALID_REQUEST).
        for (v, msg) in [
            ("-1", "Invalid value -1 for configuration leader.replication.throttled.rate: Value must be at least 0"),
            ("abc", "Invalid value abc for configuration leader.replication.throttled.rate: Not a number of type LONG"),
        ] {
            c.dynamic.write().unwrap().cluster_default.insert(LEADER_REPLICATION_THROTTLED_RATE.into(), v.into());
            assert_eq!(c.replication_throttled_rate(LEADER_REPLICATION_THROTTLED_RATE).unwrap_err().to_string(), msg);
        }
        assert!(Config::from_properties(props(&[("follower.replication.throttled.rate", "-5")])).is_err(), "a bad static value stops the start");
        assert!(is_dynamic_broker_config(LEADER_REPLICATION_THROTTLED_RATE) && is_dynamic_broker_config(FOLLOWER_REPLICATION_THROTTLED_RATE));
        assert!(!is_dynamic_broker_config("replication.quota.window.num"));
        let w = Config::from_properties(props(&[("replication.quota.window.num", "3"), ("replication.quota.window.size.seconds", "2")])).unwrap();
        assert_eq!((w.replication.quota_window_num, w.replication.quota_window_size_seconds), (3, 2));
        assert!(Config::from_properties(props(&[("replication.quota.window.num", "0")])).is_err());
    }

    #[test]
    fn topic_configs_without_a_broker_synonym_have_kafkas_defaults() {
        let c = Config::from_properties(BTreeMap::new()).unwrap();
        let none = BTreeMap::new();
        assert_eq!(c.topic_value(&none, "segment.jitter.ms").as_deref(), Some("0"));
        assert_eq!(c.topic_value(&none, "remote.storage.enable").as_deref(), Some("false"));
        assert_eq!(c.topic_value(&none, "leader.replication.throttled.replicas").as_deref(), Some(""));
        assert_eq!(c.topic_value(&none, "segment.index.bytes").as_deref(), Some("10485760"));
        assert_eq!(c.topic_settings(&props(&[("min.insync.replicas", "2")])).unwrap().min_insync_replicas, 2);
        assert_eq!(c.log_config(&props(&[("segment.index.bytes", "4096")])).unwrap().segment_index_bytes, 4096);
        let b = Config::from_properties(props(&[("log.index.size.max.bytes", "8192")])).unwrap();
        assert_eq!(b.log_config(&none).unwrap().segment_index_bytes, 8192);
    }

    #[test]
    fn properties_syntax() {
        let p = parse_properties("# c\n! c\n\na = 1\nb:2\n").unwrap();
        assert_eq!(p.get("a").map(String::as_str), Some("1"));
        assert_eq!(p.get("b").map(String::as_str), Some("2"));
        assert!(parse_properties("novalue\n").is_err());
    }

    #[test]
    fn wildcard_listener_advertises_loopback_and_bound_port() {
        let c = Config::from_properties(props(&[("listeners", "PLAINTEXT://:0")])).unwrap();
        let e = c.advertised_endpoint("0.0.0.0:4567".parse().unwrap());
        assert_eq!(e, Endpoint { host: "127.0.0.1".into(), port: 4567 });
    }
}
