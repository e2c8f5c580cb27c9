#!/usr/bin/env python3
"""Checks of the deployment files that need no container engine and no cluster
(tests/interop/containers.sh runs them for real, under Podman).

Run by .ci/run (section "deploy files"); each subcommand can be run alone
from the repository root:

  python3 deploy/check.py static
      The files agree with each other: the Dockerfile's build command is
      CI's, what it copies exists and is not ignored, compose volumes and
      upstreams line up with proxy.toml, the Kubernetes objects reference
      each other correctly, the cert-manager Certificate is well formed,
      the systemd unit grants the paths its proxy.toml reads.
  python3 deploy/check.py configs --bin target/release/portcullis
      `portcullis check` on every proxy.toml under deploy/, the one in the
      Kubernetes ConfigMap included.
  python3 deploy/check.py probe --bin BIN
      `BIN probe URL`, the image's health check, against a local HTTP server:
      0 on 200, 1 otherwise.
  python3 deploy/check.py certbot-script
      compose/certbot.sh under BusyBox sh with a stand-in certbot: uid/gid
      65532 can read the key afterwards, other users cannot.
  python3 deploy/check.py confinement --bin BIN --origin ORIGIN
      The binary under memory-deny-write-execute and strace, through a
      realistic scenario; its system calls and socket families must be
      allowed by systemd/portcullis.service.

Every failure is printed; the exit status is 1 when there was any.
"""

import argparse
import contextlib
import ctypes
import http.server
import mmap
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent
REPO = DEPLOY.parent
FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print(f"  FAIL {msg}")


def ok(msg):
    print(f"  ok   {msg}")


def expect(cond, msg):
    (ok if cond else fail)(msg)
    return cond


def finish():
    if FAILURES:
        print(f"\n{len(FAILURES)} check(s) failed")
        return 1
    return 0


def duration_s(text):
    """Seconds in "45s", "1m30s", "30s", "500ms" (compose and portcullis)."""
    total, rest = 0.0, str(text)
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", rest):
        total += float(num) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    return total


def host_port(addr):
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


# ---------------------------------------------------------------- Dockerfile


def dockerfile_instructions(path):
    """(INSTRUCTION, arguments) with continuation lines joined."""
    out, buf = [], ""
    for line in path.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), " ".join(rest.split())))
        buf = ""
    return out


def dockerignore_patterns():
    pats = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            pats.append(line)
    return pats


def _pattern_regex(pat):
    pat = pat.strip("/")
    rx, i = "", 0
    while i < len(pat):
        if pat.startswith("**/", i):
            rx, i = rx + "(?:.*/)?", i + 3
        elif pat.startswith("**", i):
            rx, i = rx + ".*", i + 2
        elif pat[i] == "*":
            rx, i = rx + "[^/]*", i + 1
        elif pat[i] == "?":
            rx, i = rx + "[^/]", i + 1
        else:
            rx, i = rx + re.escape(pat[i]), i + 1
    return re.compile(rx + r"\Z")


def dockerignored(rel):
    """Whether .dockerignore keeps REL (a path from the repo root) out of the
    build context: the last matching pattern wins, and a pattern that
    matches a parent directory excludes everything under it."""
    parts = rel.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pat in dockerignore_patterns():
        neg = pat.startswith("!")
        rx = _pattern_regex(pat[1:] if neg else pat)
        if any(rx.match(c) for c in candidates):
            ignored = not neg
    return ignored


