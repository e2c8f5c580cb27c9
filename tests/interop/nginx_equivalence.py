#!/usr/bin/env python3
"""nginx and `portcullis import-nginx` side by side on a corpus of nginx
configurations: each configuration's ports, upstream addresses,
certificates and file paths are rewritten to local ones; nginx runs it,
portcullis runs what import-nginx made of it; the same probes go to both,
and what the upstream saw (which upstream, method, path, headers) and what
the client got (status, the headers that matter, bodies of successes) are
compared. The deliberate differences are listed in DIFFERENCES below, each
with its reason, and applied in one place (normalise()).

Usage: nginx_equivalence.py --portcullis BIN --nginx BIN --work DIR --cert PEM
       --key PEM CORPUS_DIR
Prints one line per configuration and `nginx-equivalence: E equivalent of N`;
exits 1 if a configuration not listed in KNOWN_DIFFERENT differs.
"""

import argparse
import gzip
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Deliberate differences: (name, reason). normalise() applies them.
DIFFERENCES = [
    ("https-redirect-308",
     "a plain-HTTP server that only redirects to https becomes [http] redirect_to_https, "
     "which answers 308 (the method kept) where nginx answers 301"),
    ("forwarding-headers",
     "portcullis always sends X-Forwarded-For, X-Real-IP, X-Forwarded-Proto, X-Forwarded-Host, "
     "X-Request-Id and X-Client-Cert-Verify upstream; nginx sends them only when proxy_set_header says so"),
    ("test-ports",
     "the two proxies listen on different local ports: a port after the client's host in a "
     "Location is not compared (on 443 neither writes one)"),
    ("absolute-location",
     "nginx's proxy_redirect default turns the upstream's own URL into a path; portcullis's "
     "redirect_rewrite into the client's scheme and host with the same path"),
    ("own-error-bodies",
     "the bodies of the proxy's own errors (404, 405, 413, 502) differ; their statuses are compared"),
    ("upstream-http-version",
     "nginx speaks HTTP/1.0 to an upstream unless proxy_http_version 1.1, with Connection: close; "
     "portcullis HTTP/1.1 with keep-alive: the version and hop-by-hop headers are not compared"),
    ("websocket-always",
     "WebSocket handshakes are always forwarded by portcullis; nginx forwards them only where "
     "proxy_set_header Upgrade says so, so WebSockets are probed only there"),
    ("framing-headers",
     "Server, Date, Connection, Keep-Alive, Content-Length and Transfer-Encoding of responses are "
     "each proxy's own framing"),
    ("segment-prefixes",
     "prefixes match on segment boundaries (/ws never takes /wsx); the probes stay on segments"),
    ("tls-versions", "TLS 1.0 and 1.1 are never offered; the probes use TLS 1.2 and 1.3"),
    ("slash-redirect",
     "a route whose prefix ends in / answers the path without it with a 301 to the slash whatever it "
     "does; nginx does so only for proxy_pass locations, and sends the path elsewhere otherwise"),
    ("try-files-methods",
     "a try_files route sends methods other than GET and HEAD to its @name pool; nginx answers them "
     "405 when a file matched"),
    ("compressed-statuses",
     "nginx compresses 200, 403 and 404 answers only, and says so to HEAD; portcullis any status with "
     "a body of a listed type, and not HEAD"),
    ("own-answers-body-limit",
     "a route that answers by itself (respond, redirect, files) answers without reading the body, "
     "so a body over the limit gets that answer; nginx checks Content-Length first and answers 413"),
    ("allow-header", "portcullis's 405 says Allow: GET, HEAD; nginx's says nothing"),
    ("media-types",
     "static files' types are nginx's mime.types brought up to date: .js is text/javascript "
     "(RFC 9239), where Debian's nginx says application/javascript"),
]

# Configurations that are known to differ, with why (counted as not
# equivalent, without failing the run).
KNOWN_DIFFERENT = {
    "07-headers-redirects":
        "return 301 https://blog.example.com/$1 in a regex location: redirects take no regex groups "
        "(the import reports it as needing a decision)",
    "06-static-fallback":
        "a try_files route's @name answers keep the upstream's own URL in Location, where nginx's "
        "proxy_redirect default makes it the client's (the import reports it)",
}


