"""The origin plugin's HTTP client on Windows: pd-agent.exe under Wine downloads from a real
nginx on loopback — a whole package (ranges, every block verified), a redirect followed, a
404 and a redirect loop each failing with its reason, and the agent going on after them.
(tests/unit/test_origin_http.cpp is the Linux side; docs/windows.md.) Run by the
windows-test preset, which gives it the Windows build (conftest.py)."""
import os

import pytest

from netlab.servers import Nginx
from netlab.wine_agent import WineAgent, winpath

MiB = 1 << 20


def test_the_windows_agent_downloads_from_nginx_and_names_http_failures(tmp_path, windows_build):
    win_bin, win_plugins = windows_build
    www = tmp_path / "www"
    www.mkdir()
    data = os.urandom(5 * MiB + 777)
    (www / "payload.bin").write_bytes(data)
    nginx = Nginx(str(tmp_path / "nginx"), str(www)).start()
    agent = WineAgent(win_bin, tmp_path / "agent", "origin-http", win_plugins)
    agent.config["settings"].update({"trust.allow_unsigned": 1, "plugin.origin.retries": 1,
                                     "plugin.origin.retry_backoff_ms": 20})
    try:
        agent.start()
        # The manifest, made by pd.exe in the agent's own prefix.
        manifest = tmp_path / "payload.pdm"
        out = agent.run("pd.exe", "publish", winpath(www / "payload.bin"), "--manifest", winpath(manifest),
                        "--cache", winpath(tmp_path / "publisher"))
        assert out.returncode == 0, out.stderr

        def download(path, dest):
            job = agent.ok("download", manifest=winpath(manifest), origin=nginx.url(path), dest=winpath(dest))["job"]
            return agent.wait_job(job)

        st = download("/nope.bin", tmp_path / "a.bin")
        assert st["state"] == "failed" and "HTTP 404" in st["message"], st
        st = download("/loop", tmp_path / "a.bin")
        assert st["state"] == "failed" and "too many redirects" in st["message"], st
        st = download("/moved.bin", tmp_path / "a.bin")  # 301 to /payload.bin
        assert st["state"] == "completed", st
        assert st["bytes_by_source"]["origin"] == len(data), st
        assert (tmp_path / "a.bin").read_bytes() == data
    finally:
        agent.kill()
        nginx.stop()