def check_dockerfile():
    print("Dockerfile")
    path = DEPLOY / "docker" / "Dockerfile"
    ins = dockerfile_instructions(path)
    runs = [a for i, a in ins if i == "RUN"]
    build = [r for r in runs if "cargo build" in r]
    expect(
        len(build) == 1 and re.search(r"(^|\s)cargo build --release --locked(\s|$)", build[0]) is not None,
        "the build stage runs `cargo build --release --locked`",
    )
    ci = (REPO / ".ci" / "run").read_text()
    expect(
        re.search(r"^cargo build --release --locked$", ci, re.M) is not None,
        ".ci/run runs the same `cargo build --release --locked`",
    )
    # Stages: (FROM image, stage name, instructions of the stage).
    stages = []
    for i, a in ins:
        if i == "FROM":
            words = a.split()
            stages.append((words[0], words[2] if len(words) > 2 else "", []))
        elif stages:
            stages[-1][2].append((i, a))
    args = dict(a.split("=", 1) for i, a in ins if i == "ARG" and "=" in a)
    image = {name: src for src, name, _ in stages}

    def resolve(src):
        src = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), src)
        return resolve(image[src]) if src in image else src

    build_image = resolve(stages[0][0])
    strip = [st for st in stages if st[1] == "strip"]
    expect(
        build_image.endswith("-bookworm") and "debian12" in resolve(stages[-1][0])
        and bool(strip) and resolve(strip[0][0]) == build_image,
        f"build and strip on Debian 12, run on a Debian 12 base (same glibc): "
        f"{[resolve(st[0]) for st in stages]}",
    )
    sources = {st[1]: resolve(st[0]) for st in stages if st[1].startswith("binaries-")}
    expect(
        set(sources) == {"binaries-source", "binaries-prebuilt"}
        and args.get("BINARIES") == "source"
        and any(st[1] == "binaries" and st[0] == "binaries-${BINARIES}" for st in stages),
        "the binaries come from the build stage by default, from dist/ with BINARIES=prebuilt",
    )
    # Files the build reads from the context. The prebuilt stage's come
    # from the operator (dist/): they need only not be ignored.
    needed = ["Cargo.toml", "Cargo.lock", "build.rs", "src/main.rs", "src/lib.rs",
              "crates/import-nginx/Cargo.toml", "crates/import-nginx/src/lib.rs"]
    for _, name, body in stages:
        for i, a in body:
            if i == "COPY" and "--from" not in a:
                srcs = [x for x in shlex.split(a)[:-1] if not x.startswith("--") and x != "."]
                if name == "binaries-prebuilt":
                    for rel in srcs:
                        expect(not dockerignored(rel), f"build context may have {rel} (prebuilt)")
                else:
                    needed += srcs
    for r in runs:
        needed += re.findall(r"\bdeploy/\S+", r)
    for rel in sorted(set(needed)):
        expect((REPO / rel).exists() and not dockerignored(rel), f"build context has {rel}")
    for rel in ["target/release/portcullis", ".git/HEAD", "deploy/compose/.env"]:
        expect(dockerignored(rel), f".dockerignore excludes {rel}")
    user = [a for i, a in ins if i == "USER"]
    expect(user and re.fullmatch(r"\d+:\d+", user[-1]), f"USER is numeric uid:gid ({user})")
    env = dict(a.split("=", 1) for i, a in ins if i == "ENV" and "=" in a)
    cfg_copy = [shlex.split(a)[-1] for i, a in ins if i == "COPY" and a.endswith("proxy.toml")]
    expect(
        env.get("PORTCULLIS_CONFIG") == "/etc/portcullis/proxy.toml" and cfg_copy == [env.get("PORTCULLIS_CONFIG")],
        "the default configuration is copied to PORTCULLIS_CONFIG=/etc/portcullis/proxy.toml",
    )
    hc = [a for i, a in ins if i == "HEALTHCHECK"]
    m = re.search(r"http://([^/\"]+)(/[^\"]*)", hc[0]) if hc else None
    admin = tomllib.loads((DEPLOY / "docker" / "proxy.toml").read_text()).get("admin", {}).get("listen")
    expect(
        m is not None and m.group(1) == admin and m.group(2) == "/healthz",
        f"HEALTHCHECK probes /healthz at the default configuration's admin address ({admin})",
    )
    return user[-1] if user else "65532:65532"


# ------------------------------------------------------------------- compose


