#!/usr/bin/env python3
"""Topic set-up for the benchmarks, spoken in the Kafka protocol itself so that Fjord and Kafka get
the very same requests: CreateTopics v2, then Metadata v4 until every partition has a leader (and,
with a replication factor above 1, as many in-sync replicas); DeleteTopics v1; DescribeQuorum v0.

    bench-admin.py create HOST:PORT TOPIC PARTITIONS [RF [KEY=VALUE...]]
                                                        exits non-zero on any error code; the
                                                        KEY=VALUE pairs are topic configs
    bench-admin.py delete HOST:PORT TOPIC...            exits non-zero on any error code
    bench-admin.py leaders HOST:PORT TOPIC              one line per partition: index leader isr-size
    bench-admin.py controller HOST:PORT                 the metadata quorum's leader (the active
                                                        controller), asked with DescribeQuorum v0
"""
import socket
import struct
import sys
import time

CLIENT_ID = b"fjord-bench"


def _string(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _call(sock, api_key, version, correlation_id, body):
    header = struct.pack(">hhih", api_key, version, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    frame = header + body
    sock.sendall(struct.pack(">i", len(frame)) + frame)
    size = struct.unpack(">i", _read(sock, 4))[0]
    response = _read(sock, size)
    if struct.unpack(">i", response[:4])[0] != correlation_id:
        raise RuntimeError("response to another request")
    return response[4:]


def _read(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise RuntimeError("connection closed by the broker")
        out += chunk
    return out


class _Reader:
    def __init__(self, data):
        self.data, self.at = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.at:self.at + n].decode()
        self.at += n
        return s


def _connect(address, timeout_s):
    host, port = address.split(",")[0].rsplit(":", 1)  # a bootstrap list: its first broker
    return socket.create_connection((host, int(port)), timeout=timeout_s)


def _partitions(sock, topic, correlation_id):
    """Metadata v4 for one topic: [(error code, partition, leader, in-sync replica count)]."""
    body = struct.pack(">i", 1) + _string(topic) + struct.pack(">b", 0)
    r = _Reader(_call(sock, 3, 4, correlation_id, body))
    r.take(">i")
    for _ in range(r.take(">i")):  # brokers
        r.take(">i"); r.string(); r.take(">i"); r.string()
    r.string(); r.take(">i")  # cluster id, controller id
    out = []
    for _ in range(r.take(">i")):
        code, _name, _internal = r.take(">h"), r.string(), r.take(">b")
        for _ in range(r.take(">i")):
            p_code, index, leader = r.take(">hii")
            replicas = r.take(">i")
            r.at += 4 * replicas
            isr = r.take(">i")
            r.at += 4 * isr
            out.append((code or p_code, index, leader, isr))
    return out


def create(address, topic, partitions, replication=1, configs=(), timeout_s=60.0):
    with _connect(address, timeout_s) as sock:
        body = struct.pack(">i", 1) + _string(topic) + struct.pack(">ihii", partitions, replication, 0, len(configs))
        for kv in configs:
            key, value = kv.split("=", 1)
            body += _string(key) + _string(value)
        body += struct.pack(">ib", int(timeout_s * 1000), 0)
        r = _Reader(_call(sock, 19, 2, 1, body))  # CreateTopics v2
        r.take(">i")  # throttle_time_ms
        for _ in range(r.take(">i")):
            name, code, message = r.string(), r.take(">h"), r.string()
            if code != 0:
                raise RuntimeError(f"CreateTopics {name}: error {code} {message or ''}")
        deadline, correlation_id = time.monotonic() + timeout_s, 2
        while True:  # until every partition is led (and has every replica in sync)
            parts = _partitions(sock, topic, correlation_id)
            correlation_id += 1
            ready = sum(1 for code, _i, leader, isr in parts if code == 0 and leader >= 0 and isr >= replication)
            if ready == partitions:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic}: {ready} of {partitions} partitions led with {replication} in sync after {timeout_s} s")
            time.sleep(0.05)


def leaders(address, topic, timeout_s=10.0):
    with _connect(address, timeout_s) as sock:
        for code, index, leader, isr in sorted(_partitions(sock, topic, 1), key=lambda x: x[1]):
            if code != 0:
                raise RuntimeError(f"Metadata {topic}-{index}: error {code}")
            print(index, leader, isr)


def _uvarint(value):
    out = b""
    while True:
        byte, value = value & 0x7F, value >> 7
        out += bytes([byte | (0x80 if value else 0)])
        if not value:
            return out


def controller(address, timeout_s=10.0):
    """DescribeQuorum v0 (flexible: request header v2, response header v1) for __cluster_metadata-0:
    its leader id. A Kafka broker forwards it to the controllers; a Fjord node answers it."""
    name = b"__cluster_metadata"
    body = _uvarint(2) + _uvarint(len(name) + 1) + name + _uvarint(2) + struct.pack(">i", 0) + b"\0\0\0"
    with _connect(address, timeout_s) as sock:
        header = struct.pack(">hhih", 55, 0, 1, len(CLIENT_ID)) + CLIENT_ID + b"\0"
        frame = header + body
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        response = _read(sock, struct.unpack(">i", _read(sock, 4))[0])
    r = _Reader(response)
    r.take(">i"); r.take(">b")  # correlation id, no tagged fields
    code = r.take(">h")
    r.take(">b")  # one topic (compact array length 2)
    name_len = r.take(">b") - 1  # its compact name
    r.at += name_len
    r.take(">b")  # one partition
    _index, p_code, leader = r.take(">ihi")
    if code or p_code:
        raise RuntimeError(f"DescribeQuorum: error {code or p_code}")
    print(leader)


def delete(address, topics, timeout_s=60.0):
    with _connect(address, timeout_s) as sock:
        body = struct.pack(">i", len(topics)) + b"".join(_string(t) for t in topics)
        body += struct.pack(">i", int(timeout_s * 1000))
        r = _Reader(_call(sock, 20, 1, 1, body))  # DeleteTopics v1
        r.take(">i")  # throttle_time_ms
        for _ in range(r.take(">i")):
            name, code = r.string(), r.take(">h")
            if code != 0:
                raise RuntimeError(f"DeleteTopics {name}: error {code}")


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "create":
        rf = int(sys.argv[5]) if len(sys.argv) > 5 else 1
        create(sys.argv[2], sys.argv[3], int(sys.argv[4]), rf, sys.argv[6:])
    elif len(sys.argv) == 4 and sys.argv[1] == "leaders":
        leaders(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "controller":
        controller(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "delete":
        delete(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)
