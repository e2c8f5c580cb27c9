#!/usr/bin/env bash
# NATS through portcullis: Debian's nats-server behind TLS streams, and the
# nats-py client (PyPI) verifying portcullis's certificate against the
# test CA.
#
#   protocol = "nats" stream     pub/sub, request/reply and a 1 MiB payload
#                                with the default handshake (INFO in
#                                plaintext, then TLS) and with TLS first
#   the same, with [stream.client_auth]
#                                refused without a client certificate,
#                                works with one
#   certificate renewal          a connection made before the certificate
#                                files are replaced keeps working after it,
#                                without a reconnect, while new handshakes
#                                get the new certificate
#   idle_timeout = "2s"          a quiet connection is closed by portcullis
#   WebSocket                    the same client over wss:// to /ws, a route
#                                to nats-server's WebSocket listener
#   seeing it                    one access line per stream, and the stream
#                                counters on /metrics
#
# Environment: PORTCULLIS_BIN, INTEROP_KEEP (see lib.bash).
# shellcheck source=tests/interop/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

counted_checks nats
need_apt nats-server openssl curl
need_pip nats=nats-py aiohttp=aiohttp

make_certs # CA_PEM, CERT_PEM, KEY_PEM for localhost and 127.0.0.1
CLIENTS="$WORK/clients"
new_ca "$CLIENTS" "portcullis interop NATS clients CA"
new_client "$CLIENTS" alice

mapfile -t PORTS < <(free_ports 7)
[ "${#PORTS[@]}" -eq 7 ] || die "could not pick free ports"
NATS_PORT=${PORTS[0]}
NATS_WS_PORT=${PORTS[1]}
HTTPS_PORT=${PORTS[2]}
STREAM_PORT=${PORTS[3]}
MTLS_PORT=${PORTS[4]}
IDLE_PORT=${PORTS[5]}
ADMIN_PORT=${PORTS[6]}

# ------------------------------------------------------------- nats-server

cat >"$WORK/nats-server.conf" <<EOF_NATS
host: 127.0.0.1
port: $NATS_PORT
max_payload: 4194304
websocket {
    host: 127.0.0.1
    port: $NATS_WS_PORT
    no_tls: true
}
EOF_NATS
spawn nats-server nats-server -c "$WORK/nats-server.conf"
wait_port 127.0.0.1 "$NATS_PORT" "$SPAWNED_PID" 30 nats-server
wait_port 127.0.0.1 "$NATS_WS_PORT" "$SPAWNED_PID" 30 "nats-server (websocket)"
log "nats-server: nats://127.0.0.1:$NATS_PORT, ws 127.0.0.1:$NATS_WS_PORT"

# -------------------------------------------------------------- portcullis

PORTCULLIS="$(portcullis_bin)" || die "no portcullis binary"
UPSTREAM="tcp://127.0.0.1:$NATS_PORT"
cat >"$WORK/portcullis.toml" <<EOF_TOML
[server]
listen = ["127.0.0.1:$HTTPS_PORT"]

[tls]
cert = "$CERT_PEM"
key = "$KEY_PEM"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[[route]]
path = "/ws"
upstream = "http://127.0.0.1:$NATS_WS_PORT"

[[stream]]
name = "nats"
listen = ["127.0.0.1:$STREAM_PORT"]
tls = "terminate"
protocol = "nats"
upstream = "$UPSTREAM"

[[stream]]
name = "nats-mtls"
listen = ["127.0.0.1:$MTLS_PORT"]
tls = "terminate"
protocol = "nats"
upstream = "$UPSTREAM"
[stream.client_auth]
ca = "$CLIENTS/ca.pem"

[[stream]]
name = "nats-idle"
listen = ["127.0.0.1:$IDLE_PORT"]
tls = "terminate"
protocol = "nats"
upstream = "$UPSTREAM"
idle_timeout = "2s"
EOF_TOML
"$PORTCULLIS" check --config "$WORK/portcullis.toml" >"$WORK/check.log" 2>&1 ||
    die "portcullis check refused the configuration: $(cat "$WORK/check.log")"
spawn portcullis "$PORTCULLIS" --config "$WORK/portcullis.toml"
PROXY_PID=$SPAWNED_PID
for port in "$STREAM_PORT" "$MTLS_PORT" "$IDLE_PORT" "$HTTPS_PORT"; do
    wait_port 127.0.0.1 "$port" "$PROXY_PID" 30 portcullis
