#!/usr/bin/env bash
# certbot and an ACME CA (pebble) with portcullis, as an operator runs them:
#
#   1. portcullis starts before any certificate exists ([tls] bootstrap =
#      "self-signed") and serves ACME http-01 challenges from
#      [http] acme_webroot on its plain-HTTP port;
#   2. `certbot certonly --webroot` gets a certificate from pebble, whose
#      validation authority fetches the challenge through portcullis
#      (pebble-challtestsrv answers DNS: portcullis.test is 127.0.0.1);
#      portcullis must serve it, by itself: no signal, no restart;
#   3. a WebSocket and an idle HTTP/1.1 keep-alive connection are opened
#      through portcullis (certbot_conns.py, TLS verified against pebble's
#      root for portcullis.test);
#   4. `certbot renew --force-renewal` replaces certificate and key;
#      portcullis must serve the new certificate, again by itself, and
#      the two connections opened before must still work.
#
# Whether a certificate is "served" is decided by its serial:
# openssl s_client through portcullis against the cert.pem certbot wrote.
#
# Environment: PORTCULLIS_BIN, ORIGIN_BIN, INTEROP_KEEP (see lib.bash);
# CERTBOT_RELOAD_DEADLINE: seconds portcullis has to serve a new
# certificate (default 15, well under the 60 s content poll, so that the
# renewal is seen through the filesystem watch).
# shellcheck source=tests/interop/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

need_apt certbot pebble openssl curl
need_pip websockets.asyncio.client='websockets>=13'

NAME=portcullis.test
RELOAD_DEADLINE="${CERTBOT_RELOAD_DEADLINE:-15}"

# ------------------------------------------------------------ pass / fail

counted_checks certbot

# On failure, certbot's own logs are printed with the others.
before_failure_logs() {
    local f
    for f in "$WORK"/certbot-*/logs/letsencrypt.log; do
        [ -f "$f" ] || continue
        cp "$f" "$WORK/$(basename "$(dirname "$(dirname "$f")")")-letsencrypt.log" || true
    done
}

# --------------------------------------------------------------- ports

mapfile -t PORTS < <(free_ports 7)
[ "${#PORTS[@]}" -eq 7 ] || die "could not pick free ports"
PEBBLE_PORT=${PORTS[0]}    # ACME API (https)
PEBBLE_MGMT=${PORTS[1]}    # pebble management API: roots, intermediates
PEBBLE_TLS=${PORTS[2]}     # tls-alpn-01 port pebble would dial (unused)
DNS_PORT=${PORTS[3]}       # pebble-challtestsrv DNS, UDP and TCP
CHALL_MGMT=${PORTS[4]}     # pebble-challtestsrv management
TLS_PORT=${PORTS[5]}       # portcullis [server] listen
HTTP_PORT=${PORTS[6]}      # portcullis [http] listen: pebble's httpPort

# ----------------------------------------------------------- pebble, DNS

# Debian's pebble ships no certificate for its own API: the test CA and
# its localhost/127.0.0.1 certificate from lib.bash serve, and certbot
# trusts them through REQUESTS_CA_BUNDLE.
make_certs
PEBBLE_API_CA="$CA_PEM"

spawn challtestsrv pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
    -dns01 "127.0.0.1:$DNS_PORT" -http01 "" -https01 "" -tlsalpn01 "" \
    -management "127.0.0.1:$CHALL_MGMT"
CHALL_PID=$SPAWNED_PID
wait_port 127.0.0.1 "$CHALL_MGMT" "$CHALL_PID" 20 pebble-challtestsrv
wait_port 127.0.0.1 "$DNS_PORT" "$CHALL_PID" 20 "pebble-challtestsrv DNS"

cat >"$WORK/pebble.json" <<EOF
{
  "pebble": {
    "listenAddress": "127.0.0.1:$PEBBLE_PORT",
    "managementListenAddress": "127.0.0.1:$PEBBLE_MGMT",
    "certificate": "$CERT_PEM",
    "privateKey": "$KEY_PEM",
    "httpPort": $HTTP_PORT,
    "tlsPort": $PEBBLE_TLS,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false
  }
}
EOF
# No authorization reuse: the renewal is validated through portcullis's
# plain listener again, while it serves the certificate from the first run.
spawn pebble env PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
    pebble -config "$WORK/pebble.json" -dnsserver "127.0.0.1:$DNS_PORT"
PEBBLE_PID=$SPAWNED_PID
wait_port 127.0.0.1 "$PEBBLE_PORT" "$PEBBLE_PID" 20 pebble
wait_port 127.0.0.1 "$PEBBLE_MGMT" "$PEBBLE_PID" 20 "pebble management"
ACME_DIR="https://127.0.0.1:$PEBBLE_PORT/dir"
log "pebble: $ACME_DIR (pid $PEBBLE_PID), DNS 127.0.0.1:$DNS_PORT (pid $CHALL_PID)"

