"""The administrator's web console (docs/console.md), in a real browser and against attackers:
headless Chromium logs in, finds a topology's error by its line number, fixes it, makes a
group, downloads the activated devices and watches a lab rollout reach 100 % in every office;
raw HTTP clients try what a hostile LAN would."""
import json
import os
import re
import socket
import ssl
import subprocess
import time

import pytest

from console_helpers import (COORDINATOR, PASSWORD, Client, browser, init_coordinator, log_in, screenshot,
                             wait_for_console)

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
MiB = 1 << 20


@pytest.fixture
def console(tmp_path):
    """pd-coordinator on loopback with its console (HTTPS, self-signed); yields (url, pin, db)."""
    db, pin = init_coordinator(str(tmp_path))
    log = str(tmp_path / "coordinator.log")
    with open(log, "w") as out:
        proc = subprocess.Popen([COORDINATOR, "serve", "--db", db, "--listen", "127.0.0.1:0", "--console", "127.0.0.1:0",
                                 "--console-poll-ms", "500"], stdout=out, stderr=out)
    try:
        url = wait_for_console(log, proc)
        yield url, pin, db, log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_settings_in_a_browser_topology_error_by_line_group_and_devices_csv(console, tmp_path):
    from selenium.webdriver.common.by import By
    url, pin, db, log = console
    downloads = str(tmp_path / "downloads")
    os.makedirs(downloads)
    driver = browser(pin, downloads)
    try:
        # A wrong password first: refused, said on the page, nothing else shown.
        wait = log_in(driver, url, password="not the password at all")
        wait.until(lambda d: "wrong name or password" in d.find_element(By.ID, "status").text)
        assert not driver.find_element(By.ID, "nav").is_displayed()
        screenshot(driver, "login")
        driver.find_element(By.ID, "login-password").clear()
        driver.find_element(By.ID, "login-name").clear()
        wait = log_in(driver, url)
        wait.until(lambda d: d.find_element(By.ID, "server-id").text)
        assert "admin (admin)" in driver.find_element(By.ID, "who-name").text

        # A topology whose third line names a parent that does not exist: the line is shown.
        bad = "name,parent,type,ranges,wan_budget\nCentral Office,,Default,10.0.0.0/16,\nBranch,Nowhere,Default,10.1.0.0/16,\n"
        box = driver.find_element(By.ID, "topology-csv")
        box.send_keys(bad)
        driver.find_element(By.ID, "topology-import").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#topology-errors li"))
        problems = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#topology-errors li")]
        assert any("line 3" in p for p in problems), problems
        screenshot(driver, "settings-topology-error")
        box.clear()
        box.send_keys(bad.replace("Nowhere", "Central Office"))
        driver.find_element(By.ID, "topology-import").click()
        wait.until(lambda d: "Uploading the topology: done" in d.find_element(By.ID, "status").text)
        assert not driver.find_elements(By.CSS_SELECTOR, "#topology-errors li")
        wait.until(lambda d: "2 offices (uploaded topology)" in d.find_element(By.ID, "health-summary").text)

        # A group.
        driver.find_element(By.ID, "group-name").send_keys("pilot")
        driver.find_element(By.ID, "group-devices").send_keys("laptop-1\nlaptop-2")
        driver.find_element(By.ID, "group-save").click()
        wait.until(lambda d: "pilot" in d.find_element(By.ID, "groups").text)
        assert "laptop-1, laptop-2" in driver.find_element(By.ID, "groups").text

        # Publish a content from its manifest, then pre-stage it by a deadline.
        package = tmp_path / "Setup.msi"
        package.write_bytes(os.urandom(3 << 20))
        pd = os.path.join(os.environ.get("PD_HOST_BIN", ""), "pd")
        subprocess.run([pd, "publish", str(package), "--origin", "file://" + str(package)], check=True, capture_output=True)
        driver.find_element(By.ID, "publish-files").send_keys(str(package) + ".pdm")
        driver.find_element(By.ID, "publish-origin").send_keys("https://cdn.example/packages")
        driver.find_element(By.ID, "publish-one").click()
        wait.until(lambda d: "Setup.msi" in d.find_element(By.ID, "contents").text)
        assert "3.0 MiB" in driver.find_element(By.ID, "contents").text
        driver.get(url + "#prestaging")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#prestage-content option"))
        driver.execute_script("document.getElementById('prestage-deadline').value = arguments[0]",
                              time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() + 86400)))
        driver.find_element(By.ID, "prestage-submit").click()
        wait.until(lambda d: "Setup.msi" in d.execute_script("return document.getElementById('prestages').textContent"))
        assert "Branch" in driver.execute_script("return document.getElementById('prestages').textContent")
        screenshot(driver, "prestaging-plan")
        driver.get(url + "#settings")
        wait.until(lambda d: d.find_element(By.ID, "server-id").text)

        # The activated devices, downloaded as a file.
        driver.find_element(By.ID, "devices-csv").click()
        path = os.path.join(downloads, "activated-devices.csv")
        wait.until(lambda d: os.path.exists(path) and os.path.getsize(path) > 0)
        assert open(path).read().startswith("device_id,name,address,office,version,online")
        driver.find_element(By.ID, "topology-export").click()
        wait.until(lambda d: os.path.exists(os.path.join(downloads, "topology.csv")))
        assert "Branch,Central Office" in open(os.path.join(downloads, "topology.csv")).read()
        driver.execute_script("window.scrollTo(0, 0)")
        screenshot(driver, "settings")

        # Keyboard only: Tab from the top of the page reaches the pages' links, Enter follows one.
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys
        driver.refresh()  # a fresh page: Tab starts from its top
        wait.until(lambda d: d.find_element(By.ID, "server-id").text)
        for _ in range(8):
            if driver.switch_to.active_element.get_attribute("id") == "nav-offices":
                break
            ActionChains(driver).send_keys(Keys.TAB).perform()
        assert driver.switch_to.active_element.get_attribute("id") == "nav-offices"
        ActionChains(driver).send_keys(Keys.ENTER).perform()
        wait.until(lambda d: d.find_element(By.ID, "page-offices").is_displayed())
        wait.until(lambda d: "Branch" in d.find_element(By.ID, "office-tree").text)

        # Every control has a label the browser knows it by.
        driver.get(url + "#settings")
        wait.until(lambda d: d.find_element(By.ID, "server-id").text)
        unlabelled = driver.execute_script("""
            return [...document.querySelectorAll('input, textarea, select')]
              .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.id);""")
        assert unlabelled == [], unlabelled
        audit = open(log).read()
        assert "console login as 'admin' (admin)" in audit and "admin.groups.set ok" in audit, audit
    finally:
        driver.quit()


