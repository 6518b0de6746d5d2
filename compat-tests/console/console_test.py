"""The web console in headless Chromium, driven by Selenium. `write` mode: every page loads, a topic
is created, a record produced and browsed (text, JSON, hex, search), and a group's lag goes from 1 to
0 once a confluent-kafka consumer commits; `readonly` mode: the actions are hidden and the server
refuses them; `login` mode (with an authorizer): a login form, a wrong password refused, the super
user sees the topic, logout, a user without ACLs sees nothing. Prints one PASS/FAIL line per check; screenshots go to $WORK.

Environment: CONSOLE_URL (the console's base URL), FJORD_BOOTSTRAP, WORK."""

import os
import shutil
import sys
import time
import traceback

from confluent_kafka import Consumer, TopicPartition
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

# Selenium Manager must not look for drivers or browsers on the network: Debian's are used.
os.environ.setdefault("SE_OFFLINE", "true")
URL = os.environ["CONSOLE_URL"]
BOOTSTRAP = os.environ["FJORD_BOOTSTRAP"]
WORK = os.environ["WORK"]
TOPIC = "console-demo"
GROUP = "console-group"
WAIT_S = 15
failures = 0


def result(ok, name, detail=""):
    global failures
    if ok:
        print(f"PASS {name}", flush=True)
    else:
        failures += 1
        print(f"FAIL {name}{': ' + detail if detail else ''}", flush=True)


def step(name, fn):
    try:
        fn()
        result(True, name)
    except Exception as e:  # noqa: BLE001 - any failure of a step is that step's FAIL line
        result(False, name, f"{type(e).__name__}: {e}".splitlines()[0][:300])
        traceback.print_exc(file=sys.stderr)


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900", "--no-first-run"):
        opts.add_argument(a)
    # The driver is Debian's chromedriver: Selenium Manager never downloads one.
    service = Service(executable_path=shutil.which("chromedriver"), log_output=os.path.join(WORK, "chromedriver.log"))
    return webdriver.Chrome(service=service, options=opts), service


def go(d, route):
    d.get(URL + "#/" + route)
    d.refresh()  # a hash change alone keeps the page; a reload runs the route fresh


def wait(d, cond, what):
    return WebDriverWait(d, WAIT_S, poll_frequency=0.2).until(lambda _: cond(), message=what)


def text_of(d, css):
    els = d.find_elements(By.CSS_SELECTOR, css)
    return els[0].text if els else None


def shot(d, name):
    d.save_screenshot(os.path.join(WORK, name + ".png"))


def post_status(d, path, body):
    """Status of a POST from the page itself (same origin, with the console's header)."""
    return d.execute_async_script(
        "const cb = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'POST', headers: {'Content-Type': 'application/json', 'X-Fjord-Console': '1'}, body: JSON.stringify(arguments[1])})"
        ".then(r => cb(r.status), e => cb(String(e)));",
        "api/" + path, body)


def consumer(extra=None):
    conf = {"bootstrap.servers": BOOTSTRAP, "group.id": GROUP, "enable.auto.commit": False, "auto.offset.reset": "earliest", "session.timeout.ms": 6000}
    conf.update(extra or {})
    return Consumer(conf)


