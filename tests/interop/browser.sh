#!/usr/bin/env bash
# A real browser through portcullis: headless chromium, trusting the test
# CA through an NSS database in a fresh HOME (no certificate-error
# switches), loads https://localhost:PORT/ over HTTP/2. The origin's page
# opens wss://localhost:PORT/ws through portcullis, echoes a text and a
# binary message, and records the outcome; browser_check.py reads it over
# the DevTools protocol.
#
# Environment: PORTCULLIS_BIN, ORIGIN_BIN, INTEROP_KEEP (see lib.bash);
# CHROMIUM (default: chromium).
# shellcheck source=tests/interop/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

need_apt chromium fonts-liberation libnss3-tools openssl
need_pip websockets.asyncio.client='websockets>=13'
CHROMIUM="${CHROMIUM:-chromium}"
command -v "$CHROMIUM" >/dev/null || die "no $CHROMIUM"

make_certs
start_origin
start_portcullis

# A fresh HOME whose NSS database trusts the test CA for TLS servers.
BROWSER_HOME="$WORK/home"
NSSDB="$BROWSER_HOME/.pki/nssdb"
mkdir -p "$NSSDB"
certutil -N -d "sql:$NSSDB" --empty-password || die "certutil -N failed"
certutil -A -d "sql:$NSSDB" -t "C,," -n test-ca -i "$CA_PEM" || die "certutil -A failed"

PROFILE="$WORK/profile"
mkdir -p "$PROFILE"
spawn_group chromium env HOME="$BROWSER_HOME" XDG_CONFIG_HOME="$BROWSER_HOME/.config" \
    XDG_CACHE_HOME="$BROWSER_HOME/.cache" \
    "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-default-apps --disable-extensions --no-default-browser-check \
    --user-data-dir="$PROFILE" --remote-debugging-address=127.0.0.1 \
    --remote-debugging-port=0 about:blank
CHROME_PID=$SPAWNED_PID

URL="https://localhost:$PROXY_PORT/"
log "chromium (pid $CHROME_PID) loading $URL"
python3 "$INTEROP_DIR/browser_check.py" --profile "$PROFILE" --pid "$CHROME_PID" \
    --url "$URL" --timeout 60 ||
    die "the page through portcullis did not pass in chromium"
kill -0 "$PROXY_PID" 2>/dev/null || die "portcullis exited during the run"
log "ok"
