#!/usr/bin/env python3
"""Real clients against a 3-node Fjord cluster (scripts/cluster.sh), for compat-tests/cluster-clients.

Subcommands (each prints PASS/FAIL lines that run.sh counts; details go to stderr):
  create TOPIC:PARTITIONS...       RF-3 topics with min.insync.replicas=2, every partition led
  partition TOPIC P                prints "LEADER REPLICAS ISR" (comma lists) from Metadata
  wait-partition TOPIC P [--not-leader K] [--isr N] [--timeout S]
                                   waits until the partition's leader is not K and its ISR has N
                                   members (without K when --not-leader is given); prints the state
                                   and the seconds it took; rc 1 on timeout
  wait-healed [--timeout S]        every partition of every topic has its full ISR
  produce-kill --client confluent|kafka-python --topic T
                                   sends continuously to partition 0 of T, kill -9s its leader 2 s in,
                                   keeps sending until acknowledgements resumed, restarts the node,
                                   reads everything back and checks every acknowledged value
  group-kill --topic T --group G   a kafkajs group consumer (group.js) reads T; the group's
                                   coordinator is kill -9ed; more records are produced; the consumer
                                   gets them all and its committed offsets reach the log end

The cluster is found through --cluster-dir (cluster.env and the node pid files cluster.sh writes);
nodes are killed and restarted with scripts/cluster.sh, by the pids it wrote.
"""
import argparse
import json
import logging
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CLUSTER_SH = REPO / "scripts" / "cluster.sh"
T0 = time.monotonic()

logging.basicConfig(stream=sys.stderr, format="[%(name)s] %(message)s")
RDKAFKA_LOG = logging.getLogger("rdkafka")
RDKAFKA_LOG.setLevel(logging.ERROR)
logging.getLogger("kafka").setLevel(logging.CRITICAL)


def log(*a):
    print("[clients %6.1fs]" % (time.monotonic() - T0), *a, file=sys.stderr, flush=True)


RESULTS = {"pass": 0, "fail": 0}


def check(name, ok, detail="", ok_detail=""):
    """One PASS/FAIL line: detail explains a failure, ok_detail (if any) follows a pass."""
    RESULTS["pass" if ok else "fail"] += 1
    d = ok_detail if ok else detail
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, (": " + d) if d else ""), flush=True)
    return ok


def quiet_error_cb(err):
    # Connection refused to the killed node and the like: expected here, the checks judge outcomes.
    pass


