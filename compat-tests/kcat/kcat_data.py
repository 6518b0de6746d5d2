#!/usr/bin/env python3
"""Data generator and checkers for the kcat suite (stdlib only).

gen     writes kcat -P input: KEY \\x1f VALUE \\x1e per record. Values carry their sequence number, have
        varied sizes (1 B .. 30 KB) and arbitrary bytes except the two delimiters.
verify  parses kcat -C output written with FORMAT below (lengths first, so any byte is safe) and checks it
        is byte-identical to what gen produced: every record exactly once, headers intact, per partition
        offsets 0..n-1 and records in send order, one key -> one partition.
meta    checks kcat -L -J output: the broker is listed and the topic has the expected partition count.
query   checks kcat -Q output against the timestamps seen by verify (first offset with ts >= target).
"""
import json
import random
import re
import sys

KEY_DELIM = b"\x1f"
MSG_DELIM = b"\x1e"
# kcat -f format used by run.sh; header line then KEY+VALUE bytes then newline.
FORMAT = "%p %o %T %K %S %h\\n%k%s\\n"
ALPHABET = bytes(b for b in range(256) if b not in (KEY_DELIM[0], MSG_DELIM[0]))


def records(n, seed):
    """Deterministic list of (key, value) pairs."""
    rnd = random.Random(seed)
    out = []
    for seq in range(n):
        key = b"key-%d" % (seq % 1000) if seq % 7 else b"k\x00\xff\x80-%d" % (seq % 13)
        r = rnd.random()
        size = rnd.randint(0, 100) if r < 0.8 else rnd.randint(100, 2000) if r < 0.98 else rnd.randint(2000, 30000)
        if seq % 3 == 0:
            body = rnd.randbytes(size).translate(None, KEY_DELIM + MSG_DELIM)
        else:
            body = bytes(rnd.choices(b"abcdefghijklmnopqrstuvwxyz0123456789 ", k=size))
        out.append((key, b"seq=%d;" % seq + body))
    return out


def gen(path, n, seed):
    with open(path, "wb") as f:
        for key, value in records(n, seed):
            f.write(key + KEY_DELIM + value + MSG_DELIM)


def parse(path):
    """Yields (partition, offset, ts, key, value, headers) from kcat -f FORMAT output."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        nl = data.index(b"\n", pos)
        p, o, ts, klen, vlen, hdrs = data[pos:nl].split(b" ", 5)
        pos = nl + 1
        klen, vlen = int(klen), int(vlen)
        key = None if klen < 0 else data[pos:pos + max(klen, 0)]
        pos += max(klen, 0)
        value = None if vlen < 0 else data[pos:pos + vlen]
        pos += max(vlen, 0)
        if data[pos:pos + 1] != b"\n":
            raise SystemExit("malformed kcat output at byte %d" % pos)
        pos += 1
        yield int(p), int(o), int(ts), key, value, hdrs.decode()


def verify(out_path, n, seed, headers, partitions, ts_out):
    sent = records(n, seed)
    errors = []
    seen = {}
    by_part = {}
    key_part = {}
    for p, o, ts, key, value, hdrs in parse(out_path):
        m = re.match(rb"seq=(\d+);", value or b"")
        if not m:
            errors.append("p%d o%d: value without seq: %r" % (p, o, (value or b"")[:40]))
            continue
        seq = int(m.group(1))
        if seq in seen:
            errors.append("seq %d duplicated (p%d o%d and p%d o%d)" % ((seq,) + seen[seq] + (p, o)))
        seen[seq] = (p, o)
        if seq >= n or (key, value) != sent[seq]:
            errors.append("seq %d at p%d o%d: bytes differ from what was sent" % (seq, p, o))
        if hdrs != headers:
            errors.append("seq %d: headers %r, expected %r" % (seq, hdrs, headers))
        if key_part.setdefault(key, p) != p:
            errors.append("key %r in partitions %d and %d" % (key, key_part[key], p))
        by_part.setdefault(p, []).append((o, seq, ts))
    missing = n - len(seen)
    if missing:
        errors.append("%d of %d records missing (e.g. seq %s)" % (
            missing, n, [s for s in range(n) if s not in seen][:5]))
    for p, rows in sorted(by_part.items()):
        offs = [o for o, _, _ in rows]
        if offs != list(range(len(offs))):
            errors.append("partition %d offsets not 0..%d in order: %s..." % (p, len(offs) - 1, offs[:10]))
        seqs = [s for _, s, _ in rows]
        bad = next((i for i in range(1, len(seqs)) if seqs[i] <= seqs[i - 1]), None)
        if bad is not None:
            errors.append("partition %d out of send order at offset %d: seq %d after %d" % (
                p, offs[bad], seqs[bad], seqs[bad - 1]))
    if partitions and sorted(by_part) != list(range(partitions)):
        errors.append("records landed in partitions %s, expected all of 0..%d" % (sorted(by_part), partitions - 1))
    if ts_out:
        with open(ts_out, "w") as f:
            json.dump({str(p): [[o, ts] for o, _, ts in rows] for p, rows in by_part.items()}, f)
    for e in errors[:30]:
        print(e)
    if errors:
        raise SystemExit("%d problems" % len(errors))
    print("ok: %d records, partitions %s" % (len(seen), {p: len(r) for p, r in sorted(by_part.items())}))


def meta(path, topic, partitions):
    md = json.load(open(path))
    errors = []
    if not md.get("brokers"):
        errors.append("no brokers listed: %s" % md)
    topics = {t["topic"]: t for t in md.get("topics", [])}
    if topic not in topics:
        errors.append("topic %s not listed (have %s)" % (topic, sorted(topics)))
    else:
        t = topics[topic]
        if t.get("error"):
            errors.append("topic error %s" % t["error"])
        parts = sorted(p["partition"] for p in t["partitions"])
        if parts != list(range(partitions)):
            errors.append("partitions %s, expected 0..%d" % (parts, partitions - 1))
        broker_ids = {b["id"] for b in md["brokers"]}
        for p in t["partitions"]:
            if p.get("leader") not in broker_ids:
                errors.append("partition %d leader %s not a listed broker %s" % (p["partition"], p.get("leader"), broker_ids))
    for e in errors:
        print(e)
    if errors:
        raise SystemExit(1)
    print("ok:", json.dumps(md)[:300])


def query_targets(ts_path, partition):
    """Prints 'target expected_offset' lines for partition from verify's timestamps."""
    rows = json.load(open(ts_path))[str(partition)]
    tss = [ts for _, ts in rows]
    mid = tss[len(tss) // 2]
    targets = sorted({tss[0] - 1000, tss[0], mid, mid + 1, tss[-1], tss[-1] + 1})
    for t in targets:
        exp = next((o for o, ts in rows if ts >= t), -1)
        print(t, exp)


def main(argv):
    cmd = argv[1]
    if cmd == "gen":
        gen(argv[2], int(argv[3]), int(argv[4]))
    elif cmd == "verify":
        verify(argv[2], int(argv[3]), int(argv[4]), argv[5], int(argv[6]), argv[7] if len(argv) > 7 else None)
    elif cmd == "meta":
        meta(argv[2], argv[3], int(argv[4]))
    elif cmd == "targets":
        query_targets(argv[2], int(argv[3]))
    elif cmd == "format":
        print(FORMAT)
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
