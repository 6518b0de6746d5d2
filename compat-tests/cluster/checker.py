#!/usr/bin/env python3
"""Fault-injection checker for a Fjord cluster (scripts/cluster.sh), in the manner of Jepsen.

Workload: idempotent acks=all producers (confluent-kafka) send unique values to a few topics with
replication factor 3 and min.insync.replicas 2, while consumers of one group read and commit.
Faults, from a seeded schedule, one at a time on a healthy cluster: kill -9 of a partition's leader
or of the Raft leader (the active controller) and a restart after a while, SIGSTOP/SIGCONT of a
node, kill -9 and a restart with a wiped data dir; and, when the cluster runs behind netproxy.py
(a proxy per directed link between nodes, DIR/netproxy.sock), network partitions between the
nodes, healed after a while: one node isolated from both peers (both directions; packets held,
so peers see timeouts, or, the weaker fault, connections reset), a bridge (two nodes cut from
each other, the third reaching both) and one directed link cut (A cannot reach B, B still
reaches A). Clients reach every node throughout. At the end the cluster is healed, everything is
read back through the clients and, after a clean stop, from every replica's segment files, and one
JSON object is written: anomalies (each must be 0) and availability. Among them: a commit that
succeeded from a consumer after another member of the group had been given that partition (two
members acting as its owner at once; the generation must fence the older one).

Usage: checker.py --cluster-dir DIR --out RESULT.json [--seconds S] [--seed N]
Prints the seed first; --seed N repeats the schedule (the faults, not the exact interleaving).
"""
import argparse
import json
import logging
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "scripts" / "cluster.sh"
GROUP = "checker"
T0 = time.monotonic()

logging.basicConfig(stream=sys.stderr, format="[rdkafka] %(message)s")
RDKAFKA_LOG = logging.getLogger("rdkafka")
RDKAFKA_LOG.setLevel(logging.ERROR)


def now():
    return time.monotonic() - T0


def log(*a):
    print("[checker %7.1fs]" % now(), *a, file=sys.stderr, flush=True)


