#!/usr/bin/env python3
"""The three proxies of the comparison: their configurations and command lines.

bench.py imports this; benches/profile/callgrind.sh runs it to start each
proxy under valgrind with the very configuration the timed runs use:

    proxies.py command PROXY --binary BIN --work DIR --port N --app HOST:PORT \\
        --ws HOST:PORT --cert PEM --key PEM [--single-process]

writes PROXY's configuration into DIR and prints its command line, one
argument a line. PROXY is nginx, haproxy or portcullis; --single-process
runs nginx without its master (`master_process off`), HAProxy and
portcullis are one process anyway.

The templates beside this file (nginx.conf, haproxy.cfg, portcullis.toml)
have @NAME@ fields filled in here. Each proxy gets the same certificate,
TLS 1.3 only, / to the application and /ws to the WebSocket server, the
forwarding headers, upstream keep-alive and no access log.
"""

import argparse
import os
import re
import resource

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = ("nginx", "haproxy")
ALL = PEERS + ("portcullis",)

# h1def: the h1 load with every optional defence of portcullis turned on
# (the peers run their h1 configuration unchanged). The defences that are
# always on (request-smuggling checks, header and handshake deadlines, the
# idle timer) are in every scenario; these are the ones a configuration adds.
PORTCULLIS_DEFENCES = (
    ("[server]\n", "[server]\nmax_connections_per_ip = 1000\nmax_header_size = \"16KiB\"\n"
                   "header_read_timeout = \"10s\"\nidle_timeout = \"30s\"\n"),
    ("[tls]\n", "[tls]\nhsts = \"max-age=63072000; includeSubDomains\"\n"),
)


class ConfigError(Exception):
    pass


class Site:
    """What every proxy is set up with: where it listens, the origin's two
    ports, the certificate, and a work directory for its files."""

    def __init__(self, work, port, app, ws, cert, key):
        self.work, self.port, self.app, self.ws, self.cert, self.key = work, port, app, ws, cert, key
        # With both set, a TLS-terminating stream listener on stream_port
        # in front of the TCP echo server at `echo` (HOST:PORT).
        self.stream_port = None
        self.echo = None

    def values(self):
        return {"PORT": self.port, "APP": self.app, "WS": self.ws,
                "CERT": self.cert, "KEY": self.key, "WORK": self.work}


