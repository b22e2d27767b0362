"""Transfers between two offices of a Lab with pd_bench_wan (bench/bench_wan.cpp): a seeder in
one office, pullers in another that see it as a peer in another office (the WAN class, so
the background transport by default). Used by the background-transport tests and benchmark."""
import os
import re
import shutil

from .lab import wait_until
from .servers import write_random_file

PORT = 7400


class WanSeeder:
    """Publishes a random package of `size_mib` MiB on `device` and serves it until the lab ends."""

    def __init__(self, lab, device, tool, workdir, size_mib):
        self.lab, self.tool, self.dir = lab, tool, str(workdir)
        self.package = write_random_file(os.path.join(self.dir, "pkg.bin"), size_mib)
        self.manifest = os.path.join(self.dir, "pkg.manifest")
        self.address = "%s:%d" % (device.ip, PORT)
        self.proc = lab.spawn(device, [tool, "seed", self.package, os.path.join(self.dir, "seed"), self.address,
                                       self.manifest], os.path.join(self.dir, "seed.log"))
        wait_until(lambda: os.path.exists(self.manifest) or self.proc.poll() is not None, 120, "the seeder to publish")
        if self.proc.poll() is not None:
            raise RuntimeError("the seeder exited: " + open(os.path.join(self.dir, "seed.log")).read())

    def fetch(self, device, tag, *settings):
        """Starts a puller on `device`; settings are "key=value" session settings."""
        return WanFetch(self, device, tag, settings)


class WanFetch:
    def __init__(self, seeder, device, tag, settings):
        d = seeder.dir
        self.cache, self.out, self.log = (os.path.join(d, "cache-" + tag), os.path.join(d, "out-" + tag),
                                          os.path.join(d, "fetch-%s.log" % tag))
        self.proc = seeder.lab.spawn(device, [seeder.tool, "fetch", seeder.manifest, self.cache, seeder.address,
                                              self.out] + list(settings), self.log)

    def wait(self, timeout):
        return self.proc.wait(timeout=timeout)

    def events(self):
        """[(seconds, "paused"|"resumed", message)] the puller printed so far."""
        found = []
        with open(self.log) as f:
            for line in f:
                m = re.match(r"^([0-9.]+) (paused|resumed) (.*)$", line)
                if m:
                    found.append((float(m.group(1)), m.group(2), m.group(3)))
        return found

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.cache, ignore_errors=True)
        if os.path.exists(self.out):
            os.unlink(self.out)