def check_compose(image_user):
    print("compose")
    cdir = DEPLOY / "compose"
    doc = yaml.safe_load((cdir / "docker-compose.yml").read_text())
    services = doc.get("services", {})
    for name in ("app", "ws", "portcullis", "certbot"):
        expect(name in services, f"service {name}")
    if not all(n in services for n in ("portcullis", "certbot")):
        return
    p, c = services["portcullis"], services["certbot"]

    def mounts(svc):
        out = {}
        for v in svc.get("volumes", []):
            src, dst, *_ = v.split(":")
            out[dst] = src
        return out

    pm, cm = mounts(p), mounts(c)
    for svc in (pm, cm):
        for dst, src in svc.items():
            if src.startswith("."):
                expect((cdir / src).exists(), f"bind mount source {src} exists")
            else:
                expect(src in doc.get("volumes", {}), f"named volume {src} is declared")
    cfg_path = pm.get("/etc/portcullis/proxy.toml")
    expect(cfg_path == "./proxy.toml", "proxy.toml is mounted at /etc/portcullis/proxy.toml")
    cfg = tomllib.loads((cdir / "proxy.toml").read_text())

    def volume_of(mnts, path):
        best = max((d for d in mnts if path == d or path.startswith(d.rstrip("/") + "/")), key=len, default=None)
        return (mnts.get(best), best) if best else (None, None)

    webroot = cfg.get("http", {}).get("acme_webroot")
    pv, pdst = volume_of(pm, webroot or "/nonexistent")
    cv, cdst = volume_of(cm, webroot or "/nonexistent")
    expect(pv is not None and pv == cv and pdst == cdst, f"acme_webroot {webroot} is the volume certbot writes ({pv})")
    for key in ("cert", "key"):
        path = cfg.get("tls", {}).get(key, "")
        pv, pdst = volume_of(pm, path)
        cv, _ = volume_of(cm, "/etc/letsencrypt")
        expect(
            pv is not None and pv == cv and path.startswith("/etc/letsencrypt/live/"),
            f"tls.{key} is in certbot's live/ on the shared volume ({pv})",
        )
    expect(cfg.get("tls", {}).get("bootstrap") == "self-signed", "bootstrap = self-signed (first start before certbot)")
    expect(any(v.endswith(":ro") for v in p.get("volumes", []) if "letsencrypt" in v), "portcullis mounts certificates read-only")
    # "${VAR:-default}" publishes the default unless the environment says.
    ports = {re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(x)) for x in p.get("ports", [])}
    https_port = host_port(cfg["server"]["listen"][0])[1]
    http_port = host_port(cfg["http"]["listen"][0])[1]
    expect(f"443:{https_port}" in ports and f"80:{http_port}" in ports, f"443 and 80 are published to {https_port}/{http_port}")
    for route in cfg.get("route", []):
        m = re.fullmatch(r"http://([^:/]+):(\d+)", route["upstream"])
        name, port = (m.group(1), m.group(2)) if m else (None, None)
        svc = services.get(name, {})
        expect(
            svc.get("environment", {}).get("PORT") == port and port in [str(e) for e in svc.get("expose", [])],
            f"route {route['path']} -> {route['upstream']}: service {name} listens on {port}",
        )
    sysctls = p.get("sysctls", {})
    if isinstance(sysctls, list):
        sysctls = dict(x.split("=", 1) for x in sysctls)
    expect(str(sysctls.get("net.ipv4.ip_unprivileged_port_start")) == "0", "non-root may bind 443/80 (sysctl)")
    grace = duration_s(cfg.get("server", {}).get("shutdown_grace", "30s"))
    expect(duration_s(p.get("stop_grace_period", "10s")) > grace, "stop_grace_period outlasts shutdown_grace")
    admin = cfg.get("admin", {}).get("listen", "")
    expect(host_port(admin) == ("127.0.0.1", 9901) if admin else False, "admin on 127.0.0.1:9901, where the HEALTHCHECK asks")
    gid = image_user.split(":")[1]
    expect(str(c.get("environment", {}).get("CERT_GROUP")) == gid, f"certbot.sh shares the keys with the image's gid {gid}")
    ep = c.get("entrypoint", [])
    expect(
        isinstance(ep, list) and ep[-1] in cm and cm[ep[-1]] == "./certbot.sh",
        "certbot's entrypoint is the mounted certbot.sh",
    )
    script = (cdir / "certbot.sh").read_text()
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    expect(
        not re.search(r"--(deploy|post|renew)-hook|nginx -s|docker (kill|restart)", code + " ".join(map(str, ep))),
        "certbot runs no reload hook",
    )


# ---------------------------------------------------------------- kubernetes