class Cluster:
    def __init__(self, path):
        self.dir = Path(path)
        env = dict(line.split("=", 1) for line in (self.dir / "cluster.env").read_text().split())
        self.n, self.port = int(env["N"]), int(env["PORT"])
        self.ids = list(range(1, self.n + 1))

    def addr(self, node):
        return "127.0.0.1:%d" % (self.port + node - 1)

    def pid(self, node):
        try:
            return int((self.dir / ("node-%d" % node) / "pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def running(self, node):
        pid = self.pid(node)
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        # A killed node not yet reaped by its parent is a zombie: not running.
        try:
            return Path("/proc/%d/stat" % pid).read_text().split(") ")[1][0] != "Z"
        except (OSError, IndexError):
            return False

    def live(self):
        return [n for n in self.ids if self.running(n)]

    def bootstrap(self, nodes=None):
        return ",".join(self.addr(n) for n in (nodes or self.live()))

    def sh(self, *args):
        r = subprocess.run([str(CLUSTER_SH), args[0], str(self.dir)] + [str(a) for a in args[1:]],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError("cluster.sh %s: rc %d: %s" % (" ".join(map(str, args)), r.returncode, r.stdout[-2000:]))
        return r.stdout

    def kill(self, node):
        self.sh("kill", node)
        deadline = time.monotonic() + 10
        while self.running(node) and time.monotonic() < deadline:
            time.sleep(0.05)
        log("node %d killed with SIGKILL" % node)

    def start(self, node):
        self.sh("start-node", node)
        log("node %d restarted" % node)


def admin(cluster):
    return AdminClient({"bootstrap.servers": cluster.bootstrap(), "socket.timeout.ms": 5000,
                        "error_cb": quiet_error_cb}, logger=RDKAFKA_LOG)


def partition_state(cluster, topic, partition):
    """(leader, replicas, isr) of one partition as a live node's Metadata shows it, or None."""
    try:
        md = admin(cluster).list_topics(topic, timeout=5)
    except KafkaException:
        return None
    t = md.topics.get(topic)
    if t is None or t.error is not None or partition not in t.partitions:
        return None
    p = t.partitions[partition]
    return p.leader, list(p.replicas), list(p.isrs)


def wait_partition(cluster, topic, partition, not_leader=None, isr=None, timeout=30.0):
    """Polls Metadata until the condition holds; returns (state, seconds) or (last state, None)."""
    start = time.monotonic()
    state = None
    while time.monotonic() - start < timeout:
        state = partition_state(cluster, topic, partition)
        if state is not None:
            leader, _replicas, isrs = state
            ok = leader >= 0
            if not_leader is not None:
                ok = ok and leader != not_leader and not_leader not in isrs
            if isr is not None:
                ok = ok and len(isrs) == isr
            if ok:
                return state, time.monotonic() - start
        time.sleep(0.2)
    return state, None


def wait_healed(cluster, timeout=60.0):
    """Every partition of every topic (internal ones too) has a leader and a full ISR."""
    start = time.monotonic()
    short = "no metadata"
    while time.monotonic() - start < timeout:
        try:
            md = admin(cluster).list_topics(timeout=5)
            short = []
            for t in md.topics.values():
                for p in t.partitions.values():
                    if p.leader < 0 or len(p.isrs) < len(p.replicas):
                        short.append("%s-%d leader %d isr %s replicas %s" % (t.topic, p.id, p.leader, p.isrs, p.replicas))
            if not short:
                return time.monotonic() - start, None
        except KafkaException as e:
            short = str(e)
        time.sleep(0.25)
    return None, short


def watermarks(consumer, topic, partition, secs=15.0):
    """ListOffsets, retried on retriable errors (NOT_LEADER_OR_FOLLOWER while a client's metadata
    catches up with a leadership change) as an application would."""
    deadline = time.monotonic() + secs
    while True:
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
        except KafkaException as e:
            if not e.args[0].retriable() or time.monotonic() > deadline:
                raise
            log("watermarks of %s-%d: %s; retrying" % (topic, partition, e.args[0].str()))
            time.sleep(0.2)


def read_partitions(cluster, topic, partitions, timeout=60.0):
    """Every record of the partitions up to their high watermarks: {(p, offset): value}, and the HWMs."""
    c = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": "cluster-clients-reader",
                  "enable.auto.commit": False, "isolation.level": "read_uncommitted",
                  "error_cb": quiet_error_cb}, logger=RDKAFKA_LOG)
    hwm = {}
    for p in partitions:
        hwm[p] = watermarks(c, topic, p)[1]
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records = {}
    pos = {p: 0 for p in partitions}
    deadline = time.monotonic() + timeout
    while any(pos[p] < hwm[p] for p in partitions) and time.monotonic() < deadline:
        for m in c.consume(500, 1.0):
            if m.error():
                continue
            records[(m.partition(), m.offset())] = m.value().decode()
            pos[m.partition()] = max(pos[m.partition()], m.offset() + 1)
    c.close()
    return records, hwm


# -- restart-probe --------------------------------------------------------------------------------
def raw_metadata_v1(port, topic, timeout=1.0):
    """Metadata v1 for one topic straight from one node: (broker ids, {partition: (leader, isr)}, topic error)."""
    name = topic.encode()
    body = struct.pack(">hhih", 3, 1, 7, 13) + b"restart-probe" + struct.pack(">ih", 1, len(name)) + name
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sk:
        sk.settimeout(timeout)
        sk.sendall(struct.pack(">i", len(body)) + body)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = sk.recv(65536)
            if not chunk:
                raise OSError("closed")
            buf += chunk
    pos = 8
    (n,) = struct.unpack_from(">i", buf, pos); pos += 4
    brokers = []
    for _ in range(n):
        (node,) = struct.unpack_from(">i", buf, pos); pos += 4
        (hl,) = struct.unpack_from(">h", buf, pos); pos += 2 + hl + 4
        (rl,) = struct.unpack_from(">h", buf, pos); pos += 2 + max(rl, 0)
        brokers.append(node)
    pos += 4  # controller id
    (nt,) = struct.unpack_from(">i", buf, pos); pos += 4
    parts, terr = {}, None
    for _ in range(nt):
        (terr,) = struct.unpack_from(">h", buf, pos); pos += 2
        (tl,) = struct.unpack_from(">h", buf, pos); pos += 2 + tl + 1
        (np_,) = struct.unpack_from(">i", buf, pos); pos += 4
        for _ in range(np_):
            _perr, pid, leader = struct.unpack_from(">hii", buf, pos); pos += 10
            (nr,) = struct.unpack_from(">i", buf, pos); pos += 4 + 4 * nr
            (ni,) = struct.unpack_from(">i", buf, pos); pos += 4
            isr = list(struct.unpack_from(">%di" % ni, buf, pos)); pos += 4 * ni
            parts[pid] = (leader, isr)
    return sorted(brokers), parts, terr


def restart_probe(cluster, node, topic, partition, seconds=4.0):
    """Restarts `node` and asks it for Metadata every 10 ms from the moment its client port
    accepts until `seconds` after its first answer: it must never name a leader other than the one the cluster has (the leadership
    moved away when it was killed and nothing moves it back). Kafka's broker serves no client
    request before it has caught up with the metadata log."""
    before = partition_state(cluster, topic, partition)
    if before is None or before[0] in (-1, node):
        return check("restarted node %d answers Metadata only from a caught-up image" % node, False,
                     "no leader other than node %d before the restart: %s" % (node, before))
    leader = before[0]
    cluster.start(node)
    port = cluster.port + node - 1
    start = time.monotonic()
    answers, wrong, first = 0, [], None
    # Until `seconds` after the first answer (at most 15 s for the node to answer at all).
    while time.monotonic() - start < (15 if first is None else first + seconds):
        try:
            brokers, parts, terr = raw_metadata_v1(port, topic)
        except (OSError, struct.error):
            time.sleep(0.01)
            continue
        t = time.monotonic() - start
        first = first if first is not None else t
        answers += 1
        got = parts.get(partition)
        if got is not None and got[0] != leader:
            wrong.append("%.2fs: leader %d isr %s brokers %s" % (t, got[0], got[1], brokers))
        time.sleep(0.01)
    log("restart probe of node %d: %d answers from %.2f s, %d naming another leader than %d: %s" % (
        node, answers, first or -1, len(wrong), leader, wrong[:5]))
    return check("restarted node %d answers Metadata only from a caught-up image (%s-%d led by %d)" % (
        node, topic, partition, leader), answers > 0 and not wrong,
        ("%d of %d answers in its first %.0f s of answering name another leader (the node replays the "
         "metadata log and serves the images on the way): %s" % (len(wrong), answers, seconds, "; ".join(wrong[:3])))
        if answers else "no answer within 15 s of the start",
        "%d answers from %.2f s after the start, every one naming leader %d" % (answers, first, leader))


# -- produce-kill -----------------------------------------------------------------------------------
class ConfluentSender:
    name = "confluent-kafka %s (librdkafka %s), acks=all, enable.idempotence=true"

    def __init__(self, bootstrap, on_ack, on_err):
        import confluent_kafka
        self.name = self.name % (confluent_kafka.__version__, confluent_kafka.libversion()[0])
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                           "linger.ms": 5, "message.timeout.ms": 60000, "retry.backoff.ms": 100,
                           "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 500,
                           "error_cb": quiet_error_cb}, logger=RDKAFKA_LOG)

        def delivered(err, msg):
            if err is None:
                on_ack(msg.value().decode(), msg.offset())
            else:
                on_err(msg.value().decode(), str(err))
        self.delivered = delivered

    def send(self, topic, value):
        self.p.produce(topic, key=value.encode(), value=value.encode(), partition=0, on_delivery=self.delivered)
        self.p.poll(0)

    def flush(self, secs):
        return self.p.flush(secs)


