#!/usr/bin/env python3
"""Topic set-up for the benchmarks, spoken in the Kafka protocol itself so that Fjord and Kafka get
the very same requests: CreateTopics v2, then Metadata v4 until every partition has a leader;
DeleteTopics v1.

    bench-admin.py create HOST:PORT TOPIC PARTITIONS    exits non-zero on any error code
    bench-admin.py delete HOST:PORT TOPIC...            exits non-zero on any error code
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


def create(address, topic, partitions, timeout_s=60.0):
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        body = struct.pack(">i", 1) + _string(topic) + struct.pack(">ihii", partitions, 1, 0, 0)
        body += struct.pack(">ib", int(timeout_s * 1000), 0)
        r = _Reader(_call(sock, 19, 2, 1, body))  # CreateTopics v2
        r.take(">i")  # throttle_time_ms
        for _ in range(r.take(">i")):
            name, code, message = r.string(), r.take(">h"), r.string()
            if code != 0:
                raise RuntimeError(f"CreateTopics {name}: error {code} {message or ''}")
        deadline, correlation_id = time.monotonic() + timeout_s, 2
        while True:  # Metadata v4 until every partition is led
            body = struct.pack(">i", 1) + _string(topic) + struct.pack(">b", 0)
            r = _Reader(_call(sock, 3, 4, correlation_id, body))
            correlation_id += 1
            r.take(">i")
            for _ in range(r.take(">i")):  # brokers
                r.take(">i"); r.string(); r.take(">i"); r.string()
            r.string(); r.take(">i")  # cluster id, controller id
            led = 0
            for _ in range(r.take(">i")):
                code, _name, _internal = r.take(">h"), r.string(), r.take(">b")
                for _ in range(r.take(">i")):
                    p_code, _index, leader = r.take(">hii")
                    for _ in range(2):  # replicas, in-sync replicas
                        n = r.take(">i")
                        r.at += 4 * n
                    led += int(code == 0 and p_code == 0 and leader >= 0)
            if led == partitions:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic}: {led} of {partitions} partitions led after {timeout_s} s")
            time.sleep(0.05)


def delete(address, topics, timeout_s=60.0):
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        body = struct.pack(">i", len(topics)) + b"".join(_string(t) for t in topics)
        body += struct.pack(">i", int(timeout_s * 1000))
        r = _Reader(_call(sock, 20, 1, 1, body))  # DeleteTopics v1
        r.take(">i")  # throttle_time_ms
        for _ in range(r.take(">i")):
            name, code = r.string(), r.take(">h")
            if code != 0:
                raise RuntimeError(f"DeleteTopics {name}: error {code}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "create":
        create(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) >= 4 and sys.argv[1] == "delete":
        delete(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)