def k8s_objects():
    objs = {}
    for f in sorted((DEPLOY / "k8s").rglob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d:
                objs[(d["kind"], d["metadata"]["name"])] = d
    return objs


def k8s_proxy_toml(objs):
    cms = [o for (k, _), o in objs.items() if k == "ConfigMap"]
    return cms[0]["data"]["proxy.toml"] if cms else ""


CERT_SPEC_KEYS = {
    "secretName", "dnsNames", "issuerRef", "privateKey", "duration", "renewBefore",
    "renewBeforePercentage", "commonName", "usages", "secretTemplate", "ipAddresses",
    "uris", "emailAddresses", "subject", "isCA", "keystores", "literalSubject",
    "revisionHistoryLimit", "additionalOutputFormats", "nameConstraints", "otherNames",
    "encodeUsagesInRequest",
}


def check_k8s(image_user):
    print("kubernetes")
    objs = k8s_objects()
    dep = objs.get(("Deployment", "portcullis"))
    svc = objs.get(("Service", "portcullis"))
    cert = next((o for (k, _), o in objs.items() if k == "Certificate"), None)
    if not expect(dep and svc and cert, "Deployment, Service and Certificate present"):
        return
    expect(dep["spec"]["replicas"] == 2, "2 replicas")
    pod = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    expect(dep["spec"]["selector"]["matchLabels"].items() <= labels.items(), "Deployment selector matches its pods")
    expect(svc["spec"]["selector"].items() <= labels.items(), "Service selects the pods")
    for (kind, name), o in objs.items():
        if kind == "PodDisruptionBudget":
            expect(o["spec"]["selector"]["matchLabels"].items() <= labels.items(), f"PodDisruptionBudget {name} selects the pods")
    (ctr,) = pod["containers"]
    vols = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in ctr["volumeMounts"]}
    cm_name = vols["config"]["configMap"]["name"]
    expect(("ConfigMap", cm_name) in objs, f"ConfigMap {cm_name} exists")
    secret = vols["tls"]["secret"]["secretName"]
    expect(cert["spec"].get("secretName") == secret, f"the Certificate writes the mounted Secret {secret}")
    expect("subPath" not in mounts["tls"], "the Secret is mounted as a directory (no subPath), so updates arrive")
    cfg_file = mounts["config"]["mountPath"].rstrip("/") + "/proxy.toml"
    expect(ctr.get("args", [])[-2:] == ["--config", cfg_file], f"args name the mounted {cfg_file}")
    cfg = tomllib.loads(k8s_proxy_toml(objs))
    tls_dir = mounts["tls"]["mountPath"].rstrip("/")
    for key, item in (("cert", "tls.crt"), ("key", "tls.key")):
        expect(cfg["tls"].get(key) == f"{tls_dir}/{item}", f"tls.{key} is {item} in the Secret's mount")
    ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}
    expect(ports.get("https") == host_port(cfg["server"]["listen"][0])[1], "containerPort https = [server] listen port")
    expect(ports.get("http") == host_port(cfg["http"]["listen"][0])[1], "containerPort http = [http] listen port")
    admin = cfg.get("admin", {}).get("listen")
    if expect(admin is not None, "[admin] is configured for the probes"):
        ahost, aport = host_port(admin)
        expect(ahost in ("0.0.0.0", "::"), "admin listens beyond loopback (the kubelet probes the pod IP)")
        expect(ports.get("admin") == aport, "containerPort admin = [admin] listen port")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        g = ctr.get(probe, {}).get("httpGet", {})
        expect(g.get("path") == path and g.get("port") == "admin", f"{probe}: GET {path} on the admin port")
    for sp in svc["spec"]["ports"]:
        expect(sp["targetPort"] in ports, f"Service port {sp['port']} -> container port {sp['targetPort']}")
    expect("admin" not in {sp["targetPort"] for sp in svc["spec"]["ports"]}, "the Service does not expose the admin port")
    uid, gid = (int(x) for x in image_user.split(":"))
    sc = pod.get("securityContext", {})
    expect(sc.get("runAsUser") == uid and sc.get("runAsGroup") == gid and sc.get("fsGroup") == gid, f"runs as the image's {uid}:{gid}")
    expect({"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"} in sc.get("sysctls", []), "non-root may bind 443/80 (sysctl)")
    csc = ctr.get("securityContext", {})
    expect(
        csc.get("allowPrivilegeEscalation") is False and csc.get("readOnlyRootFilesystem") is True
        and csc.get("capabilities", {}).get("drop") == ["ALL"],
        "no privilege escalation, read-only root, no capabilities",
    )
    grace = duration_s(cfg.get("server", {}).get("shutdown_grace", "30s"))
    pre = ctr.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    expect(pod.get("terminationGracePeriodSeconds", 30) > pre + grace, "terminationGracePeriodSeconds > preStop + shutdown_grace")
    # The Certificate has no schema in kubernetes-validate: check its shape.
    spec = cert.get("spec", {})
    expect(cert.get("apiVersion") == "cert-manager.io/v1", "Certificate apiVersion cert-manager.io/v1")
    expect(set(spec) <= CERT_SPEC_KEYS, f"Certificate spec keys known to cert-manager: {sorted(set(spec) - CERT_SPEC_KEYS)}")
    names = spec.get("dnsNames", [])
    expect(names and all(isinstance(n, str) and n for n in names), "Certificate dnsNames is a list of names")
    ref = spec.get("issuerRef", {})
    expect(ref.get("name") and ref.get("kind") in ("Issuer", "ClusterIssuer"), "Certificate issuerRef names an issuer")
    pk = spec.get("privateKey", {})
    expect(
        pk.get("algorithm", "RSA") in ("RSA", "ECDSA") and pk.get("encoding", "PKCS1") in ("PKCS1", "PKCS8")
        and pk.get("rotationPolicy", "Always") in ("Always", "Never"),
        "Certificate privateKey: an algorithm and encoding portcullis reads",
    )