class Cluster:
    """The nodes of a scripts/cluster.sh directory: signals by the pids it wrote."""

    def __init__(self, path):
        self.dir = Path(path)
        env = dict(line.split("=", 1) for line in (self.dir / "cluster.env").read_text().split())
        self.n, self.port = int(env["N"]), int(env["PORT"])
        self.ids = list(range(1, self.n + 1))
        self.bootstrap = ",".join("127.0.0.1:%d" % (self.port + i) for i in range(self.n))
        self.down = set()
        self.paused = set()
        self.proxy_sock = self.dir / "netproxy.sock"
        self.netproxy = self.proxy_sock.exists()
        self.cut = set()   # directed links (a, b) cut now

    def proxy(self, req):
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from netproxy import control_request
        return control_request(str(self.proxy_sock), req)

    def cut_links(self, links, mode):
        self.proxy({"cmd": "cut", "links": [list(l) for l in links], "mode": mode})
        self.cut.update(links)

    def heal_links(self, links):
        self.proxy({"cmd": "heal", "links": [list(l) for l in links]})
        self.cut.difference_update(links)

    def sh(self, *args, check=True):
        r = subprocess.run([str(CLUSTER_SH), args[0], str(self.dir)] + [str(a) for a in args[1:]],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if check and r.returncode != 0:
            raise RuntimeError("cluster.sh %s: rc %d: %s" % (" ".join(map(str, args)), r.returncode, r.stdout[-2000:]))
        return r

    def kill(self, node):
        self.sh("kill", node)
        self.down.add(node)

    def start(self, node):
        self.sh("start-node", node)
        self.down.discard(node)

    def pause(self, node):
        self.sh("pause", node)
        self.paused.add(node)

    def resume(self, node):
        self.sh("resume", node)
        self.paused.discard(node)

    def wipe(self, node):
        shutil.rmtree(self.dir / ("node-%d" % node) / "data", ignore_errors=True)

    def wait(self, secs=60):
        return self.sh("wait", secs, check=False).returncode == 0

    def heal(self):
        if self.netproxy:
            self.proxy({"cmd": "heal-all"})
            self.cut.clear()
        for n in sorted(self.paused):
            self.resume(n)
        for n in sorted(self.down):
            self.start(n)

    def raft_leader(self):
        """The node whose log last said it became the active controller, by the highest term."""
        best = (-1, None)
        for n in self.ids:
            try:
                text = (self.dir / ("node-%d" % n) / "fjord.log").read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                if "this node is the active controller" in line:
                    m = re.search(r"term\W+(\d+)", re.sub(r"\x1b\[[0-9;]*m", "", line))
                    if m and int(m.group(1)) > best[0]:
                        best = (int(m.group(1)), n)
        return best[1]


class Workload:
    def __init__(self, cluster, topics, partitions):
        self.c = cluster
        self.topics = topics
        self.partitions = partitions
        self.admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "socket.timeout.ms": 5000})
        self.stop = threading.Event()
        self.lock = threading.Lock()
        # Producers: value -> send time; value -> (topic, partition, offset, ack time); value -> error.
        self.sent = {}
        self.acked = {}
        self.failed = {}
        # Consumers: (topic, partition, offset) -> value; anomalies seen while consuming.
        self.consumed = {}
        self.consumed_conflicts = []
        self.consumer_backwards = []
        self.start_below_committed = []
        self.committed_max = {}        # (topic, partition) -> highest offset a successful commit stored
        self.committed_seen = {}       # (topic, partition) -> last committed offset the monitor read
        self.committed_backwards = []
        self.consumer_errors = defaultdict(int)
        self.commit_errors = defaultdict(int)
        self.commits_ok = 0
        # Group ownership, as each consumer saw it: (topic, partition) -> [[cid, assigned at, revoked
        # at or None]]; and each partition's successful commits: (cid, tp, time the commit was sent).
        self.owned = defaultdict(list)
        self.commits = []
        self.client_errors = defaultdict(int)
        self.fatal_errors = []
        self.threads = []

    # -- producers --------------------------------------------------------------------------------
    def producer(self, pid, rate):
        p = Producer({
            "bootstrap.servers": self.c.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 30000,
            "retry.backoff.ms": 100,
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 1000,
            "topic.metadata.refresh.interval.ms": 2000,
            "compression.type": "none",
            "error_cb": lambda e: self.client_error("producer %d" % pid, e),
        }, logger=RDKAFKA_LOG)

        def on_delivery(err, msg):
            if msg.value() is None:
                return
            v = msg.value().decode()
            with self.lock:
                if err is None:
                    self.acked[v] = (msg.topic(), msg.partition(), msg.offset(), now())
                else:
                    self.failed[v] = str(err)

        seq = 0
        interval = 1.0 / rate
        next_at = time.monotonic()
        while not self.stop.is_set():
            v = "p%d-%d" % (pid, seq)
            topic = self.topics[seq % len(self.topics)]
            try:
                p.produce(topic, key=v.encode(), value=v.encode(), on_delivery=on_delivery)
            except BufferError:
                p.poll(0.1)
                continue
            except KafkaException as e:
                # A fatal error (the idempotent producer cannot go on): a new producer takes over,
                # as an application would do; the error is reported. The old one's queue is dropped.
                with self.lock:
                    self.fatal_errors.append(("producer %d produce()" % pid, str(e.args[0]), now()))
                log("producer %d: %s; a new producer takes over" % (pid, e.args[0]))
                return self.producer(pid + 100, rate)
            with self.lock:
                self.sent[v] = now()
            seq += 1
            p.poll(0)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()
        left = p.flush(60)
        log("producer %d: %d sent, %d still unacknowledged after flush" % (pid, seq, left))

    def client_error(self, who, err):
        with self.lock:
            key = "%s%s" % ("FATAL " if err.fatal() else "", err.str()[:120])
            self.client_errors[key] += 1
            if err.fatal():
                self.fatal_errors.append((who, err.str(), now()))
        if err.fatal():
            log("%s: fatal error: %s" % (who, err.str()))

    # -- consumers --------------------------------------------------------------------------------
    def consumer(self, cid):
        last = {}         # (topic, partition) -> last offset consumed in the current assignment
        first = set()     # partitions assigned and not consumed from yet

        def on_assign(c, parts):
            t = now()
            with self.lock:
                for tp in parts:
                    self.owned[(tp.topic, tp.partition)].append([cid, t, None])
            for tp in parts:
                last.pop((tp.topic, tp.partition), None)
                first.add((tp.topic, tp.partition))

        def on_revoke(c, parts):
            # A lost assignment (the member was fenced) must not commit: its generation is over.
            self.commit(c, cid)
            t = now()
            with self.lock:
                for tp in parts:
                    for own in self.owned[(tp.topic, tp.partition)]:
                        if own[0] == cid and own[2] is None:
                            own[2] = t
            for tp in parts:
                last.pop((tp.topic, tp.partition), None)
                first.discard((tp.topic, tp.partition))

        c = Consumer({
            "bootstrap.servers": self.c.bootstrap,
            "group.id": GROUP,
            "client.id": "checker-consumer-%d" % cid,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "topic.metadata.refresh.interval.ms": 2000,
            "error_cb": lambda e: self.client_error("consumer %d" % cid, e),
        }, logger=RDKAFKA_LOG)
        c.subscribe(self.topics, on_assign=on_assign, on_revoke=on_revoke)
        next_commit = time.monotonic() + 1
        while not self.stop.is_set():
            m = c.poll(0.2)
            if m is not None:
                if m.error():
                    self.consumer_errors[m.error().name()] += 1
                else:
                    tp, off, v = (m.topic(), m.partition()), m.offset(), m.value().decode()
                    with self.lock:
                        prev = self.consumed.setdefault((tp[0], tp[1], off), v)
                        if prev != v:
                            self.consumed_conflicts.append((tp, off, prev, v))
                        if tp in first:
                            first.discard(tp)
                            if off < self.committed_max.get(tp, -1):
                                self.start_below_committed.append((cid, tp, off, self.committed_max[tp], now()))
                        if tp in last and off <= last[tp]:
                            self.consumer_backwards.append((cid, tp, last[tp], off, now()))
                    last[tp] = off
            if time.monotonic() >= next_commit:
                next_commit = time.monotonic() + 1
                self.commit(c, cid)
        self.commit(c, cid)
        c.close()

    def commit(self, c, cid):
        sent_at = now()
        try:
            res = c.commit(asynchronous=False)
        except Exception as e:  # noqa: BLE001
            msg = str(e)
            if "_NO_OFFSET" not in msg:  # nothing consumed since the last commit
                self.commit_errors[msg[:80]] += 1
            return
        with self.lock:
            self.commits_ok += 1
            for tp in res or []:
                if tp.error is None and tp.offset >= 0:
                    k = (tp.topic, tp.partition)
                    self.committed_max[k] = max(self.committed_max.get(k, -1), tp.offset)
                    self.commits.append((cid, k, sent_at))

    def stale_owner_commits(self):
        """Commits that succeeded although another consumer had been given the partition: a member
        that took a partition before the committing member let it go (the eager protocol revokes
        everything before a new generation is assigned) means the committer was fenced, and
        the coordinator must refuse its commits (ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID). Two
        members committing one partition at once is what the generation exists to prevent."""
        stale = []
        for cid, k, sent_at in self.commits:
            mine = [o for o in self.owned[k] if o[0] == cid and o[1] <= sent_at and (o[2] is None or sent_at <= o[2])]
            if not mine:
                continue  # not an owner in its own view (a commit of a position kept after a revoke)
            since = max(o[1] for o in mine)
            taken = [o for o in self.owned[k] if o[0] != cid and since < o[1] < sent_at]
            if taken:
                stale.append((cid, k, round(sent_at, 3), taken[0][0], round(taken[0][1], 3)))
        return stale

    def committed_monitor(self):
        """Reads the group's committed offsets (OffsetFetch) every second; one that goes down is an
        anomaly. A consumer that never subscribes asks, so it does not join the group."""
        c = Consumer({"bootstrap.servers": self.c.bootstrap, "group.id": GROUP, "enable.auto.commit": False,
                      "client.id": "checker-monitor"}, logger=RDKAFKA_LOG)
        tps = [TopicPartition(t, p) for t in self.topics for p in range(self.partitions)]
        while not self.stop.is_set():
            time.sleep(1)
            try:
                res = c.committed(tps, timeout=5)
            except Exception:  # noqa: BLE001 - a node down: try again
                continue
            with self.lock:
                for tp in res:
                    if tp.error is not None:
                        continue
                    k = (tp.topic, tp.partition)
                    prev = self.committed_seen.get(k, -1)
                    # Nothing committed yet is a negative offset (-1001); after a commit, any
                    # lower offset, "nothing" included, went backwards.
                    if prev >= 0 and tp.offset < prev:
                        self.committed_backwards.append((k, prev, tp.offset, now()))
                    if tp.offset >= 0:
                        self.committed_seen[k] = tp.offset
        c.close()

    def start(self, producers, consumers, rate):
        for i in range(producers):
            self.threads.append(threading.Thread(target=self.producer, args=(i, rate), daemon=True))
        for i in range(consumers):
            self.threads.append(threading.Thread(target=self.consumer, args=(i,), daemon=True))
        self.threads.append(threading.Thread(target=self.committed_monitor, daemon=True))
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(90)


