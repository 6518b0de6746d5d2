"""Session fixture: one Fjord broker on 127.0.0.1 with a temp data dir for the whole pytest run.

Broker logs go to compat-tests/python/out/ (gitignored) and their tail is printed when a test fails.
"""
import shutil
import signal
import uuid
from pathlib import Path

import pytest

from fjord_broker import Broker

WORK = Path(__file__).resolve().parent / "out"


def _sigterm(signum, frame):
    # A SIGTERM (e.g. from `timeout` in scripts/compat.sh) unwinds like Ctrl-C so the broker fixture's
    # teardown still stops the broker instead of leaving it orphaned.
    raise KeyboardInterrupt("SIGTERM")


signal.signal(signal.SIGTERM, _sigterm)


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    shutil.rmtree(WORK, ignore_errors=True)
    # Small segments so every test also reads across segment rolls (and offsets_for_times spans segments).
    b = Broker(tmp_path_factory.mktemp("fjord-data"), WORK,
               overrides=["num.partitions=1", "log.segment.bytes=262144"])
    b.start()
    yield b
    rc = b.stop()
    assert rc == 0, "broker did not exit cleanly on SIGTERM (rc=%s):\n%s" % (rc, b.log_tail())


@pytest.fixture
def bootstrap(broker):
    return broker.bootstrap


@pytest.fixture
def topic(request):
    """A fresh topic name per test."""
    name = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")
    return "%s-%s" % (name[:60], uuid.uuid4().hex[:8])


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        # The session broker and any other Broker fixture the test used (e.g. test_groups.py's gbroker).
        for b in getattr(item, "funcargs", {}).values():
            if isinstance(b, Broker):
                rep.sections.append(("fjord broker log tail (%s)" % b.log_path, b.log_tail(30)))
