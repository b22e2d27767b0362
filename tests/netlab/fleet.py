"""Fleet orchestration over the lab: a CDN (nginx) in the central office, a pd-agent on
every device, publish a package, deploy it to all or some devices, watch progress per
office, and report (table + PNG chart). Also runs the default way — every device fetching
from the CDN with curl — for comparison in the same run."""
import io
import os
import shutil
import subprocess
import sys
import time

from .agent import Agent, write_key
from .lab import Lab, Office
from .servers import Nginx

MiB = float(1 << 20)


def cpu_times():
    """(all CPU time, time the hypervisor took: steal) in jiffies, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return sum(fields[:8]), fields[7]


class Fleet:
    def __init__(self, workdir, offices, host_bin, plugin_dir, namespaces=None, cdn_office=None, p2p=False,
                 coordinator_bin=None, multicast_discovery=False, coordinator_args=(), congestion_control=None,
                 agent_settings=None):
        """p2p: agents share a fleet key and serve peers; in namespaces they find each other
        with the branchcache backend (multicast on each office subnet), on loopback through
        peer.static_peers (nothing is multicast from the host's own namespace).
        p2p="hierarchy": a pd-coordinator runs in the CDN's office with the lab's offices as
        its topology (Office.parent, Office.kind), and agents use the hierarchy backend —
        with the branchcache backend off, unless `multicast_discovery` (a mixed deployment).
        `coordinator_args`: more `pd-coordinator serve` options (the console's, say).
        `congestion_control`: every namespace's TCP congestion control (Lab's).
        `agent_settings`: more settings in every agent's config (read when plugins start)."""
        self.dir = str(workdir)
        self.p2p = p2p
        self.hierarchy = p2p == "hierarchy"
        self.multicast_discovery = multicast_discovery
        self.coordinator_bin = coordinator_bin or os.path.join(os.path.dirname(os.path.abspath(host_bin)), "coordinator",
                                                               "pd-coordinator")
        self.coordinator = None  # "ip:port" in hierarchy mode
        self.coordinator_args = list(coordinator_args)
        self.agent_settings = dict(agent_settings or {})
        self.host_bin = host_bin
        self.plugin_dir = plugin_dir
        self.lab = Lab(os.path.join(self.dir, "lab"), offices, namespaces=namespaces, congestion_control=congestion_control)
        self.cdn_office = cdn_office or offices[0].name
        self.agents = {}
        self.nginx = None
        self.www = os.path.join(self.dir, "www")

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def start(self):
        self.lab.start()
        try:
            os.makedirs(self.www, exist_ok=True)
            cdn = self.lab.add_device(self.cdn_office, "cdn")
            self.nginx = Nginx(os.path.join(self.dir, "nginx"), self.www, listen_ip=cdn.ip, netns=cdn.ns)
            self.lab.procs.append(self.nginx.start().proc)
            # Every package is signed (publish) and agents install only what this publisher signed.
            self.publisher_key = os.path.join(self.dir, "publisher.key")
            self.publisher_public = subprocess.run([os.path.join(self.host_bin, "pd"), "publisher-key", "--out", self.publisher_key],
                                                   check=True, capture_output=True, text=True, timeout=60).stdout.strip()
            extra = {}
            if self.hierarchy:
                key = self._start_coordinator()
                extra = {"fleet_key_file": key, "listen": "0.0.0.0:34760",
                         "plugins": {"branchcache": {"enabled": 1 if self.multicast_discovery else 0},
                                     "hierarchy": {"config": {"coordinator": self.coordinator, "fleet_key_file": key}}}}
            elif self.p2p:
                key = write_key(os.path.join(self.dir, "fleet.key"))
                extra = {"fleet_key_file": key,
                         "listen": "0.0.0.0:34760" if self.lab.namespaces else "127.0.0.1:0",
                         "plugins": {"branchcache": {"enabled": 1 if self.lab.namespaces else 0}}}
            for d in self.lab.devices:
                if d.name in ("cdn", "coord"):
                    continue
                a = Agent(os.path.join(self.host_bin, "pd-agent"), os.path.join(self.dir, "agents", d.name),
                          name=d.name, plugin_dir=self.plugin_dir, netns=d.ns, extra=dict(extra))
                del a.config["settings"]["trust.allow_unsigned"]
                a.config["settings"]["trust.publisher_keys"] = self.publisher_public
                a.config["settings"].update(self.agent_settings)
                a.start()
                self.lab.procs.append(a.proc)
                self.agents[d.name] = a
            if self.hierarchy:
                # The coordinator lists an office's participants in the first discovery round,
                # so the wait for co-starting devices can be short (docs/hierarchy.md).
                for a in self.agents.values():
                    a.ok("setting", key="peer.coop_settle_ms", value="200")
            # Tuning aid: PD_LAB_AGENT_SETTINGS="key=value ..." is set on every agent.
            for kv in os.environ.get("PD_LAB_AGENT_SETTINGS", "").split():
                for a in self.agents.values():
                    a.ok("setting", key=kv.split("=", 1)[0], value=kv.split("=", 1)[1])
            if self.p2p and not self.lab.namespaces:
                addrs = {n: a.ok("facts")["listen"] for n, a in self.agents.items()}
                for n, a in self.agents.items():
                    a.ok("setting", key="peer.static_peers", value=",".join(v for k, v in addrs.items() if k != n))
        except BaseException:
            self.close()
            raise
        return self

    def topology_csv(self, wan_budgets=None):
        """The lab's offices as a pd-coordinator topology (docs/hierarchy.md); `wan_budgets`
        maps office names to their WAN budget in bytes/s."""
        rows = ["name,parent,type,ranges,wan_budget"]
        for o in self.lab.offices:
            rows.append("%s,%s,%s,198.18.%d.0/24,%s" % (o.name, o.parent or "", getattr(o, "kind", "Default"), o.index,
                                                       (wan_budgets or {}).get(o.name, "")))
        return "\n".join(rows) + "\n"

    def _start_coordinator(self):
        if not self.lab.namespaces:
            raise ValueError("hierarchy mode needs network namespaces")
        d = self.lab.add_device(self.cdn_office, "coord")
        db = os.path.join(self.dir, "coordinator.db")
        key = os.path.join(self.dir, "fleet.key")
        subprocess.run([self.coordinator_bin, "init", "--db", db, "--key-out", key,
                        "--admin-out", os.path.join(self.dir, "admin.cred")], check=True, capture_output=True)
        self.coordinator = d.ip + ":7400"
        self.coordinator_log = os.path.join(self.dir, "coordinator.log")
        self.coordinator_device = d
        self.restart_coordinator()
        topo = os.path.join(self.dir, "topology.csv")
        with open(topo, "w") as f:
            f.write(self.topology_csv())
        out = self.admin("topology-import", topo)
        if out.returncode != 0:
            raise RuntimeError("topology import failed: " + out.stderr)
        return key

    def restart_coordinator(self):
        """Starts pd-coordinator serve on its database (again, after a kill)."""
        db = os.path.join(self.dir, "coordinator.db")
        mark = os.path.getsize(self.coordinator_log) if os.path.exists(self.coordinator_log) else 0
        self.coordinator_proc = self.lab.spawn(self.coordinator_device, [
            self.coordinator_bin, "serve", "--db", db, "--listen", self.coordinator, "--heartbeat-ms", "1000"] +
            self.coordinator_args,
            log_path=self.coordinator_log)
        deadline = time.monotonic() + 10
        while True:
            with open(self.coordinator_log) as f:
                f.seek(mark)
                if "listening on" in f.read():
                    return
            if self.coordinator_proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("pd-coordinator did not start: " + open(self.coordinator_log).read())
            time.sleep(0.05)

    def admin(self, *args, as_json=False):
        """Runs `pd-coordinator admin` from the coordinator's own namespace (with --json when
        `as_json`: the reply as JSON)."""
        flags = ["--json"] if as_json else []
        return self.lab.run(self.coordinator_device, [self.coordinator_bin, "admin", "--connect", self.coordinator,
                                                      "--credential", os.path.join(self.dir, "admin.cred")] + flags + list(args))

    def close(self):
        for a in self.agents.values():
            if a.running():
                try:
                    a.stop(timeout=10)
                except Exception:
                    a.kill()
        self.lab.close()

    def publish(self, path, name=None):
        """Puts the package on the CDN and writes its manifest and publication record
        (MANIFEST.sig, which the agents find beside it); returns (manifest path, URL)."""
        name = name or os.path.basename(path)
        shutil.copyfile(path, os.path.join(self.www, name))
        url = self.nginx.url("/" + name)
        manifest = os.path.join(self.dir, name + ".pdm")
        subprocess.run([os.path.join(self.host_bin, "pd"), "publish", os.path.join(self.www, name), "--name", name,
                        "--manifest", manifest, "--origin", url, "--sign", self.publisher_key,
                        "--cache", os.path.join(self.dir, "publisher")],
                       check=True, capture_output=True, timeout=600)
        return manifest, url

    def publish_random(self, size, name="pkg.bin"):
        """Publishes `size` random bytes; returns (data, manifest path, URL)."""
        path = os.path.join(self.dir, name)
        data = os.urandom(size)
        with open(path, "wb") as f:
            f.write(data)
        manifest, url = self.publish(path)
        return data, manifest, url

    def counters(self):
        c = {"origin": self.nginx.bytes_sent("/")}
        for o in self.lab.offices:
            c["wan_in:" + o.name] = (self.lab.wan_bytes(o.name) or (0, 0))[0]
            c["wan_in_payload:" + o.name] = self.lab.wan_payload_in(o.name) or 0
            c["lan:" + o.name] = self.lab.lan_bytes(o.name) or 0
        return c

    def measure_deployment(self, size, dest, offices, wan_mbit, name="pkg", timeout=600):
        """Publishes `size` random bytes, deploys them to every device into `dest` (a directory
        it makes), waits, and checks every device completed with the right bytes. Returns a dict:
        `statuses`, `origin` (copies the CDN served), `steal` (the share of CPU time the host
        took meanwhile), a `report` list of lines, and per name in `offices` a dict of `wan`
        (TCP payload over its WAN link ÷ size), `framed` (the same with headers), `last` (its
        last device's completion ÷ F/W, F/W being the content's time alone on a `wan_mbit`
        link) and `origin_bytes` (what its devices took from the origin)."""
        os.makedirs(dest)
        data, manifest, url = self.publish_random(size, name=name + ".bin")
        c0, cpu0 = self.counters(), cpu_times()
        statuses = self.watch(self.deploy(manifest, url, dest_dir=str(dest)), timeout=timeout, out=io.StringIO())
        c1, cpu1 = self.counters(), cpu_times()
        for device, s in statuses.items():
            assert s["state"] == "completed", (device, s)
            with open(os.path.join(str(dest), device + ".bin"), "rb") as f:
                assert f.read() == data, device
        fw = size * 8 / (wan_mbit * 1e6)
        start = min(s["started_ms"] for s in statuses.values())
        out = {"statuses": statuses, "origin": (c1["origin"] - c0["origin"]) / size,
               "steal": (cpu1[1] - cpu0[1]) / max(1, cpu1[0] - cpu0[0])}
        out["report"] = ["%s: origin %.3f x, CPU steal %.0f %%" % (name, out["origin"], 100 * out["steal"])]
        for office in offices:
            mine = [s for d, s in statuses.items() if self.lab.device(d).office.name == office]
            o = {"wan": (c1["wan_in_payload:" + office] - c0["wan_in_payload:" + office]) / size,
                 "framed": (c1["wan_in:" + office] - c0["wan_in:" + office]) / size,
                 "last": (max(s["finished_ms"] for s in mine) - start) / 1000.0 / fw,
                 "origin_bytes": sum(s["bytes_by_source"]["origin"] for s in mine)}
            out[office] = o
            out["report"].append("%s: WAN in %.3f x (%.3f x with framing), last done %.2f x F/W" % (
                office, o["wan"], o["framed"], o["last"]))
        return out

    def deploy(self, manifest, url, devices=None, dest_dir=None, content_info=None):
        """Starts the download on every named device (all when None); returns {device: job}.
        `content_info`: the path of the content's BranchCache Content Information."""
        jobs = {}
        for name, a in self.agents.items():
            if devices and name not in devices:
                continue
            req = {"manifest": manifest, "origin": url}
            if content_info:
                req["content_info"] = content_info
            if dest_dir:
                req["dest"] = os.path.join(dest_dir, name + ".bin")
            jobs[name] = a.ok("download", **req)["job"]
        return jobs

    def watch(self, jobs, timeout=1800, out=sys.stdout):
        """Progress bars per office until every job is final; returns {device: status}."""
        tty = out.isatty()
        drawn = 0
        start = time.monotonic()
        last_print = 0.0
        while True:
            statuses = {n: self.agents[n].ok("job", job=j)["status"] for n, j in jobs.items()}
            lines = []
            for office in self.lab.offices:
                mine = [s for n, s in statuses.items() if self.lab.device(n).office is office]
                if not mine:
                    continue
                done = sum(s["bytes_verified"] for s in mine)
                total = sum(s["bytes_total"] for s in mine) or 1
                finished = sum(s["state"] == "completed" for s in mine)
                frac = done / total
                lines.append("%-12s [%-30s] %5.1f%%  %d/%d devices done" %
                             (office.name, "#" * int(frac * 30), frac * 100, finished, len(mine)))
            final = all(s["state"] in ("completed", "failed", "cancelled") for s in statuses.values())
            now = time.monotonic()
            if tty or final or now - last_print >= 5:
                if tty and drawn:
                    out.write("\x1b[%dA" % drawn)
                out.write("".join(l + "\x1b[K\n" if tty else l + "\n" for l in lines))
                if not tty:
                    out.write("\n")
                out.flush()
                drawn = len(lines)
                last_print = now
            if final:
                return statuses
            if now - start > timeout:
                raise TimeoutError("deployment not finished after %ss" % timeout)
            time.sleep(0.5)

    def default_way(self, url, devices=None):
        """Every device fetches the whole package from the CDN with curl, all at once."""
        procs = {}
        t0 = time.monotonic()
        for name in self.agents:
            if devices and name not in devices:
                continue
            d = self.lab.device(name)
            dest = os.path.join(self.dir, "curl-" + name + ".bin")
            procs[name] = subprocess.Popen(self.lab.command(d, ["curl", "-s", "-o", dest, url]))
        times = {}
        for name, p in procs.items():
            p.wait(timeout=1800)
            times[name] = time.monotonic() - t0
            os.unlink(os.path.join(self.dir, "curl-" + name + ".bin"))
        return times


def table(fleet, size, runs):
    """runs: [(label, seconds, {device: seconds}, counters delta)] -> printable table."""
    rows = ["%-34s %8s %14s" % ("", "time", "origin egress")]
    for label, secs, _, c in runs:
        rows.append("%-34s %7.1fs %10.1f MiB (%.2f x content)" % (label, secs, c["origin"] / MiB, c["origin"] / size))
    for office in fleet.lab.offices:
        for label, _, _, c in runs:
            rows.append("  %-12s %-28s WAN in %8.1f MiB (%.2f x)   LAN %8.1f MiB" % (
                office.name, label, c["wan_in:" + office.name] / MiB, c["wan_in:" + office.name] / size,
                c["lan:" + office.name] / MiB))
    rows.append("  (origin egress: the CDN's body bytes; WAN in / LAN: bytes on the links, TCP/IP and peer\n"
                "   framing included, ~5 % on top of the content)")
    return "\n".join(rows)


def chart(fleet, path, statuses, runs):
    """PNG: bytes by source class per office, completion time per device."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    offices = [o.name for o in fleet.lab.offices]
    classes = ["local", "lan", "wan", "origin"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    bottom = [0.0] * len(offices)
    for cls in classes:
        vals = [sum(s["bytes_by_source"][cls] for n, s in statuses.items() if fleet.lab.device(n).office.name == o) / MiB
                for o in offices]
        ax1.bar(offices, vals, bottom=bottom, label=cls)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax1.set_ylabel("MiB delivered to devices")
    ax1.set_title("peerdist: bytes by source class per office")
    ax1.legend()
    names = sorted(statuses)
    for i, (label, _, times, _) in enumerate(runs):
        ax2.barh([j + i * 0.4 for j in range(len(names))], [times.get(n, 0) for n in names], height=0.4, label=label)
    ax2.set_yticks([j + 0.2 for j in range(len(names))])
    ax2.set_yticklabels(names)
    ax2.set_xlabel("seconds until the device had the package")
    ax2.set_title("completion time per device")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