def write_mode(d):
    def overview():
        go(d, "overview")
        wait(d, lambda: d.find_elements(By.CSS_SELECTOR, "#overview-cards .card"), "overview cards")
        rows = d.find_elements(By.CSS_SELECTOR, "#brokers tbody tr")
        assert len(rows) == 1, f"{len(rows)} broker rows"
        assert d.find_elements(By.CSS_SELECTOR, "svg#throughput"), "no throughput chart"
        shot(d, "overview")
    step("overview page lists the broker and draws the throughput chart", overview)

    def create():
        go(d, "topics")
        wait(d, lambda: d.find_elements(By.ID, "new-topic-name"), "create form")
        d.find_element(By.ID, "new-topic-name").send_keys(TOPIC)
        p = d.find_element(By.ID, "new-topic-partitions")
        p.clear()
        p.send_keys("2")
        d.find_element(By.ID, "create-topic-submit").click()
        wait(d, lambda: d.find_elements(By.LINK_TEXT, TOPIC), "the new topic in the list")
        shot(d, "topics")
    step("topics page creates a topic", create)

    def topic():
        go(d, "topic/" + TOPIC)
        wait(d, lambda: len(d.find_elements(By.CSS_SELECTOR, "#partitions-table tbody tr")) == 2, "2 partition rows")
        assert "retention.ms" in d.page_source, "configs table"
        shot(d, "topic")
    step("topic page shows 2 partitions and configs", topic)

    def produce():
        go(d, "produce/" + TOPIC)
        wait(d, lambda: d.find_elements(By.ID, "produce-form"), "produce form")
        d.find_element(By.ID, "produce-partition").send_keys("0")
        d.find_element(By.ID, "produce-key").send_keys("order-1")
        d.find_element(By.ID, "produce-value").send_keys('{"id": 1, "item": "coffee", "qty": 2}')
        d.find_element(By.ID, "produce-headers").send_keys("source=console")
        d.find_element(By.ID, "produce-submit").click()
        wait(d, lambda: "offset 0" in (text_of(d, "#produce-result") or ""), "produce result at offset 0")
    step("produce page appends a record (partition 0, offset 0)", produce)

    def browse():
        go(d, "messages/" + TOPIC)
        wait(d, lambda: len(d.find_elements(By.CSS_SELECTOR, "#records-table tr.record")) == 1, "one record row")
        assert "coffee" in text_of(d, "#records-table pre.value")
        assert "source=console" in text_of(d, "#records-table")
        Select(d.find_element(By.ID, "browse-format")).select_by_value("json")
        wait(d, lambda: '"item": "coffee"' in (text_of(d, "#records-table pre.value") or ""), "pretty-printed JSON")
        shot(d, "messages")
        Select(d.find_element(By.ID, "browse-format")).select_by_value("hex")
        wait(d, lambda: (text_of(d, "#records-table pre.value") or "").startswith("7b 22"), "hex")
        s = d.find_element(By.ID, "browse-search")
        s.send_keys("no-such-thing")
        wait(d, lambda: not d.find_elements(By.CSS_SELECTOR, "#records-table tr.record"), "search hides the record")
        s.clear()
        s.send_keys("order-1")
        wait(d, lambda: len(d.find_elements(By.CSS_SELECTOR, "#records-table tr.record")) == 1, "search finds the record by key")
    step("message browser shows the record as text, JSON and hex, and the search filters it", browse)

    def lag():
        c = consumer()
        c.commit(offsets=[TopicPartition(TOPIC, 0, 0)], asynchronous=False)
        c.close()
        go(d, "group/" + GROUP)
        wait(d, lambda: text_of(d, "#lag-total") == "1", "lag 1 after committing offset 0")
        c = consumer()
        c.subscribe([TOPIC])
        deadline, got = time.time() + 30, None
        while got is None and time.time() < deadline:
            m = c.poll(1.0)
            if m is not None and m.error() is None:
                got = m
        assert got is not None and got.key() == b"order-1", "the consumer got the record"
        c.commit(message=got, asynchronous=False)
        c.close()
        go(d, "group/" + GROUP)
        wait(d, lambda: text_of(d, "#lag-total") == "0", "lag 0 after the consumer committed")
        assert "Empty" in text_of(d, "#group-state"), "the group is Empty after the consumer closed"
        shot(d, "group")
        go(d, "groups")
        wait(d, lambda: d.find_elements(By.LINK_TEXT, GROUP), "group listed")
    step("group page shows lag 1, then 0 after a consumer commits", lag)

    def phone():
        d.set_window_size(390, 844)
        go(d, "messages/" + TOPIC)
        wait(d, lambda: d.find_elements(By.CSS_SELECTOR, "#records-table tr.record"), "record row")
        overflow = d.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        shot(d, "phone-messages")
        d.set_window_size(1280, 900)
        assert overflow <= 1, f"the page is {overflow}px wider than a phone screen"
    step("pages fit a phone width (tables scroll inside their box)", phone)

    go(d, "overview")
    time.sleep(0.5)
    shot(d, "overview-after")


