#!/usr/bin/env bash
# What one operation costs portcullis, counted rather than timed, so the
# numbers are the same run after run on a busy machine:
#
#   bash benches/profile/callgrind.sh                     # h1,h2,ws,big: instructions per operation
#   bash benches/profile/callgrind.sh --strace            # and system calls per operation
#   bash benches/profile/callgrind.sh --scenarios h1 --top 40
#   bash benches/profile/callgrind.sh --help
#
# For each scenario, portcullis (benches/vs-peers/portcullis.toml, one
# thread) runs twice under valgrind's callgrind, once with a small and once
# with a large number of operations over the same number of connections;
# the difference of the two totals divided by the difference of the counts
# is the cost of one operation with start-up, handshakes and shutdown taken
# out. The same difference per function gives the top functions. With
# --strace, the same two runs under `strace -c -f` give system calls per
# operation. See benches/profile/README.md.

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

usage() {
    cat <<'EOF'
usage: callgrind.sh [options]
  --scenarios LIST   comma-separated, from h1,h2,ws,big (default: all four)
  --counts A,B       the small and large operation counts (default: per scenario)
  --conns N          connections (default: per scenario, a few)
  --top N            functions listed per scenario (default 25)
  --strace           also count system calls per operation (strace -c -f)
  --no-callgrind     only the strace counts (with --strace)
  --keep DIR         write the raw outputs to DIR and keep them
  -h, --help         this text
Environment: CARGO_TARGET_DIR is honoured; PORTCULLIS_BIN, ORIGIN_BIN and
LOADGEN_BIN skip the build of that binary.
EOF
}

log() { printf '[profile %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    printf '[profile] FAIL: %s\n' "$*" >&2
    exit 1
}

scenarios="h1,h2,ws,big"
counts=""
conns_override=""
top=25
use_strace=0
use_callgrind=1
keep=""
while [ $# -gt 0 ]; do
    case "$1" in
    --scenarios) scenarios="$2"; shift 2 ;;
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
[ -n "$APP" ] && [ -n "$WS" ] || die "the origin did not report its ports: $(cat "$WORK/origin.log")"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# write_config PORT FILE: the benchmark configuration for this run.
write_config() {
    sed -e "s|@PORT@|$1|" -e 's|@THREADS@|1|' -e 's|@MAX_CONNECTIONS@|10000|' \
        -e "s|@CERT@|$CERT|" -e "s|@KEY@|$KEY|" -e "s|@APP@|$APP|" -e "s|@WS@|$WS|" \
        "$REPO/benches/vs-peers/portcullis.toml" >"$2"
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

# measure TOOL SCENARIO COUNT CONNS OUT: one proxy under TOOL (callgrind or
# strace) serving COUNT operations, stopped with SIGTERM (it drains and
# exits, and the tool writes OUT).
measure() {
    local tool="$1" scenario="$2" count="$3" conns="$4" out="$5" port conf pid target
    port="$(free_port)"
    conf="$WORK/portcullis-$scenario-$count.toml"
    write_config "$port" "$conf"
    case "$tool" in
    callgrind)
        ${PIN0[@]+"${PIN0[@]}"} valgrind --tool=callgrind --callgrind-out-file="$out" \
            "$PORTCULLIS_BIN" --config "$conf" >"$out.log" 2>&1 &
        pid="$!"
        target="$pid"
        ;;
    strace)
        ${PIN0[@]+"${PIN0[@]}"} strace -f -c -o "$out" "$PORTCULLIS_BIN" --config "$conf" >"$out.log" 2>&1 &
        pid="$!"
        ;;
    esac
    started+=("$pid")
    for _ in $(seq 600); do
        [ -n "$(ss -Hltn "sport = :$port")" ] && break
        kill -0 "$pid" 2>/dev/null || die "portcullis exited early: $(tail -20 "$out.log")"
        sleep 0.1
    done
    [ -n "$(ss -Hltn "sport = :$port")" ] || die "portcullis did not listen on $port"
    # strace runs the proxy as its child: the signal goes to the proxy.
    [ "$tool" = strace ] && target="$(pgrep -P "$pid")"
    load "$scenario" "$port" "$count" "$conns"
    kill -TERM "$target"
    wait "$pid" || die "portcullis under $tool did not exit cleanly: $(tail -20 "$out.log")"
}

printf 'portcullis %s, %s\n' "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')" \
    "$(git -C "$REPO" diff --quiet 2>/dev/null && echo 'clean tree' || echo 'uncommitted changes')"
IFS=',' read -r -a list <<<"$scenarios"
for scenario in "${list[@]}"; do
    read -r def conns <<<"$(defaults "$scenario")"
    conns="${conns_override:-$conns}"
    IFS=',' read -r small large <<<"${counts:-$def}"
    [ "$large" -gt "$small" ] || die "--counts: the second count must be larger"
    if [ "$use_callgrind" = 1 ]; then
        log "$scenario: callgrind, $small then $large operations over $conns connections"
        for n in "$small" "$large"; do
            measure callgrind "$scenario" "$n" "$conns" "$WORK/callgrind.$scenario.$n"
        done
        python3 "$HERE/report.py" callgrind --scenario "$scenario" --top "$top" \
            "$small" "$WORK/callgrind.$scenario.$small" "$large" "$WORK/callgrind.$scenario.$large"
    fi
    if [ "$use_strace" = 1 ]; then
        log "$scenario: strace, $small then $large operations over $conns connections"
        for n in "$small" "$large"; do
            measure strace "$scenario" "$n" "$conns" "$WORK/strace.$scenario.$n"
        done
        python3 "$HERE/report.py" strace --scenario "$scenario" \
            "$small" "$WORK/strace.$scenario.$small" "$large" "$WORK/strace.$scenario.$large"
    fi
done
[ -z "$keep" ] || log "raw outputs kept in $WORK"
