"""A fleet lab built from Linux network namespaces (design §8).

    with Lab(workdir, [Office("central", devices=2),
                       Office("branch-a", devices=3, wan_mbit=100),
                       Office("branch-b", devices=3, wan_mbit=100)]) as lab:
        lab.spawn(lab.device("branch-a-1"), ["pd-agent", ...])
        lab.wan_bytes("branch-a")

Topology: a router namespace (the WAN core); per office a gateway namespace holding the
office LAN bridge, joined by a veth pair (the office's WAN link) to its parent office's
gateway, or to the router when it has no parent; per device a namespace on the office bridge.
The network is the office tree: a child office reaches everyone else through its parent's
gateway, so its traffic to the rest of the fleet crosses its own WAN link and then its
parent's, and what it pulls from its parent crosses its own link only (a WiFi subnet behind
a branch's router, a small site behind a regional one). Branch WAN links are shaped with tbf
on both forwarding hops' egress (parent → office downlink, gateway → parent uplink), with
TSO/GSO/GRO off so tbf sees real frames. Addresses: office i LAN 198.18.i.0/24 (gateway .1,
devices .10+), WAN link i 198.19.i.0/30 (the parent's end .1). Names carry a per-run id;
teardown (processes, then namespaces) runs on exit, on exceptions, on SIGTERM/SIGINT and at
interpreter exit. Without root (or with namespaces=False) the same API runs every device on
127.0.0.1 with no shaping.
"""
import atexit
import json
import os
import re
import secrets
import signal
import subprocess
import time


class LabError(Exception):
    pass


class Office:
    def __init__(self, name, devices=2, wan_mbit=None, wan_queue_ms=200, parent=None, kind="Default",
                 wan_delay_ms=None, wan_jitter_ms=0, wan_loss=0):
        self.name = name
        # One-way propagation delay of the WAN link (a pd_delay_line between its two ends;
        # docs/netlab.md "Delay lines"), with optional jitter (ms) and loss (a probability).
        self.wan_delay_ms = wan_delay_ms
        self.wan_jitter_ms = wan_jitter_ms
        self.wan_loss = wan_loss
        self.kind = kind  # the office type in hierarchy mode: Default, VPN or WiFi
        self.devices = devices
        self.wan_mbit = wan_mbit  # None: unshaped
        self.wan_queue_ms = wan_queue_ms
        self.parent = parent
        self.index = None
        self.gw_ns = None
        self.wan_gw_if = None  # the office's end of its WAN link
        self.wan_up_ns = None  # the namespace at the other end: the parent's gateway or the router
        self.wan_up_if = None


class Device:
    def __init__(self, name, office, ns, ip):
        self.name = name
        self.office = office
        self.ns = ns
        self.ip = ip

    def __repr__(self):
        return "Device(%s, %s, %s)" % (self.name, self.office.name, self.ip)


ALLOWED_CC = "/proc/sys/net/ipv4/tcp_allowed_congestion_control"


def _allow_congestion_control(name):
    """Linux lets a namespace other than the first default to a congestion control only if
    the first namespace allows it (tcp_allowed_congestion_control: what unprivileged sockets
    may pick). A host whose own default is not cubic (bbr) does not list cubic there, and the
    lab's namespaces could not use it: added, once, for the host's life."""
    with open(ALLOWED_CC) as f:
        allowed = f.read().split()
    if name not in allowed:
        with open(ALLOWED_CC, "w") as f:
            f.write(" ".join(allowed + [name]))


def _run(cmd, check=True, timeout=30):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise LabError("%s failed: %s" % (" ".join(cmd), p.stderr.strip()))
    return p


_live_labs = set()


def _cleanup_all():
    for lab in list(_live_labs):
        lab.close()


atexit.register(_cleanup_all)


