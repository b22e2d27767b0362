"""Real servers for origin tests: nginx on 127.0.0.1 with an ephemeral port (plain, TLS,
mutual TLS), certificates made with the openssl CLI, and small scripted TCP servers for
misbehaviours nginx will not produce (stalls, truncated bodies, wrong Content-Range) and an
HTTP proxy with CONNECT. Everything is bounded in time and torn down by its fixture."""
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

from . import procstat

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def write_random_file(path, size_mib):
    """A file of `size_mib` MiB of random bytes (packages for tests, benchmarks, demos)."""
    with open(path, "wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(1 << 20))
    return path


def serve_random_file(workdir, size_mib):
    """nginx on loopback serving a fresh random file at /file; returns (nginx, url, path)."""
    os.mkdir(os.path.join(workdir, "www"))
    path = write_random_file(os.path.join(workdir, "www", "file"), size_mib)
    nginx = Nginx(os.path.join(workdir, "nginx"), os.path.join(workdir, "www")).start()
    return nginx, nginx.url("/file"), path


def free_port():
    # Ports picked on the host are also free inside fresh namespaces.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, netns=None, ip="127.0.0.1"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if netns:
            probe = subprocess.run(["ip", "netns", "exec", netns, "bash", "-c", "exec 3<>/dev/tcp/%s/%d" % (ip, port)],
                                   capture_output=True, timeout=5)
            if probe.returncode == 0:
                return
        else:
            try:
                with socket.create_connection((ip, port), timeout=0.5):
                    return
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError("nothing listens on port %d after %ss" % (port, timeout))


def make_pki(d):
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate."""
    d = str(d)

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=peerdist test CA",
        "-keyout", d + "/ca.key", "-out", d + "/ca.pem")
    for name, ext in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name, "-keyout", "%s/%s.key" % (d, name),
            "-out", "%s/%s.csr" % (d, name))
        with open("%s/%s.ext" % (d, name), "w") as f:
            f.write(ext + "\n")
        run("x509", "-req", "-in", "%s/%s.csr" % (d, name), "-CA", d + "/ca.pem", "-CAkey", d + "/ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "%s/%s.ext" % (d, name), "-out", "%s/%s.pem" % (d, name))
    # A second, unrelated CA: certificates it does not sign are untrusted.
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=other CA",
        "-keyout", d + "/other.key", "-out", d + "/other.pem")
    return d


def session_cpu_seconds(sid):
    """User + system CPU seconds of the running processes of session `sid` (Linux /proc)."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = procstat.stat_fields(pid)
        except OSError:
            continue  # gone meanwhile
        if int(fields[3]) == sid:
            total += procstat.cpu_seconds(fields)
    return total


class Nginx:
    """nginx serving `root` on 127.0.0.1: plain, TLS and mutual-TLS ports."""

    def __init__(self, workdir, root, pki=None, listen_ip="127.0.0.1", netns=None):
        self.dir = str(workdir)
        self.ip = listen_ip
        self.netns = netns
        self.root = str(root)
        self.pki = pki
        self.port = free_port()
        self.tls_port = free_port() if pki else None
        self.mtls_port = free_port() if pki else None
        self.proc = None
        os.makedirs(self.dir + "/tmp", exist_ok=True)
        self._write_conf()

    def _write_conf(self):
        tls = ""
        if self.pki:
            cert = "ssl_certificate %s/server.pem; ssl_certificate_key %s/server.key;" % (self.pki, self.pki)
            tls = """
    server { listen 127.0.0.1:%d ssl; %s root %s;
             location = /downgrade.bin { return 302 http://127.0.0.1:%d/payload.bin; } }
    server { listen 127.0.0.1:%d ssl; %s root %s;
             ssl_client_certificate %s/ca.pem; ssl_verify_client on; }""" % (
                self.tls_port, cert, self.root, self.port, self.mtls_port, cert, self.root, self.pki)
        user = "user root;" if os.geteuid() == 0 else ""
        conf = """%(user)s
daemon off;
worker_processes 1;
pid %(dir)s/nginx.pid;
events { worker_connections 512; }
http {
    log_format pd '$status $request_method $uri $http_range $connection $connection_requests $body_bytes_sent';
    access_log %(dir)s/access.log pd;
    client_body_temp_path %(dir)s/tmp; proxy_temp_path %(dir)s/tmp; fastcgi_temp_path %(dir)s/tmp;
    uwsgi_temp_path %(dir)s/tmp; scgi_temp_path %(dir)s/tmp;
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000;
    server {
        listen %(ip)s:%(port)d;
        root %(root)s;
        location /capped/ { alias %(root)s/; limit_rate 16m; sendfile off; output_buffers 1 64k; }
        location = /loop { return 302 /loop; }
        location = /moved.bin { return 301 /payload.bin; }
        location = /error503.bin { return 503; }
        location = /range416.bin { return 416; }
    }%(tls)s
}
""" % dict(user=user, dir=self.dir, port=self.port, root=self.root, tls=tls, ip=self.ip)
        self.conf = self.dir + "/nginx.conf"
        with open(self.conf, "w") as f:
            f.write(conf)

    def start(self):
        cmd = [NGINX, "-p", self.dir, "-c", self.conf, "-e", self.dir + "/error.log"]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        self.proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_port(self.port, netns=self.netns, ip=self.ip)
        except RuntimeError:
            self.stop()
            raise RuntimeError("nginx did not start: " + open(self.dir + "/error.log").read()[-2000:])
        return self

    def kill(self):
        """SIGKILL master and workers, as a crash would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def cpu_seconds(self):
        """User + system CPU seconds of nginx's running master and workers (one session)."""
        return session_cpu_seconds(self.proc.pid) if self.proc else 0.0

    def url(self, path, scheme="http"):
        if scheme == "https":
            return "https://localhost:%d%s" % (self.tls_port, path)
        if scheme == "mtls":
            return "https://localhost:%d%s" % (self.mtls_port, path)
        return "http://%s:%d%s" % (self.ip, self.port, path)

    def bytes_sent(self, uri_prefix="/"):
        """Body bytes nginx sent for URIs under `uri_prefix` (origin egress)."""
        return sum(int(l[6]) for l in self.access_log() if len(l) > 6 and l[2].startswith(uri_prefix))

    def access_log(self):
        try:
            with open(self.dir + "/access.log") as f:
                return [line.split() for line in f]
        except FileNotFoundError:
            return []


class ScriptedServer:
    """A TCP server on 127.0.0.1 whose per-connection behaviour is a Python function
    handler(conn, request_bytes, state). Serves until closed; threads are daemons."""

    def __init__(self, handler):
        self.handler = handler
        self.state = {"requests": 0}
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(30)
        try:
            while not self.closed:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                self.state["requests"] += 1
                if not self.handler(conn, data, self.state):
                    return
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.closed = True
        self.sock.close()


def parse_range(request):
    for line in request.decode("latin-1").split("\r\n"):
        if line.lower().startswith("range: bytes="):
            a, b = line.split("=", 1)[1].split("-")
            return int(a), int(b)
    return None


def proxy_handler(log):
    """An HTTP proxy: CONNECT tunnels, absolute-form GETs forwarded. Logs what it saw."""

    def pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def handler(conn, request, state):
        head, _, rest = request.partition(b"\r\n\r\n")
        line = head.split(b"\r\n")[0].decode()
        method, target, _ = line.split(" ", 2)
        log.append(line)
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)), timeout=10)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
        else:
            assert target.startswith("http://")
            hostport, _, path = target[7:].partition("/")
            host, port = hostport.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)), timeout=10)
            lines = head.split(b"\r\n")
            lines[0] = ("%s /%s HTTP/1.1" % (method, path)).encode()
            upstream.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + rest)
        t = threading.Thread(target=pipe, args=(upstream, conn), daemon=True)
        t.start()
        pipe(conn, upstream)
        t.join(timeout=30)
        return False

    return handler
