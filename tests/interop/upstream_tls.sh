#!/usr/bin/env bash
# TLS to the upstream against OpenSSL's own server: `openssl s_server -WWW`
# is the https:// upstream, curl the client, portcullis in between.
# Checks that an upstream certified by upstream_ca is served (by name, and
# at an IP address with upstream_server_name), that a certificate from
# another CA or for another name is a 502 with the reason in the log, and
# that upstream_insecure_skip_verify connects anyway and warns at start.
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
counted_checks upstream_tls
need_apt openssl curl
make_certs
BIN="$(portcullis_bin)"

# A second CA, which signed nothing the origin serves.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$WORK/pki/other-ca.key" -out "$WORK/pki/other-ca.pem" -days 30 \
    -subj "/CN=another CA" 2>/dev/null || die "could not make the second CA"

# s_server -WWW serves the request path as a file below its directory,
# and portcullis forwards the path unchanged.
for dir in "" by-ip insecure; do
    mkdir -p "$WORK/www/$dir"
    echo "hello over tls" >"$WORK/www/$dir/hello.txt"
done
ORIGIN_PORT="$(free_port)"
spawn origin env -C "$WORK/www" openssl s_server -accept "127.0.0.1:$ORIGIN_PORT" \
    -cert "$CERT_PEM" -key "$KEY_PEM" -WWW -alpn http/1.1
wait_port 127.0.0.1 "$ORIGIN_PORT" "$SPAWNED_PID" 30 "openssl s_server"

PROXY_PORT="$(free_port)"
cat >"$WORK/portcullis.toml" <<TOML
[server]
listen = ["127.0.0.1:$PROXY_PORT"]

[tls]
cert = "$CERT_PEM"
key = "$KEY_PEM"

[[route]]
path = "/"
upstream = "https://localhost:$ORIGIN_PORT"
upstream_ca = "$CA_PEM"

[[route]]
path = "/by-ip"
upstream = "https://127.0.0.1:$ORIGIN_PORT"
upstream_ca = "$CA_PEM"
upstream_server_name = "localhost"

[[route]]
path = "/other-ca"
upstream = "https://localhost:$ORIGIN_PORT"
upstream_ca = "$WORK/pki/other-ca.pem"

[[route]]
path = "/other-name"
upstream = "https://127.0.0.1:$ORIGIN_PORT"
upstream_ca = "$CA_PEM"
upstream_server_name = "api.internal"

[[route]]
path = "/insecure"
upstream = "https://127.0.0.1:$ORIGIN_PORT"
upstream_server_name = "api.internal"
upstream_insecure_skip_verify = true
TOML
spawn portcullis "$BIN" --config "$WORK/portcullis.toml"
PROXY_PID=$SPAWNED_PID
wait_port 127.0.0.1 "$PROXY_PORT" "$PROXY_PID" 30 portcullis

# get PATH: print "STATUS BODY" for a request through portcullis.
get() {
    curl -sS --max-time 10 --cacert "$CA_PEM" -w ' %{http_code}' \
        "https://localhost:$PROXY_PORT$1" | tr -d '\n'
}

expect() {
    local what="$1" path="$2" want="$3" got
    got="$(get "$path")" || true
    if [ "$got" = "$want" ]; then
        pass "$what"
    else
        fail "$what: $path gave '$got', expected '$want'"
    fi
}

expect "upstream certified by upstream_ca" /hello.txt "hello over tls 200"
expect "upstream at an IP with upstream_server_name" /by-ip/hello.txt "hello over tls 200"
for i in 1 2 3; do
    expect "sequential request $i" /hello.txt "hello over tls 200"
done
expect "certificate from another CA is refused" /other-ca/x "502 bad gateway: the upstream is unreachable or failed 502"
expect "certificate for another name is refused" /other-name/x "502 bad gateway: the upstream is unreachable or failed 502"
expect "insecure skip verify connects" /insecure/hello.txt "hello over tls 200"

log_has() { grep -qE "$1" "$WORK/portcullis.log"; }
if wait_until 10 log_has 'WARN .*upstream certificate not trusted: UnknownIssuer.*route=/other-ca'; then
    pass "the untrusted upstream's reason is logged"
else
    fail "no 'not trusted: UnknownIssuer' line for /other-ca in the log"
fi
if wait_until 10 log_has 'WARN .*does not match the name asked for.*api\.internal.*route=/other-name'; then
    pass "the name mismatch is logged"
else
    fail "no name-mismatch line for /other-name in the log"
fi
if log_has "WARN .*NOT verified.*route=/insecure upstream=https://127\.0\.0\.1:$ORIGIN_PORT"; then
    pass "skipping verification is logged at start"
else
    fail "no start-up warning for /insecure in the log"
fi
