"""What the console tests share: a coordinator serving the console, HTTP requests as a
browser (or an attacker) would send them, and headless Chromium through Selenium."""
import http.client
import json
import os
import re
import ssl
import subprocess
import time

BUILD = os.environ.get("PD_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build", "dev"))
COORDINATOR = os.path.join(BUILD, "coordinator", "pd-coordinator")
PASSWORD = "correct horse battery staple"
SCREENSHOTS = os.path.join(BUILD, "console-screenshots")


def init_coordinator(workdir):
    """A database with administrators 'admin' and 'watcher' (viewer), both with console
    passwords; returns (db path, the certificate's public key pin)."""
    db = os.path.join(workdir, "c.db")
    out = subprocess.run([COORDINATOR, "init", "--db", db, "--admin-out", os.path.join(workdir, "admin.cred"), "--json"],
                         check=True, capture_output=True, text=True)
    pin = json.loads(out.stdout)["console_certificate_pin"]
    subprocess.run([COORDINATOR, "admin-key", "add", "--db", db, "--name", "watcher", "--role", "viewer",
                    "--out", os.path.join(workdir, "watcher.cred")], check=True, capture_output=True)
    for name in ("admin", "watcher"):
        subprocess.run([COORDINATOR, "admin-key", "password", "--db", db, "--name", name], input=PASSWORD + "\n",
                       check=True, capture_output=True, text=True)
    return db, pin


def wait_for_console(log_path, proc, timeout=10):
    """The console's URL, once pd-coordinator logged it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log_path) as f:
            m = re.search(r"console at (https?://\S+/)", f.read())
        if m:
            return m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError("the console did not start: " + open(log_path).read())


class Client:
    """HTTP(S) to the console, one connection per request, cookies kept."""

    def __init__(self, url):
        m = re.match(r"(https?)://([^/]+)/", url)
        self.scheme, self.host = m.group(1), m.group(2)
        self.origin = "%s://%s" % (self.scheme, self.host)
        self.cookie = ""
        self.csrf = ""

    def connect(self, timeout=10):
        host, port = self.host.rsplit(":", 1)
        if self.scheme == "https":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # the tests pin the key in the browser; here, the bytes
            return http.client.HTTPSConnection(host, int(port), timeout=timeout, context=ctx)
        return http.client.HTTPConnection(host, int(port), timeout=timeout)

    def request(self, method, path, body=None, headers=None, origin=True, csrf=True):
        h = {}
        if self.cookie:
            h["Cookie"] = self.cookie
        if origin and method == "POST":
            h["Origin"] = self.origin
        if csrf and self.csrf and method == "POST":
            h["X-CSRF-Token"] = self.csrf
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        c = self.connect()
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        set_cookie = r.getheader("Set-Cookie") or ""
        if set_cookie.startswith("pd_console="):
            self.cookie = set_cookie.split(";", 1)[0]
        return r.status, dict(r.getheaders()), data

    def login(self, name="admin", password=PASSWORD):
        status, headers, data = self.request("POST", "/api/login", {"name": name, "password": password})
        if status == 200:
            self.csrf = json.loads(data)["csrf"]
        return status, headers, data

    def api(self, method, op_path, body=None):
        status, _, data = self.request(method, "/api/v1/" + op_path, body)
        return status, json.loads(data) if data.startswith(b"{") else data


def browser(pin, downloads):
    """Headless Chromium that trusts exactly the console's key (no blanket certificate
    bypass), at 1280x800, downloading into `downloads`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800",
                "--ignore-certificate-errors-spki-list=" + pin, "--user-data-dir=" + os.path.join(downloads, ".profile")):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": downloads, "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
    return driver


def screenshot(driver, name):
    os.makedirs(SCREENSHOTS, exist_ok=True)
    path = os.path.join(SCREENSHOTS, name + ".png")
    driver.save_screenshot(path)
    return path


def log_in(driver, url, name="admin", password=PASSWORD):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    driver.get(url)
    wait = WebDriverWait(driver, 20)
    wait.until(lambda d: d.find_element(By.ID, "login-name").is_displayed())
    driver.find_element(By.ID, "login-name").send_keys(name)
    driver.find_element(By.ID, "login-password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    return wait