# ------------------------------------------------------------------- systemd


def unit_settings(path):
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def check_systemd():
    print("systemd")
    unit = unit_settings(DEPLOY / "systemd" / "portcullis.service")
    cfg = tomllib.loads((DEPLOY / "systemd" / "proxy.toml").read_text())
    start = unit["ExecStart"][0].split()
    pre = unit["ExecStartPre"][0].split()
    expect(pre[:2] == [start[0], "check"] and pre[2:] == start[1:], "ExecStartPre checks the configuration ExecStart runs")
    ro = [p.lstrip("-") for v in unit.get("ReadOnlyPaths", []) for p in v.split()]
    cfg_path = start[start.index("--config") + 1]
    for label, path in (
        ("configuration", cfg_path),
        ("tls.cert", cfg["tls"]["cert"]),
        ("tls.key", cfg["tls"]["key"]),
        ("acme_webroot", cfg["http"]["acme_webroot"]),
    ):
        expect(any(path == r or path.startswith(r + "/") for r in ro), f"{label} {path} is under ReadOnlyPaths")
    expect("ReadWritePaths" not in unit, "no ReadWritePaths (portcullis writes no file)")
    caps = unit.get("AmbientCapabilities", []) + unit.get("CapabilityBoundingSet", [])
    expect(caps == ["CAP_NET_BIND_SERVICE"] * 2, "CAP_NET_BIND_SERVICE is the only capability")
    grace = duration_s(cfg.get("server", {}).get("shutdown_grace", "30s"))
    expect(duration_s(unit["TimeoutStopSec"][0]) > grace, "TimeoutStopSec outlasts shutdown_grace")
    expect(
        unit.get("ExecReload")
        == ["/usr/local/bin/portcullis reload --config /etc/portcullis/proxy.toml --pid $MAINPID"],
        "reload is portcullis reload: the file checked, then applied",
    )


def cmd_static(_args):
    user = check_dockerfile()
    check_compose(user)
    check_k8s(user)
    check_systemd()
    return finish()


# ------------------------------------------------------- portcullis check


def strip_table(text, table):
    """TEXT without the [TABLE] table (its header up to the next header)."""
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        if re.match(r"\s*\[", line):
            skipping = re.match(rf"\s*\[{re.escape(table)}\]\s*(#.*)?$", line) is not None
        if not skipping:
            out.append(line)
    return "".join(out)


def make_pair(directory, name="example.com"):
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True,
    )
    return cert, key


