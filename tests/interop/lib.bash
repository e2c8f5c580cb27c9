# Shared helpers for the interop scripts. Source it; do not run it.
#
# Provides: logging, idempotent apt/pip installs, free-port picking,
# bounded waits, background processes that are killed on exit (only the
# PIDs started here), a throw-away test CA + server certificate, client
# CAs and client certificates, the test
# origin and a portcullis instance with a generated config.
#
# Environment:
#   PORTCULLIS_BIN  portcullis binary (default: $CARGO_TARGET_DIR or
#                   target, then release/portcullis; built if missing)
#   ORIGIN_BIN      test origin binary (default: built with cargo)
#   INTEROP_KEEP    keep the work directory after the run when set to 1

set -euo pipefail

INTEROP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$INTEROP_DIR/../.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$REPO_ROOT/$TARGET_DIR" ;; esac
SCRIPT_NAME="$(basename "${0}" .sh)"

log() { printf '[%s %s] %s\n' "$SCRIPT_NAME" "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    printf '[%s] FAIL: %s\n' "$SCRIPT_NAME" "$*" >&2
    exit 1
}

# ------------------------------------------------------------------ installs

_apt_updated=0
# need_apt PKG...: install the Debian packages that are not installed yet.
need_apt() {
    local missing=() p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    if [ "$_apt_updated" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null ||
            die "apt-get update failed"
        _apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

# need_pip MODULE=REQUIREMENT...: pip-install each requirement whose module
# does not import yet, e.g. need_pip kosoku=kosoku websockets='websockets>=13'.
need_pip() {
    local missing=() pair mod req
    for pair in "$@"; do
        mod="${pair%%=*}"
        req="${pair#*=}"
        python3 -c "import $mod" 2>/dev/null || missing+=("$req")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if ! python3 -m pip --version >/dev/null 2>&1; then
        need_apt python3-pip
    fi
    log "pip install ${missing[*]}"
    local pipflags=(--quiet --disable-pip-version-check --no-input)
    if ! PIP_ROOT_USER_ACTION=ignore python3 -m pip install "${pipflags[@]}" "${missing[@]}"; then
        # Debian's own interpreter refuses user installs (PEP 668).
        PIP_ROOT_USER_ACTION=ignore python3 -m pip install "${pipflags[@]}" \
            --break-system-packages "${missing[@]}" || die "pip install ${missing[*]} failed"
    fi
}

# --------------------------------------------------------- work dir, cleanup

WORK="$(mktemp -d "${TMPDIR:-/tmp}/portcullis-${SCRIPT_NAME}.XXXXXX")"
_PIDS=()

_cleanup() {
    local rc=$? i id
    # Newest first: the clients and the proxy before the upstreams. A
    # negative id is a process group started by spawn_group.
    for ((i = ${#_PIDS[@]} - 1; i >= 0; i--)); do
        id="${_PIDS[$i]}"
        kill -TERM -- "$id" 2>/dev/null || true
        # Bounded: up to 5 s each, then SIGKILL.
        for _ in $(seq 50); do
            kill -0 -- "$id" 2>/dev/null || break
            poll_tick
        done
        kill -KILL -- "$id" 2>/dev/null || true
        wait "${id#-}" 2>/dev/null || true
    done
    if [ "$rc" -ne 0 ]; then
        _dump_logs
    fi
    if [ "${INTEROP_KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap _cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One 0.1 s tick of a bounded poll loop (the loop checks a condition).
poll_tick() { sleep 0.1; }

_dump_logs() {
    local f
    for f in "$WORK"/*.log; do
        [ -f "$f" ] || continue
        printf -- '----- %s (last 40 lines) -----\n' "$(basename "$f")" >&2
        tail -n 40 "$f" >&2 || true
    done
}

# spawn NAME CMD...: start CMD in the background with output in
# $WORK/NAME.log; its PID goes to $SPAWNED_PID and is killed on exit.
SPAWNED_PID=
spawn() {
    local name="$1"
    shift
    "$@" >"$WORK/$name.log" 2>&1 &
    SPAWNED_PID=$!
    _PIDS+=("$SPAWNED_PID")
}

# spawn_group NAME CMD...: like spawn, but CMD leads a new session and
# process group, and the whole group is killed on exit (for programs with
# helper processes, such as chromium).
spawn_group() {
    local name="$1"
    shift
    setsid "$@" >"$WORK/$name.log" 2>&1 </dev/null &
    SPAWNED_PID=$!
    _PIDS+=("-$SPAWNED_PID")
}

# ------------------------------------------------------------ ports, waiting

# free_port: print a TCP port that was free on 127.0.0.1 a moment ago.
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# wait_port HOST PORT PID SECONDS WHAT: wait until HOST:PORT accepts a TCP
# connection; fail early if PID exits, fail at the deadline.
wait_port() {
    python3 - "$@" <<'EOF' || die "$5 did not start listening on $1:$2 (see logs)"
import os, socket, sys, time
host, port, pid, secs, what = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
deadline = time.monotonic() + secs
while True:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(f"{what} (pid {pid}) exited before listening")
    try:
        socket.create_connection((host, port), timeout=1).close()
        sys.exit(0)
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(f"{what}: nothing listening on {host}:{port} after {secs:.0f}s")
    time.sleep(0.05)
EOF
}

# wait_lines FILE PID SECONDS WHAT PATTERN...: wait until FILE has a line
# matching each extended regex PATTERN.
wait_lines() {
    python3 - "$@" <<'EOF' || die "$4 did not report its listeners (see logs)"
import os, re, sys, time
path, pid, secs, what = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
patterns = [re.compile(p) for p in sys.argv[5:]]
deadline = time.monotonic() + secs
while True:
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    if all(any(p.search(l) for l in lines) for p in patterns):
        sys.exit(0)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(f"{what} (pid {pid}) exited early")
    if time.monotonic() > deadline:
        sys.exit(f"{what}: no listener lines after {secs:.0f}s")
    time.sleep(0.05)
EOF
}

# ------------------------------------------------------------- certificates

# make_certs: a test CA and a server certificate for localhost and
# 127.0.0.1 under $WORK/pki: ca.pem, fullchain.pem, privkey.pem.
make_certs() {
    need_apt openssl
    local d="$WORK/pki"
    mkdir -p "$d"
    (
        cd "$d"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout ca.key -out ca.pem -days 30 -subj "/CN=portcullis interop test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout privkey.pem -out server.csr -subj "/CN=localhost" 2>/dev/null
        cat >server.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
EOF
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out server.pem -days 30 -sha256 -extfile server.ext 2>/dev/null
        cat server.pem >fullchain.pem
    ) || die "could not make test certificates"
    # shellcheck disable=SC2034 # read by the scripts that source this file
    CA_PEM="$d/ca.pem"
    CERT_PEM="$d/fullchain.pem"
    KEY_PEM="$d/privkey.pem"
}

# ------------------------------------------------------------------ origin

# start_origin: run the test origin; sets ORIGIN_HTTP and ORIGIN_WS
# (host:port) and ORIGIN_PID.
start_origin() {
    local bin="${ORIGIN_BIN:-}"
    if [ -z "$bin" ]; then
        log "building the origin example"
        (cd "$REPO_ROOT" && cargo build --release --quiet --example origin) ||
            die "could not build examples/origin.rs"
        bin="$TARGET_DIR/release/examples/origin"
    fi
    [ -x "$bin" ] || die "origin binary $bin is missing"
    spawn origin "$bin" --http 127.0.0.1:0 --ws 127.0.0.1:0 --threads 2
    ORIGIN_PID=$SPAWNED_PID
    wait_lines "$WORK/origin.log" "$ORIGIN_PID" 30 origin '^http [0-9.]+:[0-9]+$' '^ws [0-9.]+:[0-9]+$'
    ORIGIN_HTTP="$(awk '$1 == "http" {print $2; exit}' "$WORK/origin.log")"
    ORIGIN_WS="$(awk '$1 == "ws" {print $2; exit}' "$WORK/origin.log")"
    log "origin: http $ORIGIN_HTTP, ws $ORIGIN_WS"
}

# -------------------------------------------------------------- portcullis

# start_portcullis: write a config routing / to the origin's HTTP listener
# and /ws to its WebSocket listener, run portcullis on a free port; sets
# PROXY_PORT and PROXY_PID. Needs make_certs and start_origin first.
start_portcullis() {
    local bin="${PORTCULLIS_BIN:-}"
    if [ -z "$bin" ]; then
        bin="$TARGET_DIR/release/portcullis"
        if [ ! -x "$bin" ]; then
            log "building portcullis (release)"
            (cd "$REPO_ROOT" && cargo build --release --quiet --bin portcullis) ||
                die "could not build portcullis"
        fi
    fi
    case "$bin" in /*) ;; *) bin="$REPO_ROOT/$bin" ;; esac
    [ -x "$bin" ] || die "portcullis binary $bin is missing (set PORTCULLIS_BIN)"
    PROXY_PORT="$(free_port)"
    cat >"$WORK/portcullis.toml" <<EOF
[server]
listen = ["127.0.0.1:$PROXY_PORT"]

[tls]
cert = "$CERT_PEM"
key = "$KEY_PEM"

[[route]]
path = "/"
upstream = "http://$ORIGIN_HTTP"

[[route]]
path = "/ws"
upstream = "http://$ORIGIN_WS"
EOF
    spawn portcullis "$bin" --config "$WORK/portcullis.toml"
    PROXY_PID=$SPAWNED_PID
    wait_port 127.0.0.1 "$PROXY_PORT" "$PROXY_PID" 30 portcullis
    log "portcullis: https://localhost:$PROXY_PORT (pid $PROXY_PID)"
}

# ------------------------------------------------------ more ports, polling

# free_ports N: print N distinct ports, one a line, each free on 127.0.0.1
# for both TCP and UDP a moment ago (all held at once while picking, so
# no two are the same).
free_ports() {
    python3 - "$1" <<'EOF_PY'
import socket, sys
n, held, ports = int(sys.argv[1]), [], []
while len(ports) < n:
    t = socket.socket()
    t.bind(("127.0.0.1", 0))
    port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        u.close()
        held.append(t)
        continue
    held += [t, u]
    ports.append(port)
print("\n".join(map(str, ports)))
EOF_PY
}

# wait_until SECONDS CMD...: run CMD every poll tick until it succeeds
# (return 0) or SECONDS have passed (return 1).
wait_until() {
    local secs="$1"
    shift
    local now deadline
    now="${EPOCHREALTIME/./}"
    deadline=$((now + ${secs%.*} * 1000000))
    until "$@"; do
        now="${EPOCHREALTIME/./}"
        [ "$now" -ge "$deadline" ] && return 1
        poll_tick
    done
}

# portcullis_bin: print the portcullis binary's path ($PORTCULLIS_BIN, or
# the release build, built when missing), for scripts that write their
# own config instead of using start_portcullis.
portcullis_bin() {
    local bin="${PORTCULLIS_BIN:-}"
    if [ -z "$bin" ]; then
        bin="$TARGET_DIR/release/portcullis"
        if [ ! -x "$bin" ]; then
            log "building portcullis (release)"
            (cd "$REPO_ROOT" && cargo build --release --quiet --bin portcullis) >&2 ||
                die "could not build portcullis"
        fi
    fi
    case "$bin" in /*) ;; *) bin="$REPO_ROOT/$bin" ;; esac
    [ -x "$bin" ] || die "portcullis binary $bin is missing (set PORTCULLIS_BIN)"
    printf '%s\n' "$bin"
}

# -------------------------------------------------- longer-lived test certs

# reissue_certs DAYS: after make_certs, issue the CA and the server
# certificate again, with the same keys, names and extensions, valid from
# now for DAYS days. make_certs' 30 days fall inside the expiry warnings
# of TLS graders (testssl: < 60 days is MEDIUM, < 30 HIGH); 90 days is
# what certbot gets from Let's Encrypt. CA_PEM, CERT_PEM and KEY_PEM keep
# their paths.
reissue_certs() {
    local days="$1" d="$WORK/pki"
    if [ ! -f "$d/ca.key" ] || [ ! -f "$d/server.csr" ]; then
        die "reissue_certs needs make_certs first"
    fi
    (
        cd "$d"
        openssl req -x509 -new -key ca.key -out ca.pem -days "$days" \
            -subj "/CN=portcullis interop test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out server.pem -days "$days" -sha256 -extfile server.ext 2>/dev/null
        cat server.pem >fullchain.pem
    ) || die "could not issue the test certificates again for $days days"
}

# ------------------------------------------------------ client certificates

# new_ca DIR NAME: a CA certificate and key in DIR (ca.pem, ca.key).
new_ca() {
    mkdir -p "$1"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$1/ca.key" -out "$1/ca.pem" -days 30 -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null ||
        die "could not make the CA $2"
}

# new_client CA_DIR NAME: a client certificate for CN=NAME,O=portcullis
# interop signed by the CA in CA_DIR: CA_DIR/NAME.pem and NAME.key.
new_client() {
    local d="$1" name="$2"
    printf '%s\n' "basicConstraints = critical, CA:FALSE" \
        "keyUsage = critical, digitalSignature" \
        "extendedKeyUsage = clientAuth" >"$d/client.ext"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$d/$name.key" -out "$d/$name.csr" \
        -subj "/O=portcullis interop/CN=$name" 2>/dev/null ||
        die "could not make the key and request of $name"
    openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
        -CAcreateserial -out "$d/$name.pem" -days 30 -sha256 \
        -extfile "$d/client.ext" 2>/dev/null ||
        die "could not sign the client certificate of $name"
}

# ------------------------------------------------------------ counted checks

# counted_checks LABEL: count the pass and fail calls that follow; at exit
# (an abort by die counts as a failure) print the logs when something
# failed, then the closing line "LABEL: N passed, N failed", then clean
# up as usual. The logs are moved to $WORK/logs so that they are printed
# once, before the closing line.
PASSED=0
FAILED=0
pass() {
    PASSED=$((PASSED + 1))
    log "PASS $*"
}
fail() {
    FAILED=$((FAILED + 1))
    log "FAIL $*"
}
counted_checks() {
    _CHECKS_LABEL="$1"
    trap _counted_exit EXIT
}
_counted_rc() { return "$1"; }
_counted_exit() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ "$FAILED" -eq 0 ]; then
        FAILED=1
    fi
    if [ "$FAILED" -gt 0 ] && [ "$rc" -eq 0 ]; then
        rc=1
    fi
    if [ "$rc" -ne 0 ]; then
        # A script may gather logs of its own first (certbot.sh does).
        if declare -F before_failure_logs >/dev/null; then
            before_failure_logs || true
        fi
        _dump_logs
        mkdir -p "$WORK/logs"
        mv "$WORK"/*.log "$WORK/logs/" 2>/dev/null || true
    fi
    printf '%s: %d passed, %d failed\n' "$_CHECKS_LABEL" "$PASSED" "$FAILED"
    # _cleanup takes the exit status from $?.
    _counted_rc "$rc" || _cleanup
    _cleanup
}

# ------------------------------------------- connections held across a change

# held_connections_open PORT NAME CAFILE SERIAL TIMEOUT: open, through
# portcullis on 127.0.0.1:PORT, a WebSocket (/ws) and a keep-alive
# connection verified for NAME against CAFILE, both expecting the
# certificate with SERIAL (certbot_conns.py); returns once both are open.
# They then wait, up to TIMEOUT seconds in all, for held_connections_check.
held_connections_open() {
    HELD_READY="$WORK/conns.ready"
    HELD_GO="$WORK/conns.go"
    spawn conns python3 "$INTEROP_DIR/certbot_conns.py" --port "$1" --name "$2" \
        --cafile "$3" --expect-serial "$4" --ready "$HELD_READY" --go "$HELD_GO" --timeout "$5"
    HELD_PID=$SPAWNED_PID
    wait_until 20 _held_ready || true
    [ -e "$HELD_READY" ] || die "the WebSocket and keep-alive connections did not open (see conns.log)"
    log "a WebSocket and a keep-alive connection are open (pid $HELD_PID)"
}
_held_ready() { [ -e "$HELD_READY" ] || ! kill -0 "$HELD_PID" 2>/dev/null; }
_held_done() { ! kill -0 "$HELD_PID" 2>/dev/null; }

# held_connections_check: one more exchange on each connection opened by
# held_connections_open; each of its verdicts becomes a pass or a fail.
held_connections_check() {
    local rc=0 failed=0 verdict check
    touch "$HELD_GO"
    wait_until 30 _held_done || die "the connection helper did not finish (see conns.log)"
    wait "$HELD_PID" || rc=$?
    while read -r verdict check; do
        case "$verdict" in
            PASS) pass "$check" ;;
            FAIL) fail "$check" && failed=$((failed + 1)) ;;
        esac
    done <"$WORK/conns.log"
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        fail "the connection helper exited with $rc (see conns.log)"
    fi
}
