# Builds the benchmark binaries in release mode, for the scripts under
# benches/ (source it, then call build_release):
#
#   build_release SRC   # sets PORTCULLIS_BIN, ORIGIN_BIN and LOADGEN_BIN
#
# Each variable already set is kept (and that binary taken as it is); the
# build runs only when one is missing. CARGO_TARGET_DIR is honoured.

# build_release SRC: builds portcullis, the test origin and the load client
# from the checkout in SRC, and points the three variables at them.
build_release() {
    local src="$1" artifacts
    if [ -n "${PORTCULLIS_BIN:-}" ] && [ -n "${ORIGIN_BIN:-}" ] && [ -n "${LOADGEN_BIN:-}" ]; then
        return 0
    fi
    artifacts="$(mktemp)"
    if ! (cd "$src" && cargo build --release --bin portcullis --example origin --bench loadgen \
        --message-format=json-render-diagnostics >"$artifacts"); then
        rm -f "$artifacts"
        return 1
    fi
    PORTCULLIS_BIN="${PORTCULLIS_BIN:-$(_built_exe "$artifacts" bin portcullis)}"
    ORIGIN_BIN="${ORIGIN_BIN:-$(_built_exe "$artifacts" example origin)}"
    LOADGEN_BIN="${LOADGEN_BIN:-$(_built_exe "$artifacts" bench loadgen)}"
    rm -f "$artifacts"
    export PORTCULLIS_BIN ORIGIN_BIN LOADGEN_BIN
}

# _built_exe ARTIFACTS KIND NAME: the executable cargo reported for a target.
_built_exe() {
    python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
path, kind, name = sys.argv[1:]
for line in open(path):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == name \
            and kind in m["target"]["kind"] and m.get("executable"):
        print(m["executable"])
        break
EOF
}
