#!/usr/bin/env bash
# What one operation costs portcullis, nginx and HAProxy, counted rather
# than timed, so the numbers are the same run after run on a busy machine:
#
#   bash benches/profile/callgrind.sh                     # h1,h2,ws,big: instructions per operation, 3 proxies
#   bash benches/profile/callgrind.sh --proxies portcullis --scenarios h1 --top 40
#   bash benches/profile/callgrind.sh --strace            # and system calls per operation
#   bash benches/profile/callgrind.sh --help
#
# For each scenario, each proxy (configured by benches/vs-peers/proxies.py
# as in the timed comparison: one thread, nginx as one process with
# `master_process off`, HAProxy in the foreground with -db) runs twice
# under valgrind's callgrind, once with a small and once with a large
# number of operations over the same number of connections; the difference
# of the two totals divided by the difference of the counts is the cost of
# one operation with start-up, handshakes and shutdown taken out. The same
# difference per function gives the top functions. With --strace, the same
# two runs under `strace -c -f` give system calls per operation. The last
# table puts the proxies side by side. See benches/profile/README.md.

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

usage() {
    cat <<'EOF'
usage: callgrind.sh [options]
  --scenarios LIST   comma-separated, from h1,h2,ws,big (default: all four)
  --proxies LIST     comma-separated, from portcullis,nginx,haproxy (default: all three)
  --counts A,B       the small and large operation counts (default: per scenario)
  --conns N          connections (default: per scenario, a few)
  --top N            functions listed per scenario (default 25)
  --strace           also count system calls per operation (strace -c -f)
  --no-callgrind     only the strace counts (with --strace)
  --keep DIR         write the raw outputs to DIR and keep them
  -h, --help         this text
Environment: CARGO_TARGET_DIR is honoured; PORTCULLIS_BIN, ORIGIN_BIN and
LOADGEN_BIN skip the build of that binary; NGINX_BIN and HAPROXY_BIN name
the peers' binaries (default: nginx and haproxy on PATH or in /usr/sbin).
EOF
}

log() { printf '[profile %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    printf '[profile] FAIL: %s\n' "$*" >&2
    exit 1
}

scenarios="h1,h2,ws,big"
proxies="portcullis,nginx,haproxy"
counts=""
conns_override=""
top=25
use_strace=0
use_callgrind=1
keep=""
while [ $# -gt 0 ]; do
    case "$1" in
    --scenarios) scenarios="$2"; shift 2 ;;
    --proxies) proxies="$2"; shift 2 ;;
    --counts) counts="$2"; shift 2 ;;
    --conns) conns_override="$2"; shift 2 ;;
    --top) top="$2"; shift 2 ;;
    --strace) use_strace=1; shift ;;
    --no-callgrind) use_callgrind=0; shift ;;
    --keep) keep="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
    esac
done

for tool in valgrind callgrind_annotate h2load python3 ss; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install valgrind nghttp2-client python3 iproute2)"
done
[ "$use_strace" = 0 ] || command -v strace >/dev/null || die "strace is missing (apt-get install strace)"
PATH="$PATH:/usr/sbin"
NGINX_BIN="${NGINX_BIN:-$(command -v nginx || true)}"
HAPROXY_BIN="${HAPROXY_BIN:-$(command -v haproxy || true)}"
IFS=',' read -r -a proxy_list <<<"$proxies"
for proxy in "${proxy_list[@]}"; do
    case "$proxy" in
    portcullis) ;;
    nginx) [ -x "$NGINX_BIN" ] || die "nginx is missing (apt-get install nginx)" ;;
    haproxy) [ -x "$HAPROXY_BIN" ] || die "haproxy is missing (apt-get install haproxy)" ;;
    *) die "unknown proxy $proxy (portcullis, nginx, haproxy)" ;;
    esac
done

# shellcheck source=../build.bash
. "$REPO/benches/build.bash"
log "building portcullis, the test origin and the load client (release) where not given"
build_release "$REPO" || die "cargo build failed"