class KafkaPythonSender:
    # kafka-python 3.x turns idempotence on by default; this check wants the plain acks=all producer
    # with retries on, so duplicates are possible and counted, not failed.
    name = "kafka-python %s, acks='all', enable_idempotence=False, retries on (until delivery_timeout_ms)"

    def __init__(self, bootstrap, on_ack, on_err):
        import kafka
        from kafka import KafkaProducer
        self.name = self.name % kafka.__version__
        self.p = KafkaProducer(bootstrap_servers=bootstrap.split(","), acks="all", enable_idempotence=False,
                               linger_ms=5, delivery_timeout_ms=60000, request_timeout_ms=10000,
                               retry_backoff_ms=100, reconnect_backoff_ms=50, reconnect_backoff_max_ms=500)
        self.on_ack, self.on_err = on_ack, on_err

    def send(self, topic, value):
        f = self.p.send(topic, key=value.encode(), value=value.encode(), partition=0)
        f.add_callback(lambda md, v=value: self.on_ack(v, md.offset))
        f.add_errback(lambda e, v=value: self.on_err(v, repr(e)))

    def flush(self, secs):
        try:
            self.p.flush(secs)
        finally:
            self.p.close(5)
        return 0


def produce_kill(cluster, client, topic, rate=200, kill_after=2.0, tail_s=1.5, resume_timeout=30.0):
    state = partition_state(cluster, topic, 0)
    if state is None or state[0] < 0:
        check("%s: %s-0 has a leader before the kill" % (client, topic), False, str(state))
        return
    leader = state[0]
    lock = threading.Lock()
    sent, acked, failed = {}, {}, {}
    # kill: when the leader was killed; resumed: the first acknowledgement of a value sent after it.
    mark = {"kill": None, "resumed": None}

    def on_ack(v, off):
        with lock:
            acked[v] = off
            if mark["kill"] is not None and mark["resumed"] is None and sent.get(v, 0) > mark["kill"]:
                mark["resumed"] = time.monotonic()

    def on_err(v, err):
        with lock:
            failed[v] = err

    sender = (ConfluentSender if client == "confluent" else KafkaPythonSender)(cluster.bootstrap(), on_ack, on_err)
    log("%s: sending to %s-0 (leader %d) at %d/s; kill -9 of node %d in %.0f s" % (sender.name, topic, leader, rate, leader, kill_after))
    start = time.monotonic()
    killed_at = None
    resumed_at = None
    i = 0
    next_at = start
    while True:
        t = time.monotonic()
        if killed_at is None and t - start >= kill_after:
            cluster.kill(leader)
            killed_at = time.monotonic()
            with lock:
                mark["kill"] = killed_at
        if killed_at is not None:
            with lock:
                resumed_at = mark["resumed"]
            if resumed_at is not None and t - resumed_at >= tail_s:
                break
            if t - killed_at >= resume_timeout:
                break
        v = "%s-%06d" % (client, i)
        with lock:
            sent[v] = time.monotonic()
        try:
            sender.send(topic, v)
        except BufferError:
            with lock:
                del sent[v]
            time.sleep(0.05)
            continue
        i += 1
        next_at += 1.0 / rate
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.monotonic()
    if resumed_at is not None:
        log("%s: acknowledgements resumed %.1f s after the kill" % (client, resumed_at - killed_at))
    left = sender.flush(90)
    log("%s: %d sent, %d acknowledged, %d failed, %d left after flush" % (client, len(sent), len(acked), len(failed), left))
    # Read back from the two nodes left, then restart the killed one.
    records, hwm = read_partitions(cluster, topic, [0])
    after = partition_state(cluster, topic, 0)
    cluster.start(leader)

    check("%s: a new leader for %s-0 after kill -9 of leader %d" % (client, topic, leader),
          after is not None and after[0] not in (-1, leader), "metadata now: %s" % (after,),
          "node %s" % (after[0] if after else None))
    check("%s: acknowledgements resumed after the kill (%s)" % (client, sender.name),
          resumed_at is not None, "no value sent after the kill acknowledged within %.0f s" % resume_timeout,
          ("%.1f s after the kill" % (resumed_at - killed_at)) if resumed_at else "")
    with lock:
        no_report = sorted(set(sent) - set(acked) - set(failed))
        errors = Counter(failed.values())
    counts = "%d sent, %d acknowledged, %d reported errors%s" % (
        len(sent), len(acked), len(failed), (" %s" % dict(errors.most_common(3))) if errors else "")
    check("%s: every send got a delivery report (success or a reported error)" % client, not no_report,
          "%s; no report for %d, e.g. %s" % (counts, len(no_report), no_report[:3]), counts)

    by_value = Counter(records.values())
    missing = sorted(v for v in acked if by_value[v] == 0)
    check("%s: every acknowledged value is in the log (read back up to the high watermark)" % client,
          not missing and len(records) == hwm[0],
          "%d of %d acknowledged values missing, e.g. %s; %d records read, high watermark %d" % (
              len(missing), len(acked), missing[:5], len(records), hwm[0]),
          "%d records, high watermark %d" % (len(records), hwm[0]))
    misplaced = sorted(v for v, off in acked.items() if records.get((0, off)) != v)
    check("%s: every acknowledged value is at the offset its delivery report gave" % client, not misplaced,
          "%d misplaced, e.g. %s" % (len(misplaced), [(v, acked[v], records.get((0, acked[v]))) for v in misplaced[:3]]))
    unknown = sorted(v for v in by_value if v not in sent)
    check("%s: the log holds only values that were sent" % client, not unknown, "e.g. %s" % unknown[:5])
    dups = sorted(v for v, n in by_value.items() if n > 1)
    if client == "confluent":
        check("%s: no value twice in the log (idempotent producer: every acknowledged value exactly once)" % client,
              not dups, "%d values twice, e.g. %s" % (len(dups), [(v, [o for (p, o), x in records.items() if x == v]) for v in dups[:3]]))
    else:
        print("INFO %s: %d values twice in the log (allowed: no idempotence, retries on)%s" % (
            client, len(dups), (", e.g. %s" % dups[:3]) if dups else ""), flush=True)
    secs, short = wait_healed(cluster, 45)
    check("%s: node %d rejoined, every ISR full again" % (client, leader), secs is not None,
          "not after 45 s: %s" % short, ("%.1f s after the restart" % secs) if secs is not None else "")


