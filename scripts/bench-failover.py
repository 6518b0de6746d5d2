#!/usr/bin/env python3
"""Failover time for scripts/bench-cluster.sh: how long a partition takes writes again after its
leader dies, the same measurement on Fjord and on Kafka.

An acks=all idempotent producer (confluent-kafka, librdkafka) sends to one partition at a steady
rate. Once it has been acknowledged for --steady-s seconds, the partition leader's process is
killed with SIGKILL (by the pid given), and the producer goes on at the same rate. The failover
time is from the kill to the first acknowledgement of a record produced after the kill: such a
record can only be acknowledged by a live leader (a response already on its way from the dead one
cannot count). Also reported: the first acknowledgement of any record after the kill, the last
one before it, and whether every record was acknowledged in the end.

    bench-failover.py --bootstrap LIST --topic T --partition P --kill-pid PID [--rate 1000]
                      [--size 100] [--steady-s 3] [--timeout-s 60]

Prints one JSON object; exits 1 if no record produced after the kill was acknowledged in time.
"""
import argparse
import json
import os
import signal
import sys
import time

from confluent_kafka import Producer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partition", type=int, required=True)
    ap.add_argument("--kill-pid", type=int, required=True)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--steady-s", type=float, default=3.0)
    ap.add_argument("--timeout-s", type=float, default=60.0)
    a = ap.parse_args()

    errors = {}
    producer = Producer({
        "bootstrap.servers": a.bootstrap,
        "acks": "all",
        "enable.idempotence": True,   # the Java client's default; keeps the records in order
        "linger.ms": 5,
        "message.timeout.ms": int(a.timeout_s * 1000) + 30000,
        "error_cb": lambda e: errors.__setitem__(e.str()[:100], errors.get(e.str()[:100], 0) + 1),
    })
    acks = {}      # seq -> ack time (monotonic)
    failed = {}    # seq -> error
    pad = b"x" * max(0, a.size - 12)

    def on_delivery(err, msg):
        seq = int(msg.key())
        if err is None:
            acks[seq] = time.monotonic()
        else:
            failed[seq] = str(err)

    seq = 0
    t_kill = None
    first_after = None          # first seq produced after the kill
    interval = 1.0 / a.rate
    next_at = time.monotonic()
    t_start = next_at
    first_ack = None
    deadline = None
    while True:
        now = time.monotonic()
        if t_kill is None:
            if first_ack is None and acks:
                first_ack = min(acks.values())
            if first_ack is not None and now - first_ack >= a.steady_s:
                os.kill(a.kill_pid, signal.SIGKILL)
                t_kill = time.monotonic()
                first_after = seq
                deadline = t_kill + a.timeout_s
            elif now - t_start > a.timeout_s:
                print(json.dumps({"error": "no acknowledgement before the kill", "client_errors": errors}))
                sys.exit(1)
        else:
            done = [s for s in acks if s >= first_after]
            if done and now - acks[min(done)] >= 1.0:
                break   # one more second of steady sending after the first acknowledgement
            if now > deadline:
                break
        producer.produce(a.topic, key=str(seq).encode(), value=pad + b"%012d" % seq, partition=a.partition,
                         on_delivery=on_delivery)
        seq += 1
        producer.poll(0)
        next_at += interval
        delay = next_at - time.monotonic()
        while delay > 0:   # serve delivery reports while waiting for the next send
            producer.poll(min(delay, 0.001))
            delay = next_at - time.monotonic()
    left = producer.flush(30)

    after = [t for s, t in acks.items() if s >= first_after]
    any_after = [t for t in acks.values() if t > t_kill]
    before = [t for t in acks.values() if t <= t_kill]
    ms = lambda t: round((t - t_kill) * 1000, 1) if t is not None else None
    res = {
        "failover_ms": ms(min(after)) if after else None,
        "first_ack_any_record_ms": ms(min(any_after)) if any_after else None,
        "last_ack_before_kill_ms": ms(max(before)) if before else None,
        "sent": seq,
        "sent_after_kill": seq - first_after,
        "acked": len(acks),
        "failed": len(failed),
        "failed_examples": sorted(set(failed.values()))[:3],
        "unflushed": left,
        "client_errors": errors,
        "rate_msg_s": a.rate,
        "record_bytes": a.size,
        "steady_s_before_kill": a.steady_s,
    }
    print(json.dumps(res))
    sys.exit(0 if after else 1)


if __name__ == "__main__":
    main()
