"""A real TLS server in front of the fake provider: Debian's nginx-light with a
test CA and a server certificate made at run time with the openssl CLI.

    pki = make_pki(dir)                  -> Pki(ca_file, cert_file, key_file)
    TlsFront(upstream_port, tmpdir=None, pki=None, log=True)
        .port_h2 .port_h1 .ca_file .url(prefix="", http2=True)
        .requests() -> [Served(protocol, connection, port, status)]   .stop()

nginx listens on two free loopback ports: `port_h2` offers HTTP/2 and
HTTP/1.1 in ALPN (nginx `http2` on the listener), `port_h1` only HTTP/1.1.
Both proxy every request over kept-alive HTTP/1.1 connections to
127.0.0.1:upstream_port (the fake's own HTTP server), so a worker pointed at
`url(...)` speaks real TLS (and HTTP/2 where offered) to a server that trusts
nothing but the CA of `ca_file`: a client that does not trust that CA fails
its handshake. With log=True nginx writes one line per request it served
(`requests()`: the protocol the client spoke, nginx's serial number of the
client connection, the listener's port, the status); the bench turns it off.
Two paths are nginx's own, for tests of redirects: `/_redirect/NAME`
answers 302 to `/_files/NAME` on the same listener, `/_redirect_http/NAME`
302 to the fake's `http://` `/_files/NAME`.
Everything is registered with tests.lib.procs.
"""
import shutil
import subprocess
import time
from collections import namedtuple
from pathlib import Path

from . import procs

NGINX = "/usr/sbin/nginx"
START_TIMEOUT_S = 15

Pki = namedtuple("Pki", "ca_file cert_file key_file")
Served = namedtuple("Served", "protocol connection port status")


def _openssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {p.stderr.strip()[-500:]}")


def make_pki(directory, hosts=("127.0.0.1", "localhost"), name="test"):
    """A CA (its certificate is `ca_file`) and a server certificate it signed
    for hosts, with P-256 keys, valid for a day, in directory."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = f"{name}-ca.key", f"{name}-ca.pem"
    key, csr, crt = f"{name}-server.key", f"{name}-server.csr", f"{name}-server.pem"
    san = ",".join(("IP:" if h.replace(".", "").isdigit() else "DNS:") + h for h in hosts)
    ext = d / f"{name}-server.ext"
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", ca_key, "-out", ca_crt, "-days", "1", "-subj", f"/CN=promptyard {name} CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", csr, "-subj", f"/CN={hosts[0]}", cwd=d)
    _openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
             "-out", crt, "-days", "1", "-extfile", ext.name, cwd=d)
    return Pki(str(d / ca_crt), str(d / crt), str(d / key))


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 20000; }}
http {{
    log_format served '$server_protocol $connection $server_port $status';
    {access_log};
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 32m;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    http2_max_requests 100000000;
    http2_max_concurrent_streams 128;
    proxy_read_timeout 3600s;
    proxy_send_timeout 3600s;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:tls:1m;
    upstream fake {{
        server 127.0.0.1:{upstream};
        keepalive 1024;
        keepalive_requests 100000000;
    }}
    server {{
        listen 127.0.0.1:{port_h2} ssl http2;
        listen 127.0.0.1:{port_h1} ssl;
        # Redirects, for the worker's fetches of URL parts: /_redirect/NAME
        # answers 302 to /_files/NAME on the same listener, and
        # /_redirect_http/NAME 302 to the fake's plain-HTTP /_files/NAME.
        location /_redirect/ {{
            rewrite ^/_redirect/(.*)$ /_files/$1 redirect;
        }}
        location /_redirect_http/ {{
            rewrite ^/_redirect_http/(.*)$ http://127.0.0.1:{upstream}/_files/$1 redirect;
        }}
        location / {{
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"""


class TlsFront:
    """nginx terminating TLS (HTTP/2 and HTTP/1.1) in front of a plain-HTTP
    upstream on 127.0.0.1:upstream_port. See the module's comment."""

    def __init__(self, upstream_port, tmpdir=None, pki=None, log=True):
        if not Path(NGINX).exists():
            raise FileNotFoundError(f"{NGINX} not found (deploy/install-deps.sh installs nginx-light)")
        self.tmp = procs.TempDir("tls-front-", parent=tmpdir)
        self.dir = self.tmp.path
        self.upstream_port = upstream_port
        self.pki = pki or make_pki(self.dir / "pki")
        self.ca_file = self.pki.ca_file
        self.log_path = self.dir / "error.log"
        self.access_path = self.dir / "access.log" if log else None
        self.proc = None
        procs.register(self)
        procs.attach_log("nginx", self.log_path)
        try:
            self._start()
        except BaseException:
            self._cleanup()
            raise

    def _start(self):
        for attempt in range(3):
            self.port_h2, self.port_h1 = procs.free_port(), procs.free_port()
            if self.port_h2 == self.port_h1:
                continue
            conf = self.dir / "nginx.conf"
            conf.write_text(NGINX_CONF.format(dir=self.dir, cert=self.pki.cert_file,
                                              key=self.pki.key_file, upstream=self.upstream_port,
                                              port_h2=self.port_h2, port_h1=self.port_h1,
                                              access_log=f"access_log {self.access_path} served"
                                              if self.access_path else "access_log off"))
            self.proc = procs.Proc([NGINX, "-p", str(self.dir), "-e", str(self.log_path),
                                    "-c", str(conf)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, register=False)
            if self._wait_listening():
                return
            self.proc.kill()
            if attempt == 2:
                raise RuntimeError(f"nginx did not start: {procs.tail(self.log_path, 10)}")

    def _wait_listening(self):
        import socket
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.proc.running():
                return False  # a port taken meanwhile: the caller tries others
            ok = 0
            for port in (self.port_h2, self.port_h1):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        ok += 1
                except OSError:
                    pass
            if ok == 2:
                return True
            time.sleep(0.05)
        return False

    def url(self, prefix="", http2=True):
        """A base_url on the front: https://127.0.0.1:PORT + prefix, on the
        listener that offers HTTP/2 (http2=True) or the HTTP/1.1-only one."""
        return f"https://127.0.0.1:{self.port_h2 if http2 else self.port_h1}{prefix}"

    def requests(self):
        """What nginx served so far, one Served per request (log=True only)."""
        if self.access_path is None:
            raise RuntimeError("this TlsFront was started with log=False")
        try:
            lines = self.access_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for ln in lines:
            proto, conn, port, status = ln.split()
            out.append(Served(proto, int(conn), int(port), int(status)))
        return out

    def running(self):
        return self.proc is not None and self.proc.running()

    def stop(self, timeout=10):
        """SIGTERM (then SIGKILL). Returns the exit code."""
        if self.proc is None:
            return None
        return self.proc.terminate(timeout=timeout)

    def _cleanup(self):
        try:
            if self.proc is not None:
                self.proc.terminate(timeout=5)
                self.proc._cleanup()
        finally:
            self.tmp.remove()

    def __repr__(self):
        return f"TlsFront(h2 {getattr(self, 'port_h2', '?')}, h1 {getattr(self, 'port_h1', '?')})"


def have_nginx():
    return Path(NGINX).exists() and shutil.which("openssl") is not None
