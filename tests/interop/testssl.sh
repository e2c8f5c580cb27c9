#!/usr/bin/env bash
# testssl.sh (Debian's package; the command is `testssl`) grades the TLS
# of portcullis with the default TLS configuration: [tls] has only cert
# and key (a certificate from the test CA for localhost and 127.0.0.1),
# nothing else, so versions, cipher suites, groups and resumption are
# portcullis's defaults.
#
# One scan, offline: the name is pinned to 127.0.0.1 (--ip), no DNS
# lookups (--nodns none), no OCSP/CRL fetches (no --phone-out), Debian's
# openssl, bounded by connect/openssl timeouts and an overall deadline.
# Tests: -p protocols, -s cipher categories, -f forward secrecy, -E every
# cipher suite per protocol, -P server preferences, -S server defaults
# and certificate (the test CA is added with --add-ca, so the chain of
# trust is really verified), -U every vulnerability test.
#
# testssl_check.py grades the JSON: no SSLv2/SSLv3/TLS 1.0/TLS 1.1; no
# suite without forward secrecy, no weak suite; no vulnerability; and no
# finding of severity MEDIUM, HIGH or CRITICAL except the few ids it
# excludes by name, each explained there (properties of a private test
# CA); and no test testssl could not complete (WARN), except the
# client-side ones named there. Each is a check; the closing line counts
# them.
#
# Environment: PORTCULLIS_BIN, ORIGIN_BIN, INTEROP_KEEP (see lib.bash);
# TESTSSL_DEADLINE: seconds the scan may take (default 240).
# shellcheck source=tests/interop/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

counted_checks testssl
need_apt testssl.sh openssl

DEADLINE="${TESTSSL_DEADLINE:-240}"

# ------------------------------------------------------- portcullis, origin

make_certs
# 90 days, as from Let's Encrypt: make_certs' 30 days would be graded as
# "expires soon" (HIGH), a property of the test certificate.
reissue_certs 90
start_origin
start_portcullis

# The [tls] table start_portcullis wrote must be the default one.
tls_keys="$(awk '/^\[/ {t = ($0 == "[tls]")} t && /=/ {print $1}' "$WORK/portcullis.toml" |
    sort | tr '\n' ' ')"
[ "$tls_keys" = "cert key " ] || die "the [tls] table has keys '$tls_keys', not only cert and key"

# ------------------------------------------------------------------- scan

OPENSSL_BIN=/usr/bin/openssl
[ -x "$OPENSSL_BIN" ] || die "Debian's openssl ($OPENSSL_BIN) is missing"
log "testssl $(dpkg-query -W -f='${Version}' testssl.sh) against https://localhost:$PROXY_PORT (127.0.0.1), deadline ${DEADLINE}s"
t0=$SECONDS
scan_rc=0
timeout -k 10 "$DEADLINE" testssl \
    --quiet --color 0 --warnings batch \
    --nodns none --ip 127.0.0.1 \
    --openssl "$OPENSSL_BIN" --connect-timeout 10 --openssl-timeout 10 \
    --add-ca "$CA_PEM" \
    --jsonfile "$WORK/testssl.json" --csvfile "$WORK/testssl.csv" \
    -p -s -f -E -P -S -U \
    "https://localhost:$PROXY_PORT/" </dev/null >"$WORK/testssl-report.txt" 2>&1 || scan_rc=$?
took=$((SECONDS - t0))
# The report, in full: it is the grading.
cat "$WORK/testssl-report.txt" >&2
# testssl 3.0's exit status adds up the status of its test functions: one
# that could not conclude makes it non-zero, and that test is also a WARN
# in the JSON, which the grading below judges. Only the deadline is
# judged here.
if [ "$scan_rc" -eq 124 ] || [ "$scan_rc" -eq 137 ]; then
    fail "testssl did not finish within ${DEADLINE}s"
else
    pass "testssl finished in ${took}s (exit status $scan_rc)"
fi

# ------------------------------------------------------------------ grade

grade_rc=0
python3 "$INTEROP_DIR/testssl_check.py" "$WORK/testssl.json" >"$WORK/grade.txt" 2>&1 || grade_rc=$?
while read -r verdict what; do
    case "$verdict" in
        PASS) pass "$what" ;;
        FAIL) fail "$what" ;;
        NOTE) log "note: $what" ;;
        *) log "$verdict $what" ;;
    esac
done <"$WORK/grade.txt"
if [ "$grade_rc" -ne 0 ] && ! grep -q '^FAIL' "$WORK/grade.txt"; then
    fail "testssl_check.py exited with $grade_rc"
fi

if kill -0 "$PROXY_PID" 2>/dev/null; then
    pass "portcullis still running after the scan"
else
    fail "portcullis exited during the scan"
fi

[ "$FAILED" -eq 0 ] || exit 1