class Lab:
    def __init__(self, workdir, offices, namespaces=None, delay_line_bin=None, congestion_control=None):
        self.dir = str(workdir)
        # TCP's congestion control in every namespace (None: the host's default, which a new
        # namespace inherits — bbr on these machines). The devices peerdist is for run
        # Windows, whose default is cubic, as is Debian's; runs with real round trips use it.
        self.congestion_control = congestion_control
        build = os.environ.get("PD_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build", "dev"))
        self.delay_line_bin = delay_line_bin or os.environ.get("PD_DELAY_LINE", os.path.join(build, "tests", "pd_delay_line"))
        os.makedirs(self.dir, exist_ok=True)
        self.offices = offices
        self.run_id = secrets.token_hex(2)
        self.namespaces = (os.geteuid() == 0) if namespaces is None else namespaces
        self.router_ns = None
        self.devices = []
        self.procs = []
        self.created_ns = []
        self._old_handlers = {}

    # ---- lifecycle ----
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def start(self):
        _live_labs.add(self)
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        try:
            if self.namespaces:
                self._build_namespaces()
            else:
                self._build_loopback()
        except BaseException:
            self.close()
            raise
        return self

    def _on_signal(self, signum, frame):
        self.close()
        raise KeyboardInterrupt("lab interrupted by signal %d" % signum)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.procs = []
        for ns in reversed(self.created_ns):
            pids = _run(["ip", "netns", "pids", ns], check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            _run(["ip", "netns", "del", ns], check=False)
        self.created_ns = []
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)
        self._old_handlers = {}
        _live_labs.discard(self)

    # ---- building ----
    def _ns(self, suffix):
        name = "pd%s-%s" % (self.run_id, suffix)
        _run(["ip", "netns", "add", name])
        self.created_ns.append(name)
        self._in(name, ["ip", "link", "set", "lo", "up"])
        if self.congestion_control:
            _allow_congestion_control(self.congestion_control)
            self._in(name, ["sysctl", "-qw", "net.ipv4.tcp_congestion_control=" + self.congestion_control])
        return name

    def _in(self, ns, cmd, check=True):
        return _run(["ip", "netns", "exec", ns] + cmd, check=check)

    def _veth(self, a_ns, a_if, b_ns, b_if):
        _run(["ip", "link", "add", a_if, "netns", a_ns, "type", "veth", "peer", "name", b_if, "netns", b_ns])
        for ns, ifname in ((a_ns, a_if), (b_ns, b_if)):
            # tbf must see real frames, not 64 KiB super-packets.
            self._in(ns, ["ethtool", "-K", ifname, "tso", "off", "gso", "off", "gro", "off"], check=False)
            self._in(ns, ["ip", "link", "set", ifname, "up"])

    def _delay_line(self, office, up, u_if, gw, g_if):
        """The WAN link as two veth pairs meeting in a namespace of their own, where
        pd_delay_line forwards each frame after the office's delay: the link's queue (tbf, on
        the two outer ends) comes before its propagation delay, as on a real line."""
        wire = self._ns("x%d" % office.index)
        a_if, b_if = "x%s%da" % (self.run_id, office.index), "x%s%db" % (self.run_id, office.index)
        self._veth(up, u_if, wire, a_if)
        self._veth(wire, b_if, gw, g_if)
        # Frames reach the line as sent, so their checksums must be complete: a veth would
        # otherwise leave them to an offload that a raw socket's resend never performs.
        for ns, ifname in ((up, u_if), (wire, a_if), (wire, b_if), (gw, g_if)):
            self._in(ns, ["ethtool", "-K", ifname, "tx", "off"], check=False)
        cmd = [self.delay_line_bin, a_if, b_if, "--delay-ms", str(office.wan_delay_ms)]
        if office.wan_jitter_ms:
            cmd += ["--jitter-ms", str(office.wan_jitter_ms)]
        if office.wan_loss:
            cmd += ["--loss", str(office.wan_loss)]
        log = open(os.path.join(self.dir, "delay-line-%d.log" % office.index), "ab")
        self.procs.append(subprocess.Popen(["ip", "netns", "exec", wire] + cmd, stdout=log, stderr=log,
                                           start_new_session=True))
        office.wire_ns = wire

    def _shape(self, ns, ifname, mbit, queue_ms):
        rate_bytes = mbit * 1e6 / 8
        burst = max(int(rate_bytes / 250), 3200)  # ~4 ms of tokens
        limit = int(rate_bytes * queue_ms / 1000) + burst
        self._in(ns, ["tc", "qdisc", "replace", "dev", ifname, "root", "tbf", "rate", "%dmbit" % mbit,
                      "burst", str(burst), "limit", str(limit)])

    def _build_namespaces(self):
        self.router_ns = self._ns("r")
        self._in(self.router_ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        for i, office in enumerate(self.offices, start=1):
            office.index = i
        by_name = {o.name: o for o in self.offices}
        for office in self.offices:
            seen, o = set(), office
            while o is not None:
                if o.name in seen:
                    raise LabError("office %s is its own ancestor" % o.name)
                seen.add(o.name)
                o = by_name.get(o.parent)
        built = set()

        def build(office):  # parents first: a child's link ends at its parent's gateway
            parent = by_name.get(office.parent)
            if parent is not None and parent.name not in built:
                build(parent)
            i = office.index
            gw = self._ns("g%d" % i)
            office.gw_ns = gw
            self._in(gw, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            up = parent.gw_ns if parent is not None else self.router_ns
            u_if, g_if = "w%s%dr" % (self.run_id, i), "w%s%dg" % (self.run_id, i)
            if office.wan_delay_ms is None:
                self._veth(up, u_if, gw, g_if)
            else:
                self._delay_line(office, up, u_if, gw, g_if)
            office.wan_gw_if, office.wan_up_ns, office.wan_up_if = g_if, up, u_if
            self._in(up, ["ip", "addr", "add", "198.19.%d.1/30" % i, "dev", u_if])
            self._in(gw, ["ip", "addr", "add", "198.19.%d.2/30" % i, "dev", g_if])
            self._in(gw, ["ip", "route", "add", "default", "via", "198.19.%d.1" % i])
            # Every hop above routes the office's LAN down the tree toward it.
            via, hop = i, parent
            while True:
                ns = hop.gw_ns if hop is not None else self.router_ns
                self._in(ns, ["ip", "route", "add", "198.18.%d.0/24" % i, "via", "198.19.%d.2" % via])
                if hop is None:
                    break
                via, hop = hop.index, by_name.get(hop.parent)
            if office.wan_mbit:
                self._shape(up, u_if, office.wan_mbit, office.wan_queue_ms)
                self._shape(gw, g_if, office.wan_mbit, office.wan_queue_ms)
            br = "b%s%d" % (self.run_id, i)
            # An office LAN is a switch: its frames skip the host's netfilter hooks, which a
            # loaded br_netfilter would otherwise run for every bridged frame (and charge to
            # whichever process sent it).
            self._in(gw, ["ip", "link", "add", br, "type", "bridge", "nf_call_iptables", "0", "nf_call_ip6tables", "0",
                          "nf_call_arptables", "0"])
            self._in(gw, ["ip", "addr", "add", "198.18.%d.1/24" % i, "dev", br])
            self._in(gw, ["ip", "link", "set", br, "up"])
            for j in range(1, office.devices + 1):
                self._add_device(office, "%s-%d" % (office.name, j), br)
            built.add(office.name)

        for office in self.offices:
            if office.name not in built:
                build(office)

    def _add_device(self, office, name, bridge):
        i = office.index
        j = sum(1 for d in self.devices if d.office is office) + 1
        ns = self._ns("d%d-%d" % (i, j))
        d_if, b_if = "l%s%dd%d" % (self.run_id, i, j), "l%s%db%d" % (self.run_id, i, j)
        self._veth(ns, d_if, office.gw_ns, b_if)
        self._in(office.gw_ns, ["ip", "link", "set", b_if, "master", bridge])
        ip = "198.18.%d.%d" % (i, 9 + j)
        self._in(ns, ["ip", "addr", "add", ip + "/24", "dev", d_if])
        self._in(ns, ["ip", "route", "add", "default", "via", "198.18.%d.1" % i])
        dev = Device(name, office, ns, ip)
        self.devices.append(dev)
        return dev

    def add_device(self, office_name, name):
        """An extra host in an office (e.g. the CDN in the central office)."""
        office = self.office(office_name)
        if not self.namespaces:
            dev = Device(name, office, None, "127.0.0.1")
            self.devices.append(dev)
            return dev
        return self._add_device(office, name, "b%s%d" % (self.run_id, office.index))

    def _build_loopback(self):
        for i, office in enumerate(self.offices, start=1):
            office.index = i
            for j in range(1, office.devices + 1):
                self.devices.append(Device("%s-%d" % (office.name, j), office, None, "127.0.0.1"))

    # ---- using ----
    def office(self, name):
        for o in self.offices:
            if o.name == name:
                return o
        raise LabError("no office named %s" % name)

    def device(self, name):
        for d in self.devices:
            if d.name == name:
                return d
        raise LabError("no device named %s" % name)

    def devices_in(self, office_name):
        return [d for d in self.devices if d.office.name == office_name]

    def command(self, device, cmd):
        return (["ip", "netns", "exec", device.ns] + list(cmd)) if device.ns else list(cmd)

    def spawn(self, device, cmd, log_path=None, **kw):
        """Starts a process on a device (its own process group; killed at teardown)."""
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        p = subprocess.Popen(self.command(device, cmd), stdout=out, stderr=out, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def run(self, device, cmd, timeout=60):
        return subprocess.run(self.command(device, cmd), capture_output=True, text=True, timeout=timeout)

    def _link_stats(self, ns, ifname):
        p = self._in(ns, ["ip", "-j", "-s", "link", "show", "dev", ifname])
        info = json.loads(p.stdout)[0]["stats64"]
        return info["rx"]["bytes"], info["tx"]["bytes"]

    def wan_packets(self, office_name):
        """(packets into the office, packets out of it) over its WAN link; None without namespaces."""
        office = self.office(office_name)
        if not self.namespaces:
            return None
        p = self._in(office.gw_ns, ["ip", "-j", "-s", "link", "show", "dev", office.wan_gw_if])
        info = json.loads(p.stdout)[0]["stats64"]
        return info["rx"]["packets"], info["tx"]["packets"]

    # What each frame on a WAN link carries besides TCP's payload: Ethernet (14), IPv4 (20) and
    # TCP with timestamps (32) — 4.6 % of the payload at a 1500-byte MTU.
    FRAME_OVERHEAD = 66

    def wan_payload_in(self, office_name):
        """Bytes TCP carried into the office over its WAN link so far: the link's bytes less
        FRAME_OVERHEAD per frame; None without namespaces."""
        if not self.namespaces:
            return None
        return self.wan_bytes(office_name)[0] - self.wan_packets(office_name)[0] * self.FRAME_OVERHEAD

    def wan_bytes(self, office_name):
        """(bytes into the office, bytes out of it) over its WAN link; None without namespaces."""
        office = self.office(office_name)
        if not self.namespaces:
            return None
        return self._link_stats(office.gw_ns, office.wan_gw_if)

    def tbf_drops(self, office_name):
        """Packets tbf dropped on the egress into the office (its WAN downlink)."""
        office = self.office(office_name)
        out = self._in(office.wan_up_ns, ["tc", "-s", "qdisc", "show", "dev", office.wan_up_if]).stdout
        m = re.search(r"dropped (\d+)", out)
        return int(m.group(1)) if m else 0

    def lan_bytes(self, office_name):
        """Bytes the office LAN delivered to its devices (bridge ports' egress); None without namespaces."""
        office = self.office(office_name)
        if not self.namespaces:
            return None
        total = 0
        for j, d in enumerate([d for d in self.devices if d.office is office], start=1):
            total += self._link_stats(office.gw_ns, "l%s%db%d" % (self.run_id, office.index, j))[1]
        return total

    def ip_counters(self, device):
        """The device's IP counters (/proc/net/netstat IpExt: OutMcastPkts, OutBcastPkts, ...)."""
        out = self._in(device.ns, ["cat", "/proc/net/netstat"]).stdout.splitlines()
        rows = [l.split()[1:] for l in out if l.startswith("IpExt:")]
        return dict(zip(rows[0], (int(v) for v in rows[1])))

    def namespaces_alive(self):
        out = _run(["ip", "netns", "list"], check=False).stdout
        return [l.split()[0] for l in out.splitlines() if l.startswith("pd%s-" % self.run_id)]


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise LabError("timed out after %ss waiting for %s" % (timeout, what))
