#!/usr/bin/env bash
# portcullis against its peers, nginx and HAProxy, in one command:
#
#   bash benches/vs-peers/run.sh            # full run (~30 min): benches/RESULTS.md and RESULTS.json
#   bash benches/vs-peers/run.sh --quick    # ~6 min smoke run: benches/vs-peers/results/quick.json
#   bash benches/vs-peers/run.sh --help     # every option (rounds, durations, scenarios, peers, --perf)
#
# Installs what is missing with apt-get (nginx and its stream module, haproxy, wrk, nghttp2-client
# for h2load, openssl, iproute2 for ss; linux-perf if it can), builds portcullis,
# the test origin and the load client in release mode, then hands over to
# bench.py, which starts and stops every process it needs by PID.
#
# Environment: CARGO_TARGET_DIR is honoured; PORTCULLIS_BIN, ORIGIN_BIN and
# LOADGEN_BIN skip the build of that binary.

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
COMMAND="bash benches/vs-peers/run.sh${*:+ $*}"

log() { printf '[run %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    printf '[run] FAIL: %s\n' "$*" >&2
    exit 1
}

# --from-head (taken here, not passed on): build from a clean export of the
# committed HEAD instead of the working tree, so uncommitted edits in src/
# are not measured.
from_head=0
args=()
for a in "$@"; do
    case "$a" in
    -h | --help)
        python3 "$HERE/bench.py" --help --portcullis x --origin x --loadgen x
        printf '\nrun.sh only:\n  --from-head   build portcullis from a clean export of git HEAD\n'
        exit 0
        ;;
    --from-head) from_head=1 ;;
    *) args+=("$a") ;;
    esac
done
set -- ${args[@]+"${args[@]}"}

# ------------------------------------------------------------------ tools

apt_updated=0
# apt_install OPTIONAL PKG...: install the packages that are not installed.
apt_install() {
    local optional="$1" missing=() p
    shift
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        [ "$optional" = 1 ] && return 0
        die "missing packages ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
    fi
    log "apt-get install ${missing[*]}"
    # Other sessions may hold the dpkg lock for a while: wait for it.
    local apt=(apt-get -o DPkg::Lock::Timeout=600 -qq)
    if [ "$apt_updated" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" update >/dev/null || {
            [ "$optional" = 1 ] && return 0
            die "apt-get update failed"
        }
        apt_updated=1
    fi
    if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null; then
        [ "$optional" = 1 ] && {
            log "optional packages ${missing[*]} could not be installed; going on without them"
            return 0
        }
        die "apt-get install ${missing[*]} failed"
    fi
}

apt_install 0 nginx libnginx-mod-stream haproxy wrk nghttp2-client openssl iproute2 util-linux
command -v python3 >/dev/null || apt_install 0 python3
apt_install 1 linux-perf
command -v h2load >/dev/null || die "h2load is missing after installing nghttp2-client"
command -v taskset >/dev/null || die "taskset is missing"
[ "$(nproc)" -ge 2 ] || log "only $(nproc) CPU: proxy and load will share it, results are not meaningful"

# ------------------------------------------------------------------ build

SRC="$REPO"
REV_ARGS=()
tmp_files=()
trap 'rm -rf ${tmp_files[@]+"${tmp_files[@]}"}' EXIT
if [ "$from_head" = 1 ]; then
    rev="$(git -C "$REPO" rev-parse HEAD)" || die "not a git checkout"
    SRC="$(mktemp -d "${TMPDIR:-/tmp}/portcullis-head.XXXXXX")"
    tmp_files+=("$SRC")
    git -C "$REPO" archive HEAD | tar -x -C "$SRC" || die "git archive HEAD failed"
    # A target directory of its own, kept between runs for incremental builds.
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target/vs-peers-head}"
    REV_ARGS=(--portcullis-rev "$rev (clean export of HEAD)")
    log "building from a clean export of HEAD $rev"
fi

log "building portcullis, the test origin and the load client (release) where not given"
# shellcheck source=../build.bash
. "$HERE/../build.bash"
build_release "$SRC" || die "cargo build failed"
for b in "$PORTCULLIS_BIN" "$ORIGIN_BIN" "$LOADGEN_BIN"; do
    [ -x "$b" ] || die "binary $b is missing"
done

cd "$REPO"
python3 "$HERE/bench.py" --portcullis "$PORTCULLIS_BIN" --origin "$ORIGIN_BIN" \
    --loadgen "$LOADGEN_BIN" --command "$COMMAND" ${REV_ARGS[@]+"${REV_ARGS[@]}"} "$@"
