#!/usr/bin/env bash
# The deployment files under deploy/, run for real under podman:
#
#   1. image       deploy/docker/Dockerfile, built from the release binary
#                  (--build-arg BINARIES=prebuilt); its size; it runs as
#                  uid 65532, `check` validates the baked-in configuration,
#                  it serves, the HEALTHCHECK turns healthy, and `podman
#                  stop` lets a request in flight finish, exit status 0.
#   2. compose     deploy/compose/docker-compose.yml under podman-compose:
#                  the bootstrap certificate first; certbot in its container
#                  gets a certificate from an ACME CA (pebble) through
#                  portcullis's port-80 webroot, and portcullis serves it
#                  without a signal; `certbot renew --force-renewal` is
#                  picked up while a WebSocket through /ws and a keep-alive
#                  connection opened before stay up; the app gets the
#                  forwarding headers; a re-created app container (new
#                  address) is found without restarting portcullis;
#                  `podman-compose down` stops everything in the grace
#                  period, a request in flight included.
#   3. kubernetes  `podman kube play` of deploy/k8s (Deployment, Service,
#                  ConfigMap) with a Secret made here: both replicas serve
#                  TLS from the Secret, follow a kubelet-style `..data`
#                  swap of its files, and answer the readiness and liveness
#                  probes' paths.
#   4. systemd     deploy/systemd/portcullis.service in a container that
#                  boots systemd: the unit starts with its whole sandbox,
#                  serves, reloads and stops with exit status 0.
#
# There is no image registry: every image the deploy files name is a
# stand-in built here from a Debian 12 base made by mmdebstrap
# (containers/standins.Containerfile says which is which). The base is kept
# between runs; every other image is built once per run, and removed at
# the end.
#
# What podman does not do as Docker or Kubernetes would, and what this
# script does about it: deploy/README.md ("Run for real") and
# deploy/k8s/README.md ("Under Podman").
#
# Nothing here publishes a port beyond 127.0.0.1, and apart from the
# Debian mirror (apt, mmdebstrap) the host talks to nothing but loopback
# and the containers' own podman networks. Every container, pod, network,
# network namespace, volume, secret and image made here is removed at the
# end, whatever the outcome (the Debian base aside).
#
# Environment: PORTCULLIS_BIN, ORIGIN_BIN, INTEROP_KEEP (see lib.bash);
# CONTAINERS_RELOAD_DEADLINE: seconds portcullis has to serve a new
# certificate (default 15).
# shellcheck source=tests/interop/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

need_apt podman runc netavark aardvark-dns iptables catatonit podman-compose \
    mmdebstrap eatmydata openssl curl iproute2 util-linux
need_pip websockets.asyncio.client='websockets>=13'

counted_checks containers

RELOAD_DEADLINE="${CONTAINERS_RELOAD_DEADLINE:-15}"
STANDINS="$INTEROP_DIR/containers"
DEPLOY="$REPO_ROOT/deploy"
# Names of everything made per run start with this (compose project too).
RUN_ID="portcullis-ci-$$"
NAME=example.com # the name deploy/compose/proxy.toml expects

PORTCULLIS="$(portcullis_bin)" || die "no portcullis binary"
ORIGIN="${ORIGIN_BIN:-$TARGET_DIR/release/examples/origin}"
[ -x "$ORIGIN" ] || die "origin binary $ORIGIN is missing (set ORIGIN_BIN)"

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
T_START=$(now_ms)
declare -A TIMES=()
phase_done() { TIMES[$1]=$((($(now_ms) - T_START) / 1000)); }

# ------------------------------------------------------------ podman setup

# podman 4.3 from Debian works here with runc (crun refuses hybrid
# cgroups), cgroupfs, the file event log, netavark (an explicit choice:
# Debian also ships a CNI configuration), and default limits no higher
# than this process's hard limits (raising one is not permitted). The
# configuration is this run's own; nothing under /etc is changed.
hard_limit() {
    local v
    v="$(ulimit -H "$1")"
    if [ "$v" = unlimited ] || [ "$v" -gt "$2" ]; then v="$2"; fi
    echo "$v"
}
NOFILE="$(hard_limit -n 65536)"
NPROC="$(hard_limit -u 4096)"
containers_conf() {
    cat <<EOF
[containers]
default_ulimits = ["nofile=$NOFILE:$NOFILE", "nproc=$NPROC:$NPROC"]
$1
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "netavark"
EOF
}
containers_conf "" >"$WORK/containers.conf"
export CONTAINERS_CONF="$WORK/containers.conf"
podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.NetworkBackend}}' >"$WORK/podman-info.txt" 2>&1 ||
    die "podman does not work: $(cat "$WORK/podman-info.txt")"
log "podman $(podman version --format '{{.Client.Version}}'): $(cat "$WORK/podman-info.txt"), limits nofile $NOFILE nproc $NPROC"

# --------------------------------------------------------- cleanup, logs

COMPOSE_FILES=(-f "$DEPLOY/compose/docker-compose.yml" -f "$WORK/compose.ci.yml")
compose() { podman-compose -p "$RUN_ID" "${COMPOSE_FILES[@]}" "$@"; }
KUBE_YAML="$WORK/kube.yaml"
IMAGES_BEFORE="$WORK/images-before.txt"
KUBE_NETNS=()

# all_images: the ID of every image, intermediate ones too, newest first
# (podman's own pause image aside).
all_images() {
    podman images -a --no-trunc --format '{{.ID}} {{.Repository}}' |
        awk '$2 != "localhost/podman-pause" { print $1 }'
}

# Our containers: those of the compose project and those named $RUN_ID-*.
our_containers() {
    {
        podman ps -a --filter "label=io.podman.compose.project=$RUN_ID" --format '{{.Names}}'
        podman ps -a --filter "name=^$RUN_ID-" --format '{{.Names}}'
    } 2>/dev/null | sort -u
}