def cmd_configs(args):
    bin_ = str(Path(args.bin).resolve())
    tmp = Path(tempfile.mkdtemp(prefix="portcullis-deploy-"))
    try:
        probe_cfg = tmp / "admin-probe.toml"
        probe_cfg.write_text('[admin]\nlisten = "127.0.0.1:9901"\n\n[[route]]\npath = "/"\nupstream = "http://127.0.0.1:8080"\n')
        r = subprocess.run([bin_, "check", "--config", str(probe_cfg)], capture_output=True, text=True)
        admin_known = "unknown key `admin`" not in r.stderr
        if not admin_known:
            print("NOTE: this portcullis has no [admin] listener yet (it rejects the key): the configurations")
            print("      are checked without their [admin] table until it lands, then whole.")
        sources = [(str(p.relative_to(REPO)), p.read_text()) for p in sorted(DEPLOY.glob("*/proxy.toml"))]
        sources.append(("deploy/k8s/configmap.yaml: data.proxy.toml", k8s_proxy_toml(k8s_objects())))
        pair = None
        for i, (label, text) in enumerate(sources):
            cfg = tomllib.loads(text)
            tls = cfg.get("tls", {})
            paths = [v for k, v in tls.items() if k in ("cert", "key")] + [cfg.get("http", {}).get("acme_webroot", "/")]
            expect(all(p.startswith("/") for p in paths), f"{label}: absolute paths only (checked from a copy)")
            note = []
            if not admin_known:
                text = strip_table(text, "admin")
                note.append("[admin] removed")
            if tls.get("cert") and tls.get("bootstrap") != "self-signed" and not Path(tls["cert"]).exists():
                pair = pair or make_pair(tmp)
                text = text.replace(tls["cert"], str(pair[0])).replace(tls["key"], str(pair[1]))
                note.append(f"certificate paths -> a pair generated for the check (in service: {tls['cert']})")
            copy = tmp / f"{i}.toml"
            copy.write_text(text)
            r = subprocess.run([bin_, "check", "--config", str(copy)], capture_output=True, text=True)
            suffix = f" ({'; '.join(note)})" if note else ""
            if expect(r.returncode == 0, f"portcullis check {label}{suffix}"):
                print("\n".join("         " + line for line in r.stdout.splitlines()[1:]))
            else:
                print(r.stdout + r.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return finish()


# --------------------------------------------------------------------- probe


class _StubHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        code = {"/healthz": 200, "/readyz": 503}.get(self.path, 404)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cmd_probe(args):
    print("portcullis probe")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StubHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    cases = [
        ([f"http://127.0.0.1:{port}/healthz"], 0, "200"),
        ([f"http://127.0.0.1:{port}/readyz"], 1, "503"),
        ([f"http://localhost:{port}/healthz"], 0, "200 through a name"),
        ([f"http://127.0.0.1:{free_port()}/healthz"], 1, "connection refused"),
        (["https://127.0.0.1:9901/healthz"], 1, "not an http:// URL"),
    ]
    for argv, want, what in cases:
        r = subprocess.run([args.bin, "probe", *argv], capture_output=True, text=True, timeout=20)
        expect(r.returncode == want, f"{what}: exit {r.returncode} (want {want}) {r.stderr.strip()}")
    server.shutdown()
    return finish()


# ------------------------------------------------------------ certbot script


def cmd_certbot_script(_args):
    print("compose/certbot.sh")
    busybox = shutil.which("busybox")
    if not expect(busybox is not None, "busybox is installed (the certbot image's /bin/sh)"):
        return finish()
    uid = gid = 65532
    tmp = Path(tempfile.mkdtemp(prefix="portcullis-certbot-sh-"))
    try:
        tmp.chmod(0o755)
        le = tmp / "letsencrypt"
        le.mkdir(mode=0o755)
        fakebin = tmp / "bin"
        fakebin.mkdir()
        # A stand-in certbot laying out what `certbot certonly -d example.com`
        # leaves: root-only directories, a 0600 key, live/ symlinks.
        (fakebin / "certbot").write_text(
            "#!/bin/sh\nset -eu\nd=\"$LETSENCRYPT_DIR\"\numask 022\n"
            "mkdir -p -m 700 \"$d/archive/example.com\" \"$d/live/example.com\"\n"
            "chmod 700 \"$d/archive\" \"$d/live\"\n"
            "echo cert > \"$d/archive/example.com/fullchain1.pem\"\n"
            "echo key > \"$d/archive/example.com/privkey1.pem\"\n"
            "chmod 600 \"$d/archive/example.com/privkey1.pem\"\n"
            "for f in fullchain privkey; do ln -sf \"../../archive/example.com/${f}1.pem\" \"$d/live/example.com/$f.pem\"; done\n"
            "echo \"certbot $*\"\n"
        )
        (fakebin / "certbot").chmod(0o755)
        env = dict(os.environ, PATH=f"{fakebin}:{os.environ['PATH']}", LETSENCRYPT_DIR=str(le), CERT_GROUP=str(gid))
        r = subprocess.run(
            [busybox, "sh", str(DEPLOY / "compose" / "certbot.sh"), "certonly", "--webroot", "-w", "/var/www/certbot", "-d", "example.com"],
            env=env, capture_output=True, text=True, timeout=30,
        )
        expect(r.returncode == 0 and "certbot certonly" in r.stdout, f"runs certbot with its arguments, exit {r.returncode} {r.stderr.strip()}")
        key = le / "live" / "example.com" / "privkey.pem"

        def read_as(u, g):
            return subprocess.run(
                ["setpriv", f"--reuid={u}", f"--regid={g}", "--clear-groups", "cat", str(key)],
                capture_output=True, text=True,
            )

        expect(read_as(uid, gid).stdout.strip() == "key", f"uid/gid {uid}:{gid} (portcullis) reads live/example.com/privkey.pem")
        expect(read_as(uid + 1, gid + 1).returncode != 0, "another user still cannot")
        mode = (le / "archive" / "example.com" / "privkey1.pem").stat().st_mode & 0o777
        expect(mode == 0o640, f"the key is 0640 (was 0600), not world-readable: {oct(mode)}")
        r = subprocess.run([busybox, "sh", str(DEPLOY / "compose" / "certbot.sh"), "renew"], env=env, capture_output=True, text=True, timeout=30)
        expect(r.returncode == 0, "a second run (renew) keeps working")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return finish()


# --------------------------------------------------------------- confinement


PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1


def mdwe_available():
    """Whether this kernel has PR_SET_MDWE (6.3+): try it in a child."""
    r = subprocess.run([sys.executable, __file__, "_mdwe-exec", "true"], capture_output=True, text=True)
    return r.returncode == 0, r.stderr.strip()


def cmd_mdwe_exec(args):
    """Exec ARGV with memory-deny-write-execute in force (inherited across
    execve), after proving that a W+X mapping is refused."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        sys.exit(f"prctl(PR_SET_MDWE): {os.strerror(ctypes.get_errno())}")
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    wx = mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC
    p = libc.mmap(None, 4096, wx, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    if p != ctypes.c_void_p(-1).value:
        sys.exit("PR_SET_MDWE accepted, but a writable+executable mapping still succeeded")
    os.execvp(args.argv[0], args.argv)


def allowed_syscalls(unit):
    listing = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout
    groups, cur = {}, None
    for line in listing.splitlines():
        if line.startswith("@"):
            cur = line.strip()
            groups[cur] = set()
        elif line.startswith("    ") and cur and not line.strip().startswith("#"):
            groups[cur].add(line.strip())

    def expand(item):
        if not item.startswith("@"):
            return {item}
        return set().union(*(expand(m) for m in groups[item]))

    allowed = None
    for value in unit["SystemCallFilter"]:
        deny = value.startswith("~")
        items = set().union(*(expand(i) for i in value.lstrip("~").split()))
        if allowed is None:
            allowed = set() if deny else items
            continue
        allowed = allowed - items if deny else allowed | items
    return allowed


def wait_for(pred, timeout, step=0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def cmd_confinement(args):
    print("systemd unit sandbox, at run time")
    unit = unit_settings(DEPLOY / "systemd" / "portcullis.service")
    have_mdwe, why = mdwe_available()
    if unit.get("MemoryDenyWriteExecute") == ["yes"] and not have_mdwe:
        print(f"  skip MemoryDenyWriteExecute: this kernel cannot enforce it for a test ({why})")
    for tool in ("strace", "curl", "openssl"):
        if not expect(shutil.which(tool), f"{tool} is installed"):
            return finish()
    tmp = Path(tempfile.mkdtemp(prefix="portcullis-confine-"))
    procs = []
    try:
        (tmp / "certs").mkdir()
        (tmp / "gen").mkdir()
        (tmp / "trace").mkdir()
        (tmp / "webroot" / ".well-known" / "acme-challenge").mkdir(parents=True)
        (tmp / "webroot" / ".well-known" / "acme-challenge" / "token1").write_text("token1.thumbprint")
        cert, key = make_pair(tmp / "gen", "localhost")
        origin = subprocess.Popen([args.origin, "--http", "127.0.0.1:0", "--ws", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
        procs.append(origin)
        ports = {}
        while len(ports) < 2:
            kind, addr = origin.stdout.readline().split()
            ports[kind] = host_port(addr)[1]
        tls_port, http_port = free_port(), free_port()
        live = tmp / "certs" / "live"
        (tmp / "proxy.toml").write_text(
            f'[server]\nlisten = ["127.0.0.1:{tls_port}"]\n\n'
            f'[tls]\ncert = "{live}/fullchain.pem"\nkey = "{live}/privkey.pem"\nbootstrap = "self-signed"\n\n'
            f'[http]\nlisten = ["127.0.0.1:{http_port}"]\nacme_webroot = "{tmp}/webroot"\n\n'
            # Names, not addresses: the upstream lookup goes through getaddrinfo.
            f'[[route]]\npath = "/"\nupstream = "http://localhost:{ports["http"]}"\n\n'
            f'[[route]]\npath = "/ws"\nupstream = "http://localhost:{ports["ws"]}"\n'
        )
        trace = tmp / "trace" / "strace.out"
        argv = ["strace", "-f", "-qq", "-o", str(trace), args.bin, "--config", str(tmp / "proxy.toml")]
        if have_mdwe:
            argv = [sys.executable, __file__, "_mdwe-exec", *argv]
        log = open(tmp / "portcullis.log", "w")
        proxy = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        procs.append(proxy)

        def logtext():
            return (tmp / "portcullis.log").read_text()

        expect(wait_for(lambda: "listening on https://" in logtext(), 20), "starts (bootstrap certificate)")

        def curl(*a):
            r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", "--max-time", "10", *a],
                               capture_output=True, text=True)
            return r.stdout.strip()

        base = f"https://localhost:{tls_port}"
        expect(curl("-k", "--http2", f"{base}/headers") == "200 2", "HTTP/2 request through the bootstrap certificate")
        (live.parent).mkdir(exist_ok=True)
        live.mkdir()
        shutil.copy(key, live / "privkey.pem")
        shutil.copy(cert, live / "fullchain.pem")
        expect(wait_for(lambda: "certificate reloaded" in logtext(), 20), "switches to the real certificate when it appears")
        expect(curl("--cacert", str(cert), "--http1.1", f"{base}/bytes/100000") == "200 1.1", "HTTP/1.1 request, real certificate verified")
        expect(curl("--cacert", str(cert), f"{base}/sse") == "200 2", "server-sent events over HTTP/2")
        expect(curl(f"http://127.0.0.1:{http_port}/.well-known/acme-challenge/token1") == "200 1.1", "ACME challenge on the plain listener")
        expect(curl(f"http://127.0.0.1:{http_port}/x").startswith("308"), "redirect to https")
        ws = subprocess.run(
            [sys.executable, "-c", _WS_CLIENT, f"wss://localhost:{tls_port}/ws", str(cert)], capture_output=True, text=True, timeout=30
        )
        expect(ws.stdout.strip() == "echo ok", f"WebSocket echo through the proxy {ws.stderr.strip()[-200:]}")
        child = wait_for(lambda: _strace_child(proxy.pid) is not None, 5) and _strace_child(proxy.pid)
        if expect(child, "found the traced portcullis process"):
            os.kill(child, 1)  # SIGHUP
            expect(wait_for(lambda: "SIGHUP" in logtext(), 10), "SIGHUP re-reads certificates")
            os.kill(child, 15)  # SIGTERM
            try:
                rc = proxy.wait(timeout=40)
            except subprocess.TimeoutExpired:
                rc = None
            expect(rc == 0, f"SIGTERM: drains and exits 0 (exit {rc})")
        log.close()
        # ExecStartPre's `check` runs in the same sandbox.
        check_trace = tmp / "trace" / "check.out"
        argv = ["strace", "-f", "-qq", "-o", str(check_trace), args.bin, "check", "--config", str(tmp / "proxy.toml")]
        if have_mdwe:
            argv = [sys.executable, __file__, "_mdwe-exec", *argv]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        expect(r.returncode == 0, f"`portcullis check` (ExecStartPre) passes in the same conditions {r.stderr.strip()[-300:]}")
        text = trace.read_text() + check_trace.read_text()
        used = set(re.findall(r"^\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]", text, re.M))
        used.discard("exited")
        allowed = allowed_syscalls(unit)
        expect(used and used <= allowed, f"{len(used)} distinct system calls, all allowed by SystemCallFilter= {sorted(used - allowed)}")
        families = set(re.findall(r"\bsocket(?:pair)?\((AF_[A-Z0-9]+)", text))
        permitted = set(unit["RestrictAddressFamilies"][0].split())
        expect(families <= permitted, f"socket families {sorted(families)} allowed by RestrictAddressFamilies=")
        print("         mode: " + ("memory-deny-write-execute in force" if have_mdwe else "without memory-deny-write-execute"))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return finish()


def _strace_child(strace_pid):
    """The pid of portcullis under strace (itself maybe under the MDWE
    launcher, which exec'd strace in place)."""
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{strace_pid}/task").iterdir():
            children = (task / "children").read_text().split()
            if children:
                return int(children[0])
    return None


_WS_CLIENT = """
import asyncio, ssl, sys
from websockets.asyncio.client import connect
async def main():
    ctx = ssl.create_default_context(cafile=sys.argv[2])
    async with connect(sys.argv[1], ssl=ctx) as ws:
        await ws.send("echo ok")
        print(await ws.recv())
asyncio.run(main())
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("static").set_defaults(func=cmd_static)
    p = sub.add_parser("configs")
    p.add_argument("--bin", required=True)
    p.set_defaults(func=cmd_configs)
    p = sub.add_parser("probe")
    p.add_argument("--bin", required=True)
    p.set_defaults(func=cmd_probe)
    sub.add_parser("certbot-script").set_defaults(func=cmd_certbot_script)
    p = sub.add_parser("confinement")
    p.add_argument("--bin", required=True)
    p.add_argument("--origin", required=True)
    p.set_defaults(func=cmd_confinement)
    p = sub.add_parser("_mdwe-exec")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_mdwe_exec)
    args = ap.parse_args()
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
