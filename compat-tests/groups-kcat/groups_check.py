#!/usr/bin/env python3
"""Checks for compat-tests/groups-kcat/run.sh.

Member output files hold one line per consumed record, kcat -f '%p %o %s\\n': partition, offset, value
("v<seq>"). Subcommands (exit 0 = pass, 1 = fail with a reason on stdout):

  seen OUT...                          number of distinct record values across the outputs
  steady N PARTS OUT...                exactly-once: values v0..v<N-1> each consumed exactly once,
                                       (partition, offset) pairs are unique, each partition 0..end-1
  failover N KILLED_OUT OUT...         every v0..v<N-1> consumed; a value consumed twice must be one the
                                       killed member consumed (its uncommitted tail), and the killed
                                       member's partitions show up in the survivors' output
  owned OUT                            the partitions present in OUT, space separated
The admin subcommands need confluent-kafka (run them with compat-tests/.venv/bin/python):
  describe BOOTSTRAP GROUP MEMBERS PARTS STATE   DescribeGroups: state, member count, assignment
                                                 (disjoint, covering 0..PARTS-1 when MEMBERS > 0)
  committed BOOTSTRAP GROUP TOPIC PARTS          committed offset == high watermark per partition
"""
import sys


def load(path):
    recs = []
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                # A member killed with SIGKILL may leave its last line half written: not a consumed record.
                break
            line = line.rstrip(b"\n")
            if not line:
                continue
            try:
                p, o, v = line.split(b" ", 2)
                recs.append((int(p), int(o), v.decode()))
            except ValueError:
                print("unparsable line in %s: %r" % (path, line[:100]))
                sys.exit(1)
    return recs


def fail(msg):
    print(msg)
    sys.exit(1)


def cmd_seen(outs):
    vals = set()
    for o in outs:
        vals.update(v for _, _, v in load(o))
    print(len(vals))


def cmd_steady(n, parts, outs):
    by_val = {}
    by_pos = {}
    per_member = []
    for o in outs:
        recs = load(o)
        per_member.append((o, sorted({p for p, _, _ in recs}), len(recs)))
        for p, off, v in recs:
            by_val.setdefault(v, []).append((o, p, off))
            by_pos.setdefault((p, off), []).append(v)
    want = {"v%d" % i for i in range(n)}
    missing = sorted(want - set(by_val), key=lambda s: int(s[1:]))
    dups = {v: w for v, w in by_val.items() if len(w) > 1}
    extra = set(by_val) - want
    pos_dups = {k: v for k, v in by_pos.items() if len(v) > 1}
    gaps = []
    for p in range(parts):
        offs = sorted(off for (pp, off) in by_pos if pp == p)
        if offs != list(range(len(offs))):
            gaps.append(p)
    print("members: " + "; ".join("%s partitions %s records %d" % (o.rsplit("/", 1)[-1], ps, c)
                                  for o, ps, c in per_member))
    if missing or dups or extra or pos_dups or gaps:
        fail("missing %d (e.g. %s), duplicated %d (e.g. %s), unexpected %d, duplicate positions %d, "
             "partitions with offset gaps %s" % (len(missing), missing[:5], len(dups), list(dups.items())[:3],
                                                 len(extra), len(pos_dups), gaps))
    owners = {}
    for o, ps, _ in per_member:
        for p in ps:
            owners.setdefault(p, []).append(o)
    shared = {p: os_ for p, os_ in owners.items() if len(os_) > 1}
    if shared:
        fail("partitions consumed by more than one member in steady state: %s" % shared)
    print("ok: %d records exactly once" % n)


def cmd_failover(n, killed, outs):
    krecs = load(killed)
    killed_vals = {v for _, _, v in krecs}
    killed_parts = {p for p, _, _ in krecs}
    by_val = {}
    survivor_parts = set()
    for o in [killed] + outs:
        for p, off, v in load(o):
            by_val.setdefault(v, []).append((o.rsplit("/", 1)[-1], p, off))
            if o != killed:
                survivor_parts.add(p)
    want = {"v%d" % i for i in range(n)}
    missing = sorted(want - set(by_val), key=lambda s: int(s[1:]))
    if missing:
        fail("%d records never consumed, e.g. %s" % (len(missing), missing[:10]))
    bad_dups = {v: w for v, w in by_val.items() if len(w) > 1 and (v not in killed_vals or len(w) > 2)}
    if bad_dups:
        fail("%d records consumed more than once that were not the killed member's uncommitted tail, e.g. %s"
             % (len(bad_dups), list(bad_dups.items())[:5]))
    redelivered = sum(1 for v, w in by_val.items() if len(w) > 1)
    if not killed_parts <= survivor_parts:
        fail("killed member's partitions %s never reached the survivors (they consumed %s)"
             % (sorted(killed_parts), sorted(survivor_parts)))
    print("ok: all %d records consumed; killed member owned %s; %d of its records re-delivered"
          % (n, sorted(killed_parts), redelivered))


def cmd_owned(out):
    print(" ".join(str(p) for p in sorted({p for p, _, _ in load(out)})))


def admin(bootstrap):
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def cmd_describe(bootstrap, group, members, parts, state):
    from confluent_kafka import ConsumerGroupState  # noqa: F401
    a = admin(bootstrap)
    d = a.describe_consumer_groups([group], request_timeout=15)[group].result(timeout=20)
    got_state = d.state.name
    assigned = []
    for m in d.members:
        assigned.extend(tp.partition for tp in m.assignment.topic_partitions)
    print("group %s: state %s, %d members, assignment %s" % (
        group, got_state, len(d.members),
        [(m.client_id, sorted(tp.partition for tp in m.assignment.topic_partitions)) for m in d.members]))
    if got_state != state:
        fail("state %s, expected %s" % (got_state, state))
    if len(d.members) != members:
        fail("%d members, expected %d" % (len(d.members), members))
    if members and sorted(assigned) != list(range(parts)):
        fail("assignment %s is not a disjoint cover of partitions 0..%d" % (sorted(assigned), parts - 1))
    if members and any(not m.assignment.topic_partitions for m in d.members):
        fail("a member has no partitions")
    print("ok")


def cmd_committed(bootstrap, group, topic, parts):
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka import ConsumerGroupTopicPartitions
    a = admin(bootstrap)
    tps = [TopicPartition(topic, p) for p in range(parts)]
    res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)], request_timeout=15)
    got = {tp.partition: tp.offset for tp in res[group].result(timeout=20).topic_partitions}
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "groups-kcat-watermarks"})
    try:
        hw = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(parts)}
    finally:
        c.close()
    print("committed %s" % dict(sorted(got.items())))
    print("log end   %s" % dict(sorted(hw.items())))
    if got != hw:
        fail("committed offsets differ from the log end offsets")
    print("ok")


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "seen":
        cmd_seen(args)
    elif cmd == "steady":
        cmd_steady(int(args[0]), int(args[1]), args[2:])
    elif cmd == "failover":
        cmd_failover(int(args[0]), args[1], args[2:])
    elif cmd == "owned":
        cmd_owned(args[0])
    elif cmd == "describe":
        cmd_describe(args[0], args[1], int(args[2]), int(args[3]), args[4])
    elif cmd == "committed":
        cmd_committed(args[0], args[1], args[2], int(args[3]))
    else:
        fail("unknown subcommand %s" % cmd)


if __name__ == "__main__":
    main(sys.argv)
