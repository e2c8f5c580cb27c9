#!/bin/sh
# Entrypoint of the compose service `certbot` (the certbot/certbot image,
# whose /bin/sh is BusyBox).
#
#   docker compose run --rm certbot certonly --webroot -w /var/www/certbot -d example.com ...
#       runs certbot once with those arguments;
#   docker compose up -d certbot
#       (no arguments) runs `certbot renew` now and then every 12 hours.
#
# There is no reload hook: portcullis notices new and renewed files in
# /etc/letsencrypt by itself. What this script adds after each certbot run
# is read access for portcullis, which runs as uid:gid 65532:65532 while
# certbot creates live/ and archive/ (and each certificate's directory
# under them) as root-only 0700 and the private keys as 0600. The
# directories and keys get group CERT_GROUP and group read permission.
# certbot keeps both on renewal (a renewed private key takes the group and
# group mode of the one it replaces), so this only matters for the first
# certificate of a name, and costs nothing after that.
set -eu

CERT_GROUP="${CERT_GROUP:-65532}"
RENEW_INTERVAL="${RENEW_INTERVAL:-43200}"
LETSENCRYPT_DIR="${LETSENCRYPT_DIR:-/etc/letsencrypt}"

share_with_portcullis() {
    for dir in "$LETSENCRYPT_DIR/live" "$LETSENCRYPT_DIR/archive"; do
        [ -d "$dir" ] || continue
        chgrp -R "$CERT_GROUP" "$dir"
        chmod -R g+rX,g-w "$dir"
    done
}

if [ "$#" -gt 0 ]; then
    status=0
    certbot "$@" || status=$?
    share_with_portcullis
    exit "$status"
fi

# `docker compose stop` sends SIGTERM to this shell (PID 1): leave at once
# instead of waiting out the sleep.
trap 'exit 0' TERM INT
while :; do
    certbot renew --non-interactive ||
        echo "certbot renew failed (exit $?); trying again in ${RENEW_INTERVAL}s" >&2
    share_with_portcullis
    sleep "$RENEW_INTERVAL" &
    wait $!
done
