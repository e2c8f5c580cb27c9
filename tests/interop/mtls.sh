#!/usr/bin/env bash
# Mutual TLS with real clients: openssl s_client and curl against two
# portcullis instances with [tls.client_auth], and certificates made by
# openssl (the CA that issues client certificates, alice and bob from it,
# and mallory from another CA).
#
#   required (mode = "required"):
#     no certificate      s_client (TLS 1.3 and 1.2) gets the alert and
#                         no HTTP response; curl fails
#     alice (right CA)    s_client verifies the server and reads a 200 from
#                         the origin through it; curl gets 200, and the
#                         origin saw X-Client-Cert-Subject exactly as
#                         `openssl x509 -subject -nameopt RFC2253` prints
#                         it, the fingerprint as openssl computes it, and
#                         X-Client-Cert-Verify: SUCCESS
#     mallory (other CA)  s_client gets "unknown ca", no response; curl fails
#   optional (mode = "optional", alice's fingerprint pinned as openssl
#   prints it, requests for Host api.example require a certificate):
#     no certificate      the public route answers 200 with Verify NONE,
#                         the api host 403; forged X-Client-Cert-* headers
#                         never reach the origin
#     alice               the api host answers 200 with her identity
#     bob (right CA, not pinned)  refused at the handshake
#
# Environment: PORTCULLIS_BIN, ORIGIN_BIN, INTEROP_KEEP (see lib.bash).
# shellcheck source=tests/interop/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

counted_checks mtls
need_apt openssl curl

# ------------------------------------------------------------ certificates

make_certs # the server's: CA_PEM, CERT_PEM, KEY_PEM

CLIENTS="$WORK/clients"
OTHER="$WORK/other"
new_ca "$CLIENTS" "portcullis interop clients CA"
new_ca "$OTHER" "another CA"
new_client "$CLIENTS" alice
new_client "$CLIENTS" bob
new_client "$OTHER" mallory

# What openssl says about alice's certificate, to compare with what the
# origin receives.
ALICE_SUBJECT="$(openssl x509 -in "$CLIENTS/alice.pem" -noout -subject -nameopt RFC2253 | sed 's/^subject=//')"
# "sha256 Fingerprint=AB:CD:..." (OpenSSL 3) or "SHA256 Fingerprint=..."
ALICE_PIN="$(openssl x509 -in "$CLIENTS/alice.pem" -noout -fingerprint -sha256 | sed 's/^.*=//')"
ALICE_SHA256="$(printf '%s' "$ALICE_PIN" | tr -d ':' | tr 'A-F' 'a-f')"
[ "${#ALICE_SHA256}" -eq 64 ] || die "could not read alice's fingerprint ($ALICE_PIN)"
log "alice: $ALICE_SUBJECT, sha256 $ALICE_SHA256"

# ------------------------------------------------------ origin, portcullis

start_origin
PORTCULLIS="$(portcullis_bin)" || die "no portcullis binary"
mapfile -t PORTS < <(free_ports 2)
[ "${#PORTS[@]}" -eq 2 ] || die "could not pick free ports"
REQUIRED_PORT=${PORTS[0]}
OPTIONAL_PORT=${PORTS[1]}

# run_proxy NAME PORT CLIENT_AUTH_LINES: portcullis on PORT with
# [tls.client_auth] holding CLIENT_AUTH_LINES; / goes to the origin for
# any host, and for Host api.example only with a client certificate.
run_proxy() {
    local name="$1" port="$2" auth="$3"
    cat >"$WORK/$name.toml" <<EOF_TOML
[server]
listen = ["127.0.0.1:$port"]

[tls]
cert = "$CERT_PEM"
key = "$KEY_PEM"

[tls.client_auth]
ca = "$CLIENTS/ca.pem"
$auth

[[route]]
path = "/"
upstream = "http://$ORIGIN_HTTP"

[[route]]
host = "api.example"
path = "/"
upstream = "http://$ORIGIN_HTTP"
require_client_cert = true
EOF_TOML
    "$PORTCULLIS" check --config "$WORK/$name.toml" >"$WORK/$name-check.log" 2>&1 ||
        die "portcullis check refused $name.toml"
    spawn "$name" "$PORTCULLIS" --config "$WORK/$name.toml"
    PROXY_PIDS[$name]=$SPAWNED_PID
    wait_port 127.0.0.1 "$port" "$SPAWNED_PID" 30 "portcullis ($name)"
    log "portcullis ($name): https://localhost:$port (pid $SPAWNED_PID)"
}