def test_a_viewer_sees_the_settings_and_changes_nothing(console):
    url, pin, db, log = console
    c = Client(url)
    assert c.login("watcher")[0] == 200
    status, reply = c.api("GET", "health")
    assert status == 200 and reply["ok"]
    status, reply = c.api("POST", "groups/set", {"name": "x", "devices": ["a"]})
    assert status == 403 and "viewer" in reply["error"], reply
    status, reply = c.api("POST", "fleet_key/regenerate", {"confirm": "regenerate"})
    assert status == 403


def test_attackers_without_a_session_a_token_or_the_page_origin(console):
    url, pin, db, log = console
    stranger = Client(url)
    # No session: nothing but the login page and its files.
    assert stranger.request("GET", "/")[0] == 200
    assert stranger.api("GET", "health")[0] == 401
    assert stranger.api("POST", "groups/set", {"name": "x"})[0] == 401
    assert stranger.request("GET", "/api/v1/devices/csv?format=csv")[0] == 401
    # A forged cookie is no session.
    stranger.cookie = "pd_console=" + "ab" * 32
    assert stranger.api("GET", "health")[0] == 401

    admin = Client(url)
    assert admin.login()[0] == 200
    # Another site's page posting with the administrator's cookie: no CSRF token, or its own origin.
    status, _, _ = admin.request("POST", "/api/v1/groups/set", {"name": "evil", "devices": ["x"]}, csrf=False)
    assert status == 403
    status, _, _ = admin.request("POST", "/api/v1/groups/set", {"name": "evil", "devices": ["x"]},
                                 headers={"Origin": "https://evil.example"})
    assert status == 403
    status, _, _ = admin.request("POST", "/api/v1/groups/set", {"name": "evil", "devices": ["x"]},
                                 headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    # Logging in from another site is refused too (login CSRF).
    assert Client(url).request("POST", "/api/login", {"name": "admin", "password": PASSWORD},
                               headers={"Origin": "https://evil.example"})[0] == 403
    status, reply = admin.api("GET", "groups/list")
    assert status == 200 and reply["groups"] == [], reply
    # A change must be POSTed; malformed bodies and unknown operations get clear errors.
    assert admin.api("GET", "groups/set")[0] == 405
    assert admin.request("POST", "/api/v1/groups/set", "{not json")[0] == 400
    # Nesting is bounded as it is parsed, before and after the login (8 MB of "[" once cost
    # the coordinator 270 MB).
    deep = "[" * (6 << 20)
    status, _, data = admin.request("POST", "/api/v1/groups/set", deep, headers={"Content-Type": "application/json"})
    assert status == 400 and b"nests deeper" in data, data[:200]
    assert Client(url).request("POST", "/api/login", deep, headers={"Content-Type": "application/json"})[0] == 400
    assert admin.api("POST", "no/such/op", {})[0] == 404
    assert admin.api("GET", "../../etc/passwd")[0] == 404
    status, reply = admin.api("POST", "fleet_key/regenerate", {})
    assert status == 400 and "confirm" in reply["error"], reply

    # The session ends at logout; the old cookie is dead.
    cookie = admin.cookie
    assert admin.request("POST", "/api/logout")[0] == 200
    admin.cookie = cookie
    assert admin.api("GET", "health")[0] == 401


def test_password_guessing_is_slowed_and_logged(console):
    url, pin, db, log = console
    guesser = Client(url)
    # Unknown names get the same answer as wrong passwords (and count the same).
    assert guesser.login("nobody", "whatever it is")[0] == 401
    for i in range(4):
        assert guesser.login("admin", "guess number %d" % i)[0] == 401
    status, headers, _ = guesser.login("admin", "guess number 5")
    assert status == 429 and int(headers["Retry-After"]) > 0
    # The right password waits too: the address (and the name) are locked for the window.
    assert Client(url).login()[0] == 429
    assert open(log).read().count("console login as 'admin' from 127.0.0.1 refused") == 4


def test_revocation_and_a_new_password_end_sessions_at_once(console, tmp_path):
    url, pin, db, log = console
    c = Client(url)
    assert c.login("watcher")[0] == 200
    assert c.api("GET", "health")[0] == 200
    subprocess.run([COORDINATOR, "admin-key", "revoke", "--db", db, "--name", "watcher"], check=True, capture_output=True)
    assert c.api("GET", "health")[0] == 401
    assert Client(url).login("watcher")[0] == 401


def test_hostile_connections_are_bounded(console):
    url, pin, db, log = console
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    # Headers larger than the bound: 431, not a crash.
    c = Client(url)
    status, _, _ = c.request("GET", "/", headers={"X-Big": "a" * 9000})
    assert status == 431
    # Not TLS at all on the HTTPS port: the connection is closed.
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    received = b""
    while True:
        chunk = s.recv(4096)  # a TLS alert at most, then the end; a timeout fails the test
        if not chunk:
            break
        received += chunk
    assert b"HTTP/1.1" not in received and len(received) < 64, received
    s.close()
    # More connections than one address may hold: the rest are dropped, the server still answers.
    held = []
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    for _ in range(40):
        held.append(socket.create_connection((host, int(port)), timeout=5))
    time.sleep(0.3)
    dropped = 0
    for s in held:
        try:
            s.settimeout(0.5)
            if s.recv(1) == b"":
                dropped += 1
        except socket.timeout:
            pass
        except OSError:
            dropped += 1
    assert dropped >= 8, dropped
    for s in held:
        s.close()
    time.sleep(0.3)
    assert Client(url).request("GET", "/")[0] == 200
    # A body larger than the bound is refused from its Content-Length, before it is sent: 413.
    admin = Client(url)
    admin.login()
    conn = admin.connect()
    conn.putrequest("POST", "/api/v1/topology/import")
    for name, value in (("Cookie", admin.cookie), ("Origin", admin.origin), ("X-CSRF-Token", admin.csrf),
                        ("Content-Type", "application/json"), ("Content-Length", str(9 << 20))):
        conn.putheader(name, value)
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()


def test_metrics_on_loopback_and_not_elsewhere_unless_opened(console, tmp_path):
    url, pin, db, log = console
    status, headers, data = Client(url).request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = data.decode()
    for family in ("pd_coordinator_registrations_total", "pd_coordinator_heartbeats_total", "pd_coordinator_lookups_total",
                   "pd_coordinator_devices_online", "pd_coordinator_office_active_transfers",
                   "pd_coordinator_office_receive_bytes_per_second"):
        assert "# TYPE " + family in text, family


def test_plain_http_only_on_loopback(tmp_path):
    db, pin = init_coordinator(str(tmp_path))
    out = subprocess.run([COORDINATOR, "serve", "--db", db, "--listen", "127.0.0.1:0", "--console", "0.0.0.0:0", "--console-http"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "plain HTTP only on a loopback address" in out.stderr, out


def test_the_openapi_file_matches_the_server(console):
    """Every path of docs/console-openapi.json answers (not 404) with its method, every admin
    operation of the protocol is in the file, and nothing else is."""
    url, pin, db, log = console
    spec = json.load(open(os.path.join(os.environ.get("PD_SOURCE_DIR", "."), "docs", "console-openapi.json")))
    admin = Client(url)
    admin.login()
    documented = set()
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            if not path.startswith("/api/v1/"):
                continue
            documented.add(op["operationId"])
            assert op["operationId"] == "admin." + path[len("/api/v1/"):].replace("/", "."), path
            body = None if method == "get" else {}
            status, _, _ = admin.request(method.upper(), path, body)
            assert status not in (404, 405), (method, path, status)
    source = open(os.path.join(os.environ.get("PD_SOURCE_DIR", "."), "coordinator", "server_admin.cpp")).read()
    served = set(re.findall(r'op == "(admin\.[a-z_.]+)"', source))
    assert served == documented, (served - documented, documented - served)


@root_only
def test_a_lab_rollout_reaches_100_percent_in_every_office_in_the_browser(tmp_path, host_bin, plugin_dir):
    """Three offices behind shaped links, eight agents on the hierarchy backend; the browser,
    in the coordinator's namespace, watches the rollout page until every office is at 100 %
    and checks the bytes by source against what the agents did."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from netlab.fleet import Fleet
    from netlab.lab import Office
    from netlab import netns
    offices = [Office("central", devices=2), Office("branch-a", devices=3, wan_mbit=50, parent="central"),
               Office("branch-b", devices=3, wan_mbit=50, parent="central")]
    with Fleet(tmp_path / "f", offices, host_bin, plugin_dir, p2p="hierarchy",
               coordinator_args=["--console", "0.0.0.0:7443", "--console-poll-ms", "500"]) as fleet:
        db = os.path.join(fleet.dir, "coordinator.db")
        subprocess.run([COORDINATOR, "admin-key", "password", "--db", db, "--name", "admin"], input=PASSWORD + "\n",
                       check=True, capture_output=True, text=True)
        log = open(fleet.coordinator_log).read()
        pin = log.split("certificate public key sha256 ")[1].split(")")[0]
        url = "https://%s:7443/" % fleet.coordinator.split(":")[0]
        size = 32 * MiB
        data, manifest, origin = fleet.publish_random(size)
        assert fleet.admin("publish", manifest, "--origin", origin).returncode == 0
        downloads = str(tmp_path / "downloads")
        os.makedirs(downloads)
        with netns.inside(fleet.coordinator_device.ns):
            driver = browser(pin, downloads)
            try:
                wait = log_in(driver, url)
                wait.until(lambda d: d.find_element(By.ID, "server-id").text)
                driver.get(url + "#rollouts")
                wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "article.rollout"))
                jobs = fleet.deploy(manifest, origin)
                seen_partial = False
                def all_done(d):
                    nonlocal seen_partial
                    # Read in one script: the page redraws every poll, so elements go stale.
                    percents = {o: float(p) for o, p in d.execute_script(
                        "return [...document.querySelectorAll('article.rollout tr[data-office]')]"
                        ".map(r => [r.dataset.office, r.dataset.percent])")}
                    seen_partial = seen_partial or any(0 < p < 100 for p in percents.values())
                    return set(percents) == {"central", "branch-a", "branch-b"} and all(p == 100 for p in percents.values())
                WebDriverWait(driver, 300, poll_frequency=0.25).until(all_done)
                fleet.watch(jobs, timeout=60, out=open(os.devnull, "w"))
                # The job reports follow completion: then the bytes by source are whole.
                text = lambda d: d.execute_script("return document.getElementById('rollouts').textContent")
                WebDriverWait(driver, 30).until(lambda d: "8 devices hold it" in text(d) and "% of the WAN" in text(d))
                screenshot(driver, "rollouts")
                c = Client(url)
                assert c.login()[0] == 200
                report = c.api("GET", "rollouts")[1]["contents"][0]
                by_office = {o["office"]: o for o in report["offices"]}
                assert by_office["central"]["bytes"]["origin"] == size, by_office
                for branch in ("branch-a", "branch-b"):
                    assert by_office[branch]["bytes"]["origin"] == 0 and by_office[branch]["bytes"]["wan"] <= 1.05 * size
                delivered = sum(sum(o["bytes"].values()) for o in report["offices"])
                assert delivered == 8 * size, report
                # Against every device taking it from the origin: 8 copies over the WAN, here three.
                assert report["saved_fraction"] > 0.6, report
                driver.get(url + "#offices")
                wait.until(lambda d: "branch-b" in d.execute_script("return document.getElementById('office-tree').textContent"))
                screenshot(driver, "offices")
                driver.get(url + "#prestaging")
                wait.until(lambda d: d.find_element(By.ID, "page-prestaging").is_displayed())
                screenshot(driver, "prestaging")
                metrics = c.request("GET", "/metrics")[2].decode()
                assert 'pd_coordinator_office_bytes_total{office="branch-a",source="wan"}' in metrics, metrics
            finally:
                driver.quit()
        print("saw a partial office on the page: %s; saved %.2f" % (seen_partial, report["saved_fraction"]))


def test_python_admin_reads_the_console_s_reports_and_regenerates_the_key(console):
    """The console's operations from Python (peerdist.Admin over pd_admin_run)."""
    import peerdist
    url, pin, db, log = console
    address = re.search(r"listening on (\S+)", open(log).read()).group(1)
    admin_cred = os.path.join(os.path.dirname(db), "admin.cred")
    with peerdist.Admin(address, admin_cred) as admin:
        assert [o["name"] for o in admin.offices()] == ["Central Office"]
        assert admin.rollouts() == []
        key = admin.regenerate_fleet_key()
        assert re.fullmatch(r"[0-9a-f]{64}", key)
        assert admin.health()["key_mismatches"] == []
    with peerdist.Admin(address, os.path.join(os.path.dirname(db), "watcher.cred")) as viewer:
        with pytest.raises(peerdist.Error, match="viewer"):
            viewer.regenerate_fleet_key()


def test_the_pages_need_nothing_from_elsewhere(console):
    """No external assets: the page, script and styles name no other host, and the policy
    the server sends forbids loading any."""
    url, pin, db, log = console
    c = Client(url)
    status, headers, page = c.request("GET", "/")
    assert status == 200
    assert "default-src 'none'" in headers["Content-Security-Policy"] and "script-src 'self'" in headers["Content-Security-Policy"]
    for path in ("/", "/console.js", "/console.css", "/favicon.svg"):
        status, _, body = c.request("GET", path)
        assert status == 200, path
        # Example text shown in an empty field and the SVG namespace are not fetched; any
        # other URL would be.
        text = re.sub(r'placeholder="[^"]*"', "", body.decode()).replace("http://www.w3.org/2000/svg", "")
        assert "://" not in text, path


def non_loopback_address():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # no packet is sent: the kernel picks the source address
        return s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()


def test_metrics_are_refused_to_other_hosts_unless_opened(tmp_path):
    here = non_loopback_address()
    if not here or here.startswith("127."):
        pytest.skip("this host has no non-loopback address")
    db, pin = init_coordinator(str(tmp_path))
    for extra, expected in (([], 403), (["--console-metrics-public"], 200)):
        log = str(tmp_path / ("c%d.log" % expected))
        with open(log, "w") as out:
            proc = subprocess.Popen([COORDINATOR, "serve", "--db", db, "--listen", "127.0.0.1:0", "--console", "0.0.0.0:0"] + extra,
                                    stdout=out, stderr=out)
        try:
            port = wait_for_console(log, proc).rstrip("/").rsplit(":", 1)[1]
            status, _, _ = Client("https://%s:%s/" % (here, port)).request("GET", "/metrics")
            assert status == expected, (extra, status)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
