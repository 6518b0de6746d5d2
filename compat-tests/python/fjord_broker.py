"""Start/stop a Fjord broker on loopback from Python: the Python port of compat-tests/lib.sh.

Used by the pytest suite (conftest.py) and the crash suite (crash/crash_test.py).
Environment: FJORD_BIN (default <repo>/target/release/fjord), FJORD_CONFIG (default <repo>/config/server.properties).
"""
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


class Broker:
    """One broker process. start() may be called again after stop()/kill9() to restart on the same
    data dir and port."""

    def __init__(self, data_dir, log_dir, port=None, overrides=()):
        self.bin = os.environ.get("FJORD_BIN", str(REPO_ROOT / "target/release/fjord"))
        self.config = os.environ.get("FJORD_CONFIG", str(REPO_ROOT / "config/server.properties"))
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir)
        self.port = port or free_port()
        self.overrides = list(overrides)
        self.proc = None
        self.starts = 0
        self.log_path = None

    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.port

    def args(self):
        args = [self.bin]
        if os.path.exists(self.config):
            args += ["--config", self.config]
        # The HTTP listener on a port the kernel picks: several brokers may run on this machine.
        base = ["listeners=PLAINTEXT://127.0.0.1:%d" % self.port, "log.dirs=%s" % self.data_dir, "fjord.http.listener=127.0.0.1:0"]
        for kv in base + self.overrides:
            args += ["--override", kv]
        return args

    def start(self, timeout_s=10.0):
        assert self.proc is None, "broker already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.log_path = self.log_dir / ("fjord.%d.log" % self.starts)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.args(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not port_open(self.port):
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                raise RuntimeError("broker exited during startup (rc=%s):\n%s" % (rc, self.log_tail()))
            if time.monotonic() > deadline:
                self.kill9()
                raise RuntimeError("broker did not accept connections on %s within %.0fs:\n%s"
                                   % (self.bootstrap, timeout_s, self.log_tail()))
            time.sleep(0.1)
        return self

    def stop(self, timeout_s=15.0):
        """SIGTERM, wait bounded, then SIGKILL. Returns the exit code (None if it had to be killed)."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self.proc = None
        return rc

    def kill9(self):
        if self.proc is None:
            return
        self.proc.kill()  # SIGKILL
        self.proc.wait()
        self.proc = None

    def log_tail(self, n=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"