done
log "portcullis: streams on $STREAM_PORT, $MTLS_PORT (mTLS), $IDLE_PORT (idle 2s); https on $HTTPS_PORT"

# ------------------------------------------------------------------ checks

# client NAME MODE URL ARGS...: nats_check.py with the test CA; its output
# goes to $WORK/client-NAME.out.
client() {
    local name="$1" mode="$2" url="$3"
    shift 3
    timeout 60 python3 "$INTEROP_DIR/nats_check.py" "$mode" "$url" --ca "$CA_PEM" "$@" \
        >"$WORK/client-$name.out" 2>&1
}

# check WHAT NAME CMD...: pass WHAT when CMD succeeds, else fail it with
# the client's output.
check() {
    local what="$1" name="$2"
    shift 2
    if "$@"; then
        pass "$what"
    else
        fail "$what: $(tail -n 3 "$WORK/client-$name.out" 2>/dev/null | tr '\n' ' ')"
    fi
}

NATS_URL="tls://127.0.0.1:$STREAM_PORT"
check "default handshake: INFO says tls_required, pub/sub, request/reply, 1 MiB" default \
    client default pubsub "$NATS_URL"
check "TLS first: pub/sub, request/reply, 1 MiB" tls-first \
    client tls-first pubsub "$NATS_URL" --tls-first

MTLS_URL="tls://127.0.0.1:$MTLS_PORT"
check "mTLS stream: refused without a client certificate" mtls-none \
    client mtls-none refused "$MTLS_URL"
check "mTLS stream: works with alice's certificate" mtls-alice \
    client mtls-alice pubsub "$MTLS_URL" --cert "$CLIENTS/alice.pem" --key "$CLIENTS/alice.key"

# The serial of the certificate a new TLS-first handshake with the stream
# gets (openssl s_client starts with TLS, which the stream recognises).
serial() {
    openssl s_client -connect "127.0.0.1:$STREAM_PORT" -servername localhost </dev/null 2>/dev/null |
        openssl x509 -noout -serial 2>/dev/null
}
client renewal renewal "$NATS_URL" --ready "$WORK/ready" --renewed "$WORK/renewed" &
RENEWAL_PID=$!
wait_until 30 test -e "$WORK/ready" || fail "the renewal client never got ready"
OLD_SERIAL="$(serial)"
reissue_certs 90
new_serial() { local now; now="$(serial)"; [ -n "$now" ] && [ "$now" != "$OLD_SERIAL" ]; }
if wait_until 30 new_serial; then
    pass "renewal: new handshakes get the new certificate ($OLD_SERIAL -> $(serial))"
else
    fail "renewal: still $OLD_SERIAL after 30 s"
fi
touch "$WORK/renewed"
renewal_ok() { wait "$RENEWAL_PID"; }
check "renewal: the connection made before it still works, without a reconnect" renewal renewal_ok

check "idle_timeout: a quiet connection is closed by portcullis" idle \
    client idle idle "tls://127.0.0.1:$IDLE_PORT" --within 15

check "WebSocket: pub/sub, request/reply and 1 MiB over wss:// to /ws" ws \
    client ws pubsub "wss://localhost:$HTTPS_PORT/ws"

access_line() { grep -q "\"STREAM nats\" sni=localhost upstream=$UPSTREAM .* end=closed" "$WORK/portcullis.log"; }
if wait_until 10 access_line; then
    pass "one access line per stream, with the SNI, upstream and end"
else
    fail "no access line for the nats stream"
fi
metrics="$(curl -sS --max-time 10 "http://127.0.0.1:$ADMIN_PORT/metrics")" || metrics=""
if grep -qE '^portcullis_stream_connections_total\{stream="nats"\} [1-9]' <<<"$metrics" &&
    grep -qE '^portcullis_stream_bytes_total\{stream="nats",direction="to_upstream"\} [1-9]' <<<"$metrics"; then
    pass "/metrics counts the stream's connections and bytes"
else
    fail "/metrics has no stream counts"
fi

if kill -0 "$PROXY_PID" 2>/dev/null && ! grep -q panicked "$WORK/portcullis.log"; then
    pass "portcullis still running, no panic"
else
    fail "portcullis died or panicked"
fi

[ "$FAILED" -eq 0 ] || exit 1