IGNORED_UPSTREAM = {
    "x-forwarded-for", "x-real-ip", "x-forwarded-proto", "x-forwarded-host", "x-request-id",
    "connection", "keep-alive", "te", "transfer-encoding", "traceparent", "x-client-cert-verify",
}
COMPARED_RESPONSE = {
    "location", "content-encoding", "cache-control", "x-frame-options", "strict-transport-security",
    "x-content-type-options", "x-origin", "x-powered-by", "vary", "content-type",
}

# ------------------------------------------------------------------ origin


class Origin(BaseHTTPRequestHandler):
    """Answers every request with a JSON account of what it saw."""

    protocol_version = "HTTP/1.1"
    name = "origin"

    def log_message(self, *args):
        pass

    def handle_any(self):
        length = int(self.headers.get("content-length") or 0)
        body_len = 0
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body_len += len(self.rfile.read(size))
                self.rfile.readline()
        elif length:
            body_len = len(self.rfile.read(length))
        seen = {
            "origin": self.name,
            "method": self.command,
            "path": self.path,
            "headers": sorted([k.lower(), v] for k, v in self.headers.items()),
            "body_len": body_len,
        }
        if self.headers.get("upgrade", "").lower() == "websocket":
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            self.send_header("X-Origin", self.name)
            self.end_headers()
            self.wfile.write(json.dumps(seen).encode() + b"\n")
            self.wfile.flush()
            self.close_connection = True
            return
        # Padded past any gzip_min_length, so that the headers each proxy
        # adds do not decide whether a body is compressed.
        seen["pad"] = "x" * 1500
        data = json.dumps(seen).encode()
        if self.path.split("?")[0].endswith("/go-login"):
            # An application redirecting within its own base, by its own URL.
            base = self.path.split("?")[0].rsplit("/", 1)[0]
            self.send_response(302)
            self.send_header("Location", f"http://{self.server.server_address[0]}:"
                             f"{self.server.server_address[1]}{base}/login")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Origin", self.name)
        self.send_header("X-Powered-By", "origin")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = handle_any


def start_origin(name):
    handler = type(f"Origin_{name}", (Origin,), {"name": name})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# ------------------------------------------------------------- nginx text


def tokens(text):
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            while i < len(text) and text[i] != "\n":
                i += 1
        elif c in ";{}":
            out.append(c)
            i += 1
        elif c in "\"'":
            j = i + 1
            while j < len(text) and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(("w", text[i + 1:j]))
            i = j + 1
        else:
            j = i
            while j < len(text) and not text[j].isspace() and text[j] not in ";{}":
                j += 1
            out.append(("w", text[i:j]))
            i = j
    return out


def tree(toks, pos=0):
    """[(name, args, children or None)], next position."""
    out, words = [], []
    while pos < len(toks):
        t = toks[pos]
        pos += 1
        if t == ";":
            out.append((words[0], words[1:], None))
            words = []
        elif t == "{":
            children, pos = tree(toks, pos)
            out.append((words[0], words[1:], children))
            words = []
        elif t == "}":
            return out, pos
        else:
            words.append(t[1])
    return out, pos


def find(nodes, name):
    return [n for n in nodes if n[0] == name]


# ---------------------------------------------------------------- rewrite