# -- group-kill -------------------------------------------------------------------------------------
def produce_values(cluster, topic, values, partitions):
    """Idempotent acks=all, keyed; returns {value: (partition, offset)} of the acknowledged ones."""
    acked, errs = {}, []
    p = Producer({"bootstrap.servers": cluster.bootstrap(), "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5, "message.timeout.ms": 60000, "error_cb": quiet_error_cb}, logger=RDKAFKA_LOG)

    def delivered(err, msg):
        if err is None:
            acked[msg.value().decode()] = (msg.partition(), msg.offset())
        else:
            errs.append(str(err))
    for i, v in enumerate(values):
        p.produce(topic, key=v.encode(), value=v.encode(), partition=i % partitions, on_delivery=delivered)
        p.poll(0)
    p.flush(90)
    return acked, errs


def coordinator_of(cluster, group):
    """(coordinator id, state) from AdminClient describe_consumer_groups, or (None, error)."""
    try:
        a = admin(cluster)  # kept alive until the result is in: a destroyed client never resolves it
        d = a.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
        return d.coordinator.id, str(d.state).split(".")[-1]
    except Exception as e:  # noqa: BLE001 - reported as the check's detail
        return None, repr(e)


def coordinator_by_kafka_tool(cluster, group, kafka_bin):
    """The COORDINATOR (ID) column of kafka-consumer-groups.sh --describe --state."""
    r = subprocess.run([os.path.join(kafka_bin, "kafka-consumer-groups.sh"), "--bootstrap-server", cluster.bootstrap(),
                        "--describe", "--state", "--group", group], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=60)
    log("kafka-consumer-groups.sh --describe --state:\n" + r.stdout.strip())
    m = re.search(r"127\.0\.0\.1:\d+\s+\((\d+)\)", r.stdout)
    return (int(m.group(1)) if m else None), r.stdout.strip()


def committed_vs_end(cluster, group, topic, partitions):
    a = admin(cluster)
    from confluent_kafka import ConsumerGroupTopicPartitions
    f = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])],
                                      request_timeout=10)[group]
    committed = {tp.partition: tp.offset for tp in f.result(timeout=15).topic_partitions}
    c = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": "cluster-clients-hwm", "error_cb": quiet_error_cb},
                 logger=RDKAFKA_LOG)
    end = {p: watermarks(c, topic, p)[1] for p in partitions}
    c.close()
    return committed, end