gather_logs() {
    local c
    podman ps -a --format '{{.Names}} {{.Status}}' >"$WORK/podman-ps.log" 2>&1 || true
    for c in $(our_containers) $(podman ps -a --filter "name=^portcullis-pod-" --format '{{.Names}}' 2>/dev/null); do
        podman logs "$c" >"$WORK/podman-logs-$c.log" 2>&1 || true
    done
}

podman_cleanup() {
    local c
    if [ -f "$KUBE_YAML" ]; then
        for c in "${KUBE_NETNS[@]}"; do
            nsenter --net="/run/netns/$c" podman pod stop -t 5 "${c#"$RUN_ID-"}" >/dev/null 2>&1 || true
        done
        podman kube down "$KUBE_YAML" >/dev/null 2>&1 || true
        podman volume rm -f portcullis-tls portcullis-config >/dev/null 2>&1 || true
        podman secret rm portcullis-tls >/dev/null 2>&1 || true
    fi
    for c in $(our_containers); do
        podman rm -f -t 0 "$c" >/dev/null 2>&1 || true
    done
    podman volume ls -q --filter "label=io.podman.compose.project=$RUN_ID" 2>/dev/null |
        while read -r v; do podman volume rm -f "$v" >/dev/null 2>&1 || true; done
    podman network ls -q --filter "name=^$RUN_ID" 2>/dev/null |
        while read -r n; do podman network rm -f "$n" >/dev/null 2>&1 || true; done
    for c in "${KUBE_NETNS[@]}"; do
        ip netns delete "$c" >/dev/null 2>&1 || true
    done
    # Every image this run built, intermediate ones included (newest
    # first); the Debian base stays for the next run.
    if [ -s "$IMAGES_BEFORE" ]; then
        all_images | grep -vxFf "$IMAGES_BEFORE" | xargs -r podman rmi -f >/dev/null 2>&1 || true
    fi
}

_containers_exit() {
    local rc=$?
    if [ "$rc" -ne 0 ] || [ "$FAILED" -gt 0 ]; then
        gather_logs
    fi
    podman_cleanup
    log "timings (s since start): $(for k in "${!TIMES[@]}"; do printf '%s %s, ' "$k" "${TIMES[$k]}"; done)"
    _counted_rc "$rc" || _counted_exit
    _counted_exit
}
trap _containers_exit EXIT

