#!/usr/bin/env python3
"""portcullis against its peers, nginx and HAProxy, on the same machine,
origin, certificate and TLS.

Started by run.sh, which installs the tools and builds the binaries:

    bash benches/vs-peers/run.sh            # full run (~30 min), writes benches/RESULTS.md
    bash benches/vs-peers/run.sh --quick    # ~6 min, writes nothing in the repo

Each measurement starts a fresh test origin (pinned with the load generator
to CPU 1) and a fresh proxy (pinned to CPU 0), warms up, then runs one
load tool for a fixed time. The proxy's CPU time is read from
/proc/<pid>/stat (utime + stime of every process of the proxy: nginx's
master and workers) around the measured run. Upstream connections are
counted with ss. The proxies take turns in an order that rotates from
round to round (A B C, B C A, C A B, ...), and medians are reported. Every
process started here is stopped by its PID when the run ends, however it
ends.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import proxies as proxy_setup

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
# The proxies of this run, portcullis last; set in main() from --peers, or
# to ("baseline", "portcullis") for an A/B of two builds (--baseline).
PROXIES = proxy_setup.ALL


def peers():
    return tuple(p for p in PROXIES if p != "portcullis")


ALL_SCENARIOS = ("h1", "h1def", "h2", "h2k", "hs", "big", "gzip", "ws", "wsmem", "stream", "streammem",
                 "scaling", "pool", "static", "staticbig", "reload",
                 "h1open50", "h1open80", "hsopen50", "hsopen80", "wsopen50",
                 "routes2", "routes1k", "ups1", "ups100", "certs1", "certs10k", "wsidle5k", "wsidle50k")
# Names that stand for several scenarios in --scenarios.
SCENARIO_GROUPS = {
    "open": ("h1open50", "h1open80", "hsopen50", "hsopen80", "wsopen50"),
    "routes": ("routes2", "routes1k"),
    "ups": ("ups1", "ups100"),
    "certs": ("certs1", "certs10k"),
    "wsidle": ("wsidle5k", "wsidle50k"),
}
SCENARIO_GROUPS["growth"] = (SCENARIO_GROUPS["routes"] + SCENARIO_GROUPS["ups"] + SCENARIO_GROUPS["certs"]
                             + SCENARIO_GROUPS["wsidle"])
# Open loop (`loadgen open`): a fixed arrival rate, a share of nginx's
# closed-loop maximum of the same load in this run, latency from each
# request's scheduled time: (closed-loop scenario, share, connections; for
# hs, the most handshakes in progress at once).
OPEN_SCENARIOS = {
    "h1open50": ("h1", 0.5, 64), "h1open80": ("h1", 0.8, 64),
    "hsopen50": ("hs", 0.5, 256), "hsopen80": ("hs", 0.8, 256),
    "wsopen50": ("ws", 0.5, 64),
}
# The calibration of the h1 rates (not a scenario of its own): nginx's
# maximum under `loadgen open --closed`.
H1_CALIBRATION = "h1-loadgen"
# Costs as the work grows, each at a small and a large size.
ROUTE_SCENARIOS = {"routes2": 2, "routes1k": 1000}
UPSTREAM_SCENARIOS = {"ups1": 1, "ups100": 100}
CERT_SCENARIOS = {"certs1": 1, "certs10k": 10000}
WSIDLE_SCENARIOS = {"wsidle5k": 5000, "wsidle50k": 50000}
# Connections one address pair can carry: the ephemeral port range, less a
# margin. The idle WebSockets spread over this many per source address
# (client side) and per WebSocket server address (the proxy's side).
PORTS_PER_ADDRESS = 25000
# The certificate replaced among many must be served within this.
CERT_SWAP_TARGET_S = 1.0
# reload: the h1 load while the proxy reloads its configuration every
# RELOAD_EVERY seconds (SIGHUP: nginx -s reload, portcullis's reload); the
# failed requests and the p99 against the same proxy's h1. HAProxy reloads
# only in master-worker mode, which no other scenario runs: left out.
RELOAD_EVERY = 1.0
RELOAD_PROXIES = ("nginx", "portcullis", "baseline")
# Files served by the proxy itself from one directory (nginx `root`,
# portcullis `root`): a 1 KiB file as h1 fetches, a 1 MiB file as big.
# HAProxy serves no files, so it sits these out.
FILE_SCENARIOS = ("static", "staticbig")
FILE_SMALL, FILE_BIG = "/static/1k.bin", "/static/1m.bin"
# Echo over a TLS-terminating stream listener (nginx `stream` with `ssl`,
# HAProxy `mode tcp`, portcullis `[[stream]]` with `tls = "terminate"`).
STREAM_SCENARIOS = ("stream", "streammem")
# The idle-connection scenarios: RSS per connection held open.
MEM_SCENARIOS = ("wsmem", "streammem", "wsidle5k", "wsidle50k")
# pool: the h1 load on one route over POOL_SIZE origins, round robin (nginx
# and HAProxy: their upstream with that many servers and the same keepalive).
POOL_SIZE = 3

# h2k: h2 again with nginx's upstream keepalive raised to H2K_KEEPALIVE, enough
# idle connections for all 640 streams in flight (with the default 64, nginx
# closes most upstream connections after one or two requests). HAProxy and
# portcullis keep every idle upstream connection anyway and run h2k as h2.
H2K_KEEPALIVE = 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
BIG = 1 << 20
# gzip: a JSON answer of this size, compressed by the proxy at level 1.
GZIP_JSON = 100 * 1024

# ---------------------------------------------------------------- logging


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


class BenchError(Exception):
    pass


# ------------------------------------------------------- process tracking


class Procs:
    """Every process started here, so that each is stopped by its PID."""

    def __init__(self):
        self.live = []  # (name, Popen)
        self.extra_pids = []  # nginx workers, stopped if the master died first

    def start(self, name, argv, log_path, cpus=None, stdin=subprocess.DEVNULL, stdout=None):
        if cpus is not None:
            argv = ["taskset", "-c", cpus] + list(argv)
        out = open(log_path, "ab")
        p = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=stdout if stdout is not None else out,
            stderr=out,
            close_fds=True,
        )
        out.close()
        self.live.append((name, p))
        return p

    def stop(self, p, sig=signal.SIGTERM, grace=5.0):
        if p.poll() is None:
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        self.live = [(n, q) for (n, q) in self.live if q is not p]

    def stop_all(self):
        for name, p in reversed(list(self.live)):
            try:
                self.stop(p)
            except Exception as e:  # keep stopping the others
                log("could not stop %s (pid %d): %s" % (name, p.pid, e))
        for pid in self.extra_pids:
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.extra_pids = []


PROCS = Procs()


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


# ------------------------------------------------------------- /proc reads


class Reloads:
    """SIGHUP to `pid` every RELOAD_EVERY seconds until stopped; counts them."""

    def __init__(self, pid):
        self.pid = pid
        self.sent = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.done.wait(RELOAD_EVERY):
            try:
                os.kill(self.pid, signal.SIGHUP)
                self.sent += 1
            except OSError:
                return

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.sent


def children(pid):
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return out


def cpu_ticks(pids):
    """utime + stime of each process in `pids`, summed (clock ticks)."""
    user, kernel = cpu_split(pids)
    return user + kernel


def cpu_split(pids):
    """(utime, stime) of the processes in `pids`, each summed (clock ticks):
    the time in the proxy's own code and in the kernel on its behalf."""
    user = kernel = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            # A worker an nginx reload replaced.
            continue
        # After the command: state is field 3, utime 14, stime 15 (1-based).
        user += int(fields[11])
        kernel += int(fields[12])
    return user, kernel


def switches(pids):
    """Context switches of every thread of the processes in `pids`, summed:
    (voluntary, involuntary). A voluntary switch is a sleep in epoll_wait and
    a wakeup after it, which the kernel time per operation pays for."""
    vol = invol = 0
    for pid in pids:
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            continue
        for tid in tids:
            try:
                with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches:"):
                            vol += int(line.split()[1])
                        elif line.startswith("nonvoluntary_ctxt_switches:"):
                            invol += int(line.split()[1])
            except OSError:
                pass
    return vol, invol


def tcp_segments():
    """TCP segments sent on the whole machine so far (/proc/net/snmp OutSegs).
    Load generator, upstreams and proxy all count; with the same load and
    upstreams, a difference between the proxies is the proxy's doing: a
    write split in two, or an ACK that did not ride on data."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("OutSegs")])


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def pss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            return None
    return total


# ----------------------------------------------------------------- network


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, secs, what):
    deadline = time.monotonic() + secs
    while True:
        if proc.poll() is not None:
            raise BenchError("%s exited (code %s) before listening" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise BenchError("%s: nothing listening on port %d after %ds" % (what, port, secs))
        time.sleep(0.02)


ADDR_RE = re.compile(r"^(\S+):(\d+)$")


def ss_pairs(filter_args):
    """(local port, peer port) of the TCP sockets ss selects."""
    r = subprocess.run(
        ["ss", "-Htn"] + filter_args, capture_output=True, text=True, timeout=120
    )
    pairs = []
    for line in r.stdout.splitlines():
        ports = [int(m.group(2)) for m in map(ADDR_RE.match, line.split()) if m]
        if len(ports) >= 2:
            pairs.append((ports[-2], ports[-1]))
    return pairs


class UpstreamWatch:
    """Counts the proxy's connections to an origin port: established ones
    sampled while load runs, plus the ones that ended in TIME-WAIT. The
    origin is fresh for each measurement, so all of them are this run's."""

    def __init__(self, port, interval=0.25):
        self.port = port
        self.interval = interval
        self.seen = set()
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self):
        # By port alone: a pool's servers may be at 127.0.0.2, .3, ...
        pairs = ss_pairs(["state", "established", "( dport = :%d )" % self.port])
        self.seen.update(local for local, _ in pairs)
        self.peak = max(self.peak, len(pairs))
        self.samples += 1
        return len(pairs)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception:
                pass
            self._stop.wait(self.interval)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)
        self.sample()
        established_now = len(
            ss_pairs(["state", "established", "( dport = :%d )" % self.port])
        )
        tw = ss_pairs(
            ["state", "time-wait", "( dport = :%d or sport = :%d )" % (self.port, self.port)]
        )
        tw_keys = set()
        for local, peer in tw:
            tw_keys.add(peer if local == self.port else local)
        return {
            "distinct": len(self.seen | tw_keys),
            "peak_established": self.peak,
            "established_at_end": established_now,
            "time_wait": len(tw_keys),
        }


# ------------------------------------------------------------ tool parsing


def wrk_duration_us(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if not m:
        return None
    v = float(m.group(1))
    return v * {"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6}[m.group(2)]


def wrk_size_bytes(text):
    m = re.match(r"([\d.]+)([KMGT]?B)$", text)
    if not m:
        return None
    mult = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}[m.group(2)]
    return float(m.group(1)) * mult


def parse_wrk(out):
    r = {"errors": 0}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+[KMGT]?B) read", out)
    if not m:
        raise BenchError("wrk output not understood:\n" + out[-2000:])
    r["ops"] = int(m.group(1))
    r["seconds"] = wrk_duration_us(m.group(2) + m.group(3)) / 1e6
    r["bytes"] = wrk_size_bytes(m.group(4))
    for pct, key in (("50", "p50_us"), ("99", "p99_us")):
        m = re.search(r"^\s+%s%%\s+(\S+)" % pct, out, re.M)
        r[key] = wrk_duration_us(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["errors"] += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["errors"] += sum(int(x) for x in m.groups())
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rate"] = float(m.group(1)) if m else r["ops"] / r["seconds"]
    return r


def parse_h2load(out):
    r = {}
    m = re.search(r"finished in ([\d.]+)(ms|s), ([\d.]+) req/s", out)
    m2 = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        out,
    )
    if not m or not m2:
        raise BenchError("h2load output not understood:\n" + out[-2000:])
    r["seconds"] = float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
    r["rate"] = float(m.group(3))
    r["ops"] = int(m2.group(4))
    r["errors"] = int(m2.group(5)) + int(m2.group(6)) + int(m2.group(7))
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if m:
        r["errors"] += int(m.group(3)) + int(m.group(4))
    m = re.search(r"Application protocol: (\S+)", out)
    r["alpn"] = m.group(1) if m else None
    m = re.search(r"TLS Protocol: (\S+)", out)
    r["tls"] = m.group(1) if m else None
    m = re.search(r"Cipher: (\S+)", out)
    r["cipher"] = m.group(1) if m else None
    m = re.search(r"Server Temp Key: (.+)", out)
    r["temp_key"] = m.group(1).strip() if m else None
    return r


