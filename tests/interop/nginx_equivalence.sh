#!/usr/bin/env bash
# nginx and `portcullis import-nginx` side by side: each nginx
# configuration of tests/interop/nginx_equivalence/ (operators' styles: a
# single site, sub-path applications, WebSockets, several sites, upstream
# blocks, static files with a fallback, headers and redirects, streams...)
# is run by Debian's nginx and, translated by import-nginx, by portcullis;
# the same probes go to both and what the upstream saw and what the client
# got are compared (nginx_equivalence.py, where the deliberate differences
# are listed with their reasons). Prints `nginx-equivalence: E equivalent
# of N`; fails when a configuration differs that is not known to.
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
need_apt nginx openssl python3
make_certs
BIN="$(portcullis_bin)"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
[ -x "$NGINX" ] || die "nginx is missing"
log "$("$NGINX" -v 2>&1)"
python3 "$INTEROP_DIR/nginx_equivalence.py" --portcullis "$BIN" --nginx "$NGINX" \
    --work "$WORK/equivalence" --cert "$CERT_PEM" --key "$KEY_PEM" \
    "$INTEROP_DIR/nginx_equivalence" 2>"$WORK/equivalence.log" ||
    die "a configuration behaves differently under portcullis (see above)"