declare -A PROXY_PIDS
run_proxy required "$REQUIRED_PORT" 'mode = "required"'
run_proxy optional "$OPTIONAL_PORT" "mode = \"optional\"
pinned_sha256 = [\"$ALICE_PIN\"]"

# ----------------------------------------------------------------- clients

# s_client NAME PORT ARGS...: one HTTP/1.1 request for /headers through
# openssl s_client, which verifies the server against the test CA; the
# whole transcript goes to $WORK/s_client-NAME.out.
s_client() {
    local name="$1" port="$2"
    shift 2
    printf 'GET /headers HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
        timeout 15 openssl s_client -connect "127.0.0.1:$port" -servername localhost \
            -CAfile "$CA_PEM" -verify_return_error -ign_eof "$@" \
            >"$WORK/s_client-$name.out" 2>&1 || true
}

# curl_get NAME PORT PATH ARGS...: GET PATH with curl, trusting the test
# CA; the body goes to $WORK/curl-NAME.body, curl's messages to
# $WORK/curl-NAME.err, the status to stdout; returns curl's exit status.
curl_get() {
    local name="$1" port="$2" path="$3"
    shift 3
    curl -sS --max-time 15 --cacert "$CA_PEM" --resolve "localhost:$port:127.0.0.1" \
        -o "$WORK/curl-$name.body" -w '%{http_code}' "$@" \
        "https://localhost:$port$path" 2>"$WORK/curl-$name.err"
}

# has FILE TEXT: FILE contains TEXT (any case).
has() { grep -qiF -- "$2" "$1"; }
# no_response FILE: no HTTP response in an s_client transcript.
# (s_client prints session tickets amid the data, so a response may start
# anywhere on a line.)
no_response() { ! grep -qE 'HTTP/1\.1 [0-9]{3} ' "$1"; }

not() { ! "$@"; }

# check WHAT CMD...: pass WHAT when CMD succeeds, else fail it.
check() {
    local what="$1"
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

# ---------------------------------------------------------- required mode

refused_s_client() { has "$1" "$2" && no_response "$1"; }

s_client none-tls13 "$REQUIRED_PORT" -tls1_3
check "required, s_client TLS 1.3 without a certificate: certificate_required alert, no response" \
    refused_s_client "$WORK/s_client-none-tls13.out" "alert certificate required"

s_client none-tls12 "$REQUIRED_PORT" -tls1_2
check "required, s_client TLS 1.2 without a certificate: the handshake fails, no response" \
    refused_s_client "$WORK/s_client-none-tls12.out" "alert"

s_client alice "$REQUIRED_PORT" -cert "$CLIENTS/alice.pem" -key "$CLIENTS/alice.key"
alice_through() {
    local out="$WORK/s_client-alice.out"
    has "$out" "Verify return code: 0 (ok)" && grep -q 'HTTP/1.1 200 OK' "$out" &&
        has "$out" "x-client-cert-subject: $ALICE_SUBJECT" && has "$out" "x-client-cert-verify: SUCCESS"
}
check "required, s_client with alice's certificate: server verified, 200 read through it, her subject and SUCCESS at the origin" \
    alice_through

s_client mallory "$REQUIRED_PORT" -cert "$OTHER/mallory.pem" -key "$OTHER/mallory.key"
check "required, s_client with a certificate from another CA: unknown_ca alert, no response" \
    refused_s_client "$WORK/s_client-mallory.out" "alert unknown ca"

# identity NAME: the origin's echo in curl-NAME.body carries alice's
# subject and fingerprint as openssl computes them, and SUCCESS.
identity() {
    local body="$WORK/curl-$1.body"
    has "$body" "x-client-cert-subject: $ALICE_SUBJECT" &&
        has "$body" "x-client-cert-sha256: $ALICE_SHA256" &&
        has "$body" "x-client-cert-verify: SUCCESS"
}
status="$(curl_get alice "$REQUIRED_PORT" /headers --cert "$CLIENTS/alice.pem" --key "$CLIENTS/alice.key")" || true
check "required, curl with alice's certificate: 200 (got $status)" [ "$status" = 200 ]
check "required, curl with alice's certificate: the origin saw her subject, fingerprint and SUCCESS" \
    identity alice

# refused_curl NAME RC TEXT: curl exited non-zero, saying TEXT.
refused_curl() { [ "$2" -ne 0 ] && has "$WORK/curl-$1.err" "$3"; }

rc=0
curl_get none "$REQUIRED_PORT" /headers >/dev/null || rc=$?
check "required, curl without a certificate: refused (exit $rc: $(head -c 160 "$WORK/curl-none.err"))" \
    refused_curl none "$rc" "certificate required"

rc=0
curl_get mallory "$REQUIRED_PORT" /headers --cert "$OTHER/mallory.pem" --key "$OTHER/mallory.key" >/dev/null || rc=$?
check "required, curl with a certificate from another CA: refused (exit $rc: $(head -c 160 "$WORK/curl-mallory.err"))" \
    refused_curl mallory "$rc" "unknown ca"

# ---------------------------------------------------------- optional mode

status="$(curl_get public "$OPTIONAL_PORT" /headers \
    -H 'X-Client-Cert-Subject: CN=admin' -H 'X-Client-Cert-Verify: SUCCESS')" || true
check "optional, curl without a certificate: the public route answers 200 (got $status)" [ "$status" = 200 ]
public_none() {
    local body="$WORK/curl-public.body"
    has "$body" "x-client-cert-verify: NONE" && ! has "$body" "CN=admin" &&
        ! has "$body" "x-client-cert-verify: SUCCESS"
}
check "optional, curl without a certificate: Verify NONE, and the forged headers were dropped" public_none

status="$(curl_get api-none "$OPTIONAL_PORT" /headers -H 'Host: api.example')" || true
check "optional, curl without a certificate to the api host: 403 (got $status)" [ "$status" = 403 ]
check "optional, the 403 says a client certificate is required" \
    has "$WORK/curl-api-none.body" "client certificate is required"

status="$(curl_get api-alice "$OPTIONAL_PORT" /headers -H 'Host: api.example' \
    -H 'X-Client-Cert-Subject: CN=admin' \
    --cert "$CLIENTS/alice.pem" --key "$CLIENTS/alice.key")" || true
check "optional, curl with alice's (pinned) certificate to the api host: 200 (got $status)" [ "$status" = 200 ]
check "optional, the origin saw alice's identity" identity api-alice
check "optional, the origin did not see the subject alice forged" \
    not has "$WORK/curl-api-alice.body" "CN=admin"

s_client bob "$OPTIONAL_PORT" -cert "$CLIENTS/bob.pem" -key "$CLIENTS/bob.key"
check "optional, s_client with bob's certificate (right CA, not pinned): access_denied alert, no response" \
    refused_s_client "$WORK/s_client-bob.out" "alert access denied"

# alive_without_panic NAME: that instance still runs and logged no panic.
alive_without_panic() { kill -0 "${PROXY_PIDS[$1]}" 2>/dev/null && ! grep -q panicked "$WORK/$1.log"; }
for name in required optional; do
    check "portcullis ($name) still running, no panic" alive_without_panic "$name"
done

[ "$FAILED" -eq 0 ] || exit 1
