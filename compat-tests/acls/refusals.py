"""Raw Kafka requests that an authorizer refuses, sent over SASL_PLAINTEXT (PLAIN) with nothing but
the standard library, printing one line per answer: what was asked, the error code, the message.
Run against Fjord and against Apache Kafka (StandardAuthorizer, super.users=User:admin, PLAIN users
admin, alice and bob, topic acl-orders existing, no ACL for bob), the outputs are compared.

    python3 refusals.py HOST:PORT
"""
import socket
import struct
import sys

HOST, PORT = sys.argv[1].rsplit(":", 1)


def s16(v):
    return struct.pack(">h", v)


def s32(v):
    return struct.pack(">i", v)


def string(v):
    if v is None:
        return s16(-1)
    b = v.encode()
    return s16(len(b)) + b


class Conn:
    def __init__(self, user):
        self.sock = socket.create_connection((HOST, int(PORT)), timeout=10)
        self.corr = 0
        r = self.call(17, 1, string("PLAIN"))
        assert struct.unpack(">h", r[:2])[0] == 0, "handshake"
        token = f"\0{user}\0{user}-secret".encode()
        r = self.call(36, 0, s32(len(token)) + token)
        assert struct.unpack(">h", r[:2])[0] == 0, f"{user} authenticates"

    def call(self, key, version, body):
        self.corr += 1
        header = s16(key) + s16(version) + s32(self.corr) + string("refusals")
        frame = header + body
        self.sock.sendall(s32(len(frame)) + frame)
        size = struct.unpack(">i", self.recv(4))[0]
        data = self.recv(size)
        assert struct.unpack(">i", data[:4])[0] == self.corr
        return data[4:]

    def recv(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
        return out


class Reader:
    def __init__(self, b):
        self.b, self.i = b, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.b, self.i)
        self.i += struct.calcsize(fmt)
        return v[0]

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        v = self.b[self.i:self.i + n].decode()
        self.i += n
        return v


def show(what, code, message=None):
    print(f"{what}: error {code}" + (f" message {message!r}" if message is not None else ""))


def metadata_v4(c, topic, auto_create):
    r = Reader(c.call(3, 4, s32(1) + string(topic) + bytes([1 if auto_create else 0])))
    r.take(">i")  # throttle
    for _ in range(r.take(">i")):  # brokers
        r.take(">i"), r.string(), r.take(">i"), r.string()
    r.string(), r.take(">i")  # cluster id, controller
    assert r.take(">i") == 1
    return r.take(">h")


def create_acls_v1(c, rtype, name, principal):
    body = s32(1) + bytes([rtype]) + string(name) + bytes([3]) + string(principal) + string("*") + bytes([3, 3])
    r = Reader(c.call(30, 1, body))
    r.take(">i")
    assert r.take(">i") == 1
    return r.take(">h"), r.string()


def describe_acls_v1(c, operation):
    body = bytes([1]) + string(None) + bytes([1]) + string(None) + string(None) + bytes([operation, 1])
    r = Reader(c.call(29, 1, body))
    r.take(">i")
    return r.take(">h"), r.string()


def find_coordinator_v2(c, group):
    r = Reader(c.call(10, 2, string(group) + bytes([0])))
    r.take(">i")
    return r.take(">h"), r.string()


def create_topics_v2(c, topic):
    body = s32(1) + string(topic) + s32(1) + s16(1) + s32(0) + s32(0) + s32(5000) + bytes([0])
    r = Reader(c.call(19, 2, body))
    r.take(">i")
    assert r.take(">i") == 1
    r.string()
    return r.take(">h"), r.string()


def delete_groups_v0(c, group):
    r = Reader(c.call(42, 0, s32(1) + string(group)))
    r.take(">i")
    assert r.take(">i") == 1
    r.string()
    return r.take(">h")


bob = Conn("bob")
admin = Conn("admin")
show("Metadata v4 acl-orders as bob", metadata_v4(bob, "acl-orders", False))
show("Metadata v4 unknown topic with auto-create as bob", metadata_v4(bob, "acl-not-there", True))
show("CreateAcls v1 as bob", *create_acls_v1(bob, 2, "t", "User:bob"))
show("CreateAcls v1 CLUSTER named other as admin", *create_acls_v1(admin, 4, "other", "User:bob"))
show("DescribeAcls v1 as bob", *describe_acls_v1(bob, 1))
try:
    describe_acls_v1(Conn("admin"), 0)
    print("DescribeAcls v1 operation UNKNOWN as admin: answered")
except (EOFError, ConnectionError):
    print("DescribeAcls v1 operation UNKNOWN as admin: connection closed")
show("FindCoordinator v2 group as bob", *find_coordinator_v2(bob, "acl-g"))
show("CreateTopics v2 as bob", *create_topics_v2(bob, "acl-bobs"))
show("DeleteGroups v0 as bob", delete_groups_v0(bob, "acl-g"))
