"""The installed Debian packages, checked as an administrator would meet them: where the files
are, the system users, the man pages, pkg-config and the CMake package, the Python package,
then both daemons started exactly as their systemd units say (systemctl when systemd runs,
else the unit's ExecStart as the unit's user) and a signed package downloaded through the
agent's control socket. Run by install_and_test.sh as root, after `apt-get install ./*.deb`."""
import configparser
import glob
import json
import os
import pwd
import shlex
import shutil
import subprocess
import time

import pytest

SOURCE = os.environ["PD_SOURCE_DIR"]
# Outside /tmp and /var/tmp (the units' PrivateTmp) and /home (ProtectHome): the agent reads
# the manifest and origin from here under systemd too.
WORK = "/srv/peerdist-package-test"
SYSTEMD = os.path.isdir("/run/systemd/system")


def sh(*args, user=None, check=True, **kw):
    if user:
        args = ("runuser", "-u", user, "--") + args
    p = subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (args, p.returncode, p.stdout, p.stderr))
    return p


def unit(name):
    c = configparser.ConfigParser(strict=False, interpolation=None)
    c.read("/usr/lib/systemd/system/%s.service" % name)
    return c["Service"]


class Daemon:
    """A unit's ExecStart as its User, with the runtime folder systemd would make."""

    def __init__(self, name):
        self.name, self.proc = name, None
        self.service = unit(name)

    def start(self):
        if SYSTEMD:
            sh("systemctl", "start", self.name)
            return self
        user = self.service["User"]
        if "RuntimeDirectory" in self.service:
            run_dir = "/run/" + self.service["RuntimeDirectory"]
            os.makedirs(run_dir, exist_ok=True)
            shutil.chown(run_dir, user, self.service["Group"])
            os.chmod(run_dir, int(self.service.get("RuntimeDirectoryMode", "0755"), 8))
        self.log = open(os.path.join(WORK, self.name + ".log"), "w")
        cmd = ["runuser", "-u", user, "--"] + shlex.split(self.service["ExecStart"])
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=lambda: os.umask(int(self.service.get("UMask", "0022"), 8)))
        return self

    def stop(self):
        if SYSTEMD:
            sh("systemctl", "stop", self.name, check=False)
        elif self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def text(self):
        if SYSTEMD:
            return sh("journalctl", "-u", self.name, "--no-pager", check=False).stdout
        return open(self.log.name).read()