def last_json(out):
    for line in reversed(out.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise BenchError("no JSON result in:\n" + out[-2000:])


# ------------------------------------------------------------- the bench


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="portcullis-vs-peers.")
        os.chmod(self.work, 0o755)
        self.pki = os.path.join(self.work, "pki")
        self.seq = 0
        self.measurements = []
        self.checks = {}
        self.h2_rate = None
        self.load_by_round = []
        ncpu = os.cpu_count() or 1
        if ncpu >= 2:
            self.proxy_cpus, self.load_cpus, self.scaling_cpus = "0", "1", "0,1"
        else:
            log("only one CPU: proxy, origin and load generator share it")
            self.proxy_cpus = self.load_cpus = self.scaling_cpus = "0"
        # The driver itself, ss and every helper run beside the load generator.
        os.sched_setaffinity(0, {int(c) for c in self.load_cpus.split(",")})
        idle = max([WSIDLE_SCENARIOS[x] for x in args.scenarios if x in WSIDLE_SCENARIOS] or [0])
        self.nofile = raise_nofile(max(65536, 2 * idle + 4096))
        # Set by the scenarios that need them.
        self.open_rates = {}
        self.calibrated = {}
        self.skipped = {}
        self.startup_s = None
        self.many_dir = None

    def wsidle_addresses(self):
        """Addresses the idle WebSockets spread over, on each side."""
        most = max([WSIDLE_SCENARIOS[x] for x in self.args.scenarios if x in WSIDLE_SCENARIOS] or [1])
        return max(1, -(-most // PORTS_PER_ADDRESS))

    def many_certs(self):
        """The directory of the certificate scenarios' files, written once a
        run with `loadgen certs` (one CA, ECDSA P-256 leaves c0.bench.test,
        c1...; HAProxy's certificate-and-key files beside them)."""
        if self.many_dir is None:
            d = os.path.join(self.work, "pki-many")
            most = max(CERT_SCENARIOS[x] for x in self.args.scenarios if x in CERT_SCENARIOS)
            out, _ = self.run_tool([self.args.loadgen, "certs", "--dir", d, "--count", str(most), "--combined"],
                                   600, "loadgen certs")
            log("%d certificates written in %.1fs" % (most, last_json(out)["seconds"]))
            self.many_dir = d
        return self.many_dir

    def many_cert(self, i):
        return os.path.join(self.many_certs(), "certs", "c%d.pem" % i)

    def cert_swap(self, pid, port, n):
        """Replaces the certificate file of the middle name among `n` with a
        new certificate (new key), then polls with full handshakes that pin
        the new one until it is served: the seconds that took, and what the
        proxy read meanwhile (`rchar` of /proc/PID/io: files and sockets)."""
        i = n // 2
        host = "c%d.%s" % (i, proxy_setup.ROUTE_DOMAIN)
        probe = lambda: subprocess.run(
            ["taskset", "-c", self.load_cpus, self.args.loadgen, "hs", "--addr", "127.0.0.1:%d" % port,
             "--cert", self.many_cert(i), "--host", host, "--max", "1", "--concurrency", "1", "--duration", "2"],
            capture_output=True, text=True, timeout=30).returncode == 0
        if not probe():
            raise BenchError("cert swap: c%d is not served before the swap" % i)
        file_kib = sum(os.path.getsize(os.path.join(self.many_certs(), "certs", "c%d.%s" % (i, ext)))
                       for ext in ("pem", "key")) / 1024.0
        r0 = proc_io(pid).get("rchar", 0)
        t0 = time.monotonic()
        self.run_tool([self.args.loadgen, "certs", "--dir", self.many_certs(), "--only", str(i), "--combined"],
                      60, "loadgen certs --only")
        polls = 0
        served = None
        while time.monotonic() - t0 < 10:
            polls += 1
            if probe():
                served = time.monotonic() - t0
                break
            time.sleep(0.02)
        r1 = proc_io(pid).get("rchar", 0)
        return {"swap_s": served, "swap_polls": polls, "swap_read_kib": (r1 - r0) / 1024.0,
                "swap_file_kib": file_kib, "swap_all_files_kib": file_kib * n}

    def ensure_open_rate(self, scenario):
        """Fixes the rate of an open-loop scenario for the whole run: its
        share of nginx's closed-loop rate of the same load, from this run's
        measurements when there are some, else from a short calibration
        run of nginx."""
        if scenario in self.open_rates:
            return
        base, share, _ = OPEN_SCENARIOS[scenario]
        # h1's maximum is the one loadgen itself drives nginx to, in a
        # closed loop over the same 64 connections: wrk drives about twice
        # as many requests from the same core, a rate loadgen could not
        # send on time. hs and ws are loadgen's own closed loops already.
        cal = H1_CALIBRATION if base == "h1" else base
        rates = [m["rate"] for m in self.measurements if m["scenario"] == cal and m["proxy"] == "nginx"]
        source = "nginx's %s in this run (median of %d)" % (base, len(rates))
        what = {"h1": "loadgen's closed loop of h1 requests (64 connections)"}.get(base, base)
        if not rates and cal in self.calibrated:
            rates = [self.calibrated[cal]]
            source = "a calibration run of nginx under %s" % what
        elif not rates:
            # Round -1 names this run's files apart from the measured ones.
            r = self.measure(cal, "nginx", -1)
            if not r["ops"] or r["errors"]:
                raise BenchError("calibration of %s on nginx: %d done, %d errors" % (cal, r["ops"], r["errors"]))
            rates = [r["rate"]]
            self.calibrated[cal] = r["rate"]
            source = "a calibration run of nginx under %s" % what
            log("calibration: nginx %s %.0f/s" % (cal, r["rate"]))
        top = statistics.median(rates)
        self.open_rates[scenario] = share * top
        self.checks.setdefault("open_rates", {})[scenario] = {
            "rate": share * top, "share": share, "nginx_max": top, "from": source}
        log("%s: %.0f/s, %.0f%% of %s" % (scenario, share * top, share * 100, source))

    # ---------------------------------------------------------- set-up

    def make_certs(self):
        os.makedirs(self.pki)
        ext = os.path.join(self.pki, "leaf.ext")
        with open(ext, "w") as f:
            f.write(
                "basicConstraints = critical, CA:FALSE\n"
                "keyUsage = critical, digitalSignature\n"
                "extendedKeyUsage = serverAuth\n"
                "subjectAltName = DNS:localhost, IP:127.0.0.1\n"
            )
        p = lambda name: os.path.join(self.pki, name)
        cmds = [
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "7",
             "-subj", "/CN=portcullis bench CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", p("leaf.key"), "-out", p("leaf.csr"), "-subj", "/CN=localhost"],
            ["openssl", "x509", "-req", "-in", p("leaf.csr"), "-CA", p("ca.pem"),
             "-CAkey", p("ca.key"), "-CAcreateserial", "-out", p("leaf.pem"), "-days", "7",
             "-sha256", "-extfile", ext],
        ]
        for c in cmds:
            subprocess.run(c, check=True, capture_output=True, timeout=30)
        # nginx workers run as an unprivileged user; the master reads the key.
        self.cert = p("leaf.pem")
        self.key = p("leaf.key")

    # ------------------------------------------------------ processes

    def start_origin(self, tag, any_addr=False):
        """The origin's process and its HTTP, WebSocket and TCP echo ports;
        with `any_addr`, its HTTP and WebSocket servers listen on every
        address (0.0.0.0), so that 127.0.0.2, .3, ... reach them too: many
        servers of a pool in one process, or more upstream connections than
        one address pair has ports."""
        path = os.path.join(self.work, "origin-%s.log" % tag)
        bind = "0.0.0.0:0" if any_addr else "127.0.0.1:0"
        p = PROCS.start(
            "origin",
            [self.args.origin, "--http", bind, "--ws", bind, "--tcp", "127.0.0.1:0",
             "--threads", "1"],
            path,
            cpus=self.load_cpus,
        )
        deadline = time.monotonic() + 20
        while True:
            with open(path) as f:
                text = f.read()
            http = re.search(r"^http (\S+):(\d+)$", text, re.M)
            ws = re.search(r"^ws (\S+):(\d+)$", text, re.M)
            tcp = re.search(r"^tcp (\S+):(\d+)$", text, re.M)
            if http and ws and tcp:
                return p, int(http.group(2)), int(ws.group(2)), int(tcp.group(2))
            if p.poll() is not None:
                raise BenchError("origin exited early:\n" + text[-2000:])
            if time.monotonic() > deadline:
                raise BenchError("origin did not report its ports")
            time.sleep(0.02)

    def make_files(self):
        """The files of the static scenarios, under WORK/static (random
        bytes: nothing along the way can compress them)."""
        d = os.path.join(self.work, "static")
        os.makedirs(d, exist_ok=True)
        for name, size in (("1k.bin", 1024), ("1m.bin", BIG)):
            with open(os.path.join(d, name), "wb") as f:
                f.write(os.urandom(size))
            os.chmod(os.path.join(d, name), 0o644)
        os.chmod(d, 0o755)

    def worker_connections(self):
        return proxy_setup.connections_for(self.nofile)

    def start_proxy(self, proxy, app_port, ws_port, workers, cpus, tag, keepalive=None, defences=False,
                    echo_port=None, pool_ports=None, files=False, apps=None, routes=0, certs=None,
                    ws_apps=None, conns=None):
        """The proxy's process, its HTTPS port and its pids; with
        `echo_port`, it also has a TLS-terminating stream listener in front
        of that echo server, on `site.stream_port`; with `pool_ports`, its
        route goes to a pool of those origins."""
        port = free_port()
        site = proxy_setup.Site(self.work, port, "127.0.0.1:%d" % app_port, "127.0.0.1:%d" % ws_port,
                                self.cert, self.key)
        if echo_port is not None:
            site.stream_port, site.echo = free_port(), "127.0.0.1:%d" % echo_port
        # An A/B of two builds: the baseline runs with the very
        # configuration the portcullis under test gets.
        kind = "portcullis" if proxy == "baseline" else proxy
        try:
            conf = proxy_setup.configure(kind, site, tag, threads=workers,
                                         keepalive=keepalive or self.args.nginx_keepalive,
                                         nofile=self.nofile, defences=defences and kind == "portcullis",
                                         apps=apps or (["127.0.0.1:%d" % p for p in pool_ports] if pool_ports else None),
                                         files=self.work if files else None, routes=routes, certs=certs,
                                         ws_apps=ws_apps, conns=conns)
        except proxy_setup.ConfigError as e:
            raise BenchError(str(e))
        binary = {"baseline": self.args.baseline, "nginx": self.args.nginx,
                  "haproxy": self.args.haproxy, "portcullis": self.args.portcullis}[proxy]
        logp = os.path.join(self.work, "%s-%s.log" % (proxy, tag))
        p = PROCS.start(proxy, proxy_setup.command(kind, binary, conf, site), logp, cpus=cpus)
        started = time.monotonic()
        # 10,000 certificates take nginx a while to load.
        wait_port(port, p, 20 + (certs[1] // 100 if certs else 0), proxy)
        self.startup_s = time.monotonic() - started
        if echo_port is not None:
            wait_port(site.stream_port, p, 20, proxy)
        pids = [p.pid]
        if proxy == "nginx":
            deadline = time.monotonic() + 10
            while len(children(p.pid)) < workers:
                if time.monotonic() > deadline:
                    raise BenchError("nginx did not start %d workers" % workers)
                time.sleep(0.02)
            kids = children(p.pid)
            pids += kids
            PROCS.extra_pids.extend(kids)
        return p, port, pids, site.stream_port

    def stop_proxy(self, proxy, p, pids):
        # SIGTERM: nginx's fast shutdown, HAProxy's hard stop, portcullis'
        # graceful one.
        PROCS.stop(p, signal.SIGTERM, grace=10)
        for pid in pids[1:]:
            deadline = time.monotonic() + 5
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        PROCS.extra_pids = [x for x in PROCS.extra_pids if x not in pids]

    # ------------------------------------------------------ load tools

    def run_tool(self, argv, timeout, what, stdin=subprocess.DEVNULL):
        try:
            r = subprocess.run(
                ["taskset", "-c", self.load_cpus] + argv,
                stdin=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as e:
            partial = lambda b: (b or b"").decode(errors="replace")[-1500:]
            raise BenchError("%s did not finish within %.0fs (killed):\n%s%s" % (
                what, timeout, partial(e.stdout), partial(e.stderr)))
        with open(os.path.join(self.work, "tools.log"), "a") as f:
            f.write("$ %s\n%s\n%s\n" % (" ".join(argv), r.stdout, r.stderr))
        if r.returncode != 0:
            raise BenchError("%s failed (exit %d):\n%s%s" % (what, r.returncode, r.stdout[-1500:], r.stderr[-1500:]))
        return r.stdout, r.stderr

    def load(self, scenario, port, secs, warm=False):
        """Runs the scenario's load for `secs` seconds; a result dict."""
        url = "https://127.0.0.1:%d" % port
        limit = secs + 60
        if scenario == "gzip":
            out, _ = self.run_tool(
                ["wrk", "-t1", "-c16", "-d%ds" % max(1, math.ceil(secs)), "--latency", "--timeout", "10s",
                 "-H", "Accept-Encoding: gzip", url + "/json/%d" % GZIP_JSON],
                limit, "wrk",
            )
            r = parse_wrk(out)
            # Compressed answers are about a fifth of the JSON: a proxy
            # that sent it whole would not be measured doing the work.
            if r["ops"] and r["bytes"] / r["ops"] > GZIP_JSON / 2:
                raise BenchError("gzip: %d bytes a response; the proxy did not compress" % (r["bytes"] / r["ops"]))
            return r
        if scenario in ("h1", "h1def", "scaling", "big", "pool", "reload") + FILE_SCENARIOS:
            path, conns = {"big": ("/bytes/%d" % BIG, 16), "static": (FILE_SMALL, 64),
                           "staticbig": (FILE_BIG, 16)}.get(scenario, ("/bytes/1024", 64))
            out, _ = self.run_tool(
                ["wrk", "-t1", "-c%d" % conns, "-d%ds" % max(1, math.ceil(secs)), "--latency", "--timeout", "10s",
                 url + path],
                limit, "wrk",
            )
            return parse_wrk(out)
        if scenario in ("h2", "h2k"):
            # By count, not by time: h2load's timing mode (-D) sometimes
            # never exits after its clients stop. The count is the warm-up's
            # rate times the wanted seconds, so runs last about that long.
            def h2load(n):
                n = -(-n // 640) * 640
                out, _ = self.run_tool(
                    ["h2load", "-t1", "-c64", "-m10", "-n", str(n), url + "/bytes/1024"],
                    max(limit, 30 + 10 * secs), "h2load",
                )
                r = parse_h2load(out)
                if r["alpn"] != "h2":
                    raise BenchError("h2load did not negotiate h2 (got %r)" % r["alpn"])
                return r

            def sized(rate):
                return min(20_000_000, max(6400, int(rate * secs)))

            if not warm:
                return h2load(sized(self.h2_rate) if self.h2_rate else 6400)
            # Each h2load run pays about a second of set-up whatever its
            # count, so a short run's rate is far below the steady one. Two
            # more runs, each sized by the rate before it, bring the rate
            # that sizes the measured run close enough for it to last about
            # the wanted time.
            r = h2load(6400)
            ops = r["ops"]
            for _ in range(2):
                r = h2load(sized(r["rate"]))
                ops += r["ops"]
            self.h2_rate = r["rate"]
            r["ops"] = ops
            return r
        if scenario in ROUTE_SCENARIOS:
            # The last route, on its host (no SNI: wrk sends none to an IP).
            host, path = proxy_setup.route_pairs(ROUTE_SCENARIOS[scenario])[-1]
            out, _ = self.run_tool(
                ["wrk", "-t1", "-c64", "-d%ds" % max(1, math.ceil(secs)), "--latency", "--timeout", "10s",
                 "-H", "Host: %s" % host, url + path + "page"],
                limit, "wrk",
            )
            return parse_wrk(out)
        if scenario in UPSTREAM_SCENARIOS:
            out, _ = self.run_tool(
                ["wrk", "-t1", "-c64", "-d%ds" % max(1, math.ceil(secs)), "--latency", "--timeout", "10s",
                 url + "/bytes/1024"],
                limit, "wrk",
            )
            return parse_wrk(out)
        common = ["--addr", "127.0.0.1:%d" % port, "--cert", self.cert]
        if scenario == H1_CALIBRATION:
            out, _ = self.run_tool(
                [self.args.loadgen, "open", "--kind", "h1", "--closed", "--rate", "1"] + common
                + ["--duration", "%.2f" % secs, "--connections", "64"],
                limit, "loadgen open --closed",
            )
            j = last_json(out)
            return {"ops": j["ok"], "seconds": j["schedule_seconds"], "rate": j["rate"], "errors": j["errors"],
                    "p50_us": j["p50_us"], "p99_us": j["p99_us"]}
        if scenario in OPEN_SCENARIOS:
            base, share, conns = OPEN_SCENARIOS[scenario]
            out, _ = self.run_tool(
                [self.args.loadgen, "open", "--kind", base, "--rate", "%.1f" % self.open_rates[scenario]] + common
                + ["--duration", "%.2f" % secs, "--connections", str(conns)],
                limit, "loadgen open",
            )
            j = last_json(out)
            return {
                "ops": j["ok"], "seconds": j["schedule_seconds"], "rate": j["rate"],
                "target_rate": j["target_rate"], "scheduled": j["scheduled"],
                "errors": j["errors"], "late": j["late"], "unsent": j["unsent"],
                "missed": j["late"] + j["unsent"],
                "p50_us": j["p50_us"], "p99_us": j["p99_us"], "p999_us": j["p999_us"], "max_us": j["max_us"],
                "first_error": j["first_error"],
            }
        if scenario in CERT_SCENARIOS:
            # Full handshakes to the last name of the set, its leaf pinned.
            n = CERT_SCENARIOS[scenario]
            common = ["--addr", "127.0.0.1:%d" % port, "--cert", self.many_cert(n - 1),
                      "--host", "c%d.%s" % (n - 1, proxy_setup.ROUTE_DOMAIN)]
            scenario = "hs"
        if scenario == "hs":
            out, err = self.run_tool(
                [self.args.loadgen, "hs"] + common
                + ["--duration", "%.2f" % secs, "--concurrency", "16"],
                limit, "loadgen hs",
            )
            j = last_json(out)
            if j["resumed"] or j["full"] != j["connections"]:
                raise BenchError("hs: not every handshake was full: %r" % j)
            neg = re.search(r"negotiated (.*)", err)
            return {
                "ops": j["connections"], "seconds": j["seconds"], "rate": j["rate"],
                "errors": j["errors"], "p50_us": j["p50_us"], "p99_us": j["p99_us"],
                "handshakes_full": j["full"], "handshakes_resumed": j["resumed"],
                "negotiated": neg.group(1) if neg else None,
            }
        if scenario in ("ws", "stream"):
            # stream: 64-byte messages echoed through the TLS-terminating
            # stream listener, the same 64 connections one in flight each.
            extra = ["--raw", "--size", "64"] if scenario == "stream" else []
            out, _ = self.run_tool(
                [self.args.loadgen, "ws"] + common
                + ["--duration", "%.2f" % secs, "--connections", "64"] + extra,
                limit, "loadgen ws",
            )
            j = last_json(out)
            return {
                "ops": j["messages"], "seconds": j["seconds"], "rate": j["rate"],
                "errors": j["errors"], "p50_us": j["p50_us"], "p99_us": j["p99_us"],
            }
        raise BenchError("no load for " + scenario)

    # ---------------------------------------------------- measurements

    def measure(self, scenario, proxy, rnd):
        self.seq += 1
        tag = "%s-%s-r%d" % (scenario, proxy, rnd)
        workers = 2 if scenario == "scaling" else 1
        cpus = self.scaling_cpus if scenario == "scaling" else self.proxy_cpus
        idle = WSIDLE_SCENARIOS.get(scenario)
        if idle and self.nofile < 2 * idle + 1024:
            why = ("the open-file limit is %d, and %d idle WebSockets need %d descriptors in the proxy "
                   "(one each side) and more than %d in the client: the machine cannot hold them" % (
                       self.nofile, idle, 2 * idle + 1024, idle))
            if scenario not in self.skipped:
                log("%s skipped: %s" % (scenario, why))
            self.skipped[scenario] = why
            return None
        origin, app_port, ws_port, echo_port = self.start_origin(
            tag, any_addr=scenario in UPSTREAM_SCENARIOS or bool(idle))
        more = []
        p = None
        pids = []
        streamed = scenario in STREAM_SCENARIOS
        try:
            pool_ports = None
            if scenario == "pool":
                for i in range(1, POOL_SIZE):
                    more.append(self.start_origin("%s-%d" % (tag, i)))
                pool_ports = [app_port] + [m[1] for m in more]
            keepalive = H2K_KEEPALIVE if scenario == "h2k" else None
            apps = ws_apps = conns = certs = None
            if scenario in UPSTREAM_SCENARIOS:
                # n servers of one pool, each its own address (127.0.0.1,
                # .2, ...) on the one origin listening on all of them.
                n = UPSTREAM_SCENARIOS[scenario]
                apps = ["127.0.0.%d:%d" % (i + 1, app_port) for i in range(n)]
                # nginx keeps idle upstream connections in one cache per
                # upstream, shared by its servers: room for a few a server.
                keepalive = max(self.args.nginx_keepalive, 4 * n)
            if idle:
                # The upstream connections spread over as many WebSocket
                # server addresses as the largest size needs, at both sizes.
                k = self.wsidle_addresses()
                ws_apps = ["127.0.0.%d:%d" % (i + 1, ws_port) for i in range(k)]
                conns = 2 * idle + 1024
            if scenario in CERT_SCENARIOS:
                certs = (self.many_certs(), CERT_SCENARIOS[scenario])
            p, port, pids, stream_port = self.start_proxy(
                proxy, app_port, ws_port, workers, cpus, tag, keepalive,
                defences=scenario == "h1def", echo_port=echo_port if streamed else None,
                pool_ports=pool_ports, files=scenario in FILE_SCENARIOS, apps=apps,
                routes=ROUTE_SCENARIOS.get(scenario, 0), certs=certs, ws_apps=ws_apps, conns=conns)
            startup_s = self.startup_s
            if streamed:
                # The load goes to the stream listener, and the upstream
                # connections watched are the echo server's.
                port, ws_port = stream_port, echo_port
            if scenario in MEM_SCENARIOS:
                return self.measure_wsmem(proxy, rnd, tag, port, pids, ws_port, raw=streamed, scenario=scenario,
                                          n=idle, sources=ws_apps and [a.split(":")[0] for a in ws_apps])
            if scenario == "hs" and rnd == 0:
                out, err = self.run_tool(
                    [self.args.loadgen, "resume-check", "--addr", "127.0.0.1:%d" % port,
                     "--cert", self.cert],
                    60, "loadgen resume-check",
                )
                self.checks.setdefault("resumption", {})[proxy] = last_json(out)
            self.h2_rate = None
            watch_port = ws_port if scenario in ("ws", "stream") else app_port
            watch = UpstreamWatch(watch_port).start()
            warm_ops = 0
            if self.args.warmup > 0:
                warm_ops = self.load(scenario, port, self.args.warmup, warm=True)["ops"]
            u0, k0 = cpu_split(pids)
            v0, i0 = switches(pids)
            s0 = tcp_segments()
            w0 = time.monotonic()
            reloader = Reloads(p.pid).start() if scenario == "reload" else None
            try:
                r = self.load(scenario, port, self.args.duration)
            finally:
                reloads = reloader.stop() if reloader else None
            wall = time.monotonic() - w0
            u1, k1 = cpu_split(pids)
            v1, i1 = switches(pids)
            s1 = tcp_segments()
            t0, t1 = u0 + k0, u1 + k1
            up = watch.stop()
            if not pid_alive(p.pid):
                raise BenchError("%s died during %s" % (proxy, scenario))
            cpu_us = (t1 - t0) * 1e6 / CLK_TCK
            r.update(
                scenario=scenario, proxy=proxy, round=rnd, seq=self.seq,
                cpu_us=cpu_us, cpu_wall_s=wall,
                cpu_share=cpu_us / 1e6 / wall if wall > 0 else None,
                cpu_us_per_op=cpu_us / r["ops"] if r["ops"] else None,
                user_us_per_op=(u1 - u0) * 1e6 / CLK_TCK / r["ops"] if r["ops"] else None,
                kernel_us_per_op=(k1 - k0) * 1e6 / CLK_TCK / r["ops"] if r["ops"] else None,
                sleeps_per_op=(v1 - v0) / r["ops"] if r["ops"] else None,
                segments_per_op=(s1 - s0) / r["ops"] if r["ops"] else None,
                preemptions_per_op=(i1 - i0) / r["ops"] if r["ops"] else None,
                upstream=up, upstream_ops=r["ops"] + warm_ops,
            )
            if scenario == "gzip" and r["ops"]:
                r["bytes_per_op"] = r["bytes"] / r["ops"]
            if scenario == "reload":
                # An nginx reload starts new workers whose CPU is not
                # counted: no CPU figure for this scenario.
                r["reloads"] = reloads
                for k in ("cpu_us_per_op", "user_us_per_op", "kernel_us_per_op"):
                    r[k] = None
            if scenario in CERT_SCENARIOS:
                r["startup_s"] = startup_s
                r["rss_kib"] = rss_kib(pids)
                if proxy in ("portcullis", "baseline"):
                    r.update(self.cert_swap(p.pid, port, CERT_SCENARIOS[scenario]))
            if scenario in ("big", "staticbig"):
                r["mib_per_s"] = r["rate"] * BIG / (1 << 20)
                mib = r["ops"] * BIG / (1 << 20)
                r["cpu_us_per_mib"] = cpu_us / mib if r["ops"] else None
                r["user_us_per_mib"] = (u1 - u0) * 1e6 / CLK_TCK / mib if r["ops"] else None
                r["kernel_us_per_mib"] = (k1 - k0) * 1e6 / CLK_TCK / mib if r["ops"] else None
            return r
        finally:
            if p is not None:
                self.stop_proxy(proxy, p, pids)
            PROCS.stop(origin)
            for m in more:
                PROCS.stop(m[0])

    def measure_wsmem(self, proxy, rnd, tag, port, pids, ws_port, raw=False, scenario="wsmem", n=None,
                      sources=None):
        """RSS per idle connection: WebSockets (wsmem, wsidle*), or raw TLS
        streams to the stream listener (streammem, `raw`); `n` of them
        (default --ws-idle), connected from `sources` in turn."""
        common = ["--addr", "127.0.0.1:%d" % port, "--cert", self.cert] + (["--raw"] if raw else [])
        n = n or self.args.ws_idle
        # Warm the allocator and TLS state the same way for both: open and
        # close a few connections first, then take the baseline.
        self.run_tool([self.args.loadgen, "hold"] + common
                      + ["--connections", "64", "--hold-max", "0"], 60, "loadgen hold (warm-up)")
        time.sleep(0.5)
        before = rss_kib(pids)
        pss_before = pss_kib(pids)
        t0 = cpu_ticks(pids)
        holder = PROCS.start(
            "loadgen-hold",
            ["taskset", "-c", self.load_cpus, self.args.loadgen, "hold"] + common
            + ["--connections", str(n), "--parallel", "64", "--hold-max", str(300 + n // 50),
               "--open-max", str(max(240, n // 100))]
            + (["--source", ",".join(sources)] if sources and len(sources) > 1 else []),
            os.path.join(self.work, "hold-%s.log" % tag),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            line = read_line(holder.stdout, max(280, n // 100 + 40))
            if not line:
                raise BenchError("loadgen hold gave no result")
            j = json.loads(line)
            t1 = cpu_ticks(pids)
            time.sleep(1.0)
            after = rss_kib(pids)
            pss_after = pss_kib(pids)
            upstream = len(ss_pairs(["state", "established", "( dport = :%d )" % ws_port]))
        finally:
            try:
                holder.stdin.close()
            except OSError:
                pass
            try:
                holder.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            PROCS.stop(holder)
        held = j["held"]
        if held == 0:
            raise BenchError("no %s connection could be held: %r" % ("stream" if raw else "WebSocket", j))
        return {
            "scenario": scenario, "proxy": proxy, "round": rnd, "seq": self.seq,
            "ops": held, "errors": j["failed"], "seconds": j["open_seconds"],
            "held": held, "rss_before_kib": before, "rss_after_kib": after,
            "kib_per_conn": (after - before) / held,
            "pss_before_kib": pss_before, "pss_after_kib": pss_after,
            "pss_kib_per_conn": (pss_after - pss_before) / held if pss_before is not None and pss_after is not None else None,
            "cpu_us": (t1 - t0) * 1e6 / CLK_TCK,
            "cpu_us_per_open": (t1 - t0) * 1e6 / CLK_TCK / held,
            "upstream": {"established_while_held": upstream},
            "first_error": j.get("first_error"),
        }

    # --------------------------------------------------------- profile

    def profile(self):
        """cpu-clock samples of each proxy under one scenario's load (h1
        unless --perf-scenario says otherwise; not counted)."""
        if not shutil.which("perf"):
            log("perf is not installed: no profile")
            return {}
        out = {}
        for proxy in PROXIES:
            tag = "perf-" + proxy
            origin, app_port, ws_port, _ = self.start_origin(tag)
            p = None
            pids = []
            try:
                p, port, pids, _ = self.start_proxy(proxy, app_port, ws_port, 1, self.proxy_cpus, tag)
                scenario = self.args.perf_scenario
                # A warm-up of this proxy sizes an h2 load (run by request
                # count) to last the recording, whatever ran before.
                self.h2_rate = None
                self.load(scenario, port, max(self.args.warmup, 0.5), warm=True)
                data = os.path.join(self.work, "perf-%s.data" % proxy)
                rec = PROCS.start(
                    "perf",
                    ["taskset", "-c", self.load_cpus, "perf", "record", "-e", "cpu-clock",
                     "-F", "999", "--call-graph", self.args.perf_call_graph, "-o", data,
                     "-p", ",".join(map(str, pids)),
                     "--", "sleep", "%.2f" % self.args.duration],
                    os.path.join(self.work, "perf-record.log"),
                )
                c0 = cpu_ticks(pids)
                ops = self.load(scenario, port, self.args.duration)["ops"]
                c1 = cpu_ticks(pids)
                rec.wait(timeout=self.args.duration + 60)
                PROCS.stop(rec)
                views = {}
                for view, sort, limit in (("by_dso", "dso", "0.5"), ("by_symbol", "dso,sym", "1.5")):
                    rep = subprocess.run(
                        ["perf", "report", "-i", data, "--stdio", "--no-children",
                         "--sort", sort, "--percent-limit", limit, "-g", "none"],
                        capture_output=True, text=True, timeout=300,
                    )
                    with open(os.path.join(self.work, "perf-%s-%s.txt" % (proxy, view)), "w") as f:
                        f.write(rep.stdout)
                    lines = [l.rstrip() for l in rep.stdout.splitlines() if l.strip() and not l.startswith("#")]
                    views[view] = lines[:20]
                    s_ = re.search(r"# Samples: (\S+)", rep.stdout)
                    views["samples"] = s_.group(1) if s_ else None
                # The user-space part alone, in shares of all samples: the
                # kernel's TCP work hides it in the symbol view.
                dsos = [l.split()[-1] for l in views["by_dso"]
                        if l.split() and not l.split()[-1].startswith("[")]
                if dsos:
                    rep = subprocess.run(
                        ["perf", "report", "-i", data, "--stdio", "--no-children",
                         "--sort", "dso,sym", "--percent-limit", "0.7", "-g", "none",
                         "--percentage", "absolute", "--dsos", ",".join(dsos)],
                        capture_output=True, text=True, timeout=300,
                    )
                    with open(os.path.join(self.work, "perf-%s-user.txt" % proxy), "w") as f:
                        f.write(rep.stdout)
                    views["user_symbols"] = [
                        l.rstrip() for l in rep.stdout.splitlines() if l.strip() and not l.startswith("#")
                    ][:25]
                views["by_component"] = components(data)
                views["data"] = data
                views["cpu_us_per_op"] = (c1 - c0) * 1e6 / CLK_TCK / ops if ops else None
                out[proxy] = views
            finally:
                if p is not None:
                    self.stop_proxy(proxy, p, pids)
                PROCS.stop(origin)
        if out:
            out["by_activity"] = kernel_split(out)
        return out

    # ------------------------------------------------------------- run

    def run(self):
        self.make_certs()
        self.make_files()
        scenarios = self.args.scenarios
        t_start = time.monotonic()
        for rnd in range(self.args.rounds):
            for scenario in scenarios:
                # Each proxy takes each place in turn: A B C, B C A, C A B
                # (with two, A B then B A).
                k = rnd % len(PROXIES)
                order = PROXIES[k:] + PROXIES[:k]
                if scenario in OPEN_SCENARIOS:
                    self.ensure_open_rate(scenario)
                # Each run of these starts a proxy with 10,000 certificates or
                # opens tens of thousands of WebSockets, and memory and
                # start-up are steady from run to run: the first
                # --growth-rounds only.
                if (scenario in WSIDLE_SCENARIOS or scenario in CERT_SCENARIOS) and rnd >= self.args.growth_rounds:
                    continue
                for proxy in order:
                    if scenario == "reload" and proxy not in RELOAD_PROXIES:
                        continue
                    if scenario in FILE_SCENARIOS and proxy == "haproxy":
                        continue
                    r = self.measure(scenario, proxy, rnd)
                    if r is None:
                        break
                    self.measurements.append(r)
                    log(describe(r))
            self.load_by_round.append(os.getloadavg())
            log("round %d of %d done after %.0fs; load average %s" % (
                rnd + 1, self.args.rounds, time.monotonic() - t_start,
                ", ".join("%.2f" % x for x in self.load_by_round[-1])))
        profile = self.profile() if self.args.perf else {}
        return time.monotonic() - t_start, profile


def kernel_split(profiles):
    """Each proxy's CPU per operation by what it was doing (system call and
    where inside it), from the profiles' call stacks: benches/profile/kernel_split.py."""
    script = os.path.join(HERE, "..", "profile", "kernel_split.py")
    argv = [sys.executable, script]
    for proxy, views in profiles.items():
        if views.get("cpu_us_per_op"):
            argv += ["--us-per-op", "%s=%.3f" % (proxy, views["cpu_us_per_op"])]
    argv += ["%s=%s" % (proxy, views["data"]) for proxy, views in profiles.items()]
    rep = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if rep.returncode != 0:
        return ["kernel_split.py failed: %s" % rep.stderr.strip()]
    return rep.stdout.rstrip().splitlines()


SYMBOL_CRATE = re.compile(r"^[<&*\s]*(?:dyn\s+)?([A-Za-z_][A-Za-z0-9_]*)::")


def components(data):
    """Shares of all samples by where the code comes from: the kernel, each
    shared library, and inside a statically linked Rust binary each crate
    (by the first path segment of the symbol; aws-lc's C by its prefix)."""
    rep = subprocess.run(
        ["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym",
         "--percent-limit", "0", "-g", "none", "--percentage", "absolute"],
        capture_output=True, text=True, timeout=300,
    )
    shares = {}
    for line in rep.stdout.splitlines():
        m = re.match(r"^\s*([\d.]+)%\s+(\S+)\s+\[([.k])\]\s+(.*)$", line)
        if not m:
            continue
        pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
        if kind == "k" or dso.startswith("["):
            key = "kernel"
        elif dso in ("portcullis",) or dso.startswith("portcullis"):
            if sym.startswith("aws_lc") or sym.startswith("GFp") or "_avx" in sym and "::" not in sym:
                key = "portcullis: aws-lc (C)"
            else:
                c = SYMBOL_CRATE.match(sym)
                key = "portcullis: %s" % (c.group(1) if c else "other")
        else:
            key = dso
        shares[key] = shares.get(key, 0.0) + pct
    return ["%6.2f%%  %s" % (v, k) for k, v in sorted(shares.items(), key=lambda kv: -kv[1]) if v >= 0.5]


def read_line(stream, secs):
    """One line from a pipe, or None after `secs`."""
    box = []
    t = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    t.start()
    t.join(secs)
    if not box:
        return None
    return box[0].decode().strip()


def proc_io(pid):
    try:
        with open("/proc/%d/io" % pid) as f:
            return {k: int(v) for k, v in (line.split(":") for line in f if ":" in line)}
    except OSError:
        return {}


def raise_nofile(want=65536):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for h in (max(hard, want), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, h), h))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def describe(r):
    s = "%-7s %-10s round %d:" % (r["scenario"], r["proxy"], r["round"])
    if r["scenario"] in MEM_SCENARIOS:
        return s + " %d idle connections, RSS %+.0f KiB (%.1f KiB each), %d upstream" % (
            r["held"], r["rss_after_kib"] - r["rss_before_kib"], r["kib_per_conn"],
            r["upstream"]["established_while_held"])
    up = r["upstream"]
    s += " %.0f ops/s, %s CPU us/op, CPU %.0f%%, %d errors; upstream %d conns for %d ops (peak %d)" % (
        r["rate"], fmt(r["cpu_us_per_op"]), 100 * (r["cpu_share"] or 0), r["errors"],
        up["distinct"], r["upstream_ops"], up["peak_established"])
    if "p999_us" in r:
        s += "; at %.0f/s: p50 %.2f, p99 %.2f, p99.9 %.2f ms, %d late, %d unsent" % (
            r["target_rate"], r["p50_us"] / 1e3, r["p99_us"] / 1e3, r["p999_us"] / 1e3, r["late"], r["unsent"])
    if "startup_s" in r:
        s += "; start-up %.2fs, RSS %.1f MiB" % (r["startup_s"], r["rss_kib"] / 1024.0)
    if "swap_polls" in r:
        s += "; swap served after %s s, %.0f KiB read" % (fmt(r["swap_s"], 2), r["swap_read_kib"])
    return s


def fmt(v, digits=None):
    if v is None:
        return "-"
    if digits is None:
        a = abs(v)
        digits = 0 if a >= 1000 else 1 if a >= 10 else 2 if a >= 1 else 3
    return "{:,.{d}f}".format(v, d=digits)


# ------------------------------------------------------------- reporting

# (scenario, key, label, unit scale, higher is better; None for a count
# that explains the others and is neither better nor worse by itself)
METRICS = [
    ("h1", "rate", "h1  requests/s (1 KiB, 64 conns, wrk)", 1, True),
    ("h1", "p50_us", "h1  latency p50 (ms)", 1e-3, False),
    ("h1", "p99_us", "h1  latency p99 (ms)", 1e-3, False),
    ("h1", "cpu_us_per_op", "h1  proxy CPU us/request", 1, False),
    ("h1", "user_us_per_op", "h1  of which in the proxy's own code (user)", 1, False),
    ("h1", "kernel_us_per_op", "h1  of which in the kernel (system)", 1, False),
    ("h1", "sleeps_per_op", "h1  proxy sleeps (voluntary context switches) per request", 1, None),
    ("h1", "segments_per_op", "h1  TCP segments per operation, whole machine", 1, None),
    ("h1def", "rate", "h1def requests/s, portcullis with every optional limit set", 1, True),
    ("h1def", "cpu_us_per_op", "h1def proxy CPU us/request, portcullis with every optional limit set", 1, False),
    ("h2", "rate", "h2  requests/s (64 conns x 10 streams, h2load)", 1, True),
    ("h2", "cpu_us_per_op", "h2  proxy CPU us/request", 1, False),
    ("h2", "user_us_per_op", "h2  of which in the proxy's own code (user)", 1, False),
    ("h2", "kernel_us_per_op", "h2  of which in the kernel (system)", 1, False),
    ("h2", "sleeps_per_op", "h2  proxy sleeps (voluntary context switches) per request", 1, None),
    ("h2", "segments_per_op", "h2  TCP segments per operation, whole machine", 1, None),
    ("h2k", "rate", "h2k requests/s, h2 with nginx upstream keepalive %d (the others as in h2)" % H2K_KEEPALIVE,
     1, True),
    ("h2k", "cpu_us_per_op", "h2k proxy CPU us/request", 1, False),
    ("hs", "rate", "hs  full TLS 1.3 handshakes/s (new conn per request)", 1, True),
    ("hs", "p99_us", "hs  connection time p99 (ms)", 1e-3, False),
    ("hs", "cpu_us_per_op", "hs  proxy CPU us/handshake+request", 1, False),
    ("big", "mib_per_s", "big MiB/s (1 MiB responses, 16 conns, wrk)", 1, True),
    ("big", "cpu_us_per_mib", "big proxy CPU us/MiB", 1, False),
    ("big", "user_us_per_mib", "big of which in the proxy's own code (user)", 1, False),
    ("big", "kernel_us_per_mib", "big of which in the kernel (system)", 1, False),
    ("gzip", "rate", "gzip requests/s (100 KiB JSON compressed at level 1, 16 conns, wrk)", 1, True),
    ("gzip", "cpu_us_per_op", "gzip proxy CPU us/request", 1, False),
    ("gzip", "bytes_per_op", "gzip bytes read per response (headers and compressed body)", 1, None),
    ("ws", "rate", "ws  echo round trips/s (64 conns, 128 B)", 1, True),
    ("ws", "p99_us", "ws  round trip p99 (ms)", 1e-3, False),
    ("ws", "cpu_us_per_op", "ws  proxy CPU us/message (round trip)", 1, False),
    ("ws", "user_us_per_op", "ws  of which in the proxy's own code (user)", 1, False),
    ("ws", "kernel_us_per_op", "ws  of which in the kernel (system)", 1, False),
    ("ws", "sleeps_per_op", "ws  proxy sleeps (voluntary context switches) per message", 1, None),
    ("ws", "segments_per_op", "ws  TCP segments per operation, whole machine", 1, None),
    ("wsmem", "kib_per_conn", "wsmem RSS KiB per idle WebSocket", 1, False),
    ("wsmem", "rss_before_kib", "wsmem RSS before (MiB)", 1 / 1024.0, False),
    ("wsmem", "cpu_us_per_open", "wsmem proxy CPU us per WebSocket opened", 1, False),
    ("stream", "rate", "stream echo round trips/s (TLS terminated, 64 conns, 64 B)", 1, True),
    ("stream", "p99_us", "stream round trip p99 (ms)", 1e-3, False),
    ("stream", "cpu_us_per_op", "stream proxy CPU us/message (round trip)", 1, False),
    ("stream", "user_us_per_op", "stream of which in the proxy's own code (user)", 1, False),
    ("stream", "kernel_us_per_op", "stream of which in the kernel (system)", 1, False),
    ("streammem", "kib_per_conn", "streammem RSS KiB per idle TLS stream", 1, False),
    ("streammem", "cpu_us_per_open", "streammem proxy CPU us per stream opened", 1, False),
    ("scaling", "rate", "scaling h1 requests/s, 2 workers/threads", 1, True),
    ("scaling", "cpu_us_per_op", "scaling proxy CPU us/request, 2 workers/threads", 1, False),
    ("pool", "rate", "pool h1 requests/s over %d origins, round robin" % POOL_SIZE, 1, True),
    ("pool", "cpu_us_per_op", "pool proxy CPU us/request over %d origins" % POOL_SIZE, 1, False),
    ("reload", "errors", "reload failed requests, h1 load with a reload every second (target 0)", 1, False),
    ("reload", "p99_us", "reload latency p99 (ms), h1 load with a reload every second", 1e-3, False),
    ("reload", "reloads", "reload reloads during the measured load", 1, None),
    ("static", "rate", "static requests/s (a 1 KiB file, 64 conns, wrk; not HAProxy)", 1, True),
    ("static", "p99_us", "static latency p99 (ms)", 1e-3, False),
    ("static", "cpu_us_per_op", "static proxy CPU us/request", 1, False),
    ("staticbig", "mib_per_s", "staticbig MiB/s (a 1 MiB file, 16 conns, wrk; not HAProxy)", 1, True),
    ("staticbig", "cpu_us_per_mib", "staticbig proxy CPU us/MiB", 1, False),
] + [
    # The open-loop scenarios, each the same rows.
    (scenario, key, "%s %s" % (scenario, label % {
        "what": {"h1": "h1 requests", "hs": "full handshakes", "ws": "ws round trips"}[base],
        "share": share * 100}), scale, higher)
    for scenario, (base, share, _) in OPEN_SCENARIOS.items()
    for key, label, scale, higher in (
        ("target_rate", "%(what)s at a fixed rate, %(share).0f%% of nginx's maximum: rate sent (/s)", 1, None),
        ("p50_us", "latency p50 from the scheduled time (ms)", 1e-3, False),
        ("p99_us", "latency p99 from the scheduled time (ms)", 1e-3, False),
        ("p999_us", "latency p99.9 from the scheduled time (ms)", 1e-3, False),
        ("missed", "requests late (> 1 ms) or unsent", 1, False),
        ("errors", "errors", 1, False),
        ("cpu_us_per_op", "proxy CPU us/operation", 1, False),
    )
] + [
    ("routes2", "cpu_us_per_op", "routes2 proxy CPU us/request, 2 routes (host plus path)", 1, False),
    ("routes1k", "cpu_us_per_op", "routes1k proxy CPU us/request, 1,000 routes (the last one asked)", 1, False),
    ("routes1k", "rate", "routes1k requests/s, 1,000 routes", 1, True),
    ("ups1", "cpu_us_per_op", "ups1 proxy CPU us/request, a pool of 1 server", 1, False),
    ("ups100", "cpu_us_per_op", "ups100 proxy CPU us/request, a pool of 100 servers, round robin", 1, False),
    ("ups100", "rate", "ups100 requests/s, 100 servers", 1, True),
    ("certs1", "cpu_us_per_op", "certs1 proxy CPU us/full handshake, 1 certificate by SNI", 1, False),
    ("certs10k", "cpu_us_per_op", "certs10k proxy CPU us/full handshake, 10,000 certificates by SNI", 1, False),
    ("certs1", "rss_kib", "certs1 proxy RSS (MiB), 1 certificate", 1 / 1024.0, False),
    ("certs10k", "rss_kib", "certs10k proxy RSS (MiB), 10,000 certificates", 1 / 1024.0, False),
    ("certs1", "startup_s", "certs1 start-up until the port answers (s), 1 certificate", 1, False),
    ("certs10k", "startup_s", "certs10k start-up until the port answers (s), 10,000 certificates", 1, False),
    ("certs10k", "swap_s", "certs10k one certificate file replaced: served after (s; portcullis only)", 1, False),
    ("certs10k", "swap_read_kib", "certs10k KiB the proxy read meanwhile (one pair is a few KiB, all of them MiBs)", 1, False),
    ("wsidle5k", "kib_per_conn", "wsidle5k RSS KiB per idle WebSocket, 5,000 held", 1, False),
    ("wsidle50k", "kib_per_conn", "wsidle50k RSS KiB per idle WebSocket, 50,000 held", 1, False),
]


# The headline of each scenario, portcullis against the best peer, with the
# target of issue 20: (scenario, metric, what one unit is, target of
# portcullis / best peer).
HEADLINE = [
    ("h1", "cpu_us_per_op", "CPU per request", 0.9),
    ("h2", "cpu_us_per_op", "CPU per request", 0.9),
    ("h2k", "cpu_us_per_op", "CPU per request (nginx keepalive %d)" % H2K_KEEPALIVE, 0.9),
    ("hs", "cpu_us_per_op", "CPU per full handshake and request", 0.8),
    ("big", "cpu_us_per_mib", "CPU per MiB", 0.8),
    ("gzip", "cpu_us_per_op", "CPU per 100 KiB JSON gzipped", None),
    ("ws", "cpu_us_per_op", "CPU per message", 0.8),
    ("wsmem", "kib_per_conn", "KiB per idle WebSocket", 0.6),
    ("stream", "cpu_us_per_op", "CPU per message, TLS stream", 0.9),
    ("streammem", "kib_per_conn", "KiB per idle TLS stream", None),
    ("scaling", "cpu_us_per_op", "CPU per request, 2 threads", None),
    ("pool", "cpu_us_per_op", "CPU per request over %d origins" % POOL_SIZE, 1.0),
    ("static", "cpu_us_per_op", "CPU per request, 1 KiB file", None),
    ("staticbig", "cpu_us_per_mib", "CPU per MiB, 1 MiB file", None),
] + [
    # Issue 20: p99 at most the best peer's at each fixed rate.
    (scenario, "p99_us", "p99 latency, %s at %.0f%% of nginx's maximum" % (base, share * 100), 1.0)
    for scenario, (base, share, _) in OPEN_SCENARIOS.items()
] + [
    ("routes1k", "cpu_us_per_op", "CPU per request, 1,000 routes", None),
    ("ups100", "cpu_us_per_op", "CPU per request, 100 servers", None),
    ("certs10k", "cpu_us_per_op", "CPU per full handshake, 10,000 certificates", None),
    ("wsidle50k", "kib_per_conn", "KiB per idle WebSocket, 50,000", None),
]


def headline(rows):
    """One line a scenario: the ratios to each peer and to the best one."""
    by = {(r["scenario"], r["metric"]): r for r in rows if "value" not in r}
    scaling = {r["proxy"]: r["value"] for r in rows if r.get("metric") == "cpu_2w_over_1w"}
    out = []
    for scenario, key, unit, target in HEADLINE:
        r = by.get((scenario, key))
        if not r:
            continue
        h = {"scenario": scenario, "unit": unit, "ratios": r["ratios"], "best_peer": r["best_peer"],
             "best_ratio": r["best_ratio"], "target": target}
        if scenario == "scaling" and scaling:
            # Issue 20's scaling target is portcullis' own: 2 threads
            # against 1, CPU per request at most +10%.
            h["target"] = 1.1
            h["own_2_over_1"] = scaling
        for small, large, metric, _, growth_target in GROWTH:
            own = {g["proxy"]: g["value"] for g in rows
                   if g.get("metric") == "%s_over_%s" % (large, small) and large == scenario and metric == key}
            if own and growth_target:
                # Issue 20's growth targets are portcullis' own: the large
                # size against the small one.
                h["target"] = growth_target
                h["own_growth"] = {"small": small, "values": own}
        out.append(h)
    return out


def headline_text(lines, markdown):
    ratios = ratio_columns()
    # The targets are against the peers, not against another build.
    targets = "baseline" not in PROXIES
    head = ["scenario", "per"] + [h for h, _ in ratios] + (["target (p/best)", "met"] if targets else [])
    out = []
    for h in lines:
        cells = [fmt(h["ratios"].get(peer), 2) for peer in peers()]
        if len(peers()) > 1:
            cells.append("%s (%s)" % (fmt(h["best_ratio"], 2), h["best_peer"]) if h["best_ratio"] else "-")
        target, value = h["target"], h["best_ratio"]
        if "own_2_over_1" in h:
            value = h["own_2_over_1"].get("portcullis")
            target_s = "own 2 threads / 1 ≤ %.2f: %s" % (target, fmt(value, 2))
        elif "own_growth" in h:
            value = h["own_growth"]["values"].get("portcullis")
            target_s = "own %s / %s ≤ %.2f: %s" % (h["scenario"], h["own_growth"]["small"], target, fmt(value, 2))
        else:
            target_s = "≤ %.2f" % target if target else "-"
        met = "-" if target is None or value is None else "yes" if value <= target else "no"
        out.append([h["scenario"], h["unit"]] + cells + ([target_s, met] if targets else []))
    if markdown:
        md = ["| %s |" % " | ".join(head),
              "| --- | --- |%s%s" % (" ---: |" * len(ratios), " --- | --- |" if targets else "")]
        md += ["| %s |" % " | ".join(r) for r in out]
        return "\n".join(md)
    widths = [max(len(x[i]) for x in out + [head]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [head] + out)


def summarise(measurements):
    by = {}
    for m in measurements:
        by.setdefault((m["scenario"], m["proxy"]), []).append(m)
    rows = []
    for scenario, key, label, scale, higher in METRICS:
        cells = {}
        for proxy in PROXIES:
            vals = [m[key] for m in by.get((scenario, proxy), []) if m.get(key) is not None]
            if vals:
                cells[proxy] = {
                    "median": statistics.median(vals) * scale,
                    "min": min(vals) * scale,
                    "max": max(vals) * scale,
                    "n": len(vals),
                }
        if not cells:
            continue
        p = cells.get("portcullis", {}).get("median")
        ratios = {peer: p / cells[peer]["median"] for peer in peers()
                  if peer in cells and cells[peer]["median"] and p is not None}
        best = best_peer(cells, higher)
        best_ratio = ratios.get(best)
        row = {
            "scenario": scenario, "metric": key, "label": label, "higher_is_better": higher,
            # portcullis / nginx, as before there was a second peer
            "ratio": ratios.get("nginx"),
            "ratios": ratios, "best_peer": best, "best_ratio": best_ratio,
            "reading": reading(best_ratio, higher, best),
        }
        for proxy in PROXIES:
            row[proxy] = cells.get(proxy)
        rows.append(row)
    # Scaling: CPU per request with 2 workers over CPU per request with 1.
    for proxy in PROXIES:
        one = [m["cpu_us_per_op"] for m in by.get(("h1", proxy), []) if m.get("cpu_us_per_op")]
        two = [m["cpu_us_per_op"] for m in by.get(("scaling", proxy), []) if m.get("cpu_us_per_op")]
        if one and two:
            rows.append({
                "scenario": "scaling", "metric": "cpu_2w_over_1w", "proxy": proxy,
                "label": "scaling %s: CPU/request with 2 workers / with 1" % proxy,
                "value": statistics.median(two) / statistics.median(one),
            })
    # Pools: each proxy's CPU per request over POOL_SIZE origins over the
    # same with one (issue 15's target for portcullis: at most +5%).
    for proxy in PROXIES:
        one = [m["cpu_us_per_op"] for m in by.get(("h1", proxy), []) if m.get("cpu_us_per_op")]
        pooled = [m["cpu_us_per_op"] for m in by.get(("pool", proxy), []) if m.get("cpu_us_per_op")]
        if one and pooled:
            rows.append({
                "scenario": "pool", "metric": "cpu_pool_over_h1", "proxy": proxy,
                "label": "pool %s: CPU/request over %d origins / over one" % (proxy, POOL_SIZE),
                "value": statistics.median(pooled) / statistics.median(one),
            })
    # Reloads: each proxy's p99 with a reload every second over its p99
    # without, in the same run.
    for proxy in PROXIES:
        calm = [m["p99_us"] for m in by.get(("h1", proxy), []) if m.get("p99_us")]
        reloading = [m["p99_us"] for m in by.get(("reload", proxy), []) if m.get("p99_us")]
        if calm and reloading:
            rows.append({
                "scenario": "reload", "metric": "p99_reload_over_h1", "proxy": proxy,
                "label": "reload %s: p99 with a reload every second / without" % proxy,
                "value": statistics.median(reloading) / statistics.median(calm),
            })
    # Costs as the work grows: each proxy's figure at the large size over
    # the same at the small one (issue 20's targets for portcullis: +5% at
    # most for CPU; KiB per idle WebSocket flat).
    for small, large, key, label, target in GROWTH:
        for proxy in PROXIES:
            a = [m[key] for m in by.get((small, proxy), []) if m.get(key)]
            b = [m[key] for m in by.get((large, proxy), []) if m.get(key)]
            if a and b:
                rows.append({
                    "scenario": large, "metric": "%s_over_%s" % (large, small), "proxy": proxy,
                    "label": "%s %s: %s" % (large, proxy, label), "target": target,
                    "value": statistics.median(b) / statistics.median(a),
                })
    # Memory per certificate: the RSS the extra certificates add, each.
    for proxy in PROXIES:
        a = [m["rss_kib"] for m in by.get(("certs1", proxy), []) if m.get("rss_kib")]
        b = [m["rss_kib"] for m in by.get(("certs10k", proxy), []) if m.get("rss_kib")]
        if a and b:
            extra = CERT_SCENARIOS["certs10k"] - CERT_SCENARIOS["certs1"]
            rows.append({
                "scenario": "certs10k", "metric": "kib_per_cert", "proxy": proxy,
                "label": "certs10k %s: RSS KiB per certificate ((10,000 - 1) apart)" % proxy,
                "value": (statistics.median(b) - statistics.median(a)) / extra,
            })
    # Defences: portcullis's CPU per request with every optional limit set
    # over the same without, in the same run.
    plain = [m["cpu_us_per_op"] for m in by.get(("h1", "portcullis"), []) if m.get("cpu_us_per_op")]
    limited = [m["cpu_us_per_op"] for m in by.get(("h1def", "portcullis"), []) if m.get("cpu_us_per_op")]
    if plain and limited:
        rows.append({
            "scenario": "h1def", "metric": "cpu_defences_over_plain", "proxy": "portcullis",
            "label": "defences portcullis: CPU/request with every optional limit set / without",
            "value": statistics.median(limited) / statistics.median(plain),
        })
    return rows


# (small, large, metric, what the ratio is, issue 20's target for portcullis)
GROWTH = [
    ("routes2", "routes1k", "cpu_us_per_op", "CPU/request with 1,000 routes / with 2", 1.05),
    ("ups1", "ups100", "cpu_us_per_op", "CPU/request over 100 servers / over 1", 1.05),
    ("certs1", "certs10k", "cpu_us_per_op", "CPU/full handshake with 10,000 certificates / with 1", 1.05),
    ("certs1", "certs10k", "startup_s", "start-up with 10,000 certificates / with 1", None),
    ("wsidle5k", "wsidle50k", "kib_per_conn", "KiB per idle WebSocket at 50,000 / at 5,000", 1.05),
]


def best_peer(cells, higher):
    """The peer with the best median: the lowest cost, the highest rate.
    None for a row that is neither better nor worse by itself (higher is
    None): it takes the lowest, the value the others are read against."""
    have = [p for p in peers() if cells.get(p) and cells[p]["median"] is not None]
    if not have:
        return None
    pick = max if higher else min
    return pick(have, key=lambda p: cells[p]["median"])


def reading(ratio, higher, peer):
    if ratio is None:
        return ""
    if higher is None:
        return "to explain the rows above"
    if 0.95 <= ratio <= 1.05:
        return "about equal to %s (within 5%%)" % peer
    pct = abs(ratio - 1) * 100
    if ratio > 1:
        return "%.0f%% higher than %s (%s)" % (pct, peer, "better" if higher else "worse")
    return "%.0f%% lower than %s (%s)" % (pct, peer, "worse" if higher else "better")


def keepalive_rows(measurements):
    by = {}
    for m in measurements:
        if m["scenario"] in MEM_SCENARIOS:
            continue
        by.setdefault((m["scenario"], m["proxy"]), []).append(m)
    rows = []
    for scenario in ALL_SCENARIOS:
        row = {"scenario": scenario}
        for proxy in PROXIES:
            ms = by.get((scenario, proxy))
            if not ms:
                continue
            distinct = [m["upstream"]["distinct"] for m in ms]
            ops = [m["upstream_ops"] for m in ms]
            row[proxy] = {
                "distinct_max": max(distinct),
                "peak_established_max": max(m["upstream"]["peak_established"] for m in ms),
                "time_wait_max": max(m["upstream"]["time_wait"] for m in ms),
                "ops_per_conn_min": min(o / max(d, 1) for o, d in zip(ops, distinct)),
            }
            # Tunnels (ws, stream) take one upstream connection each by design.
            if scenario not in ("ws", "stream"):
                row[proxy]["kept_alive"] = row[proxy]["ops_per_conn_min"] >= 10
        if len(row) > 1:
            rows.append(row)
    return rows


def ratio_columns():
    """(heading, row -> ratio) of the ratio columns: portcullis over each
    peer, then over the best of them when there are two or more."""
    cols = [("p/%s" % peer, lambda r, peer=peer: r["ratios"].get(peer)) for peer in peers()]
    if len(peers()) > 1:
        cols.append(("p/best", lambda r: r["best_ratio"]))
    return cols


def table_text(rows):
    out = []
    ratios = ratio_columns()
    head = ("metric",) + PROXIES + tuple(h for h, _ in ratios) + ("better", "reading")
    data = []
    for r in rows:
        if "value" in r:
            continue
        data.append(
            (r["label"],)
            + tuple(fmt(r[p]["median"]) if r.get(p) else "-" for p in PROXIES)
            + tuple(fmt(f(r), 2) if f(r) is not None else "-" for _, f in ratios)
            + (better_column(r["higher_is_better"]), r["reading"]))
    left = (0, len(head) - 2, len(head) - 1)
    widths = [max(len(str(x[i])) for x in data + [head]) for i in range(len(head))]
    line = lambda cols: "  ".join(
        (str(c).ljust(w) if i in left else str(c).rjust(w)) for i, (c, w) in enumerate(zip(cols, widths))
    )
    out.append(line(head))
    out.append("  ".join("-" * w for w in widths))
    for d in data:
        out.append(line(d))
    for r in rows:
        if "value" in r:
            out.append("%s: %.2f" % (r["label"], r["value"]))
    return "\n".join(out)


def better_column(higher):
    return "-" if higher is None else "higher" if higher else "lower"


def table_md(rows):
    ratios = ratio_columns()
    heads = ["portcullis/%s" % p for p in peers()]
    if len(peers()) > 1:
        heads.append("portcullis/best peer")
    out = [
        "| scenario / metric | %s | %s | better | reading (against the best peer) |" % (
            " | ".join(PROXIES), " | ".join(heads)),
        "| --- |%s --- | --- |" % (" ---: |" * (len(PROXIES) + len(ratios))),
    ]

    def cell(c):
        if not c:
            return "-"
        if c["n"] > 1:
            return "%s <sub>(%s–%s)</sub>" % (fmt(c["median"]), fmt(c["min"]), fmt(c["max"]))
        return fmt(c["median"])

    for r in rows:
        if "value" in r:
            continue
        out.append("| %s | %s | %s | %s | %s |" % (
            r["label"], " | ".join(cell(r.get(p)) for p in PROXIES),
            " | ".join(fmt(f(r), 2) if f(r) is not None else "-" for _, f in ratios),
            better_column(r["higher_is_better"]), r["reading"]))
    return "\n".join(out)


def environment(args):
    def cmd(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            return (r.stdout + r.stderr).strip()
        except (OSError, subprocess.TimeoutExpired) as e:
            return "unavailable (%s)" % e

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    rev = cmd(["git", "-C", REPO, "rev-parse", "HEAD"])
    dirty = cmd(["git", "-C", REPO, "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"])
    perf_check = cmd(["perf", "stat", "-e", "instructions", "true"]) if shutil.which("perf") else "perf not installed"
    nginx_v = cmd([args.nginx, "-V"]) if args.nginx else ""
    openssl = re.search(r"built with (OpenSSL [^\s]+)", nginx_v)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "load_average_at_start": os.getloadavg(),
        "nginx": cmd([args.nginx, "-v"]) if "nginx" in PROXIES else None,
        "haproxy": cmd([args.haproxy, "-v"]).splitlines()[0] if "haproxy" in PROXIES else None,
        "nginx_openssl": openssl.group(1) if openssl else None,
        "rustc": cmd(["rustc", "-V"]),
        "portcullis_rev": args.portcullis_rev or (
            rev + (" (working tree, with uncommitted changes in src/ or Cargo files)" if dirty else "")),
        "wrk": cmd(["wrk", "-v"]).splitlines()[0] if shutil.which("wrk") else None,
        "h2load": cmd(["h2load", "--version"]),
        "hardware_counters": "not supported here" if "not supported" in perf_check or "not counted" in perf_check else perf_check.splitlines()[0:3],
    }


def growth_md(L, checks, measurements):
    """The notes of the open-loop and growth scenarios, when they ran."""
    ran = {m["scenario"] for m in measurements}
    rates = checks.get("open_rates") or {}
    if rates:
        L.append("- Tail latency at a fixed rate (`loadgen open`, `benches/vs-peers/open.rs`): a pacer "
                 "thread schedules request i at t0 + i/rate whatever the answers do, and each latency "
                 "runs from that scheduled time to the end of the answer, so a request that waited "
                 "behind a slow one carries its wait (no coordinated omission). h1 and ws: 64 "
                 "connections opened first, the schedule round robin over them (as wrk2), one "
                 "request in flight on each; hs: a new connection per request (full handshake, "
                 "`Connection: close`, until the server closes), at most 256 at once. \"Missed\" "
                 "counts the requests sent more than 1 ms after their time plus those never sent "
                 "(2 s after the last was due). The target is p99 at most the best peer's at each "
                 "rate. The rates, the same for every proxy: " + "; ".join(
                     "%s %.0f/s (%.0f%% of %.0f/s, %s)" % (k, v["rate"], 100 * v["share"], v["nginx_max"], v["from"])
                     for k, v in sorted(rates.items())) + ".")
    for scenario in client_bound(measurements):
        L.append("  - **%s: the load generator fell behind for every proxy** (more than %d%% of the requests "
                 "of each run sent late or never): its latencies measure the client and this machine's "
                 "load as much as the proxies; read them with care, or run it on a quieter machine."
                 % (scenario, 100 * CLIENT_BOUND_SHARE))
    if ran & set(ROUTE_SCENARIOS):
        L.append("- routes2, routes1k: the h1 load (wrk, 64 connections) with 2 or 1,000 more routes, "
                 "host plus path (`h0.bench.test` `/r0/` ... `h9.bench.test` `/r99/`, a hundred paths a "
                 "host), every request for the last one (`Host: h9.bench.test`, `/r99/page`): nginx a "
                 "server block a host with a `location` a path; HAProxy `use_backend "
                 "%[base,map_beg(FILE,app)]` over a map of host plus path; portcullis a `[[route]]` "
                 "with `host` and `path` each. All go to the same origin.")
    if ran & set(UPSTREAM_SCENARIOS):
        L.append("- ups1, ups100: the h1 load over a round-robin pool of 1 or 100 servers, each its own "
                 "address (127.0.0.1, .2, ...) on one origin listening on all of them: nginx's "
                 "`upstream` with that many `server` lines (its `keepalive` raised to 4 a server, as "
                 "its idle cache is shared by the servers), HAProxy's backend, portcullis' "
                 "`[[upstream]]`.")
    if ran & set(CERT_SCENARIOS):
        L.append("- certs1, certs10k: 1 or 10,000 more certificates chosen by SNI (`loadgen certs`: one "
                 "CA, ECDSA P-256 leaves for c0.bench.test, c1, ...), beside the default one: nginx a "
                 "server block a name, HAProxy a `crt-list`, portcullis a `[[tls.certificate]]` each. "
                 "The load is hs's (full handshakes, resumption off) to the last name, its leaf "
                 "pinned. Start-up: from the start of the process until its port accepts. RSS after "
                 "the measured run. For portcullis, the middle name's certificate and key files are "
                 "then replaced (new key, written aside and renamed) and full handshakes pinning the "
                 "new leaf poll until it is served (target: within %.0f s); the KiB the proxy read "
                 "meanwhile (`rchar` of /proc/PID/io, sockets included) tell whether it re-read that "
                 "pair alone (a few KiB) or every pair." % CERT_SWAP_TARGET_S)
        swaps = [m for m in measurements if m.get("swap_s") is not None or "swap_polls" in m]
        for m in swaps:
            L.append("  - %s %s round %d: served after %s s (%d polls), read %s KiB meanwhile; one pair "
                     "is %.1f KiB, all %d pairs %s KiB" % (
                         m["scenario"], m["proxy"], m["round"], fmt(m.get("swap_s"), 2), m["swap_polls"],
                         fmt(m["swap_read_kib"]), m["swap_file_kib"], CERT_SCENARIOS[m["scenario"]],
                         fmt(m["swap_all_files_kib"])))
    if ran & set(WSIDLE_SCENARIOS) or checks.get("skipped"):
        L.append("- wsidle5k, wsidle50k: as wsmem with 5,000 and 50,000 idle WebSockets, in the first "
                 "round only, the open-file limit raised for them; the client connects from several "
                 "127.0.0.x addresses and the proxy reaches the WebSocket server at several (a "
                 "round-robin pool of 127.0.0.1, .2, ... on one origin), so that no address pair runs "
                 "out of ephemeral ports; the same pool at both sizes.")
    for scenario, why in sorted((checks.get("skipped") or {}).items()):
        L.append("- **%s skipped**: %s." % (scenario, why))


# An open-loop run with more than this share of its requests late or unsent
# for every proxy measured the client more than the proxies.
CLIENT_BOUND_SHARE = 0.25


def client_bound(measurements):
    """The open-loop scenarios whose every run, for every proxy, missed more
    than CLIENT_BOUND_SHARE of its schedule."""
    out = []
    for scenario in OPEN_SCENARIOS:
        runs = [m for m in measurements if m["scenario"] == scenario]
        if runs and all(m["missed"] > CLIENT_BOUND_SHARE * m["scheduled"] for m in runs):
            out.append(scenario)
    return out


def write_results_md(path, args, env, rows, ka, measurements, checks, profile, elapsed):
    L = []
    names = {"nginx": "nginx", "haproxy": "HAProxy"}
    L.append("# portcullis vs %s: latest %s run" % (
        " and ".join(names.get(p, p) for p in peers()), "quick" if args.quick else "full"))
    L.append("")
    L.append("Written by `benches/vs-peers/bench.py` at the end of a run; the raw data is in "
             "[`%s`](%s). Re-run it with the command below." % (
                 os.path.basename(args.json), os.path.relpath(args.json, os.path.dirname(os.path.abspath(path)))))
    if args.quick:
        L.append("")
        L.append("**A quick run** (`--quick`: %.1f s measured per run, %d idle WebSockets): "
                 "short runs on a busy machine, so the ratios are rough; a full run supersedes "
                 "them." % (args.duration, args.ws_idle))
    L.append("")
    L.append("- date: %s (the run took %.0f s)" % (env["date"], elapsed))
    L.append("- command: `%s`" % args.command)
    L.append("- machine: %d CPUs, %s, Linux %s; load average at start %s" % (
        env["nproc"], env["cpu_model"], env["kernel"], ", ".join("%.2f" % x for x in env["load_average_at_start"])))
    L.append("- versions: %s (%s); %s; portcullis %s, built by %s; wrk: %s; h2load: %s" % (
        env["nginx"], env["nginx_openssl"], env["haproxy"], env["portcullis_rev"], env["rustc"],
        env["wrk"], env["h2load"]))
    L.append("- rounds: %d, interleaved (%s in turn, the order rotating by one each round); "
             "%.1f s measured per run after %.1f s of warm-up; %d idle WebSockets for wsmem" % (
                 args.rounds, ", ".join(PROXIES), args.duration, args.warmup, args.ws_idle))
    L.append("- load average (1, 5, 15 min) after each round: %s; at the end: %s" % (
        "; ".join(", ".join("%.2f" % x for x in la) for la in env.get("load_average_by_round", [])),
        ", ".join("%.2f" % x for x in os.getloadavg())))
    L.append("")
    L.append("**This ran on a shared %d-core virtual machine** on which other test suites may run "
             "at the same time. Rates are limited by a single load-generator core; the CPU cost "
             "per operation is the more stable number. Cells are medians over the rounds, with "
             "the range in small print." % env["nproc"])
    L.append("")
    L.append("## portcullis against the best peer")
    L.append("")
    L.append("portcullis' cost divided by each peer's, per scenario, and by the best peer's "
             "(the lower cost of the two), beside the targets of issue 20; below 1 is better.")
    L.append("")
    L.append(headline_text(headline(rows), markdown=True))
    L.append("")
    L.append("## Every metric")
    L.append("")
    L.append(table_md(rows))
    L.append("")
    for r in rows:
        if "value" in r:
            target = " (target for portcullis ≤ %.2f)" % r["target"] if r.get("target") and r["proxy"] == "portcullis" else ""
            L.append("- %s: **%.2f**%s" % (r["label"], r["value"], target))
    L.append("")
    L.append("## How it is measured")
    L.append("")
    L.append("- Each run starts a fresh test origin (`examples/origin.rs`, one thread) and a fresh "
             "proxy. The proxy is pinned with `taskset` to CPU 0; the origin and the load "
             "generator to CPU 1. The scaling rows pin the proxy to CPUs 0 and 1 "
             "(nginx `worker_processes 2`, HAProxy `nbthread 2`, portcullis `threads = 2`), "
             "still with the load on CPU 1.")
    L.append("- Every proxy uses the same ECDSA P-256 certificate, TLS 1.3 only, and the same "
             "origin. nginx runs in the foreground from `benches/vs-peers/nginx.conf` "
             "(upstream `keepalive %d`, `proxy_http_version 1.1`, `Connection \"\"`, session "
             "cache, `keepalive_requests 100000`, HTTP/2, the /ws location with Upgrade headers "
             "and `proxy_read_timeout 86400s`, access log off, forwarding headers set); "
             "HAProxy in the foreground as one process (`haproxy -db`) from "
             "`benches/vs-peers/haproxy.cfg` (`nbthread 1`, `http-reuse always`, keep-alive on both "
             "sides, `alpn h2,http/1.1` and `ssl-min-ver TLSv1.3` on the bind, `timeout tunnel 24h`, "
             "no log, the same forwarding headers; session cache and tickets as by default); "
             "portcullis from `benches/vs-peers/portcullis.toml` (`threads = 1`, "
             "`access_log = false`, `min_version = \"1.3\"`)." % args.nginx_keepalive)
    L.append("- Proxy CPU is utime+stime from `/proc/<pid>/stat`, summed over all the proxy's "
             "processes (nginx's master and workers), read just before and after the measured load run; CPU per "
             "operation divides it by the operations the load tool completed. The \"of which\" rows "
             "split it into utime (the proxy's own code, TLS included) and stime (the kernel: "
             "system calls, and on loopback the TCP work of both ends of each write).")
    L.append("- h1 and big: `wrk -t1` (64 and 16 connections); h2: `h2load -t1 -c64 -m10`; hs, ws "
             "and wsmem: `loadgen` (`benches/vs-peers/loadgen.rs`, rustls with aws-lc-rs and "
             "tokio-tungstenite, one thread).")
    L.append("- hs: every request on a new TCP and TLS connection with `Connection: close`, 16 at "
             "a time. The client builds its rustls `ClientConfig` with "
             "`resumption = Resumption::disabled()`, so no ClientHello offers a ticket or PSK, "
             "and it counts `handshake_kind()` on every connection: all were `Full`. The client "
             "offers X25519 only, which is what OpenSSL 3.0 (nginx, wrk, h2load) uses; "
             "portcullis would otherwise pick X25519MLKEM768. The server certificate is pinned "
             "(byte comparison plus the handshake signature check).")
    res = checks.get("resumption")
    if res:
        L.append("- Resumption counter-check (`loadgen resume-check`, two connections with "
                 "resumption enabled, then two with it disabled): " + "; ".join(
                     "%s: enabled %s, disabled %s" % (p, " then ".join(v["enabled"]), " then ".join(v["disabled"]))
                     for p, v in sorted(res.items())) + ". Every server resumes when offered a "
                 "ticket, so the full handshakes of hs come from the client setting.")
    neg = sorted({m.get("negotiated") for m in measurements if m.get("negotiated")})
    if neg:
        L.append("- hs negotiated: " + "; ".join("`%s`" % n for n in neg))
    L.append("- ws: 64 WebSocket connections through /ws, one 128-byte binary message in flight "
             "on each; latency is per round trip. wsmem: RSS (`VmRSS`, all the proxy's processes) "
             "before and after opening %d WebSockets through the proxy (each checked with one "
             "echo, then idle), after a warm-up of 64 opened and closed; the open-file limit "
             "is raised for this." % args.ws_idle)
    growth_md(L, checks, measurements)
    L.append("")
    L.append("## Upstream keep-alive check")
    L.append("")
    L.append("Connections from the proxy to the origin, counted with `ss` (established ones "
             "sampled every 0.25 s, plus those left in TIME-WAIT) over warm-up and measured run; "
             "worst round shown. Operations include the warm-up.")
    L.append("")
    L.append("| scenario | %s |" % " | ".join(
        "%s: upstream conns (peak open) | %s: ops per conn | %s: kept alive" % (p, p, p) for p in PROXIES))
    L.append("| --- |%s" % (" ---: | ---: | --- |" * len(PROXIES)))
    for r in ka:
        cells = []
        for proxy in PROXIES:
            c = r.get(proxy)
            if c:
                kept = {True: "yes", False: "**no**", None: "n/a (one per tunnel)"}[c.get("kept_alive")]
                cells += ["%d (%d)" % (c["distinct_max"], c["peak_established_max"]), fmt(c["ops_per_conn_min"]), kept]
            else:
                cells += ["-", "-", "-"]
        L.append("| %s | %s |" % (r["scenario"], " | ".join(cells)))
    for scenario in MEM_SCENARIOS:
        held = [m for m in measurements if m["scenario"] == scenario]
        if held:
            L.append("")
            L.append("%s: established upstream connections while the connections were held: " % scenario + ", ".join(
                "%s round %d: %d" % (m["proxy"], m["round"], m["upstream"]["established_while_held"]) for m in held))
    L.append("")
    L.append("## Every run")
    L.append("")
    L.append("| # | scenario | round | proxy | ops/s | CPU us/op | proxy CPU share | errors |")
    L.append("| ---: | --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for m in measurements:
        if m["scenario"] in MEM_SCENARIOS:
            L.append("| %d | %s | %d | %s | %d held | %s KiB/conn | - | %d |" % (
                m["seq"], m["scenario"], m["round"], m["proxy"], m["held"], fmt(m["kib_per_conn"]), m["errors"]))
        else:
            L.append("| %d | %s | %d | %s | %s | %s | %.0f%% | %d |" % (
                m["seq"], m["scenario"], m["round"], m["proxy"], fmt(m["rate"]),
                fmt(m["cpu_us_per_op"]), 100 * (m["cpu_share"] or 0), m["errors"]))
    L.append("")
    L.append("## Profile")
    L.append("")
    L.append("Hardware counters (`perf stat -e instructions true`): %s." % (
        env["hardware_counters"] if isinstance(env["hardware_counters"], str) else "; ".join(env["hardware_counters"])))
    if profile:
        L.append("")
        L.append("`perf record -e cpu-clock -F 999 --call-graph %s` on each proxy under the %s load (a separate "
                 "run after the rounds, not counted above); `perf report --no-children`, by DSO "
                 "(over 0.5%%) and by symbol (over 1.5%%). The Debian nginx binary has no symbols."
                 % (args.perf_call_graph, args.perf_scenario))
        if profile.get("by_activity"):
            L.append("")
            L.append("CPU per operation by what each proxy was doing, from the call stacks "
                     "(`benches/profile/kernel_split.py`; the send groups include the receiving "
                     "peer's TCP input, which a loopback write runs in the writer's time):")
            L.append("")
            L.append("```")
            L.extend(profile["by_activity"])
            L.append("```")
        for proxy in PROXIES:
            views = profile.get(proxy)
            if views:
                L.append("")
                L.append("%s (%s samples):" % (proxy, views.get("samples")))
                L.append("")
                L.append("```")
                L.extend(views["by_dso"])
                L.append("")
                L.extend(views["by_symbol"])
                L.append("```")
                if views.get("by_component"):
                    L.append("")
                    L.append("%s by component (kernel, each library, and each crate inside a "
                             "statically linked binary; over 0.5%%):" % proxy)
                    L.append("")
                    L.append("```")
                    L.extend(views["by_component"])
                    L.append("```")
                if views.get("user_symbols"):
                    L.append("")
                    L.append("%s, user space only (shares of all samples, over 0.7%%):" % proxy)
                    L.append("")
                    L.append("```")
                    L.extend(views["user_symbols"])
                    L.append("```")
    else:
        L.append("No profile was taken in this run (`--perf` takes one).")
    L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


# ------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs (~6 min in all); writes nothing in the repo "
                    "unless --results-md says where")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    ap.add_argument("--duration", type=float, help="seconds measured per run (default 5, quick 1; wrk rounds up to whole seconds)")
    ap.add_argument("--warmup", type=float, help="seconds of warm-up per run (default 1, quick 0.5)")
    ap.add_argument("--scenarios", default=",".join(ALL_SCENARIOS),
                    help="comma-separated subset of %s; or a group: %s" % (
                        ",".join(ALL_SCENARIOS), ", ".join("%s (%s)" % (k, ",".join(v))
                                                           for k, v in SCENARIO_GROUPS.items())))
    ap.add_argument("--ws-idle", type=int, help="idle WebSockets for wsmem (default 5000, quick 1000)")
    ap.add_argument("--growth-rounds", type=int, default=1,
                    help="rounds that run the certs and wsidle scenarios, the first ones (default 1)")
    ap.add_argument("--nginx-keepalive", type=int, default=64, help="nginx upstream keepalive (default 64)")
    ap.add_argument("--perf", action="store_true", help="also record a cpu-clock profile of each proxy")
    ap.add_argument("--perf-scenario", default="h1", choices=("h1", "h2", "big", "ws"),
                    help="the load the --perf profile is taken under (default h1)")
    ap.add_argument("--perf-call-graph", default="fp", choices=("fp", "dwarf"),
                    help="how --perf unwinds stacks: fp (default; cheap, stops at the first "
                         "frame without a frame pointer) or dwarf (whole stacks, large files)")
    ap.add_argument("--json", help="where to write the JSON results")
    ap.add_argument("--results-md", help="where to write the Markdown report (full runs: benches/RESULTS.md)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    ap.add_argument("--portcullis", required=True)
    ap.add_argument("--origin", required=True)
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--haproxy", default=shutil.which("haproxy") or "/usr/sbin/haproxy")
    ap.add_argument("--peers", default=",".join(proxy_setup.PEERS),
                    help="the peers measured beside portcullis, from %s (default: both)" % ",".join(proxy_setup.PEERS))
    ap.add_argument("--baseline", metavar="BIN",
                    help="an A/B of two builds: BIN (another portcullis binary) runs in the peers' place, "
                         "with the same configuration as the portcullis under test; the ratios are "
                         "then new/baseline, and nothing is written to benches/RESULTS.md")
    ap.add_argument("--command", default=" ".join(sys.argv), help=argparse.SUPPRESS)
    ap.add_argument("--portcullis-rev", help=argparse.SUPPRESS)
    args = ap.parse_args()

    args.rounds = args.rounds or 3
    args.duration = args.duration or (1.0 if args.quick else 5.0)
    if args.warmup is None:
        args.warmup = 0.5 if args.quick else 1.0
    args.ws_idle = args.ws_idle or (1000 if args.quick else 5000)
    chosen = []
    for x in (s.strip() for s in args.scenarios.split(",")):
        for y in SCENARIO_GROUPS.get(x, (x,) if x else ()):
            if y not in chosen:
                chosen.append(y)
    args.scenarios = chosen
    bad = [s for s in args.scenarios if s not in ALL_SCENARIOS]
    if bad:
        ap.error("unknown scenario(s): %s" % ", ".join(bad))
    if args.rounds < 1 or args.duration <= 0 or args.duration > 600:
        ap.error("--rounds must be at least 1 and --duration in (0, 600]")
    full = not args.quick
    global PROXIES
    chosen = [p.strip() for p in args.peers.split(",") if p.strip()]
    if not chosen or any(p not in proxy_setup.PEERS for p in chosen):
        ap.error("--peers: one or more of %s" % ",".join(proxy_setup.PEERS))
    PROXIES = tuple(p for p in proxy_setup.PEERS if p in chosen) + ("portcullis",)
    if args.baseline:
        if not os.access(args.baseline, os.X_OK):
            ap.error("--baseline %s: not an executable file" % args.baseline)
        PROXIES = ("baseline", "portcullis")
        if args.json is None:
            args.json = os.path.join(HERE, "results", "baseline.json")
    if args.json is None:
        args.json = os.path.join(REPO, "benches", "RESULTS.json") if full else os.path.join(HERE, "results", "quick.json")
    if args.results_md is None and full and not args.baseline:
        args.results_md = os.path.join(REPO, "benches", "RESULTS.md")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    bench = Bench(args)
    ok = False
    try:
        need = 2 * args.ws_idle + 64
        if {"wsmem", "streammem"} & set(args.scenarios) and bench.worker_connections() < need:
            args.ws_idle = max(100, (bench.worker_connections() - 64) // 2)
            log("open-file limit %d: wsmem holds %d connections" % (bench.nofile, args.ws_idle))
        env = environment(args)
        log("work directory %s; proxy on CPU %s, load and origin on CPU %s" % (
            bench.work, bench.proxy_cpus, bench.load_cpus))
        log("%d rounds of %s, %.1fs each after %.1fs warm-up" % (
            args.rounds, ",".join(args.scenarios), args.duration, args.warmup))
        elapsed, profile = bench.run()
        env["load_average_by_round"] = bench.load_by_round
        rows = summarise(bench.measurements)
        heads = headline(rows)
        ka = keepalive_rows(bench.measurements)
        print()
        print(table_text(rows))
        print()
        print("portcullis / each peer and / the best peer (lower is better):")
        print(headline_text(heads, markdown=False))
        print()
        print("upstream keep-alive (distinct upstream connections over warm-up + run, worst round):")
        for r in ka:
            parts = []
            for proxy in PROXIES:
                c = r.get(proxy)
                if c:
                    verdict = {True: ", kept alive", False: ", NOT kept alive", None: ""}[c.get("kept_alive")]
                    parts.append("%s %d conns (peak %d open, >= %s ops each%s)" % (
                        proxy, c["distinct_max"], c["peak_established_max"], fmt(c["ops_per_conn_min"]), verdict))
            print("  %-8s %s" % (r["scenario"], "; ".join(parts)))
        for m in bench.measurements:
            if m["scenario"] in MEM_SCENARIOS:
                print("  %-8s %s round %d: %d upstream connections open for %d idle connections" % (
                    m["scenario"], m["proxy"], m["round"], m["upstream"]["established_while_held"], m["held"]))
        for scenario in client_bound(bench.measurements):
            print("%s: the load generator fell behind for every proxy (over %d%% of each run's requests late "
                  "or unsent): its latencies measure the client as much as the proxies" % (
                      scenario, 100 * CLIENT_BOUND_SHARE))
        if bench.checks.get("resumption"):
            for p, v in sorted(bench.checks["resumption"].items()):
                print("resumption check %s: enabled %s, disabled %s" % (p, v["enabled"], v["disabled"]))
        if profile:
            for proxy in PROXIES:
                views = profile.get(proxy)
                if not views:
                    continue
                print("\nprofile %s (cpu-clock, %s samples), by DSO:" % (proxy, views.get("samples")))
                print("\n".join(views["by_dso"]))
                print("by symbol (>1.5%):")
                print("\n".join(views["by_symbol"]))
                print("by component (>0.5% of all samples):")
                print("\n".join(views.get("by_component") or []))
                if views.get("user_symbols"):
                    print("user space by symbol (>0.7% of all samples):")
                    print("\n".join(views["user_symbols"]))
            if profile.get("by_activity"):
                print("\nCPU per operation by activity (benches/profile/kernel_split.py):")
                print("\n".join(profile["by_activity"]))
        result = {
            "command": args.command,
            "environment": env,
            "settings": {
                "rounds": args.rounds, "duration_s": args.duration, "warmup_s": args.warmup,
                "scenarios": args.scenarios, "ws_idle": args.ws_idle,
                "nginx_keepalive": args.nginx_keepalive, "proxies": list(PROXIES), "proxy_cpus": bench.proxy_cpus,
                "load_cpus": bench.load_cpus, "quick": args.quick,
            },
            "elapsed_s": elapsed,
            "summary": rows,
            "headline": heads,
            "keepalive": ka,
            "checks": dict(bench.checks, skipped=bench.skipped),
            "profile": profile,
            "measurements": bench.measurements,
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        log("JSON: %s" % args.json)
        if args.results_md:
            write_results_md(args.results_md, args, env, rows, ka, bench.measurements,
                             dict(bench.checks, skipped=bench.skipped), profile, elapsed)
            log("report: %s" % args.results_md)
        ok = True
    except BenchError as e:
        log("FAILED: %s" % e)
    finally:
        PROCS.stop_all()
        if ok and not args.keep:
            shutil.rmtree(bench.work, ignore_errors=True)
        else:
            log("work directory kept: %s" % bench.work)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