if [ -n "$keep" ]; then
    mkdir -p "$keep"
    WORK="$(cd "$keep" && pwd)"
else
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/portcullis-profile.XXXXXX")"
fi

# Every process this script starts, by PID, stopped on the way out.
started=()
cleanup() {
    local pid
    for pid in ${started[@]+"${started[@]}"}; do
        kill "$pid" 2>/dev/null || true
    done
    [ -n "$keep" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# The proxy on CPU 0, origin and load on CPU 1, as in benches/vs-peers.
# Command prefixes rather than a function, so that `$!` of a background
# command is the PID of the program itself (taskset execs it).
PIN0=() PIN1=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    PIN0=(taskset -c 0) PIN1=(taskset -c 1)
fi

"$PORTCULLIS_BIN" gen-cert --force --dir "$WORK/pki" >/dev/null
CERT="$WORK/pki/server/tls.crt"
KEY="$WORK/pki/server/tls.key"

${PIN1[@]+"${PIN1[@]}"} "$ORIGIN_BIN" --http 127.0.0.1:0 --ws 127.0.0.1:0 --threads 1 >"$WORK/origin.log" 2>&1 &
started+=("$!")
for _ in $(seq 200); do
    grep -q '^ws ' "$WORK/origin.log" 2>/dev/null && break
    sleep 0.05
done
APP="$(sed -n 's/^http //p' "$WORK/origin.log")"
WS="$(sed -n 's/^ws //p' "$WORK/origin.log")"
if [ -z "$APP" ] || [ -z "$WS" ]; then
    die "the origin did not report its ports: $(cat "$WORK/origin.log")"
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# proxy_command PROXY PORT TAG: writes PROXY's benchmark configuration (the
# one benches/vs-peers uses, one process, one thread) into WORK and sets
# the array CMD to its command line.
proxy_command() {
    local bin
    case "$1" in
    portcullis) bin="$PORTCULLIS_BIN" ;;
    nginx) bin="$NGINX_BIN" ;;
    haproxy) bin="$HAPROXY_BIN" ;;
    esac
    mapfile -t CMD < <(python3 "$REPO/benches/vs-peers/proxies.py" command "$1" --binary "$bin" \
        --work "$WORK" --port "$2" --app "$APP" --ws "$WS" --cert "$CERT" --key "$KEY" \
        --tag "$3" --single-process)
    [ "${#CMD[@]}" -gt 0 ] || die "no command line for $1"
}

# Default counts and connections per scenario: the small run, the large
# run, and the connections both use.
defaults() {
    case "$1" in
    h1) echo "200,1200 4" ;;
    h2) echo "400,2400 4" ;;
    ws) echo "200,1200 4" ;;
    big) echo "8,40 2" ;;
    *) die "unknown scenario $1 (h1, h2, ws, big)" ;;
    esac
}

# load SCENARIO PORT COUNT CONNS: runs COUNT operations; fails unless all succeeded.
load() {
    local url="https://127.0.0.1:$2" out
    case "$1" in
    h1 | big | h2)
        local path="/bytes/1024" proto=(--h1)
        [ "$1" = big ] && path="/bytes/1048576"
        [ "$1" = h2 ] && proto=(-m 10)
        out="$(${PIN1[@]+"${PIN1[@]}"} h2load -t1 -c "$4" "${proto[@]}" -n "$3" "$url$path" 2>&1)" || die "h2load failed: $out"
        grep -q "requests: $3 total, $3 started, $3 done, $3 succeeded, 0 failed" <<<"$out" ||
            die "h2load did not complete every request: $(grep 'requests:' <<<"$out")"
        ;;
    ws)
        out="$(${PIN1[@]+"${PIN1[@]}"} "$LOADGEN_BIN" ws --addr "127.0.0.1:$2" --cert "$CERT" --connections "$4" \
            --max "$3" --duration 100000 2>&1)" || die "loadgen ws failed: $out"
        grep -q "\"messages\":$3,\"errors\":0" <<<"$out" || die "loadgen ws did not complete: $out"
        ;;
    esac
}