def render(src_dir, dst_dir, ports, origins, args, files):
    """Copies the configuration with ports, upstreams, certificates and
    paths made local. `ports` maps a listen port to a local one, `origins`
    an upstream port to an origin's."""
    os.makedirs(dst_dir, exist_ok=True)
    for root, _, names in os.walk(src_dir):
        for name in names:
            src = os.path.join(root, name)
            dst = os.path.join(dst_dir, os.path.relpath(src, src_dir))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(src) as f:
                text = f.read()
            text = re.sub(r"^\s*listen\s+\[::\][^;]*;\s*$", "", text, flags=re.M)
            text = re.sub(r"\b(?:127\.0\.0\.1|localhost):(\d+)\b",
                          lambda m: f"127.0.0.1:{origins[int(m.group(1))]}", text)

            def listen(m):
                port = int(m.group(2))
                return f"{m.group(1)}127.0.0.1:{ports[port]}"
            text = re.sub(r"(\blisten\s+)(?:[\w.*]+:)?(\d+)\b", listen, text)
            text = re.sub(r"(\bssl_certificate\s+)[^;]+;", rf"\g<1>{args.cert};", text)
            text = re.sub(r"(\bssl_certificate_key\s+)[^;]+;", rf"\g<1>{args.key};", text)
            text = re.sub(r"(?<=[\s\"'])/(srv|var/www)/", f"{files}/\\1/", text)
            text = text.replace("include mime.types;", "include /etc/nginx/mime.types;")
            with open(dst, "w") as f:
                f.write(text)


def listen_ports(text):
    return sorted({int(m.group(1)) for m in re.finditer(r"\blisten\s+(?:[\w.*]+:)?(\d+)\b", text)})


def upstream_ports(text):
    return sorted({int(m.group(1)) for m in re.finditer(r"\b(?:127\.0\.0\.1|localhost):(\d+)\b", text)})


def make_files(files):
    """What the corpus's roots and aliases serve."""
    for d in ["srv/www", "srv/www/static", "srv/app/public", "srv/app/build", "srv/static", "var/www/html", "srv/errors",
              "var/www/certbot/.well-known/acme-challenge"]:
        base = os.path.join(files, d)
        os.makedirs(os.path.join(base, "img"), exist_ok=True)
        os.makedirs(os.path.join(base, "docs"), exist_ok=True)
        for name, body in [("index.html", f"<h1>{d}</h1>\n"), ("about.html", "about\n"),
                           ("app.js", "console.log(1);\n"), ("style.css", "h1{}\n"),
                           ("img/logo.png", "PNG"), ("50x.html", "down\n"), ("docs/index.html", "docs\n"),
                           ("token", "acme token\n")]:
            with open(os.path.join(base, name), "w") as f:
                f.write(body)


# ----------------------------------------------------------------- probes


def probes_for(main_text, all_text):
    """(scheme, listen port, host, method, path, body size, websocket)."""
    nodes, _ = tree(tokens(all_text))
    probes = []
    http = [c for n in find(nodes, "http") for c in n[2]]
    # Servers in files included by http come in at the top of all_text.
    for server in find(http, "server") + find(nodes, "server"):
        body = server[2]
        listens = [n[1] for n in find(body, "listen")] or [["80"]]
        names = [a for n in find(body, "server_name") for a in n[1] if a not in ("_", "") and "*" not in a
                 and not a.startswith(("~", "."))]
        host = names[0] if names else "localhost"
        ws_server = "Upgrade" in json.dumps([n for n in body if n[0] != "location"])
        for listen in listens:
            if listen[0].startswith("["):
                continue
            port = int(re.sub(r"^.*:", "", listen[0]))
            scheme = "https" if "ssl" in listen else "http"
            locations = []

            def walk(nodes, depth=0):
                for n in find(nodes, "location"):
                    locations.append(n)
                    walk(n[2] or [], depth + 1)
            walk(body)
            paths = []
            for loc in locations:
                a = loc[1]
                if len(a) == 1 and not a[0].startswith(("@", "~", "=", "^~")):
                    kind, p = "prefix", a[0]
                elif len(a) == 2 and a[0] == "^~":
                    kind, p = "prefix", a[1]
                elif len(a) == 2 and a[0] == "=":
                    kind, p = "exact", a[1]
                else:
                    continue
                ws = ws_server or "Upgrade" in json.dumps(loc[2])
                paths.append((kind, p, ws))
            if not paths:
                paths.append(("prefix", "/", ws_server))
            for kind, p, ws in paths:
                tries = [("GET", p, 0, False)]
                if kind == "prefix":
                    if p.endswith("/") and len(p) > 1:
                        tries.append(("GET", p[:-1], 0, False))
                    tries.append(("GET", p.rstrip("/") + "/sub/page", 0, False))
                    tries.append(("GET", p.rstrip("/") + "/go-login", 0, False))
                tries.append(("GET", p + "?q=1&b=two", 0, False))
                tries.append(("HEAD", p, 0, False))
                tries.append(("POST", p, 1000, False))
                tries.append(("POST", p, (1 << 20) + 4096, False))
                if ws:
                    tries.append(("GET", p, 0, True))
                for method, path, size, w in tries:
                    probes.append((scheme, port, host, method, path, size, w))
            probes.append((scheme, port, "unknown.example", "GET", "/", 0, False))
    for m in re.finditer(r"^#\s*probe:\s*(\S+)\s+(\S+)(?:\s+host=(\S+))?", main_text, re.M):
        for server_probe in {(p[0], p[1]) for p in probes}:
            probes.append((server_probe[0], server_probe[1], m.group(3) or "localhost", m.group(1),
                           m.group(2), 0, False))
    for m in re.finditer(r"^#\s*stream-probe:\s*(\d+)\s+(tls|tcp)", main_text, re.M):
        probes.append(("stream-" + m.group(2), int(m.group(1)), "localhost", "GET", "/stream", 0, False))
    seen, unique = set(), []
    for p in probes:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return unique


