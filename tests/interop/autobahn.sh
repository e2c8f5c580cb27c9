#!/usr/bin/env bash
# Autobahn WebSocket test cases 1.* to 10.* through portcullis.
#
# kosoku (Autobahn's case files on Python 3) speaks only ws://, so an
# stunnel client in front of portcullis's TLS port turns its plain
# connections into TLS (verifying the test CA and the name localhost).
# The same cases run against the echo upstream directly and through
# stunnel -> portcullis -> upstream; any case whose verdict differs fails
# the run, and so does a case the upstream itself does not pass.
#
# Environment: PORTCULLIS_BIN, ORIGIN_BIN, INTEROP_KEEP (see lib.bash);
# AUTOBAHN_CASES: space-separated case ids/globs (default: 1.* ... 10.*).
# shellcheck source=tests/interop/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

need_apt stunnel4 openssl
need_pip kosoku=kosoku

make_certs
start_origin
start_portcullis

# stunnel client: plain ws on a local port -> TLS to portcullis.
TUNNEL_PORT="$(free_port)"
cat >"$WORK/stunnel.conf" <<EOF
foreground = yes
pid =
syslog = no
debug = 4

[ws]
client = yes
accept = 127.0.0.1:$TUNNEL_PORT
connect = 127.0.0.1:$PROXY_PORT
sni = localhost
verifyChain = yes
CAfile = $CA_PEM
checkHost = localhost
EOF
spawn stunnel stunnel4 "$WORK/stunnel.conf"
STUNNEL_PID=$SPAWNED_PID
wait_port 127.0.0.1 "$TUNNEL_PORT" "$STUNNEL_PID" 20 stunnel

cases=()
for c in ${AUTOBAHN_CASES:-1.* 2.* 3.* 4.* 5.* 6.* 7.* 9.* 10.*}; do
    cases+=(--case "$c")
done

log "running Autobahn cases ${AUTOBAHN_CASES:-1-10} directly and through portcullis"
python3 "$INTEROP_DIR/autobahn_compare.py" \
    --direct "ws://$ORIGIN_WS/ws" \
    --proxied "ws://127.0.0.1:$TUNNEL_PORT/ws" \
    --outdir "$WORK/reports" --timeout 300 \
    "${cases[@]}" ||
    die "Autobahn verdicts through portcullis differ from the upstream's (reports in $WORK/reports)"

# Every case's connection went through the proxy, not around it.
kill -0 "$PROXY_PID" 2>/dev/null || die "portcullis exited during the run"
log "ok"