def wait_for(what, predicate, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


@pytest.fixture(scope="module")
def work():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    os.chmod(WORK, 0o755)
    yield WORK
    shutil.rmtree(WORK, ignore_errors=True)


def test_files_users_and_man_pages():
    for path in ("/usr/bin/pd", "/usr/bin/pd-agent", "/usr/bin/pd-coordinator", "/etc/peerdist/agent.json",
                 "/etc/peerdist/coordinator.toml", "/usr/lib/systemd/system/peerdist-agent.service",
                 "/usr/lib/systemd/system/peerdist-coordinator.service", "/usr/include/peerdist.h"):
        assert os.path.exists(path), path
    libs = glob.glob("/usr/lib/*/libpeerdist.so.0.4") or glob.glob("/usr/lib/libpeerdist.so.0.4")
    assert libs, "no libpeerdist.so.0.4"
    plugins = os.path.join(os.path.dirname(libs[0]), "peerdist", "plugins")
    assert sorted(os.listdir(plugins)) == ["peerdist-branchcache.so", "peerdist-hierarchy.so",
                                           "peerdist-origin.so"]
    for user, home in (("peerdist", "/var/lib/peerdist"), ("peerdist-coordinator", "/var/lib/peerdist-coordinator")):
        pw = pwd.getpwnam(user)
        assert pw.pw_uid < 1000 and pw.pw_dir == home and os.stat(home).st_uid == pw.pw_uid
    for page in ("pd", "pd-agent", "pd-coordinator"):
        text = sh("man", "-P", "cat", page, env=dict(os.environ, MANWIDTH="100")).stdout
        words = " ".join(text.split())  # man justifies lines: "Exit  status:"
        assert "--help" in words and "Exit status" in words, page


def test_the_sdk_as_a_vendor_builds_against_it(work):
    assert sh("pkg-config", "--modversion", "peerdist").stdout.strip() == "0.4.0"
    flags = shlex.split(sh("pkg-config", "--cflags", "--libs", "peerdist").stdout)
    out = os.path.join(work, "download-example")
    sh("cc", "-std=c99", "-Wall", "-Werror", os.path.join(SOURCE, "docs", "examples", "download.c"), *flags, "-o", out)
    assert os.path.getsize(out) > 0
    cmake_dir = os.path.join(work, "cmake")
    os.makedirs(cmake_dir)
    with open(os.path.join(cmake_dir, "CMakeLists.txt"), "w") as f:
        f.write("cmake_minimum_required(VERSION 3.25)\nproject(v C)\nfind_package(peerdist 0.4 REQUIRED)\n"
                "add_executable(v %s)\ntarget_link_libraries(v PRIVATE peerdist::sdk)\n"
                % os.path.join(SOURCE, "docs", "examples", "download.c"))
    sh("cmake", "-S", cmake_dir, "-B", cmake_dir + "/b")
    sh("cmake", "--build", cmake_dir + "/b")


def test_python_package():
    p = sh("python3", "-c", "import peerdist, sys; print(peerdist.__file__); print(peerdist.version())")
    assert p.stdout.startswith("/usr/lib/python3/dist-packages/peerdist/") and "0.4.0" in p.stdout


def test_both_daemons_as_their_units_start_them_and_a_download_through_the_agent(work):
    coordinator_db = "/var/lib/peerdist-coordinator/coordinator.db"
    # The coordinator, initialised as its user (docs/ops.md), its fleet key given to the agent.
    sh("pd-coordinator", "init", "--db", coordinator_db, "--key-out", "/var/lib/peerdist-coordinator/fleet.key",
       "--admin-out", "/var/lib/peerdist-coordinator/admin.cred", user="peerdist-coordinator")
    shutil.copy("/var/lib/peerdist-coordinator/fleet.key", "/etc/peerdist/fleet.key")
    shutil.chown("/etc/peerdist/fleet.key", "peerdist", "peerdist")
    os.chmod("/etc/peerdist/fleet.key", 0o600)
    # A signed package, and the agent told to trust its publisher.
    pkg = os.path.join(work, "Setup.msi")
    with open(pkg, "wb") as f:
        f.write(os.urandom(3 << 20))
    public = sh("pd", "publisher-key", "--out", os.path.join(work, "publisher.key")).stdout.strip()
    sh("pd", "publish", pkg, "--origin", pkg, "--sign", os.path.join(work, "publisher.key"),
       "--cache", os.path.join(work, "pubcache"))
    with open("/etc/peerdist/agent.json") as f:
        config = json.load(f)
    config["settings"] = {"trust.publisher_keys": public}
    with open("/etc/peerdist/agent.json", "w") as f:
        json.dump(config, f)
    # Under ProtectSystem=strict the agent writes only its own folders: deliver into one.
    out_dir = "/var/lib/peerdist/delivered"
    os.makedirs(out_dir, exist_ok=True)
    shutil.chown(out_dir, "peerdist", "peerdist")

    coordinator = Daemon("peerdist-coordinator").start()
    agent = Daemon("peerdist-agent").start()
    try:
        wait_for("the agent's control socket", lambda: os.path.exists("/run/peerdist/agent.sock"))
        p = sh("pd", "--agent", "/run/peerdist/agent.sock", "get", pkg + ".pdm", "--dest", os.path.join(out_dir, "Setup.msi"),
               "--json")
        job = json.loads(p.stdout)[0]
        assert job["state"] == "completed" and job["bytes_by_source"]["origin"] == 3 << 20, job
        assert open(os.path.join(out_dir, "Setup.msi"), "rb").read() == open(pkg, "rb").read()
        st = os.stat(os.path.join(out_dir, "Setup.msi"))
        assert st.st_uid == pwd.getpwnam("peerdist").pw_uid  # written by the unit's user, not root
        wait_for("the coordinator", lambda: sh("pd", "admin", "--coordinator", "127.0.0.1:34770", "--credential",
                                               "/var/lib/peerdist-coordinator/admin.cred", "health",
                                               check=False).returncode == 0)
        cache = "/var/cache/peerdist"
        assert os.stat(cache).st_uid == pwd.getpwnam("peerdist").pw_uid and not os.stat(cache).st_mode & 0o007
    finally:
        agent.stop()
        coordinator.stop()
        os.unlink("/etc/peerdist/fleet.key")  # ours, not the package's: purge would leave it
    assert "listening on" in coordinator.text()