def partition_leaders(admin, topics):
    md = admin.list_topics(timeout=5)
    out = {}
    for t in topics:
        if t in md.topics:
            for p, pm in md.topics[t].partitions.items():
                out[(t, p)] = (pm.leader, list(pm.replicas), list(pm.isrs))
    return out


def wait_full_isr(admin, topics, n, secs):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        try:
            st = partition_leaders(admin, topics)
            if st and all(len(isr) == n and leader >= 0 for leader, _, isr in st.values()):
                return True
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.5)
    return False


class Nemesis:
    FAULTS = ["kill-partition-leader", "kill-raft-leader", "pause", "wipe"]
    WEIGHTS = [4, 3, 3, 1]
    # Behind netproxy.py the partitions take a share of the same time budget.
    NET_FAULTS = FAULTS + ["isolate", "bridge", "one-way"]
    NET_WEIGHTS = [3, 2, 2, 1, 3, 1, 1]

    def __init__(self, cluster, admin, topics, rnd):
        self.c, self.admin, self.topics, self.rnd = cluster, admin, topics, rnd
        if cluster.netproxy:
            self.FAULTS, self.WEIGHTS = self.NET_FAULTS, self.NET_WEIGHTS
        self.events = []
        self.windows = []   # (start, end) of each fault, in checker time

    def event(self, **kw):
        kw["t"] = round(now(), 2)
        self.events.append(kw)
        log("nemesis:", json.dumps(kw))

    def run(self, until):
        while now() < until:
            # Quiet time first, then a fault only on a healed cluster with full ISRs.
            time.sleep(self.rnd.uniform(3, 8))
            if now() >= until:
                break
            healthy = self.c.wait(30) and wait_full_isr(self.admin, self.topics, self.c.n, 30)
            if not healthy:
                self.event(kind="not-healthy", note="cluster not whole or ISRs not full within 30 s; fault anyway")
            kind = self.rnd.choices(self.FAULTS, self.WEIGHTS)[0]
            hold = self.rnd.uniform(3, 12)
            start = now()
            if kind == "kill-partition-leader":
                try:
                    st = partition_leaders(self.admin, self.topics)
                    tp = self.rnd.choice(sorted(st))
                    node = st[tp][0]
                except Exception as e:  # noqa: BLE001
                    self.event(kind=kind, error=str(e))
                    continue
                if node not in self.c.ids:
                    self.event(kind=kind, error="no leader for %s" % (tp,))
                    continue
                self.c.kill(node)
                self.event(kind=kind, node=node, partition="%s-%d" % tp, hold_s=round(hold, 1))
                time.sleep(hold)
                self.c.start(node)
            elif kind == "kill-raft-leader":
                node = self.c.raft_leader() or self.rnd.choice(self.c.ids)
                self.c.kill(node)
                self.event(kind=kind, node=node, hold_s=round(hold, 1))
                time.sleep(hold)
                self.c.start(node)
            elif kind == "pause":
                node = self.rnd.choice(self.c.ids)
                self.c.pause(node)
                self.event(kind=kind, node=node, hold_s=round(hold, 1))
                time.sleep(hold)
                self.c.resume(node)
            elif kind in ("isolate", "bridge", "one-way"):
                node = self.partition(kind, hold)
            else:
                node = self.rnd.choice(self.c.ids)
                self.c.kill(node)
                self.c.wipe(node)
                self.event(kind=kind, node=node, hold_s=round(hold, 1))
                time.sleep(hold)
                self.c.start(node)
            self.windows.append((start, now()))
            self.event(kind="healed", node=node)


    def partition(self, kind, hold):
        """Cuts links for `hold` seconds, then heals them; the node(s) named in the event."""
        ids = self.c.ids
        leader = self.c.raft_leader()
        if kind == "isolate":
            # Half the time the Raft leader (the active controller), else any node.
            node = leader if leader is not None and self.rnd.random() < 0.5 else self.rnd.choice(ids)
            links = [(node, o) for o in ids if o != node] + [(o, node) for o in ids if o != node]
            mode = self.rnd.choices(["blackhole", "reset"], [2, 1])[0]
            detail = dict(node=node, raft_leader=leader)
        elif kind == "bridge":
            # The bridge reaches both others; they cannot reach each other.
            node = self.rnd.choice(ids)
            a, b = [o for o in ids if o != node][:2]
            links = [(a, b), (b, a)]
            mode = "blackhole"
            detail = dict(node=node, cut_between=[a, b], raft_leader=leader)
        else:
            a = self.rnd.choice(ids)
            b = self.rnd.choice([o for o in ids if o != a])
            links = [(a, b)]
            mode = "blackhole"
            node = a
            detail = dict(node=a, unreachable=b, raft_leader=leader)
        self.c.cut_links(links, mode)
        self.event(kind=kind, mode=mode, links=["%d->%d" % l for l in links], hold_s=round(hold, 1), **detail)
        time.sleep(hold)
        self.c.heal_links(links)
        return node


