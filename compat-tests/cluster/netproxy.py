#!/usr/bin/env python3
"""Per-link TCP proxies between the nodes of a scripts/cluster.sh cluster, for network partitions.

Every directed link A->B (connections node A opens to node B: replica fetches and transaction
markers to B's inter-broker listener, Raft RPCs and broker-to-controller requests to B's
controller listener) gets two loopback proxy ports; node A is started with
fjord.peer.address.overrides naming them (`plan` prints its value), so only A's connections to B
pass there. Clients reach every node directly. The checker cuts and heals links over a control
socket.

  netproxy.py plan  --nodes N --cluster-port B --proxy-port Q --node A   # A's overrides value
  netproxy.py serve --nodes N --cluster-port B --proxy-port Q --control SOCK

Port plan: node i's client (inter-broker) port is B+i-1 and its controller port B+N+i-1, as
scripts/cluster.sh lays them out; directed link number k (links in (A, B) order, A != B) listens on
Q+2k (to B's client port) and Q+2k+1 (to B's controller port): N*(N-1)*2 ports from Q.

Control: one JSON object a line on the Unix socket SOCK, one JSON answer a line:
  {"cmd": "cut", "links": [[1, 2], [2, 1]], "mode": "blackhole"}   # or "mode": "reset"
  {"cmd": "heal", "links": [[1, 2]]}     {"cmd": "heal-all"}     {"cmd": "status"}
A blackholed link forwards nothing in either direction of its connections, old or new (a new
connection is accepted and held, never connected onward): peers see timeouts, as across a real
partition. On heal the held bytes flow again, as TCP would retransmit them (a side that gave up
has closed its end by then). A reset link closes its connections with RST (SO_LINGER 0) and
resets every new one at once: the weaker fault, noticed at once.
"""
import argparse
import asyncio
import json
import os
import signal
import socket
import struct
import sys
import time

CHUNK = 65536


def links(n):
    return [(a, b) for a in range(1, n + 1) for b in range(1, n + 1) if a != b]


def plan(nodes, cluster_port, proxy_port):
    """(a, b, kind) -> (listen port, target port), kind "broker" or "controller"."""
    out = {}
    for k, (a, b) in enumerate(links(nodes)):
        out[(a, b, "broker")] = (proxy_port + 2 * k, cluster_port + b - 1)
        out[(a, b, "controller")] = (proxy_port + 2 * k + 1, cluster_port + nodes + b - 1)
    return out