# measure TOOL PROXY SCENARIO COUNT CONNS OUT: one proxy under TOOL
# (callgrind or strace) serving COUNT operations, then stopped: it exits,
# and the tool writes OUT. HAProxy stops on SIGUSR1 (a soft stop; SIGTERM
# would kill it by the default action), the others on SIGTERM.
measure() {
    local tool="$1" proxy="$2" scenario="$3" count="$4" conns="$5" out="$6" port pid target sig=TERM
    [ "$proxy" = haproxy ] && sig=USR1
    port="$(free_port)"
    proxy_command "$proxy" "$port" "$scenario-$count"
    case "$tool" in
    callgrind)
        ${PIN0[@]+"${PIN0[@]}"} valgrind --tool=callgrind --callgrind-out-file="$out" \
            "${CMD[@]}" >"$out.log" 2>&1 &
        pid="$!"
        target="$pid"
        ;;
    strace)
        ${PIN0[@]+"${PIN0[@]}"} strace -f -c -o "$out" "${CMD[@]}" >"$out.log" 2>&1 &
        pid="$!"
        ;;
    esac
    started+=("$pid")
    for _ in $(seq 600); do
        [ -n "$(ss -Hltn "sport = :$port")" ] && break
        kill -0 "$pid" 2>/dev/null || die "$proxy exited early: $(tail -20 "$out.log")"
        sleep 0.1
    done
    [ -n "$(ss -Hltn "sport = :$port")" ] || die "$proxy did not listen on $port"
    # strace runs the proxy as its child: the signal goes to the proxy.
    [ "$tool" = strace ] && target="$(pgrep -P "$pid")"
    load "$scenario" "$port" "$count" "$conns"
    kill -"$sig" "$target"
    wait "$pid" || die "$proxy under $tool did not exit cleanly: $(tail -20 "$out.log")"
}

printf 'portcullis %s, %s; %s; %s\n' "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')" \
    "$(git -C "$REPO" diff --quiet 2>/dev/null && echo 'clean tree' || echo 'uncommitted changes')" \
    "$([ -x "$NGINX_BIN" ] && "$NGINX_BIN" -v 2>&1)" "$([ -x "$HAPROXY_BIN" ] && "$HAPROXY_BIN" -v | head -1)"
SUMMARY="$WORK/summary.tsv"
: >"$SUMMARY"
IFS=',' read -r -a list <<<"$scenarios"
for scenario in "${list[@]}"; do
    read -r def conns <<<"$(defaults "$scenario")"
    conns="${conns_override:-$conns}"
    IFS=',' read -r small large <<<"${counts:-$def}"
    [ "$large" -gt "$small" ] || die "--counts: the second count must be larger"
    for proxy in "${proxy_list[@]}"; do
        tools=()
        [ "$use_callgrind" = 0 ] || tools+=(callgrind)
        [ "$use_strace" = 0 ] || tools+=(strace)
        for tool in "${tools[@]}"; do
            log "$scenario, $proxy: $tool, $small then $large operations over $conns connections"
            for n in "$small" "$large"; do
                measure "$tool" "$proxy" "$scenario" "$n" "$conns" "$WORK/$tool.$proxy.$scenario.$n"
            done
            python3 "$HERE/report.py" "$tool" --proxy "$proxy" --scenario "$scenario" --top "$top" \
                --summary "$SUMMARY" "$small" "$WORK/$tool.$proxy.$scenario.$small" \
                "$large" "$WORK/$tool.$proxy.$scenario.$large"
        done
    done
done
python3 "$HERE/report.py" table "$SUMMARY"
[ -z "$keep" ] || log "raw outputs kept in $WORK"