# -- reading replicas from disk ------------------------------------------------------------------
def varint(buf, pos):
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    return (result >> 1) ^ -(result & 1), pos


def read_segments(part_dir):
    """offset -> value of the data records of one replica's uncompressed v2 batches."""
    out = {}
    for seg in sorted(part_dir.glob("*.log")):
        buf = seg.read_bytes()
        pos = 0
        while pos + 61 <= len(buf):
            base, length = struct.unpack_from(">qi", buf, pos)
            if length <= 0 or pos + 12 + length > len(buf):
                break
            attrs = struct.unpack_from(">h", buf, pos + 21)[0]
            count = struct.unpack_from(">i", buf, pos + 57)[0]
            if attrs & 0x20 or attrs & 0x07:  # control batch, or compressed (the workload sends none)
                pos += 12 + length
                continue
            r = pos + 61
            for _ in range(count):
                rlen, r = varint(buf, r)
                end = r + rlen
                r += 1  # attributes
                _, r = varint(buf, r)       # timestamp delta
                odelta, r = varint(buf, r)  # offset delta
                klen, r = varint(buf, r)
                r += max(klen, 0)
                vlen, r = varint(buf, r)
                out[base + odelta] = buf[r:r + vlen].decode(errors="replace") if vlen >= 0 else None
                r = end
            pos += 12 + length
    return out