def overrides(nodes, cluster_port, proxy_port, node):
    """fjord.peer.address.overrides for `node`: its peers' ports -> its links' proxy ports."""
    return ",".join("127.0.0.1:%d=127.0.0.1:%d" % (target, listen)
                    for (a, _, _), (listen, target) in sorted(plan(nodes, cluster_port, proxy_port).items()) if a == node)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def rst_close(writer):
    """Close with RST rather than FIN: SO_LINGER on, timeout 0."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class Link:
    """One directed link A->B: its state and open connections (both proxy ports)."""

    def __init__(self, a, b):
        self.a, self.b = a, b
        self.mode = None                 # None (open), "blackhole" or "reset"
        self.open = asyncio.Event()
        self.open.set()
        self.conns = set()               # (client writer, upstream writer or None)
        self.accepted = self.held = self.reset = 0

    def cut(self, mode):
        self.mode = mode
        self.open.clear()
        if mode == "reset":
            for conn in list(self.conns):
                self.reset_conn(conn)

    def heal(self):
        self.mode = None
        self.open.set()

    def reset_conn(self, conn):
        self.conns.discard(conn)
        for w in conn:
            if w is not None:
                rst_close(w)
        self.reset += 1


class Proxy:
    def __init__(self, nodes, cluster_port, proxy_port):
        self.links = {(a, b): Link(a, b) for a, b in links(nodes)}
        self.plan = plan(nodes, cluster_port, proxy_port)
        self.servers = []

    async def start(self):
        for (a, b, kind), (listen, target) in sorted(self.plan.items()):
            link = self.links[(a, b)]
            server = await asyncio.start_server(lambda r, w, link=link, target=target: self.serve(link, target, r, w),
                                                "127.0.0.1", listen, reuse_address=True)
            self.servers.append(server)
            log("link %d->%d %s: 127.0.0.1:%d -> 127.0.0.1:%d" % (a, b, kind, listen, target))

    async def serve(self, link, target, reader, writer):
        link.accepted += 1
        conn = [writer, None]
        key = tuple(conn)
        link.conns.add(key)
        try:
            if link.mode == "reset":
                link.reset_conn(key)
                return
            if not link.open.is_set():
                link.held += 1
            await link.open.wait()
            if key not in link.conns:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
            except OSError:
                rst_close(writer)
                return
            link.conns.discard(key)
            key = (writer, up_writer)
            link.conns.add(key)
            await asyncio.gather(self.pump(link, key, reader, up_writer), self.pump(link, key, up_reader, writer))
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass   # a reset link, a side gone, or the proxy stopping
        finally:
            link.conns.discard(key)
            for w in key:
                if w is not None and not w.is_closing():
                    w.close()

    async def pump(self, link, key, reader, writer):
        """Copies one direction; each chunk waits while the link is cut (blackhole: held)."""
        try:
            while True:
                data = await reader.read(CHUNK)
                if key not in link.conns:
                    return
                await link.open.wait()
                if key not in link.conns:
                    return
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            if key in link.conns:
                link.conns.discard(key)
                for w in key:
                    if w is not None:
                        w.transport.abort()

    def control(self, req):
        cmd = req.get("cmd")
        if cmd == "cut":
            mode = req.get("mode", "blackhole")
            if mode not in ("blackhole", "reset"):
                return {"ok": False, "error": "mode must be blackhole or reset"}
            for a, b in req["links"]:
                self.links[(a, b)].cut(mode)
            log("cut %s %s" % (mode, req["links"]))
        elif cmd == "heal":
            for a, b in req["links"]:
                self.links[(a, b)].heal()
            log("heal %s" % req["links"])
        elif cmd == "heal-all":
            for link in self.links.values():
                link.heal()
            log("heal all")
        elif cmd != "status":
            return {"ok": False, "error": "unknown cmd %r" % cmd}
        return {"ok": True, "links": {"%d->%d" % k: {"mode": l.mode, "conns": len(l.conns), "accepted": l.accepted,
                                                    "held": l.held, "reset": l.reset} for k, l in self.links.items()}}

    async def control_conn(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    answer = self.control(json.loads(line))
                except (ValueError, KeyError, TypeError) as e:
                    answer = {"ok": False, "error": str(e)}
                writer.write((json.dumps(answer) + "\n").encode())
                await writer.drain()
        finally:
            writer.close()


async def serve_main(a):
    proxy = Proxy(a.nodes, a.cluster_port, a.proxy_port)
    await proxy.start()
    if os.path.exists(a.control):
        os.unlink(a.control)
    control = await asyncio.start_unix_server(proxy.control_conn, a.control)
    log("control socket %s" % a.control)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    control.close()
    for s in proxy.servers:
        s.close()
    os.unlink(a.control)
    log("stopped")


def control_request(sock_path, req, timeout=5):
    """One request to a running proxy (used by the checker)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall((json.dumps(req) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("proxy closed the control connection")
            buf += chunk
    answer = json.loads(buf)
    if not answer.get("ok"):
        raise RuntimeError("netproxy: %s" % answer.get("error"))
    return answer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["plan", "serve"])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--cluster-port", type=int, required=True)
    ap.add_argument("--proxy-port", type=int, required=True)
    ap.add_argument("--node", type=int)
    ap.add_argument("--control")
    a = ap.parse_args()
    if a.cmd == "plan":
        if a.node is None:
            ap.error("plan needs --node")
        print(overrides(a.nodes, a.cluster_port, a.proxy_port, a.node))
    else:
        if not a.control:
            ap.error("serve needs --control")
        asyncio.run(serve_main(a))


if __name__ == "__main__":
    main()