# The root pebble issues under (random per run): the clients below verify
# portcullis's certificate chain and name against it. Only the root is
# trusted, so the verification also proves portcullis sends the
# intermediate (certbot's fullchain.pem).
PEBBLE_ROOT="$WORK/pebble-root.pem"
curl -fsS --max-time 10 --cacert "$PEBBLE_API_CA" -o "$PEBBLE_ROOT" \
    "https://127.0.0.1:$PEBBLE_MGMT/roots/0" || die "could not fetch pebble's root"

# ------------------------------------------------------ origin, portcullis

start_origin

WEBROOT="$WORK/webroot"
CB="$WORK/certbot-$PEBBLE_PORT" # fresh per pebble run: certbot keeps the account
mkdir -p "$WEBROOT" "$CB/config" "$CB/work" "$CB/logs"
LIVE="$CB/config/live/$NAME"

cat >"$WORK/portcullis.toml" <<EOF
[server]
listen = ["127.0.0.1:$TLS_PORT"]
# Above the whole renewal: the idle keep-alive connection must outlive it.
header_read_timeout = "120s"

[tls]
cert = "$LIVE/fullchain.pem"
key = "$LIVE/privkey.pem"
bootstrap = "self-signed"

[http]
listen = ["127.0.0.1:$HTTP_PORT"]
acme_webroot = "$WEBROOT"

[[route]]
path = "/"
upstream = "http://$ORIGIN_HTTP"

[[route]]
path = "/ws"
upstream = "http://$ORIGIN_WS"
EOF
PORTCULLIS="$(portcullis_bin)" || die "no portcullis binary"
spawn portcullis "$PORTCULLIS" --config "$WORK/portcullis.toml"
PROXY_PID=$SPAWNED_PID
wait_port 127.0.0.1 "$TLS_PORT" "$PROXY_PID" 30 portcullis
wait_port 127.0.0.1 "$HTTP_PORT" "$PROXY_PID" 30 "portcullis plain HTTP"
log "portcullis: https://127.0.0.1:$TLS_PORT, http://127.0.0.1:$HTTP_PORT (pid $PROXY_PID)"

# ------------------------------------------------------------- helpers

# served_serial: the serial (serial=HEX) of the certificate portcullis
# serves for $NAME on a new connection; empty when none.
served_serial() {
    timeout 10 openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername "$NAME" \
        </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null || true
}
serves() { [ "$(served_serial)" = "$1" ]; }
file_serial() { openssl x509 -in "$1" -noout -serial 2>/dev/null || true; }

# run_certbot NAME ARGS...: certbot with this run's dirs and pebble; its
# output goes to $WORK/certbot-NAME.log.
run_certbot() {
    local what="$1"
    shift
    REQUESTS_CA_BUNDLE="$PEBBLE_API_CA" timeout 90 certbot "$@" \
        --server "$ACME_DIR" \
        --config-dir "$CB/config" --work-dir "$CB/work" --logs-dir "$CB/logs" \
        --non-interactive --agree-tos --register-unsafely-without-email \
        --no-random-sleep-on-renew >"$WORK/certbot-$what.log" 2>&1
}

# verifies: the chain portcullis serves for $NAME verifies against
# pebble's root, with the name checked.
verifies() {
    timeout 10 openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername "$NAME" \
        -CAfile "$PEBBLE_ROOT" -verify_hostname "$NAME" -verify_return_error \
        </dev/null >"$WORK/verify.out" 2>&1
}
verify_error() { grep -m1 -i 'verify' "$WORK/verify.out" || echo "no verification result"; }
# http01_validations: how many http-01 fetches pebble's VA has made (each
# to portcullis's plain port, the only listener on pebble's httpPort).
http01_validations() { grep -c 'validate w/ HTTP' "$WORK/pebble.log" || true; }

# reload_trigger SERIAL: what portcullis logged as the reason it loaded
# the certificate with SERIAL (serial=HEX), for the report.
reload_trigger() {
    local hex="${1#serial=}"
    grep -i "certificate reloaded.*serial=$hex" "$WORK/portcullis.log" | tail -n 1 |
        sed -n 's/.* why=\(.*\)$/\1/p' || true
}

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
alive() { kill -0 "$1" 2>/dev/null; }

# ----------------------------------------------------------- 1: bootstrap

BOOT_SERIAL="$(served_serial)"
if [ -n "$BOOT_SERIAL" ] && [ ! -e "$LIVE/fullchain.pem" ]; then
    pass "portcullis started before the certificate existed (bootstrap $BOOT_SERIAL)"