def send(scheme, port, host, method, path, size, ws):
    """One probe; a dict of what came back."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        if scheme.startswith("stream-"):
            return stream_probe(scheme, port, ctx)
        if scheme == "https":
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        conn.putheader("User-Agent", "equivalence-probe")
        conn.putheader("Accept-Encoding", "gzip")
        if ws:
            conn.putheader("Connection", "Upgrade")
            conn.putheader("Upgrade", "websocket")
            conn.putheader("Sec-WebSocket-Version", "13")
            conn.putheader("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        if size:
            conn.putheader("Content-Length", str(size))
            conn.putheader("Content-Type", "application/octet-stream")
        conn.endheaders()
        if size:
            try:
                conn.send(b"x" * size)
            except OSError:
                pass
        resp = conn.getresponse()
        if resp.status == 101:
            body = resp.fp.readline() if resp.fp else b""
        else:
            body = resp.read() if method != "HEAD" else b""
        headers = {k.lower(): v for k, v in resp.getheaders()}
        conn.close()
        if headers.get("content-encoding") == "gzip" and body:
            body = gzip.decompress(body)
        return {"status": resp.status, "headers": headers, "body": body.decode("utf-8", "replace")}
    except (OSError, http.client.HTTPException) as e:
        return {"status": "closed", "error": type(e).__name__}


def stream_probe(scheme, port, ctx):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if scheme == "stream-tls":
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    sock.sendall(b"GET /stream HTTP/1.1\r\nHost: stream\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b" ")[1].decode() if b" " in head else "none"
    return {"status": int(status) if status.isdigit() else status, "headers": {}, "body": body.decode()}


def normalise(result, probe, https_redirect, locations):
    """What is compared of a probe's result, the deliberate differences
    applied. `locations`: the prefixes ending in / and the try_files
    prefixes of the configuration."""
    scheme, port, host, method, path, size, ws = probe
    out = {"status": result.get("status")}
    headers = result.get("headers", {})
    status = out["status"]
    if status == 301 and path + "/" in locations["slash"] and headers.get("location", "").endswith(path + "/"):
        return {"status": "slash-redirect"}
    if method not in ("GET", "HEAD") and any(path.startswith(p) for p in locations["try_files"]) \
            and (status == 405 or '"origin"' in result.get("body", "")):
        return {"status": "try-files-methods"}
    if status not in (200, 403, 404) or method == "HEAD":
        headers = {k: v for k, v in headers.items() if k not in ("content-encoding", "vary")}
    if https_redirect and scheme == "http" and status in (301, 308):
        out["status"] = "redirect to https"
    for name in COMPARED_RESPONSE:
        if name not in headers:
            continue
        if name == "content-type" and not (isinstance(status, int) and 200 <= status < 300):
            continue
        value = headers[name]
        if name == "location":
            if value.startswith("/"):
                value = f"https://{host}{value}"
            value = re.sub(rf"^(https?://{re.escape(host)}):\d+", r"\1", value)
            value = re.sub(r"^http://", "https://", value) if https_redirect else value
        if name == "content-type":
            value = value.split(";")[0].strip()
            value = {"application/javascript": "text/javascript"}.get(value, value)
        out[name] = value
    body = result.get("body", "")
    seen = None
    if body.startswith("{") and '"origin"' in body:
        try:
            seen = json.loads(body.splitlines()[0])
        except ValueError:
            seen = None
    if seen:
        seen["headers"] = [h for h in seen["headers"] if h[0] not in IGNORED_UPSTREAM]
        out["upstream"] = seen
    elif isinstance(status, int) and 200 <= status < 300:
        out["body"] = body
    return out


# -------------------------------------------------------------- processes


def free_ports(n):
    held, ports = [], []
    while len(ports) < n:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        held.append(s)
        ports.append(s.getsockname()[1])
    for s in held:
        s.close()
    return ports


def wait_ports(ports, proc, what, secs=20):
    deadline = time.monotonic() + secs
    for port in ports:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited ({proc.returncode})")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what}: nothing on port {port}")
                time.sleep(0.05)


def stop(proc):
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_config(path, args, files, origins_by_port, log):
    name = os.path.basename(path).removesuffix(".conf")
    work = os.path.join(args.work, name)
    src = path if os.path.isdir(path) else None
    if src is None:
        src = os.path.join(work, "src")
        os.makedirs(src, exist_ok=True)
        shutil.copy(path, os.path.join(src, "nginx.conf"))
    texts = ""
    for root, _, fnames in os.walk(src):
        for f in fnames:
            with open(os.path.join(root, f)) as fh:
                texts += fh.read() + "\n"
    with open(os.path.join(src, "nginx.conf")) as fh:
        main_text = fh.read()
    listens = listen_ports(texts)
    for port in upstream_ports(texts):
        if port not in origins_by_port:
            origins_by_port[port] = start_origin(f"o{port}")
    origins = {p: s.server_address[1] for p, s in origins_by_port.items()}
    nginx_ports = dict(zip(listens, free_ports(len(listens))))
    pc_ports = dict(zip(listens, free_ports(len(listens))))
    render(src, os.path.join(work, "nginx"), nginx_ports, origins, args, files)
    render(src, os.path.join(work, "portcullis"), pc_ports, origins, args, files)

    # nginx: the process settings of a test run in front of the file.
    conf = os.path.join(work, "nginx", "nginx.conf")
    with open(conf) as f:
        text = f.read()
    text = re.sub(r"^\s*(user|pid|error_log|worker_processes|daemon)\b[^;]*;", "", text, flags=re.M)
    tmp = os.path.join(work, "nginx-tmp")
    os.makedirs(tmp, exist_ok=True)
    pre = (f"daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/error.log warn;\n"
           + ("user root;\n" if os.geteuid() == 0 else ""))
    temps = "".join(f" {d}_temp_path {tmp}/{d};" for d in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"])
    text = re.sub(r"\bhttp\s*\{", "http {" + temps + f" access_log {tmp}/access.log;", text, count=1)
    text = re.sub(r"(?m)^\s*access_log\s+/var/log[^;]*;", "", text)
    with open(conf, "w") as f:
        f.write(pre + text)
    nginx = pc = None
    try:
        nginx = subprocess.Popen([args.nginx, "-c", conf],
                                 stdout=open(os.path.join(work, "nginx.log"), "w"), stderr=subprocess.STDOUT)
        pc_conf = os.path.join(work, "portcullis", "nginx.conf")
        toml = os.path.join(work, "proxy.toml")
        imp = subprocess.run([args.portcullis, "import-nginx", pc_conf, "-o", toml], capture_output=True, text=True)
        with open(os.path.join(work, "import.log"), "w") as f:
            f.write(imp.stderr)
        if imp.returncode not in (0, 3):
            return name, False, [f"import-nginx exited {imp.returncode}: {imp.stderr.strip()[-500:]}"], imp.returncode
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
        env["RUST_LOG"] = "warn"
        pc = subprocess.Popen([args.portcullis, "--config", toml], env=env,
                              stdout=open(os.path.join(work, "portcullis.log"), "w"), stderr=subprocess.STDOUT)
        wait_ports(list(nginx_ports.values()), nginx, "nginx")
        wait_ports(list(pc_ports.values()), pc, "portcullis")
        https_redirect = "redirect_to_https = false" not in open(toml).read() and "[http]" in open(toml).read()
        problems = []
        probes = probes_for(main_text, texts)
        locations = {"slash": set(re.findall(r"\blocation\s+(?:\^~\s+)?(/\S*/)\s*\{", texts)), "try_files": set()}
        for m in re.finditer(r"\blocation\s+(/\S*)\s*\{[^{}]*\btry_files\b[^;]*@", texts):
            locations["try_files"].add(m.group(1))
        for probe in probes:
            scheme, port = probe[0], probe[1]
            a = send(scheme, nginx_ports[port], *probe[2:])
            b = send(scheme, pc_ports[port], *probe[2:])
            # A deliberate difference is one when either side shows it.
            if probe[5] and a.get("status") == 413 and '"origin"' not in b.get("body", "") \
                    and b.get("status") != "closed":
                b = dict(a)
            for x, y in ((a, b), (b, a)):
                nx = normalise(x, probe, https_redirect, locations)
                if nx["status"] in ("slash-redirect", "try-files-methods"):
                    y.clear()
                    y.update(x)
            a = normalise(a, probe, https_redirect, locations)
            b = normalise(b, probe, https_redirect, locations)
            if a != b:
                problems.append(f"{probe[0]} :{port} Host {probe[2]} {probe[3]} {probe[4]}"
                                f"{' body ' + str(probe[5]) if probe[5] else ''}{' websocket' if probe[6] else ''}:"
                                f"\n      nginx      {json.dumps(a, sort_keys=True)}"
                                f"\n      portcullis {json.dumps(b, sort_keys=True)}")
        answered = sum(1 for p in probes if isinstance(send(p[0], nginx_ports[p[1]], *p[2:]).get("status"), int))
        if not probes or not answered:
            problems.append("nginx answered no probe: nothing was compared")
        log(f"  {name}: {len(probes)} probes, import exit {imp.returncode}")
        return name, not problems, problems, imp.returncode
    finally:
        stop(pc)
        stop(nginx)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--portcullis", required=True)
    parser.add_argument("--nginx", default="nginx")
    parser.add_argument("--work", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--only", default="")
    parser.add_argument("corpus")
    args = parser.parse_args()
    files = os.path.join(args.work, "files")
    make_files(files)
    origins = {}
    entries = sorted(e for e in os.listdir(args.corpus) if e.endswith(".conf") or
                     os.path.isdir(os.path.join(args.corpus, e)))
    if args.only:
        entries = [e for e in entries if args.only in e]
    equivalent, unexpected = 0, 0

    def log(line):
        print(line, file=sys.stderr, flush=True)

    print("deliberate differences (applied to every comparison):")
    for key, why in DIFFERENCES:
        print(f"  {key}: {why}")
    for entry in entries:
        try:
            name, same, problems, code = run_config(os.path.join(args.corpus, entry), args, files, origins, log)
        except (RuntimeError, OSError) as e:
            name, same, problems, code = entry, False, [str(e)], None
        if same:
            equivalent += 1
            print(f"equivalent  {name} (import exit {code})")
        elif name in KNOWN_DIFFERENT:
            print(f"different   {name} (known: {KNOWN_DIFFERENT[name]})")
        else:
            unexpected += 1
            print(f"DIFFERENT   {name} (import exit {code})")
            for p in problems[:8]:
                print(f"    {p}")
            if len(problems) > 8:
                print(f"    ... and {len(problems) - 8} more")
    print(f"nginx-equivalence: {equivalent} equivalent of {len(entries)}")
    sys.exit(1 if unexpected else 0)


if __name__ == "__main__":
    main()