def group_kill(cluster, topic, group, partitions, n_before, n_after, kafka_bin, work):
    values_before = ["g-%05d" % i for i in range(n_before)]
    values_after = ["g-%05d" % i for i in range(n_before, n_before + n_after)]
    acked, errs = produce_values(cluster, topic, values_before, partitions)
    if not check("kafkajs group: %d records produced before the consumer starts" % n_before,
                 len(acked) == n_before and not errs, "%d acknowledged, errors %s" % (len(acked), errs[:3])):
        return

    consumed = []          # (partition, offset, value)
    events = []
    lock = threading.Lock()
    env = dict(os.environ, BOOTSTRAP=cluster.bootstrap(), TOPIC=topic, GROUP=group)
    stderr = open(os.path.join(work, "group-js.err"), "w")
    proc = subprocess.Popen(["node", str(HERE / "group.js")], env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)

    def reader():
        with open(os.path.join(work, "group-js.out"), "w") as out:
            for line in proc.stdout:
                out.write(line)
                out.flush()
                parts = line.rstrip("\n").split(" ", 3)
                with lock:
                    if parts[0] == "M" and len(parts) == 4:
                        consumed.append((int(parts[1]), int(parts[2]), parts[3]))
                    elif parts[0] == "E":
                        events.append((time.monotonic(), line.strip()[2:]))
    th = threading.Thread(target=reader, daemon=True)
    th.start()

    def distinct():
        with lock:
            return {v for (_p, _o, v) in consumed}

    def wait_values(want, secs):
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline and proc.poll() is None:
            if want <= distinct():
                return True
            time.sleep(0.1)
        return want <= distinct()

    try:
        t = time.monotonic()
        ok = wait_values(set(values_before), 40)
        if not check("kafkajs group: the group consumer reads the first %d records" % n_before, ok,
                     "%d of %d after %.0f s (node rc %s)" % (len(distinct() & set(values_before)), n_before,
                                                               time.monotonic() - t, proc.poll()),
                     "in %.1f s" % (time.monotonic() - t)):
            return
        coord, state = coordinator_of(cluster, group)
        tool_coord, tool_out = coordinator_by_kafka_tool(cluster, group, kafka_bin)
        if not check("kafkajs group: coordinator of %s found (describe_consumer_groups: node %s, %s; "
                     "kafka-consumer-groups.sh --describe --state: node %s)" % (group, coord, state, tool_coord),
                     coord is not None and coord == tool_coord and state == "STABLE",
                     "they must agree and the group be Stable; the tool said: %s" % tool_out[-300:].replace("\n", " | ")):
            return
        cluster.kill(coord)
        killed_at = time.monotonic()
        acked2, errs2 = produce_values(cluster, topic, values_after, partitions)
        check("kafkajs group: %d more records produced after the coordinator's kill" % n_after,
              len(acked2) == n_after and not errs2, "%d acknowledged, errors %s" % (len(acked2), errs2[:3]),
              "every one acknowledged")
        acked.update(acked2)
        ok = wait_values(set(values_after), 60)
        got = distinct()
        with lock:
            ev = [e for (ts, e) in events if ts >= killed_at]
            total = len(consumed)
            wrong = [(p, o, v) for (p, o, v) in consumed if acked.get(v) != (p, o)]
        check("kafkajs group: after kill -9 of coordinator node %d the consumer gets every remaining record" % coord,
              ok, "%d of %d after 60 s; node rc %s; events since the kill: %s" % (
                  len(got & set(values_after)), n_after, proc.poll(), ev[-8:]),
              "all %d, %.1f s after the kill" % (n_after, time.monotonic() - killed_at))
        log("kafkajs events since the kill: %s" % ev)
        print("INFO kafkajs group: %d records consumed, %d distinct, %d re-delivered; events after the kill: %s" % (
            total, len(got), total - len(got), "; ".join(ev)[:600]), flush=True)
        check("kafkajs group: every consumed record is the one acknowledged at its partition and offset", not wrong,
              "%d differ, e.g. %s" % (len(wrong), wrong[:3]))
        coord2, state2 = coordinator_of(cluster, group)
        check("kafkajs group: the group has a new coordinator (not node %d) and is Stable" % coord,
              coord2 is not None and coord2 != coord and state2 == "STABLE", "coordinator %s, %s" % (coord2, state2))
        # Auto-commit runs every 500 ms while the consumer is up: wait for it to reach the log end.
        deadline = time.monotonic() + 20
        while True:
            try:
                committed, end = committed_vs_end(cluster, group, topic, list(range(partitions)))
            except Exception as e:  # noqa: BLE001
                committed, end = str(e), {}
            if committed == end or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        check("kafkajs group: auto-committed offsets reach the log end while the consumer runs",
              committed == end, "committed %s, log end %s" % (committed, end), "%s" % end)
    finally:
        if proc.poll() is None:
            proc.terminate()  # group.js disconnects on SIGTERM (leaves the group)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        th.join(5)
        stderr.close()
    check("kafkajs group: the consumer disconnects and exits 0", proc.returncode == 0, "rc %s" % proc.returncode)
    committed, end = committed_vs_end(cluster, group, topic, list(range(partitions)))
    check("kafkajs group: committed offsets read after the test == log end offsets (%s)" % (
        sum(end.values())), committed == end, "committed %s, log end %s" % (committed, end), "%s" % committed)
    cluster.start(coord)
    secs, short = wait_healed(cluster, 45)
    check("kafkajs group: node %d rejoined, every ISR full again" % coord, secs is not None,
          "not after 45 s: %s" % short, ("%.1f s after the restart" % secs) if secs is not None else "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cluster-dir", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("topics", nargs="+")
    c = sub.add_parser("partition")
    c.add_argument("topic")
    c.add_argument("partition", type=int)
    c = sub.add_parser("wait-partition")
    c.add_argument("topic")
    c.add_argument("partition", type=int)
    c.add_argument("--not-leader", type=int)
    c.add_argument("--isr", type=int)
    c.add_argument("--timeout", type=float, default=30)
    c = sub.add_parser("wait-healed")
    c.add_argument("--timeout", type=float, default=45)
    c = sub.add_parser("restart-probe")
    c.add_argument("node", type=int)
    c.add_argument("topic")
    c.add_argument("partition", type=int)
    c.add_argument("--seconds", type=float, default=4)
    c = sub.add_parser("produce-kill")
    c.add_argument("--client", choices=["confluent", "kafka-python"], required=True)
    c.add_argument("--topic", required=True)
    c.add_argument("--rate", type=int, default=200)
    c = sub.add_parser("group-kill")
    c.add_argument("--topic", required=True)
    c.add_argument("--group", required=True)
    c.add_argument("--partitions", type=int, default=3)
    c.add_argument("--before", type=int, default=300)
    c.add_argument("--after", type=int, default=300)
    c.add_argument("--kafka-bin", required=True)
    c.add_argument("--work", required=True)
    args = ap.parse_args()
    cluster = Cluster(args.cluster_dir)

    if args.cmd == "create":
        a = admin(cluster)
        new = []
        for spec in args.topics:
            name, parts = spec.split(":")
            new.append(NewTopic(name, int(parts), 3, config={"min.insync.replicas": "2"}))
        for name, f in a.create_topics(new, request_timeout=15).items():
            f.result(timeout=20)
        for spec in args.topics:
            name, parts = spec.split(":")
            for p in range(int(parts)):
                state, secs = wait_partition(cluster, name, p, isr=3, timeout=20)
                if secs is None:
                    print("topic %s partition %d not ready: %s" % (name, p, state), file=sys.stderr)
                    return 1
        return 0
    if args.cmd == "partition":
        s = partition_state(cluster, args.topic, args.partition)
        if s is None:
            return 1
        print(s[0], ",".join(map(str, s[1])), ",".join(map(str, s[2])))
        return 0
    if args.cmd == "wait-partition":
        state, secs = wait_partition(cluster, args.topic, args.partition, args.not_leader, args.isr, args.timeout)
        if state is not None:
            print(state[0], ",".join(map(str, state[1])), ",".join(map(str, state[2])), "%.1f" % (secs or -1))
        return 0 if secs is not None else 1
    if args.cmd == "wait-healed":
        secs, short = wait_healed(cluster, args.timeout)
        print("%.1f" % secs if secs is not None else "not healed: %s" % short)
        return 0 if secs is not None else 1
    if args.cmd == "restart-probe":
        restart_probe(cluster, args.node, args.topic, args.partition, args.seconds)
    elif args.cmd == "produce-kill":
        produce_kill(cluster, args.client, args.topic, rate=args.rate)
    elif args.cmd == "group-kill":
        group_kill(cluster, args.topic, args.group, args.partitions, args.before, args.after, args.kafka_bin, args.work)
    return 1 if RESULTS["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