def fill(template, values):
    """The template with its @NAME@ fields replaced; fails on one left over
    outside a comment."""
    with open(os.path.join(HERE, template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    body = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
    left = re.findall(r"@[A-Z_]+@", body)
    if left:
        raise ConfigError("%s: unfilled fields %s" % (template, sorted(set(left))))
    return text


# nginx's stream module is a dynamic module in Debian (libnginx-mod-stream).
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


def with_stream(proxy, text, site, pem=None):
    """`text` with a TLS-terminating stream listener on site.stream_port
    that relays to site.echo: the same certificate and TLS 1.3 only, as
    each proxy's documentation writes it."""
    port, echo = site.stream_port, site.echo
    if proxy == "nginx":
        return ("load_module %s;\n" % NGINX_STREAM_MODULE + text + """
stream {
    server {
        listen 127.0.0.1:%d ssl;
        ssl_certificate     %s;
        ssl_certificate_key %s;
        ssl_protocols TLSv1.3;
        ssl_session_cache shared:STREAMSSL:10m;
        proxy_pass %s;
        proxy_timeout 24h;
    }
}
""" % (port, site.cert, site.key, echo))
    if proxy == "haproxy":
        return text + """
frontend stream
    mode tcp
    bind 127.0.0.1:%d ssl crt %s ssl-min-ver TLSv1.3
    timeout client 24h
    default_backend echo

backend echo
    mode tcp
    timeout server 24h
    server echo %s
""" % (port, pem, echo)
    return text + """
[[stream]]
name = "echo"
listen = ["127.0.0.1:%d"]
tls = "terminate"
upstream = "tcp://%s"
""" % (port, echo)


def connections_for(nofile):
    """Connections each proxy may hold (client and upstream together),
    within the open-file limit."""
    return max(1024, min(32768, nofile - 64))


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def pool_of(proxy, apps):
    """What replaces @APP@ for a pool of `apps` (HOST:PORT each), round
    robin: nginx and HAProxy take more server lines in their one-server
    upstream; portcullis gets an [[upstream]] (see `pool_table`)."""
    if proxy == "nginx":
        return ";\n        server ".join(apps)
    if proxy == "haproxy":
        # The template's line names the first server `app`.
        return "\n    server ".join([apps[0]] + ["app%d %s" % (i, a) for i, a in enumerate(apps) if i])
    return apps[0]


def pool_table(apps):
    """portcullis' pool of `apps`, the route on it."""
    servers = ", ".join('"http://%s"' % a for a in apps)
    return '[[upstream]]\nname = "app"\nservers = [%s]\n' % servers


# The routes scenarios: N routes, host plus path, spread over hosts of at
# most ROUTES_PER_HOST paths each (2 routes: one host, two paths; 1,000:
# ten hosts of a hundred).
ROUTES_PER_HOST = 100
ROUTE_DOMAIN = "bench.test"


def route_pairs(n):
    """The (host, path prefix) of each of `n` routes; the load asks for the
    last one, the one a scan in order would find last."""
    per = min(n, ROUTES_PER_HOST)
    return [("h%d.%s" % (i // per, ROUTE_DOMAIN), "/r%d/" % (i % per)) for i in range(n)]


NGINX_PROXY_LINES = """            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
"""


def nginx_servers(site, routes=0, certs=None):
    """nginx's server blocks for `routes` routes (one block a host, one
    location a path) or for `certs` = (dir, n) certificates (one block a
    name, as nginx selects a certificate by server_name)."""
    out = []
    if routes:
        hosts = {}
        for host, path in route_pairs(routes):
            hosts.setdefault(host, []).append(path)
        for host, paths in hosts.items():
            out.append("    server {\n        listen 127.0.0.1:%d ssl;\n        server_name %s;\n"
                       "        ssl_certificate %s;\n        ssl_certificate_key %s;\n"
                       % (site.port, host, site.cert, site.key))
            for path in paths:
                out.append("        location %s {\n%s        }\n" % (path, NGINX_PROXY_LINES))
            out.append("    }\n")
    if certs:
        d, n = certs
        for i in range(n):
            out.append("    server {\n        listen 127.0.0.1:%d ssl;\n        server_name c%d.%s;\n"
                       "        ssl_certificate %s/certs/c%d.pem;\n        ssl_certificate_key %s/certs/c%d.key;\n"
                       "        location / {\n%s        }\n    }\n"
                       % (site.port, i, ROUTE_DOMAIN, d, i, d, i, NGINX_PROXY_LINES))
    return "".join(out)


def configure(proxy, site, tag, threads=1, keepalive=64, nofile=None,
              single_process=False, defences=False, apps=None, files=None,
              routes=0, certs=None, ws_apps=None, conns=None):
    """Writes PROXY's configuration for `site` into its work directory; its
    path. `tag` names the files of this run; `keepalive` is nginx's upstream
    keepalive; `defences` sets portcullis' optional limits (h1def); `apps`,
    when given, are the servers of a round-robin pool in place of the one
    application (the pool scenario); `files`, a directory whose `static/`
    holds the files of the static scenarios, served at /static/ (nginx has
    that location always; portcullis gets its route only then, so that a
    baseline build without static files still reads the others); `routes`,
    that many more routes, host plus path (`route_pairs`); `certs`, (dir,
    n): n more certificates, chosen by SNI, from `loadgen certs`' files;
    `ws_apps`, the WebSocket servers as a round-robin pool (the idle
    WebSocket scenarios spread their upstream connections over several
    addresses); `conns`, the connections each may hold in place of what
    the open-file limit gives."""
    nofile = nofile or resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    conns = conns or connections_for(nofile)
    values = site.values()
    if apps:
        values["APP"] = pool_of(proxy, apps)
    if ws_apps and proxy == "nginx":
        values["WS"] = ";\n        server ".join(ws_apps)
    elif ws_apps and proxy == "haproxy":
        values["WS"] = "\n    server ".join([ws_apps[0]] + ["ws%d %s" % (i, a) for i, a in enumerate(ws_apps) if i])
    conf = os.path.join(site.work, "%s-%s.%s" % (proxy, tag, {
        "nginx": "conf", "haproxy": "cfg", "portcullis": "toml"}[proxy]))
    if proxy == "nginx":
        for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(site.work, "nginx-tmp", d), exist_ok=True)
        values.update(WORKERS=threads, NOFILE=nofile, WORKER_CONNECTIONS=conns, KEEPALIVE=keepalive,
                      MASTER_PROCESS="off" if single_process else "on")
        text = fill("nginx.conf", values)
        more = nginx_servers(site, routes, certs)
        if more:
            # Before the closing brace of the http block.
            at = text.rstrip().rfind("}")
            text = text[:at] + more + text[at:]
        if site.stream_port:
            text = with_stream(proxy, text, site)
        return write(conf, text)
    if proxy == "haproxy":
        # HAProxy reads the certificate and its key from one file.
        pem = os.path.join(site.work, "haproxy-cert.pem")
        with open(site.cert) as c, open(site.key) as k:
            write(pem, c.read().rstrip("\n") + "\n" + k.read())
        # maxconn counts client connections; each has an upstream one too.
        values.update(THREADS=threads, MAXCONN=conns // 2, PEM=pem)
        text = fill("haproxy.cfg", values)
        if routes:
            # A map from host plus path prefix (HAProxy's `base`) to the
            # backend, as an operator writes many routes; every route goes
            # to the application, as in the other two.
            mp = write(os.path.join(site.work, "haproxy-routes-%s.map" % tag), "".join(
                "%s%s app\n" % (h, p) for h, p in route_pairs(routes)))
            text = text.replace("    default_backend app\n",
                                "    use_backend %%[base,map_beg(%s,app)]\n    default_backend app\n" % mp, 1)
        if certs:
            d, n = certs
            lst = write(os.path.join(site.work, "haproxy-certs-%s.list" % tag), "".join(
                "%s/combined/c%d.pem\n" % (d, i) for i in range(n)))
            text = text.replace("ssl crt %s " % pem, "ssl crt %s crt-list %s " % (pem, lst), 1)
        if site.stream_port:
            text = with_stream(proxy, text, site, pem)
        return write(conf, text)
    if proxy == "portcullis":
        values.update(THREADS=threads, MAX_CONNECTIONS=max(10000, conns))
        text = fill("portcullis.toml", values)
        if defences:
            for table, with_limits in PORTCULLIS_DEFENCES:
                text = text.replace(table, with_limits, 1)
            text = re.sub(r'(?m)^(upstream = "[^"]*")$', r'\1\nmax_body = "1MiB"', text)
        if site.stream_port:
            text = with_stream(proxy, text, site)
        if apps:
            text = text.replace('upstream = "http://%s"' % apps[0], 'upstream = "app"', 1)
            text += "\n" + pool_table(apps)
        if files:
            text += '\n[[route]]\npath = "/static/"\nroot = "%s"\n' % files
        if ws_apps:
            text = text.replace('upstream = "http://%s"' % site.ws, 'upstream = "ws"', 1)
            text += '\n[[upstream]]\nname = "ws"\nservers = [%s]\n' % ", ".join('"http://%s"' % a for a in ws_apps)
        for host, path in route_pairs(routes) if routes else ():
            text += '\n[[route]]\nhost = "%s"\npath = "%s"\nupstream = "http://%s"\n' % (host, path, site.app)
        if certs:
            d, n = certs
            text += "".join('\n[[tls.certificate]]\ncert = "%s/certs/c%d.pem"\nkey = "%s/certs/c%d.key"\n'
                            % (d, i, d, i) for i in range(n))
        return write(conf, text)
    raise ConfigError("unknown proxy %s" % proxy)


def command(proxy, binary, conf, site):
    """The command line that runs PROXY in the foreground with `conf`."""
    if proxy == "nginx":
        return [binary, "-p", site.work, "-c", conf, "-e", os.path.join(site.work, "nginx-error.log")]
    if proxy == "haproxy":
        # -db: in the foreground, one process, no master.
        return [binary, "-db", "-f", conf]
    return [binary, "--config", conf]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["command"])
    ap.add_argument("proxy", choices=ALL)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--app", required=True, help="HOST:PORT of the application")
    ap.add_argument("--ws", required=True, help="HOST:PORT of the WebSocket server")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--tag", default="profile", help="names this run's files")
    ap.add_argument("--single-process", action="store_true", help="nginx without its master process")
    args = ap.parse_args()
    site = Site(os.path.abspath(args.work), args.port, args.app, args.ws,
                os.path.abspath(args.cert), os.path.abspath(args.key))
    conf = configure(args.proxy, site, args.tag, single_process=args.single_process)
    print("\n".join(command(args.proxy, args.binary, conf, site)))


if __name__ == "__main__":
    main()
