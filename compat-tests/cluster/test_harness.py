"""Tests of the fault checker's own parts, run by run.sh before the cluster starts (a few seconds):
netproxy.py's links (forwarding, a blackholed link that holds bytes and delivers them on heal, a
reset link, directed cuts that leave the reverse direction working, the plan of ports and
overrides) against echo servers on loopback, and the checker's fenced-owner commit detection on
made-up histories. A harness that silently stopped cutting links would let the checker pass
without a single partition, so this proves the faults are real.

Usage: compat-tests/.venv/bin/python -m pytest -q compat-tests/cluster/test_harness.py
"""
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import checker  # noqa: E402
import netproxy  # noqa: E402


def free_block(n):
    """The first port of n consecutive free loopback ports."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n >= 65535:
            continue
        socks = []
        try:
            for p in range(base, base + n):
                t = socket.socket()
                t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                t.bind(("127.0.0.1", p))
                socks.append(t)
            return base
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
    raise RuntimeError("no block of %d free ports" % n)


class Echo:
    """An echo server on one loopback port, with a tag so a test sees which port answered."""

    def __init__(self, port, tag):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.tag = tag
        self.stopped = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.echo, args=(c,), daemon=True).start()

    def echo(self, c):
        with c:
            while True:
                try:
                    data = c.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                c.sendall(self.tag + data)

    def close(self):
        self.stopped = True
        self.sock.close()


@pytest.fixture
def proxy():
    """netproxy.py serving 2 nodes: echo servers stand in for both nodes' client and controller ports."""
    cluster_port = free_block(4)
    proxy_port = free_block(4)
    echoes = [Echo(cluster_port + i, b"client-%d:" % (i + 1)) for i in range(2)]
    echoes += [Echo(cluster_port + 2 + i, b"controller-%d:" % (i + 1)) for i in range(2)]
    tmp = tempfile.mkdtemp(prefix="netproxy-test-")
    control = os.path.join(tmp, "ctl.sock")
    p = subprocess.Popen([sys.executable, str(HERE / "netproxy.py"), "serve", "--nodes", "2", "--cluster-port", str(cluster_port),
                          "--proxy-port", str(proxy_port), "--control", control], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not os.path.exists(control):
        assert p.poll() is None, "netproxy.py exited"
        assert time.monotonic() < deadline, "netproxy.py did not start"
        time.sleep(0.05)
    yield {"control": control, "plan": netproxy.plan(2, cluster_port, proxy_port), "cluster_port": cluster_port, "proxy_port": proxy_port}
    p.terminate()
    p.wait(10)
    for e in echoes:
        e.close()


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.settimeout(5)
    return s


def ask(s, data, timeout=5):
    """Sends data and returns the echo (None when nothing comes within timeout)."""
    s.sendall(data)
    s.settimeout(timeout)
    try:
        return s.recv(65536)
    except socket.timeout:
        return None


def ctl(proxy, **req):
    return netproxy.control_request(proxy["control"], req)


def test_the_plan_gives_each_directed_link_its_own_ports_and_each_node_only_its_own():
    plan = netproxy.plan(3, 9092, 20000)
    assert len(plan) == 3 * 2 * 2
    assert len({listen for listen, _ in plan.values()}) == 12, "one listen port per link and kind"
    assert plan[(1, 2, "broker")] == (20000, 9093)
    assert plan[(1, 2, "controller")] == (20001, 9096)
    o = netproxy.overrides(3, 9092, 20000, 1)
    assert sorted(o.split(",")) == ["127.0.0.1:9093=127.0.0.1:20000", "127.0.0.1:9094=127.0.0.1:20002",
                                    "127.0.0.1:9096=127.0.0.1:20001", "127.0.0.1:9097=127.0.0.1:20003"]
    assert "9092" not in o and "9095" not in o, "no override of the node's own ports"


def test_an_open_link_forwards_to_the_peer_it_names(proxy):
    for (a, b, kind), (listen, _) in proxy["plan"].items():
        with connect(listen) as s:
            assert ask(s, b"x") == b"%s-%d:x" % (kind.replace("broker", "client").encode(), b)


def test_a_blackholed_link_holds_bytes_both_ways_and_delivers_them_on_heal(proxy):
    one_two = proxy["plan"][(1, 2, "broker")][0]
    two_one = proxy["plan"][(2, 1, "broker")][0]
    old = connect(one_two)
    assert ask(old, b"a") == b"client-2:a"
    ctl(proxy, cmd="cut", links=[[1, 2]], mode="blackhole")
    assert ask(old, b"b", timeout=0.7) is None, "an open connection goes silent"
    new = connect(one_two)  # accepted, and held
    assert ask(new, b"c", timeout=0.7) is None, "a new connection is held"
    with connect(two_one) as back:
        assert ask(back, b"r") == b"client-1:r", "the reverse direction is another link, still open"
    status = ctl(proxy, cmd="status")["links"]
    assert status["1->2"]["mode"] == "blackhole" and status["1->2"]["held"] >= 1 and status["2->1"]["mode"] is None
    ctl(proxy, cmd="heal", links=[[1, 2]])
    old.settimeout(5)
    assert old.recv(65536) == b"client-2:b", "held bytes flow after the heal"
    new.settimeout(5)
    assert new.recv(65536) == b"client-2:c"
    old.close()
    new.close()


def test_a_reset_link_resets_open_and_new_connections_until_healed(proxy):
    port = proxy["plan"][(2, 1, "controller")][0]
    s = connect(port)
    assert ask(s, b"a") == b"controller-1:a"
    ctl(proxy, cmd="cut", links=[[2, 1]], mode="reset")
    with pytest.raises((ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        for _ in range(20):
            got = ask(s, b"b", timeout=2)
            if got == b"":
                raise ConnectionResetError("closed")
            time.sleep(0.05)
    s.close()
    with pytest.raises((ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        t = connect(port)
        for _ in range(20):
            got = ask(t, b"c", timeout=2)
            if got == b"":
                raise ConnectionResetError("closed")
            time.sleep(0.05)
    ctl(proxy, cmd="heal-all")
    with connect(port) as u:
        assert ask(u, b"d") == b"controller-1:d"


def test_the_control_socket_refuses_a_bad_request(proxy):
    with pytest.raises(RuntimeError):
        ctl(proxy, cmd="cut", links=[[1, 2]], mode="sideways")
    with pytest.raises(RuntimeError):
        ctl(proxy, cmd="explode")


def fenced(owned, commits):
    w = checker.Workload.__new__(checker.Workload)
    w.owned = defaultdict(list, owned)
    w.commits = commits
    return w.stale_owner_commits()


def test_a_commit_after_another_member_took_the_partition_is_an_anomaly():
    k = ("t", 0)
    # Handed over cleanly (revoked at 5, taken at 6), then back: no anomaly.
    assert fenced({k: [[0, 1.0, 5.0], [1, 6.0, 9.0], [0, 10.0, None]]}, [(0, k, 4.0), (1, k, 7.0), (0, k, 11.0)]) == []
    # Member 0 never learnt it was fenced; member 1 took the partition at 6; 0's commit at 8 succeeded.
    assert fenced({k: [[0, 1.0, None], [1, 6.0, None]]}, [(0, k, 4.0), (1, k, 7.0), (0, k, 8.0)]) == [(0, k, 8.0, 1, 6.0)]
    # Another partition's owner changing is not this partition's business.
    assert fenced({k: [[0, 1.0, None]], ("t", 1): [[1, 2.0, None]]}, [(0, k, 8.0)]) == []