# check WHAT CMD...: pass when CMD succeeds, fail otherwise.
check() {
    local what="$1"
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

# -------------------------------------------------------------- images

# The Debian base of every stand-in, kept between runs under a tag naming
# what it was made from.
BASE_INCLUDES="binutils,ca-certificates,tzdata,netbase,certbot,pebble,systemd,dbus"
BASE_TAG="$(printf '%s\n' "$BASE_INCLUDES" bookworm minbase | sha256sum | cut -c1-12)"
BASE_IMAGE="localhost/portcullis-ci/debian:bookworm-$BASE_TAG"
if podman image exists "$BASE_IMAGE"; then
    log "base image $BASE_IMAGE present"
else
    log "building the base image $BASE_IMAGE with mmdebstrap"
    made=0
    for attempt in 1 2; do
        rm -f "$WORK/rootfs.tar"
        # eatmydata: no fsync while dpkg unpacks (about half the time).
        if mmdebstrap --quiet --variant=minbase --include="$BASE_INCLUDES" \
            --hook-dir=/usr/share/mmdebstrap/hooks/eatmydata --dpkgopt=force-unsafe-io \
            --dpkgopt='path-exclude=/usr/share/doc/*' \
            --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            bookworm "$WORK/rootfs.tar" >"$WORK/mmdebstrap.log" 2>&1; then
            made=1
            break
        fi
        log "mmdebstrap failed (attempt $attempt)"
    done
    [ "$made" -eq 1 ] || die "mmdebstrap failed (see mmdebstrap.log)"
    podman import --quiet \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' "$WORK/rootfs.tar" "$BASE_IMAGE" >/dev/null ||
        die "podman import failed"
    rm -f "$WORK/rootfs.tar"
fi
phase_done base
all_images | sort -u >"$IMAGES_BEFORE"

# The stand-ins (tags as the deploy files name them where they do).
DISTROLESS=localhost/portcullis-ci/distroless-base-nossl-debian12:nonroot
ECHO_IMAGE=localhost/jmalloc/echo-server:latest
CERTBOT_IMAGE=localhost/certbot/certbot:latest
PEBBLE_IMAGE=localhost/portcullis-ci/pebble:latest
SYSTEMD_IMAGE=localhost/portcullis-ci/systemd:latest
mkdir -p "$WORK/standins"
cp "$ORIGIN" "$WORK/standins/origin"
cp "$STANDINS/echo-server.sh" "$WORK/standins/"
# --format docker throughout: the OCI image format has no HEALTHCHECK.
build_standin() {
    podman build --quiet --layers --format docker -f "$STANDINS/standins.Containerfile" \
        --build-arg BASE="$BASE_IMAGE" --target "$1" -t "$2" "$WORK/standins" \
        >"$WORK/build-$1.log" 2>&1 || die "building the $1 stand-in failed (see build-$1.log)"
}
build_standin distroless "$DISTROLESS"
build_standin echo "$ECHO_IMAGE"
build_standin certbot "$CERTBOT_IMAGE"
build_standin pebble "$PEBBLE_IMAGE"
build_standin systemd "$SYSTEMD_IMAGE"
log "stand-ins built"
phase_done standins

# ================================================================ 1: image

# The build context of a prebuilt build: dist/ with the release binary as
# CI built it.
CTX="$WORK/image-context"
mkdir -p "$CTX/dist" "$CTX/deploy/docker"
cp "$PORTCULLIS" "$CTX/dist/portcullis"
cp "$DEPLOY/docker/proxy.toml" "$CTX/deploy/docker/proxy.toml"
IMAGE=localhost/portcullis-ci/portcullis:test
if podman build --layers --format docker -f "$DEPLOY/docker/Dockerfile" \
    --build-arg BINARIES=prebuilt \
    --build-arg RUST_IMAGE="$BASE_IMAGE" \
    --build-arg RUNTIME_IMAGE="$DISTROLESS" \
    -t "$IMAGE" "$CTX" >"$WORK/build-image.log" 2>&1; then
    pass "the image builds from deploy/docker/Dockerfile (BINARIES=prebuilt)"
else
    die "building deploy/docker/Dockerfile failed (see build-image.log)"
fi
# The same image under the names compose and Kubernetes use.
podman tag "$IMAGE" localhost/portcullis:local registry.example.com/portcullis:0.1.0

size="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
base_size="$(podman image inspect --format '{{.Size}}' "$DISTROLESS")"
log "image size $size bytes ($((size / 1000000)) MB), of which the base $base_size bytes"
if [ "$size" -le 25000000 ]; then
    pass "the image is at most 25 MB ($size bytes; base $base_size)"
else
    fail "the image is $size bytes, more than 25 MB (base $base_size)"
fi
check "the image runs as uid:gid 65532:65532" \
    test "$(podman image inspect --format '{{.Config.User}}' "$IMAGE")" = 65532:65532

version="$(podman run --rm "$IMAGE" --version 2>/dev/null)" || true
log "portcullis --version in the image: $(echo "$version" | tr '\n' ' ')"
check "portcullis --version runs in the image (the stripped binary finds its libraries)" \
    grep -q '^portcullis [0-9]' <<<"$version"

if podman run --rm "$IMAGE" check >"$WORK/image-check.log" 2>&1 &&
    grep -q 'configuration is valid' "$WORK/image-check.log"; then
    pass "podman run IMAGE check: the baked-in configuration is valid"
else
    fail "podman run IMAGE check failed: $(tail -n 3 "$WORK/image-check.log")"
fi

# Serve: the default configuration routes to 127.0.0.1:8080 and :9222, so
# the echo server shares the container's network namespace. Podman does
# not set ip_unprivileged_port_start by itself (Docker does).
IMG_PORT="$(free_port)"
C_IMG="$RUN_ID-image"
podman run -d --name "$C_IMG" --sysctl net.ipv4.ip_unprivileged_port_start=0 \
    --cap-drop ALL --read-only -p "127.0.0.1:$IMG_PORT:443" "$IMAGE" >/dev/null ||
    die "podman run $IMAGE failed"
podman run -d --name "$C_IMG-app" --network "container:$C_IMG" "$ECHO_IMAGE" >/dev/null ||
    die "the echo server next to the image did not start"
img_answers() { curl -ksf --max-time 3 -o /dev/null "https://127.0.0.1:$IMG_PORT/headers"; }
if wait_until 30 img_answers; then
    pass "the image serves https (self-signed default) and proxies to 127.0.0.1:8080"
else
    die "the image's portcullis did not answer on 127.0.0.1:$IMG_PORT"
fi
users="$(podman top "$C_IMG" huser 2>/dev/null | tail -n +2 | sort -u | tr '\n' ' ')"
check "the container's process runs as uid 65532 (podman top: $users)" test "$users" = "65532 "
if podman healthcheck run "$C_IMG" >"$WORK/healthcheck.log" 2>&1 &&
    [ "$(podman inspect --format '{{.State.Health.Status}}' "$C_IMG")" = healthy ]; then
    pass "the HEALTHCHECK (portcullis probe on /healthz) turns healthy"
else
    fail "the HEALTHCHECK is not healthy: $(cat "$WORK/healthcheck.log")"
fi

# podman stop while a 3 s response (/sse, three events a second apart) is
# in flight: SIGTERM, the response completes, exit status 0.
curl -ksN --max-time 20 "https://127.0.0.1:$IMG_PORT/sse" >"$WORK/image-sse.out" 2>&1 &
SSE_PID=$!
sleep 0.5
t0=$(now_ms)
podman stop -t 35 "$C_IMG" >/dev/null 2>"$WORK/image-stop.log" || true
took=$(($(now_ms) - t0))
wait "$SSE_PID" || true
code="$(podman inspect --format '{{.State.ExitCode}}' "$C_IMG")"
events="$(grep -c '^data:' "$WORK/image-sse.out" || true)"
if [ "$code" = 0 ] && [ "$took" -lt 35000 ] && [ "$events" -eq 3 ]; then
    pass "podman stop -t 35: exit status 0 after ${took} ms, the request in flight got all 3 events"
else
    fail "podman stop: exit status $code after ${took} ms, $events of 3 events (see image-sse.out)"
fi
podman rm -f -t 0 "$C_IMG-app" "$C_IMG" >/dev/null 2>&1 || true
phase_done image

# ============================================================== 2: compose

mapfile -t PORTS < <(free_ports 2)
HTTPS_PORT=${PORTS[0]}
HTTP_PORT=${PORTS[1]}
export PORTCULLIS_HTTPS="127.0.0.1:$HTTPS_PORT" PORTCULLIS_HTTP="127.0.0.1:$HTTP_PORT"

# The ACME CA's own API certificate, from a CA that certbot trusts.
ACME_DIR="$WORK/acme"
mkdir -p "$ACME_DIR"
(
    cd "$ACME_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout api-ca.key -out api-ca.pem -days 2 -subj "/CN=ACME API test CA" \
        -addext "basicConstraints=critical,CA:TRUE" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout api.key -out api.csr -subj "/CN=acme" 2>/dev/null
    printf 'subjectAltName = DNS:acme\nextendedKeyUsage = serverAuth\n' >api.ext
    openssl x509 -req -in api.csr -CA api-ca.pem -CAkey api-ca.key -CAcreateserial \
        -out api.pem -days 2 -extfile api.ext 2>/dev/null
    cat >pebble.json <<'EOF'
{
  "pebble": {
    "listenAddress": "0.0.0.0:14000",
    "managementListenAddress": "0.0.0.0:15000",
    "certificate": "/etc/pebble/api.pem",
    "privateKey": "/etc/pebble/api.key",
    "httpPort": 80,
    "tlsPort": 443,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false
  }
}
EOF
    chmod 0644 ./*
) || die "could not make the ACME CA's certificate"

# What this run adds to the shipped compose file, and why:
#   - limits no higher than this machine's hard limits (the shipped 65536
#     file descriptors cannot be granted here), with nproc stated too:
#     podman replaces all its default limits once a service sets one;
#   - certbot trusts the test ACME CA's API certificate.
cat >"$WORK/compose.ci.yml" <<EOF
services:
  portcullis:
    ulimits:
      nofile:
        soft: $NOFILE
        hard: $NOFILE
      nproc:
        soft: $NPROC
        hard: $NPROC
  certbot:
    environment:
      REQUESTS_CA_BUNDLE: /etc/acme-api-ca.pem
    volumes:
      - $ACME_DIR/api-ca.pem:/etc/acme-api-ca.pem:ro
EOF

C_PROXY="${RUN_ID}_portcullis_1"
C_APP="${RUN_ID}_app_1"
C_CERTBOT="${RUN_ID}_certbot_1"
C_ACME="$RUN_ID-acme"
NET="${RUN_ID}_default"

(cd "$DEPLOY/compose" && compose up -d) >"$WORK/compose-up.log" 2>&1 ||
    die "podman-compose up failed (see compose-up.log)"
for c in "$C_PROXY" "$C_APP" "${RUN_ID}_ws_1" "$C_CERTBOT"; do
    [ "$(podman inspect --format '{{.State.Running}}' "$c" 2>/dev/null)" = true ] ||
        die "container $c is not running after podman-compose up (see compose-up.log)"
done
pass "podman-compose up: app, ws, portcullis and certbot run"

container_ip() { podman inspect --format "{{(index .NetworkSettings.Networks \"$2\").IPAddress}}" "$1"; }
PROXY_IP="$(container_ip "$C_PROXY" "$NET")"
PROXY_STARTED="$(podman inspect --format '{{.State.StartedAt}}' "$C_PROXY")"
LE_DIR="$(podman volume inspect --format '{{.Mountpoint}}' "${RUN_ID}_letsencrypt")"
LIVE="$LE_DIR/live/$NAME"

# served_serial: serial=HEX of the certificate portcullis serves for $NAME
# on a new connection through the published port; empty when none.
served_serial() {
    timeout 10 openssl s_client -connect "127.0.0.1:$HTTPS_PORT" -servername "$NAME" \
        </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null || true
}
served_cert() {
    timeout 10 openssl s_client -connect "127.0.0.1:$HTTPS_PORT" -servername "$NAME" \
        </dev/null 2>/dev/null | openssl x509 -noout -subject -issuer 2>/dev/null || true
}
serves() { [ "$(served_serial)" = "$1" ]; }
file_serial() { openssl x509 -in "$1" -noout -serial 2>/dev/null || true; }
tls_up() { [ -n "$(served_serial)" ]; }

wait_until 30 tls_up || die "portcullis does not answer TLS on 127.0.0.1:$HTTPS_PORT"
boot="$(served_cert)"
subject="$(sed -n 's/^subject=//p' <<<"$boot")"
issuer="$(sed -n 's/^issuer=//p' <<<"$boot")"
if [ -n "$subject" ] && [ "$subject" = "$issuer" ] && [ ! -e "$LIVE/fullchain.pem" ]; then
    pass "the bootstrap certificate is served first (self-signed: $subject)"
else
    fail "no self-signed bootstrap certificate before certbot ran: subject '$subject', issuer '$issuer'"
fi
BOOT_SERIAL="$(served_serial)"

check "portcullis in compose runs as uid 65532" \
    test "$(podman top "$C_PROXY" huser | tail -n +2 | sort -u | tr -d ' \n')" = 65532
check "portcullis in compose: read-only root, no capabilities" \
    test "$(podman inspect --format '{{.HostConfig.ReadonlyRootfs}} {{len .EffectiveCaps}}' "$C_PROXY")" = "true 0"
if podman healthcheck run "$C_PROXY" >"$WORK/compose-health.log" 2>&1; then
    pass "the portcullis service's HEALTHCHECK is healthy"
else
    fail "the portcullis service's HEALTHCHECK failed: $(cat "$WORK/compose-health.log")"
fi

# The ACME CA, on the compose network as "acme"; its validation
# authority resolves $NAME to portcullis, as public DNS would.
podman run -d --name "$C_ACME" --network "$NET" --network-alias acme \
    --add-host "$NAME:$PROXY_IP" -v "$ACME_DIR:/etc/pebble:ro" \
    -e PEBBLE_VA_NOSLEEP=1 -e PEBBLE_WFE_NONCEREJECT=0 -e PEBBLE_AUTHZREUSE=0 \
    "$PEBBLE_IMAGE" -config /etc/pebble/pebble.json >/dev/null || die "pebble did not start"
ACME_IP="$(container_ip "$C_ACME" "$NET")"
acme_up() {
    curl -fsS --max-time 3 --cacert "$ACME_DIR/api-ca.pem" --resolve "acme:14000:$ACME_IP" \
        -o /dev/null https://acme:14000/dir 2>/dev/null
}
wait_until 30 acme_up || die "pebble does not answer at $ACME_IP:14000"
curl -fsS --max-time 10 --cacert "$ACME_DIR/api-ca.pem" --resolve "acme:15000:$ACME_IP" \
    -o "$WORK/acme-root.pem" https://acme:15000/roots/0 || die "could not fetch pebble's root"
log "pebble on $NET as acme ($ACME_IP); portcullis at $PROXY_IP"

# certbot_run NAME ARGS...: `podman-compose run --rm certbot ARGS` (the
# README's command); true when certbot exited 0. podman-compose 1.0.3
# exits 0 whatever the container did, but prints its exit code.
certbot_run() {
    local what="$1"
    shift
    (cd "$DEPLOY/compose" &&
        timeout 120 podman-compose -p "$RUN_ID" "${COMPOSE_FILES[@]}" run --rm -T --no-deps certbot "$@") \
        >"$WORK/certbot-$what.log" 2>&1 || true
    [ "$(grep '^exit code:' "$WORK/certbot-$what.log" | tail -n 1)" = "exit code: 0" ]
}

t0=$(now_ms)
if certbot_run certonly certonly --server https://acme:14000/dir --webroot -w /var/www/certbot \
    -d "$NAME" --email you@example.com --agree-tos --no-eff-email --non-interactive; then
    ISSUED="$(file_serial "$LIVE/cert.pem")"
    pass "certbot in its container got a certificate from the ACME CA through portcullis's :80 webroot ($ISSUED, $(($(now_ms) - t0)) ms)"
else
    die "certbot certonly failed (see certbot-certonly.log)"
fi
[ -n "$ISSUED" ] || die "no $LIVE/cert.pem after certbot certonly"
t1=$(now_ms)
if wait_until "$RELOAD_DEADLINE" serves "$ISSUED"; then
    pass "portcullis serves the issued certificate, no signal sent ($(($(now_ms) - t1)) ms after certbot)"
else
    die "portcullis still serves '$(served_serial)' (bootstrap $BOOT_SERIAL), not $ISSUED, ${RELOAD_DEADLINE}s after certbot"
fi
if timeout 10 openssl s_client -connect "127.0.0.1:$HTTPS_PORT" -servername "$NAME" \
    -CAfile "$WORK/acme-root.pem" -verify_hostname "$NAME" -verify_return_error \
    </dev/null >"$WORK/verify.out" 2>&1; then
    pass "the served chain verifies against the ACME CA's root for $NAME"
else
    fail "the served chain does not verify: $(grep -m1 -i verify "$WORK/verify.out")"
fi

# The forwarding headers, as the app received them.
curl -fsS --max-time 10 --cacert "$WORK/acme-root.pem" \
    --resolve "$NAME:$HTTPS_PORT:127.0.0.1" "https://$NAME:$HTTPS_PORT/headers" \
    >"$WORK/app-headers.out" 2>&1 || true
hdr() { grep -i "^$1:" "$WORK/app-headers.out" | head -n 1 | cut -d: -f2- | tr -d ' \r'; }
xff="$(hdr x-forwarded-for)"
if [ -n "$xff" ] && [ "$(hdr x-real-ip)" = "$xff" ] && [ "$(hdr x-forwarded-proto)" = https ] &&
    [ "$(hdr x-forwarded-host)" = "$NAME:$HTTPS_PORT" ]; then
    pass "the app got X-Forwarded-For/X-Real-IP $xff, X-Forwarded-Proto https, X-Forwarded-Host $NAME:$HTTPS_PORT"
else
    fail "forwarding headers at the app: $(tr '\n' ' ' <"$WORK/app-headers.out")"
fi

# A WebSocket through /ws and a keep-alive connection, kept across the renewal.
held_connections_open "$HTTPS_PORT" "$NAME" "$WORK/acme-root.pem" "$ISSUED" 150

t0=$(now_ms)
if certbot_run renew renew --force-renewal --no-random-sleep-on-renew; then
    RENEWED="$(file_serial "$LIVE/cert.pem")"
    if [ -n "$RENEWED" ] && [ "$RENEWED" != "$ISSUED" ]; then
        pass "certbot renew --force-renewal in its container replaced the certificate ($RENEWED, $(($(now_ms) - t0)) ms)"
    else
        die "certbot renew left $LIVE/cert.pem at '$RENEWED'"
    fi
else
    die "certbot renew failed (see certbot-renew.log)"
fi
t1=$(now_ms)
if wait_until "$RELOAD_DEADLINE" serves "$RENEWED"; then
    pass "portcullis serves the renewed certificate, no signal sent ($(($(now_ms) - t1)) ms after certbot)"
else
    fail "portcullis still serves '$(served_serial)', not the renewed $RENEWED"
fi
held_connections_check

# The app container re-created (as `up` does for a new image): a new
# address, found by portcullis at the next connection, without a restart.
APP_IP="$(container_ip "$C_APP" "$NET")"
podman rm -f -t 0 "$C_APP" >/dev/null
app_status() {
    curl -s --max-time 5 -o /dev/null -w '%{http_code}' --cacert "$WORK/acme-root.pem" \
        --resolve "$NAME:$HTTPS_PORT:127.0.0.1" "https://$NAME:$HTTPS_PORT/headers" || true
}
down_status="$(app_status)"
(cd "$DEPLOY/compose" && compose up -d app) >"$WORK/compose-up-app.log" 2>&1 ||
    die "podman-compose up -d app failed (see compose-up-app.log)"
NEW_APP_IP="$(container_ip "$C_APP" "$NET")"
app_back() { [ "$(app_status)" = 200 ]; }
if [ "$NEW_APP_IP" != "$APP_IP" ] && wait_until 15 app_back; then
    pass "the re-created app ($APP_IP -> $NEW_APP_IP) is reached again (while gone: $down_status)"
else
    fail "the re-created app ($APP_IP -> $NEW_APP_IP) is not reached: status $(app_status)"
fi
check "portcullis was not restarted meanwhile" \
    test "$(podman inspect --format '{{.State.StartedAt}} {{.RestartCount}}' "$C_PROXY")" = "$PROXY_STARTED 0"

podman logs "$C_PROXY" >"$WORK/compose-portcullis.log" 2>&1 || true
log "portcullis certificate reloads: $(grep -c 'certificate reloaded' "$WORK/compose-portcullis.log" || true)"

# podman-compose down, with a response in flight. podman-compose 1.0.3
# ignores stop_grace_period (its default is 10 s): the file's 35 s is
# passed as -t.
podman rm -f -t 0 "$C_ACME" >/dev/null 2>&1 || true
grace="$(sed -n 's/^ *stop_grace_period: *\([0-9]*\)s$/\1/p' "$DEPLOY/compose/docker-compose.yml")"
[ -n "$grace" ] || die "no stop_grace_period in docker-compose.yml"
curl -sN --max-time 20 --cacert "$WORK/acme-root.pem" --resolve "$NAME:$HTTPS_PORT:127.0.0.1" \
    "https://$NAME:$HTTPS_PORT/sse" >"$WORK/compose-sse.out" 2>&1 &
SSE_PID=$!
sleep 0.5
since="$(date --iso-8601=seconds)"
t0=$(now_ms)
(cd "$DEPLOY/compose" && compose down -t "$grace") >"$WORK/compose-down.log" 2>&1 || true
took=$(($(now_ms) - t0))
wait "$SSE_PID" || true
events="$(grep -c '^data:' "$WORK/compose-sse.out" || true)"
podman events --stream=false --since "$since" --filter event=died \
    --filter "label=io.podman.compose.project=$RUN_ID" \
    --format '{{.Name}}={{.ContainerExitCode}}' >"$WORK/compose-died.log" 2>&1 || true
exits="$(sort -u "$WORK/compose-died.log" | tr '\n' ' ')"
left="$(podman ps -a --filter "label=io.podman.compose.project=$RUN_ID" --format '{{.Names}}' | tr '\n' ' ')"
if [ -z "$left" ] && [ "$took" -lt $((grace * 1000)) ] &&
    [ "$(grep -c '=0$' "$WORK/compose-died.log")" -ge 4 ] && ! grep -qv '=0$' "$WORK/compose-died.log"; then
    pass "podman-compose down -t $grace: all stopped with status 0 in ${took} ms ($exits)"
else
    fail "podman-compose down took ${took} ms; exits: $exits; left: '$left'"
fi
if [ "$events" -eq 3 ]; then
    pass "the response in flight at down got all 3 events"
else
    fail "the response in flight at down got $events of 3 events"
fi
phase_done compose

# ============================================================ 3: kubernetes

# A kubernetes.io/tls Secret as `kubectl create secret tls` writes it, for a
# certificate from a test CA, then a second certificate for the swap.
make_certs
cp "$CERT_PEM" "$WORK/pki/first.pem"
FIRST="$(file_serial "$WORK/pki/first.pem")"
reissue_certs 30
SECOND="$(file_serial "$CERT_PEM")"
{
    cat <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: portcullis-tls
type: kubernetes.io/tls
data:
  tls.crt: $(base64 -w0 "$WORK/pki/first.pem")
  tls.key: $(base64 -w0 "$KEY_PEM")
EOF
    for f in configmap.yaml deployment.yaml service.yaml; do
        echo "---"
        cat "$DEPLOY/k8s/$f"
    done
} >"$KUBE_YAML"

# Pods get the sysctl through the engine's defaults: podman kube play does
# not apply a pod's securityContext.sysctls.
containers_conf 'default_sysctls = ["net.ipv4.ping_group_range=0 0", "net.ipv4.ip_unprivileged_port_start=0"]' \
    >"$WORK/containers-kube.conf"
# podman 4.3 publishes every containerPort on the host, on all addresses
# (hostPort defaults to containerPort), so the second replica could not
# start and the first would take the host's ports 443, 80 and 9901. Each
# pod is therefore started from a network namespace of its own: the
# host side of its networking (bridge, port forwarding) lives there, and
# the checks reach the pod from there. The manifests stay as shipped.
KUBE_NET="$RUN_ID-kube"
# Named after the manifests, so possibly left by an interrupted run.
podman kube down "$KUBE_YAML" >/dev/null 2>&1 || true
podman secret rm portcullis-tls >/dev/null 2>&1 || true
podman volume rm portcullis-tls portcullis-config >/dev/null 2>&1 || true
podman network create --disable-dns "$KUBE_NET" >/dev/null || die "podman network create failed"
if CONTAINERS_CONF="$WORK/containers-kube.conf" podman kube play --replace --start=false \
    --network "$KUBE_NET" "$KUBE_YAML" >"$WORK/kube-play.log" 2>&1; then
    pass "podman kube play accepts the Deployment, Service, ConfigMap and a Secret"
else
    die "podman kube play failed (see kube-play.log)"
fi
mapfile -t KUBE_PODS < <(podman pod ps --filter name=portcullis-pod --format '{{.Name}}' | sort)
log "pods: ${KUBE_PODS[*]}"
check "the Deployment's 2 replicas are 2 pods (${KUBE_PODS[*]})" test "${#KUBE_PODS[@]}" -eq 2

# The Secret volume as the kubelet writes it: the files in a timestamped
# directory, `..data` pointing at it, and each name a symlink through
# `..data`; mode 0440 (defaultMode), group 65532 (fsGroup). podman writes
# plain files (still base64-encoded, in 4.3) instead.
TLS_VOL="$(podman volume inspect --format '{{.Mountpoint}}' portcullis-tls)"
kubelet_write() { # kubelet_write CERT KEY STAMP
    local dir="$TLS_VOL/..$3" old
    old="$(readlink "$TLS_VOL/..data" || true)"
    mkdir "$dir"
    cp "$1" "$dir/tls.crt"
    cp "$2" "$dir/tls.key"
    chown -R 0:65532 "$dir"
    chmod 0440 "$dir/tls.crt" "$dir/tls.key"
    chmod 0755 "$dir"
    ln -s "..$3" "$TLS_VOL/..data_tmp"
    mv -T "$TLS_VOL/..data_tmp" "$TLS_VOL/..data"
    for f in tls.crt tls.key; do
        [ -L "$TLS_VOL/$f" ] || { rm -f "$TLS_VOL/$f" && ln -s "..data/$f" "$TLS_VOL/$f"; }
    done
    if [ -n "$old" ]; then rm -rf "${TLS_VOL:?}/$old"; fi
}
kubelet_write "$WORK/pki/first.pem" "$KEY_PEM" 2025_01_01_00_00_00.1

# in_ns POD CMD...: CMD in the network namespace POD was started from.
in_ns() {
    local ns="$RUN_ID-$1"
    shift
    nsenter --net="/run/netns/$ns" "$@"
}
POD_IPS=()
for pod in "${KUBE_PODS[@]}"; do
    ip netns add "$RUN_ID-$pod" || die "ip netns add failed"
    KUBE_NETNS+=("$RUN_ID-$pod")
    ip -n "$RUN_ID-$pod" link set lo up
    in_ns "$pod" podman pod start "$pod" >"$WORK/kube-start-$pod.log" 2>&1 ||
        die "podman pod start $pod failed (see kube-start-$pod.log)"
    infra="$(podman pod inspect --format '{{.InfraContainerID}}' "$pod")"
    POD_IPS+=("$(container_ip "$infra" "$KUBE_NET")")
done
log "pods started: ${KUBE_PODS[*]} at ${POD_IPS[*]}"

pod_serial() { # pod_serial POD IP
    in_ns "$1" timeout 10 openssl s_client -connect "$2:443" -servername localhost </dev/null 2>/dev/null |
        openssl x509 -noout -serial 2>/dev/null || true
}
pod_serves() { [ "$(pod_serial "$1" "$2")" = "$3" ]; }
for i in "${!KUBE_PODS[@]}"; do
    pod="${KUBE_PODS[$i]}"
    ip="${POD_IPS[$i]}"
    if wait_until 30 pod_serves "$pod" "$ip" "$FIRST"; then
        pass "$pod serves TLS with the Secret's certificate ($FIRST)"
    else
        fail "$pod serves '$(pod_serial "$pod" "$ip")', not the Secret's $FIRST"
    fi
    for path in readyz healthz; do
        code="$(in_ns "$pod" curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://$ip:9901/$path" || true)"
        check "$pod answers the probe path /$path on the admin port with 200 (got $code)" test "$code" = 200
    done
done
CTR="${KUBE_PODS[0]}-portcullis"
check "the pod's container runs as uid 65532, read-only root, no capabilities" \
    test "$(podman top "$CTR" huser | tail -n +2 | sort -u | tr -d ' \n') $(podman inspect --format '{{.HostConfig.ReadonlyRootfs}} {{len .EffectiveCaps}}' "$CTR")" = "65532 true 0"
STARTED="$(podman inspect --format '{{.State.StartedAt}}' "$CTR")"

kubelet_write "$CERT_PEM" "$KEY_PEM" 2025_01_02_00_00_00.2
for i in "${!KUBE_PODS[@]}"; do
    pod="${KUBE_PODS[$i]}"
    if wait_until "$RELOAD_DEADLINE" pod_serves "$pod" "${POD_IPS[$i]}" "$SECOND"; then
        pass "$pod serves the updated Secret after the ..data swap ($SECOND)"
    else
        fail "$pod still serves '$(pod_serial "$pod" "${POD_IPS[$i]}")' after the ..data swap, not $SECOND"
    fi
done
check "the pod's container was not restarted for it" \
    test "$(podman inspect --format '{{.State.StartedAt}}' "$CTR")" = "$STARTED"

# What podman made of the manifests, for deploy/k8s/README.md.
podman inspect --format 'user={{.Config.User}} readonly={{.HostConfig.ReadonlyRootfs}} caps={{.EffectiveCaps}} securityopt={{.HostConfig.SecurityOpt}} stop_timeout={{.Config.StopTimeout}} memory={{.HostConfig.Memory}} reservation={{.HostConfig.MemoryReservation}} cpu_shares={{.HostConfig.CpuShares}} healthcheck={{.Config.Healthcheck}}' \
    "$CTR" >"$WORK/kube-container.txt" 2>&1 || true
log "podman's container from the Deployment: $(cat "$WORK/kube-container.txt")"
podman logs "$CTR" >"$WORK/kube-portcullis.log" 2>&1 || true
for pod in "${KUBE_PODS[@]}"; do
    in_ns "$pod" podman pod stop -t 10 "$pod" >/dev/null 2>&1 || fail "podman pod stop $pod failed"
done
podman kube down "$KUBE_YAML" >/dev/null 2>&1 || fail "podman kube down failed"
phase_done kubernetes

# =============================================================== 4: systemd

# The unit as deploy/systemd/README.md installs it, in a container whose
# PID 1 is systemd (privileged: the unit's sandbox makes namespaces and
# mounts of its own).
C_SD="$RUN_ID-systemd"
SD_NET="$RUN_ID-systemd"
podman network create "$SD_NET" >/dev/null || die "podman network create failed"
podman run -d --name "$C_SD" --network "$SD_NET" --privileged --systemd=always \
    "$SYSTEMD_IMAGE" >/dev/null || die "the systemd container did not start"
sd() { podman exec "$C_SD" "$@"; }
booted() { sd systemctl is-system-running 2>/dev/null | grep -qE '^(running|degraded)$'; }
wait_until 60 booted || die "systemd did not boot in the container: $(sd systemctl is-system-running 2>&1)"
podman cp "$PORTCULLIS" "$C_SD:/usr/local/bin/portcullis"
podman cp "$ORIGIN" "$C_SD:/usr/local/bin/origin"
podman cp "$DEPLOY/systemd/portcullis.service" "$C_SD:/etc/systemd/system/portcullis.service"
sd install -d -m 0755 /etc/portcullis /var/www/certbot
podman cp "$DEPLOY/systemd/proxy.toml" "$C_SD:/etc/portcullis/proxy.toml"
sd sh -c 'chmod 0644 /etc/portcullis/proxy.toml /etc/systemd/system/portcullis.service &&
    groupadd --system portcullis-certs &&
    systemd-run --unit=origin /usr/local/bin/origin --http 127.0.0.1:8080 --ws 127.0.0.1:9222 &&
    systemctl daemon-reload' >"$WORK/systemd-setup.log" 2>&1 || die "systemd setup failed (see systemd-setup.log)"
if sd systemctl start portcullis >"$WORK/systemd-start.log" 2>&1 &&
    [ "$(sd systemctl show -P ActiveState portcullis)" = active ]; then
    pass "systemctl start portcullis: active (ExecStartPre check passed, the whole sandbox applied)"
else
    sd journalctl -u portcullis --no-pager >"$WORK/systemd-journal.log" 2>&1 || true
    die "systemctl start portcullis failed (see systemd-journal.log)"
fi
SD_IP="$(container_ip "$C_SD" "$SD_NET")"
sd_answers() { curl -ksf --max-time 3 -o /dev/null "https://$SD_IP/headers"; }
check "the unit serves https on 443 and proxies to 127.0.0.1:8080" wait_until 20 sd_answers
code="$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://$SD_IP/" || true)"
check "the unit's port 80 redirects to https (status $code)" test "$code" = 308
main_pid="$(sd systemctl show -P MainPID portcullis)"
uid="$(sd stat -c %u "/proc/$main_pid" 2>/dev/null || echo none)"
dynamic() { [ "$uid" != none ] && [ "$uid" -ge 61184 ] && [ "$uid" -le 65519 ]; }
check "the unit runs as a dynamic user (uid $uid, in systemd's 61184-65519)" dynamic
# The sandbox as the kernel sees it: the one capability (bit 10,
# CAP_NET_BIND_SERVICE), no new privileges, a seccomp filter.
sd cat "/proc/$main_pid/status" >"$WORK/systemd-status.txt" 2>&1 || true
sandbox="$(awk '$1 == "CapEff:" || $1 == "CapBnd:" || $1 == "NoNewPrivs:" || $1 == "Seccomp:" { printf "%s%s ", $1, $2 }' "$WORK/systemd-status.txt")"
check "the unit's process: CAP_NET_BIND_SERVICE only, no new privileges, seccomp ($sandbox)" \
    test "$sandbox" = "CapEff:0000000000000400 CapBnd:0000000000000400 NoNewPrivs:1 Seccomp:2 "
log "the unit's open-file limit: $(sd grep 'Max open files' "/proc/$main_pid/limits" 2>/dev/null | tr -s ' ')"
reloaded() { sd journalctl -u portcullis --no-pager 2>/dev/null | grep -q "configuration reloaded"; }
check "systemctl reload (portcullis reload) checks the file, then reloads it" sd systemctl reload portcullis
check "the reload is logged" wait_until 20 reloaded
check "systemctl reload keeps it active" \
    test "$(sd systemctl show -P ActiveState portcullis)" = active
# A file the proxy would refuse fails `systemctl reload` and changes nothing.
sd sh -c 'cp /etc/portcullis/proxy.toml /tmp/good.toml && echo "bogus = 1" >>/etc/portcullis/proxy.toml'
reload_refused() { ! sd systemctl reload portcullis >/dev/null 2>&1; }
check "systemctl reload of an invalid file fails" reload_refused
sd cp /tmp/good.toml /etc/portcullis/proxy.toml
check "it still serves after the refused reload" sd_answers
sd systemctl stop portcullis >/dev/null 2>&1 || true
result="$(sd systemctl show -P Result portcullis) $(sd systemctl show -P ExecMainStatus portcullis)"
check "systemctl stop portcullis: result success, exit status 0 ($result)" test "$result" = "success 0"
check "systemctl start portcullis again" sd systemctl start portcullis
check "it serves again" wait_until 20 sd_answers
# The binary upgrade under systemd: the new process takes the sockets and
# becomes the unit's main process; the old one leaves.
old_pid="$(sd systemctl show -P MainPID portcullis)"
sd systemctl kill --kill-whom=main -s USR2 portcullis >/dev/null 2>&1 || true
main_moved() { local p; p="$(sd systemctl show -P MainPID portcullis)"; [ "$p" != "$old_pid" ] && [ "$p" != 0 ]; }
check "SIGUSR2: a new process is the unit's main process" wait_until 30 main_moved
old_gone() { ! sd test -d "/proc/$old_pid"; }
check "the old process exits" wait_until 40 old_gone
check "the unit stays active and serves after the upgrade" sh -c \
    "[ \"\$(podman exec $C_SD systemctl show -P ActiveState portcullis)\" = active ] && curl -ksf --max-time 3 -o /dev/null https://$SD_IP/headers"
# The upgraded process is not systemd's child: systemd 252 cannot wait for
# it, and its stop does not drain (deploy/systemd/README.md says so).
sd systemctl stop portcullis >/dev/null 2>&1 || true
log "systemctl stop after the upgrade: $(sd systemctl show -P Result portcullis) $(sd systemctl show -P ExecMainStatus portcullis)"
sd journalctl -u portcullis --no-pager >"$WORK/systemd-journal.log" 2>&1 || true
podman rm -f -t 0 "$C_SD" >/dev/null 2>&1 || true
phase_done systemd

log "total $((($(now_ms) - T_START) / 1000)) s"
[ "$FAILED" -eq 0 ] || exit 1