else
    fail "no bootstrap certificate served while $LIVE/fullchain.pem is missing"
fi

mkdir -p "$WEBROOT/.well-known/acme-challenge"
echo "probe-$$" >"$WEBROOT/.well-known/acme-challenge/probe-token"
got="$(curl -fsS --max-time 5 -H "Host: $NAME" \
    "http://127.0.0.1:$HTTP_PORT/.well-known/acme-challenge/probe-token" || true)"
rm -f "$WEBROOT/.well-known/acme-challenge/probe-token"
if [ "$got" = "probe-$$" ]; then
    pass "the plain-HTTP listener serves a file of the ACME webroot"
else
    fail "GET /.well-known/acme-challenge/probe-token on the plain listener gave '$got'"
fi

# --------------------------------------------------------- 2: issuance

log "certbot certonly --webroot for $NAME"
t0=$(now_ms)
run_certbot certonly certonly --webroot -w "$WEBROOT" -d "$NAME" ||
    die "certbot certonly failed (see certbot-certonly.log)"
t1=$(now_ms)
ISSUED="$(file_serial "$LIVE/cert.pem")"
[ -n "$ISSUED" ] || die "certbot wrote no $LIVE/cert.pem"
pass "certbot certonly got a certificate through portcullis's webroot ($ISSUED, $((t1 - t0)) ms)"

if wait_until "$RELOAD_DEADLINE" serves "$ISSUED"; then
    pass "portcullis serves the issued certificate, no signal sent ($(($(now_ms) - t1)) ms after certbot; trigger: $(reload_trigger "$ISSUED"))"
else
    fail "portcullis still serves '$(served_serial)', not the issued $ISSUED, ${RELOAD_DEADLINE}s after certbot"
    exit 1
fi
if verifies; then
    pass "the served chain verifies against pebble's root for $NAME"
else
    fail "the served chain does not verify against pebble's root: $(verify_error)"
fi

# ---------------------------------------------- 3: connections to keep open

held_connections_open "$TLS_PORT" "$NAME" "$PEBBLE_ROOT" "$ISSUED" 100

# ----------------------------------------------------------- 4: renewal

# pebble reuses a valid authorization for some orders whatever
# PEBBLE_AUTHZREUSE says (Debian's 2.4 does now and then), and then the
# renewal is not validated through portcullis at all. Such a renewal is a
# renewal all the same (portcullis must pick it up), so certbot renews
# again, up to three more times, until one is validated over http-01.
validated=0
previous="$ISSUED"
for attempt in 1 2 3 4; do
    log "certbot renew --force-renewal (attempt $attempt)"
    validations_before=$(http01_validations)
    t0=$(now_ms)
    run_certbot renew renew --force-renewal || die "certbot renew failed (see certbot-renew.log)"
    t1=$(now_ms)
    RENEWED="$(file_serial "$LIVE/cert.pem")"
    if [ -z "$RENEWED" ] || [ "$RENEWED" = "$previous" ]; then
        die "certbot renew left $LIVE/cert.pem at '$RENEWED' (was $previous)"
    fi
    previous="$RENEWED"
    if [ "$(http01_validations)" -gt "$validations_before" ]; then
        validated=1
        break
    fi
    log "pebble reused the authorization: no http-01 validation; renewing again"
done
pass "certbot renew replaced the certificate ($RENEWED, $((t1 - t0)) ms)"
if [ "$validated" -eq 1 ]; then
    pass "the renewal was validated again over http-01 through portcullis"
else
    fail "pebble made no http-01 validation in $attempt renewals (authorization reused each time)"
fi

if wait_until "$RELOAD_DEADLINE" serves "$RENEWED"; then
    pass "portcullis serves the renewed certificate, no signal sent ($(($(now_ms) - t1)) ms after certbot; trigger: $(reload_trigger "$RENEWED"))"
    if verifies; then
        pass "the renewed chain verifies against pebble's root for $NAME"
    else
        fail "the renewed chain does not verify against pebble's root: $(verify_error)"
    fi
else
    fail "portcullis still serves '$(served_serial)', not the renewed $RENEWED, ${RELOAD_DEADLINE}s after certbot"
fi

# The connections opened before the renewal: one more exchange each.
held_connections_check

if alive "$PROXY_PID"; then
    pass "portcullis still running"
else
    fail "portcullis exited"
fi
log "portcullis reloads: $(grep -c 'certificate reloaded' "$WORK/portcullis.log" || true)"
grep 'certificate reloaded' "$WORK/portcullis.log" >&2 || true

[ "$FAILED" -eq 0 ] || exit 1
