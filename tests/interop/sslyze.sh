#!/usr/bin/env bash
# sslyze (from PyPI) checks portcullis against Mozilla's recommended
# server configurations (https://ssl-config.mozilla.org/, the profile
# shipped with sslyze):
#
#   1. the default TLS configuration ([tls] has only cert and key) is
#      compliant with "intermediate" (TLS 1.2 and 1.3, forward-secret
#      AEAD suites, X25519/P-256/P-384, no known vulnerability);
#   2. with [tls] min_version = "1.3" it is compliant with "modern"
#      (TLS 1.3 only);
#   3. control: "modern" against the default configuration, which offers
#      TLS 1.2, is reported not compliant (tls_versions), so a pass above
#      is not sslyze failing to look.
#
# The certificate comes from the test CA, given to sslyze with
# --certinfo_ca_file: the profiles require a chain that verifies. sslyze
# exits 0 when it cannot reach the server at all, so sslyze_check.py also
# reads its JSON: every scheduled scan must have completed. On a
# non-compliant verdict sslyze's reasons are printed.
#
# Environment: PORTCULLIS_BIN, ORIGIN_BIN, INTEROP_KEEP (see lib.bash);
# SSLYZE_DEADLINE: seconds each sslyze run may take (default 120).
# shellcheck source=tests/interop/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

counted_checks sslyze
need_apt openssl
need_pip sslyze='sslyze>=6.3,<7'

DEADLINE="${SSLYZE_DEADLINE:-120}"
log "sslyze $(python3 -c 'import importlib.metadata as m; print(m.version("sslyze"))') on $(python3 --version)"

# ------------------------------------------------------- portcullis, origin

make_certs
start_origin
# 1: the default TLS configuration, from lib.bash.
start_portcullis
DEFAULT_PORT=$PROXY_PORT
tls_keys="$(awk '/^\[/ {t = ($0 == "[tls]")} t && /=/ {print $1}' "$WORK/portcullis.toml" |
    sort | tr '\n' ' ')"
[ "$tls_keys" = "cert key " ] || die "the [tls] table has keys '$tls_keys', not only cert and key"

# 2: the same with min_version = "1.3".
TLS13_PORT="$(free_port)"
sed -e "s/^listen = .*/listen = [\"127.0.0.1:$TLS13_PORT\"]/" \
    -e 's/^\[tls\]$/[tls]\nmin_version = "1.3"/' \
    "$WORK/portcullis.toml" >"$WORK/portcullis-tls13.toml"
grep -qx 'min_version = "1.3"' "$WORK/portcullis-tls13.toml" || die "could not write the TLS 1.3 configuration"
spawn portcullis-tls13 "$(portcullis_bin)" --config "$WORK/portcullis-tls13.toml"
TLS13_PID=$SPAWNED_PID
wait_port 127.0.0.1 "$TLS13_PORT" "$TLS13_PID" 30 "portcullis (min_version 1.3)"
log "portcullis min_version 1.3: https://localhost:$TLS13_PORT (pid $TLS13_PID)"

# ------------------------------------------------------------------ scans

# scan NAME PORT PROFILE WHAT EXPECT [REASON]: sslyze against
# localhost:PORT (pinned to 127.0.0.1, SNI localhost) with the Mozilla
# PROFILE, then sslyze_check.py; its lines become checks.
scan() {
    local name="$1" port="$2" profile="$3" what="$4" expect="$5" reason="${6:-}"
    local rc=0 t0=$SECONDS check_rc=0
    timeout -k 10 "$DEADLINE" python3 -W ignore -m sslyze \
        --mozilla_config "$profile" --certinfo_ca_file "$CA_PEM" \
        --json_out "$WORK/$name.json" \
        "localhost:$port{127.0.0.1}" </dev/null >"$WORK/$name.txt" 2>&1 || rc=$?
    log "sslyze --mozilla_config $profile against the $what: exit $rc in $((SECONDS - t0))s"
    # The verdict and its reasons, as sslyze printed them.
    sed -n '/COMPLIANCE AGAINST/,$p' "$WORK/$name.txt" | sed '/^ *$/d' >&2
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        fail "sslyze ($profile, $what) did not finish within ${DEADLINE}s"
        return
    fi
    python3 "$INTEROP_DIR/sslyze_check.py" --json "$WORK/$name.json" --out "$WORK/$name.txt" \
        --rc "$rc" --target "localhost:$port" --profile "$profile" --what "$what" \
        --expect "$expect" --reason "$reason" >"$WORK/$name.check" 2>&1 || check_rc=$?
    while read -r verdict line; do
        case "$verdict" in
            PASS) pass "$line" ;;
            FAIL) fail "$line" ;;
            INFO) log "$line" ;;
            *) log "$verdict $line" ;;
        esac
    done <"$WORK/$name.check"
    if [ "$check_rc" -ne 0 ] && ! grep -q '^FAIL' "$WORK/$name.check"; then
        fail "sslyze_check.py exited with $check_rc"
    fi
    # The whole console output when a check failed.
    if grep -q '^FAIL' "$WORK/$name.check"; then
        cat "$WORK/$name.txt" >&2
    fi
}

scan intermediate "$DEFAULT_PORT" intermediate "default configuration" compliant
scan modern "$TLS13_PORT" modern "min_version 1.3 configuration" compliant
scan control "$DEFAULT_PORT" modern "default configuration" not-compliant tls_versions

for pid in "$PROXY_PID" "$TLS13_PID"; do
    if kill -0 "$pid" 2>/dev/null; then
        pass "portcullis (pid $pid) still running after the scans"
    else
        fail "portcullis (pid $pid) exited during the scans"
    fi
done

[ "$FAILED" -eq 0 ] || exit 1