def check_replicas(cluster, topics, partitions, hw):
    """Every replica's log below the high watermark: the same record at each offset, no gaps."""
    divergent, gaps, two_offsets = [], [], []
    for t in topics:
        for p in range(partitions):
            logs = {}
            for n in cluster.ids:
                d = cluster.dir / ("node-%d" % n) / "data" / ("%s-%d" % (t, p))
                if d.is_dir():
                    logs[n] = read_segments(d)
            top = hw.get((t, p), 0)
            for n, lg in logs.items():
                missing = [o for o in range(top) if o not in lg]
                if missing:
                    gaps.append({"partition": "%s-%d" % (t, p), "node": n, "missing": len(missing), "first": missing[0]})
                where = {}
                for o, v in lg.items():
                    if o < top and v in where and where[v] != o:
                        two_offsets.append({"partition": "%s-%d" % (t, p), "node": n, "value": v, "offsets": [where[v], o]})
                    where.setdefault(v, o)
            for o in range(top):
                vals = {n: lg[o] for n, lg in logs.items() if o in lg}
                if len(set(vals.values())) > 1:
                    divergent.append({"partition": "%s-%d" % (t, p), "offset": o, "values": vals})
    return divergent, gaps, two_offsets


def read_back(bootstrap, topics, partitions, timeout_s=120):
    """(topic, partition) -> [(offset, value)] up to the high watermarks, and the watermarks."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "checker-readback", "enable.auto.commit": False,
                  "enable.partition.eof": True, "auto.offset.reset": "error"}, logger=RDKAFKA_LOG)
    tps = [(t, p) for t in topics for p in range(partitions)]
    hw = {}
    for t, p in tps:
        hw[(t, p)] = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
    c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in tps])
    out = {tp: [] for tp in tps}
    eof = set()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(eof) < len(tps):
        m = c.poll(0.5)
        if m is None:
            continue
        k = (m.topic(), m.partition())
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                if not out[k] or out[k][-1][0] >= hw[k] - 1:
                    eof.add(k)
                continue
            raise RuntimeError(str(m.error()))
        out[k].append((m.offset(), m.value().decode()))
    c.close()
    return out, hw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cluster-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=150)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--topics", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--consumers", type=int, default=2)
    ap.add_argument("--rate", type=float, default=150, help="records per second per producer")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else int.from_bytes(os.urandom(4), "big") % 1_000_000
    print("seed %d" % seed, flush=True)
    rnd = random.Random(seed)

    cluster = Cluster(a.cluster_dir)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, "socket.timeout.ms": 5000})
    topics = ["check-%d" % i for i in range(a.topics)]
    fs = admin.create_topics([NewTopic(t, num_partitions=a.partitions, replication_factor=3,
                                       config={"min.insync.replicas": "2"}) for t in topics], request_timeout=15)
    for t, f in fs.items():
        f.result(timeout=20)
    if not wait_full_isr(admin, topics, cluster.n, 30):
        log("topics not fully replicated within 30 s: %s" % partition_leaders(admin, topics))

    wl = Workload(cluster, topics, a.partitions)
    wl.start(a.producers, a.consumers, a.rate)
    time.sleep(5)  # a warm-up without faults
    nemesis = Nemesis(cluster, admin, topics, rnd)
    fault_start = now()
    nemesis.run(fault_start + a.seconds)
    fault_end = now()
    log("faults over; healing")
    cluster.heal()
    healed = cluster.wait(60)
    full_isr = wait_full_isr(admin, topics, cluster.n, 60)
    time.sleep(5)  # the workload runs on the healed cluster
    # Let consumers reach the ends before stopping everything.
    wl.finish()
    log("workload stopped: %d sent, %d acked, %d failed" % (len(wl.sent), len(wl.acked), len(wl.failed)))

    got, hw = read_back(cluster.bootstrap, topics, a.partitions)
    log("read back %d records; stopping the cluster to read every replica" % sum(len(v) for v in got.values()))
    cluster.sh("stop", check=False)
    divergent, gaps, two_offsets = check_replicas(cluster, topics, a.partitions, hw)

    where = defaultdict(list)
    for (t, p), recs in got.items():
        for o, v in recs:
            where[v].append((t, p, o))
    lost = [v for v in wl.acked if v not in where]
    # An acknowledgement without an offset is librdkafka's implicit ack: a request whose outcome the
    # client never learnt (a timeout, a dropped connection) is known persisted once a later request
    # of the same idempotent producer is acknowledged. Such a record must still be in the log once
    # (the lost and duplicate checks), in the partition it was sent to.
    implicit = [v for v, (_, _, o, _) in wl.acked.items() if o is None or o < 0]
    moved = [v for v, (t, p, o, _) in wl.acked.items()
             if v in where and (t, p, o) not in where[v] and not ((o is None or o < 0) and any((t, p) == (t2, p2) for t2, p2, _ in where[v]))]
    dups = [v for v, locs in where.items() if len(locs) > 1]
    unknown = [v for v in where if v not in wl.sent]
    final = {(t, p, o): v for (t, p), recs in got.items() for o, v in recs}
    consumed_mismatch = [(k, v, final.get(k)) for k, v in wl.consumed.items() if final.get(k) != v and k[2] < hw.get((k[0], k[1]), 0)]

    def in_fault(ts):
        return any(s <= ts <= e for s, e in nemesis.windows)

    sent_in_faults = [v for v, ts in wl.sent.items() if in_fault(ts)]
    sent_all = list(wl.sent)
    avail_faults = (sum(1 for v in sent_in_faults if v in wl.acked) / len(sent_in_faults)) if sent_in_faults else None
    avail_all = (sum(1 for v in sent_all if v in wl.acked) / len(sent_all)) if sent_all else None
    consumed_total = len(wl.consumed)
    stale_commits = wl.stale_owner_commits()

    result = {
        "seed": seed,
        "fault_seconds": round(fault_end - fault_start, 1),
        "nodes": cluster.n,
        "topics": topics,
        "partitions": a.partitions,
        "faults": [e for e in nemesis.events if e["kind"] != "healed"],
        "fault_counts": dict(sorted(Counter(e["kind"] for e in nemesis.events if e["kind"] != "healed").items())),
        "network_partitions": cluster.netproxy,
        "healed": healed,
        "full_isr_after_heal": full_isr,
        "sent": len(wl.sent),
        "acked": len(wl.acked),
        "acked_without_offset": len(implicit),
        "send_errors": len(wl.failed),
        "send_error_kinds": sorted({e.split(":")[0][:60] for e in wl.failed.values()})[:10],
        "anomalies": {
            "lost_acked_records": len(lost),
            "acked_offset_differs": len(moved),
            "duplicates": len(dups),
            "records_never_sent": len(unknown),
            "replica_divergent_offsets": len(divergent),
            "record_at_two_offsets": len(two_offsets),
            "consumed_record_differs_from_log": len(consumed_mismatch),
            "consumer_offsets_backwards": len(wl.consumer_backwards),
            "consumer_started_below_committed": len(wl.start_below_committed),
            "client_fatal_errors": len(wl.fatal_errors),
            "committed_offsets_backwards": len(wl.committed_backwards),
            "commit_by_fenced_owner": len(stale_commits),
        },
        "availability": {
            "acked_share_during_faults": None if avail_faults is None else round(avail_faults, 4),
            "acked_share_overall": None if avail_all is None else round(avail_all, 4),
            "sent_during_faults": len(sent_in_faults),
        },
        "consumer": {
            "records_consumed": consumed_total,
            "acked_records_never_consumed": sum(1 for v, (t, p, o, _) in wl.acked.items() if (t, p, o) not in wl.consumed),
            "commits_ok": wl.commits_ok,
            "assignments": sum(len(v) for v in wl.owned.values()),
            "partitions_that_changed_owner": sum(1 for v in wl.owned.values() if len({o[0] for o in v}) > 1),
            "commit_errors": dict(wl.commit_errors),
            "errors": dict(wl.consumer_errors),
        },
        "replica_gaps_below_hw": gaps,
        "examples": {
            "lost_acked_records": [(v, wl.acked[v][:3]) for v in lost[:5]],
            "acked_offset_differs": [(v, wl.acked[v][:3], where[v]) for v in moved[:5]],
            "duplicates": [(v, where[v]) for v in dups[:5]],
            "replica_divergent_offsets": divergent[:5],
            "record_at_two_offsets": two_offsets[:5],
            "consumed_record_differs_from_log": consumed_mismatch[:5],
            "consumer_offsets_backwards": wl.consumer_backwards[:5],
            "consumer_started_below_committed": wl.start_below_committed[:5],
            "committed_offsets_backwards": wl.committed_backwards[:5],
            "commit_by_fenced_owner": stale_commits[:5],
            "client_fatal_errors": wl.fatal_errors[:5],
        },
        "client_errors": dict(wl.client_errors),
    }
    Path(a.out).write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str), flush=True)


if __name__ == "__main__":
    main()