def readonly_mode(d):
    def hidden():
        go(d, "overview")
        wait(d, lambda: "readonly" in (d.find_element(By.TAG_NAME, "body").get_attribute("class") or ""), "read-only class")
        assert not d.find_element(By.ID, "nav-produce").is_displayed(), "Produce link shown"
        go(d, "topics")
        wait(d, lambda: d.find_elements(By.LINK_TEXT, TOPIC), "topic list")
        assert not d.find_element(By.ID, "create-topic").is_displayed(), "create form shown"
        go(d, "topic/" + TOPIC)
        wait(d, lambda: d.find_elements(By.ID, "delete-topic"), "topic page")
        assert not d.find_element(By.ID, "delete-topic").is_displayed(), "delete button shown"
        shot(d, "readonly-topic")
    step("read-only console hides create, delete and produce", hidden)

    def refused():
        for path, body in [("topics/create", {"name": "t2", "partitions": 1}), ("topics/delete", {"name": TOPIC}),
                           ("produce", {"topic": TOPIC, "value": "x"}), ("groups/reset", {"group": GROUP, "topic": TOPIC, "to": "earliest"})]:
            status = post_status(d, path, body)
            assert status == 403, f"{path}: {status}"
    step("read-only server refuses every action with 403", refused)

    def browse():
        go(d, "messages/" + TOPIC)
        wait(d, lambda: len(d.find_elements(By.CSS_SELECTOR, "#records-table tr.record")) == 1, "the record after a restart")
    step("read-only console still browses the record", browse)


def login_as(d, user, password):
    go(d, "topics")
    wait(d, lambda: d.find_elements(By.ID, "login-form"), "login form")
    d.find_element(By.ID, "login-user").send_keys(user)
    d.find_element(By.ID, "login-password").send_keys(password)
    d.find_element(By.ID, "login-submit").click()


def logout(d):
    d.find_element(By.ID, "logout").click()
    wait(d, lambda: d.find_elements(By.ID, "login-form"), "login form after logout")


def login_mode(d):
    """With an authorizer: the page asks for a login; admin (a super user) sees the topic, alice
    (no ACLs) sees none and is refused its messages."""
    def refused():
        go(d, "overview")
        wait(d, lambda: d.find_elements(By.ID, "login-form"), "login form instead of the overview")
        login_as(d, "admin", "wrong")
        wait(d, lambda: "err" in (d.find_element(By.ID, "toast").get_attribute("class") or ""), "an error toast")
        assert d.find_elements(By.ID, "login-form"), "still the login form"
        shot(d, "login")
    step("with an authorizer the console asks for a login and refuses a wrong password", refused)

    def super_user():
        login_as(d, "admin", "admin-secret")
        wait(d, lambda: d.find_elements(By.LINK_TEXT, TOPIC), "the topic listed for the super user")
        assert text_of(d, "#user-name") == "admin", "the header shows the user"
        shot(d, "logged-in")
        logout(d)
        assert post_status(d, "topics/create", {"name": "after-logout", "partitions": 1}) == 401, "the API is closed after logout"
    step("the super user sees the topic; logout closes the API", super_user)

    def no_acls():
        login_as(d, "alice", "alice-secret")
        wait(d, lambda: d.find_elements(By.ID, "topics-table"), "topics table")
        assert not d.find_elements(By.CSS_SELECTOR, "#topics-table tbody tr"), "alice sees no topic"
        go(d, "messages")
        wait(d, lambda: d.find_elements(By.ID, "browse-form"), "message browser")
        status = d.execute_async_script(
            "const cb = arguments[arguments.length - 1];"
            "fetch('api/messages?topic=' + arguments[0]).then(r => r.json().then(b => cb(r.status + ' ' + b.error_name)), e => cb(String(e)));", TOPIC)
        assert status == "403 TOPIC_AUTHORIZATION_FAILED", status
        logout(d)
    step("a user without ACLs sees no topic and is refused its messages (403)", no_acls)


def main():
    mode = sys.argv[1]
    d, service = browser()
    try:
        d.set_script_timeout(WAIT_S)
        {"write": write_mode, "readonly": readonly_mode, "login": login_mode}[mode](d)
    finally:
        pid = service.process.pid if service.process else None
        d.quit()
        # quit() ends chromedriver and its Chromium; make sure of the driver, by its pid only.
        if pid:
            try:
                os.kill(pid, 0)
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
