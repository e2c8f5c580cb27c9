#!/usr/bin/env python3
"""Grade testssl's flat JSON (--jsonfile) for tests/interop/testssl.sh.

Prints one line per check, "PASS <what>" or "FAIL <what>", and "NOTE
<what>" for findings left out on purpose; exits 1 if any check failed.
The checks:

  * the scan ran to its end (scanTime) and every test below reported;
  * protocols: SSLv2, SSLv3, TLS 1.0 and TLS 1.1 not offered; TLS 1.2
    and TLS 1.3 offered (the default min_version is "1.2");
  * cipher categories: NULL, aNULL, EXPORT, LOW (DES, RC2, RC4) and
    3DES/IDEA not offered;
  * every cipher suite accepted (-E, per protocol) has forward secrecy
    (ECDHE/DHE key exchange, or TLS 1.3) and none is weak by name;
  * forward secrecy offered (-f);
  * the chain verifies against the test CA (testssl --add-ca);
  * no vulnerability (-U) reported;
  * no finding of severity MEDIUM, HIGH or CRITICAL, except the few ids
    in EXCLUDED, each a property of a private test CA's certificate;
  * no WARN (a test testssl could not complete), except the client-side
    ones in CLIENT_WARNINGS, matched by id and text.
"""

import argparse
import json
import re
import sys

FAILING_SEVERITIES = ("MEDIUM", "HIGH", "CRITICAL")

# Findings about the certificate that come from the private test CA, not
# from portcullis. Exact ids; keep this list minimal.
EXCLUDED = {
    # "Neither CRL nor OCSP URI provided" (HIGH): the test CA publishes no
    # revocation information (no CRL distribution point, no OCSP URI in
    # the certificate). A public CA always puts one there; portcullis
    # serves the certificate it is given and cannot add either.
    "cert_revocation": "the test CA publishes no CRL or OCSP responder",
}
# Chain of trust, expiry and OCSP/CT/CAA need no exclusion: the test CA is
# passed with --add-ca (so the chain is really verified), the certificate
# is issued for 90 days (reissue_certs), and testssl rates a missing OCSP
# staple, must-staple extension, CT SCTs and CAA record (skipped: no DNS)
# as INFO.

# WARN findings about the scanning side, not the server: id -> (text the
# finding must contain, why). Any other WARN fails.
CLIENT_WARNINGS = {
    # Debian's /usr/bin/openssl has no GOST engine: testssl only says it
    # cannot test GOST cipher suites locally (it still tests them through
    # its own sockets).
    "engine_problem": ("No engine or GOST support", "Debian's openssl has no GOST engine"),
    # testssl's ticket resumption test runs `openssl s_client -sess_out
    # </dev/null`: with TLS 1.3 the tickets come after the handshake, and
    # s_client, seeing EOF on stdin, often closes before they arrive and
    # saves no session; the second s_client then fails ("connect
    # problem"). A client-side race: measured here, 11 of 40 such
    # s_client runs saved no session against portcullis, and 16 of 40
    # against openssl s_server on the same machine.
    "sessionresumption_ticket": (
        "connect problem",
        "openssl s_client closed before the TLS 1.3 tickets arrived (a race in the test client)",
    ),
}

PROTOCOLS_OFF = ["SSLv2", "SSLv3", "TLS1", "TLS1_1"]
PROTOCOLS_ON = ["TLS1_2", "TLS1_3"]
CIPHER_CATEGORIES_OFF = [
    "cipherlist_NULL",
    "cipherlist_aNULL",
    "cipherlist_EXPORT",
    "cipherlist_LOW",
    "cipherlist_3DES_IDEA",
]
VULNERABILITIES = [
    "heartbleed",
    "CCS",
    "ticketbleed",
    "ROBOT",
    "secure_renego",
    "secure_client_renego",
    "CRIME_TLS",
    "BREACH",
    "POODLE_SSL",
    "fallback_SCSV",
    "SWEET32",
    "FREAK",
    "DROWN",
    "LOGJAM",
    "BEAST",
    "LUCKY13",
    "RC4",
]
# Weak by name (OpenSSL and IANA names): no encryption, no
# authentication, export grade, 64-bit blocks (DES, 3DES, IDEA), broken
# RC2/RC4, MD5 MACs. CBC suites are left to testssl's own rating (the
# severity gate).
WEAK_NAME = re.compile(r"NULL|anon|ADH|AECDH|EXP|RC4|RC2|DES|IDEA|MD5", re.IGNORECASE)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("json_file")
    args = ap.parse_args()
    try:
        with open(args.json_file) as f:
            findings = json.load(f)
    except (OSError, ValueError) as e:
        print(f"FAIL testssl's JSON output is unreadable: {e}")
        return 1

    by_id = {}
    for f in findings:
        by_id.setdefault(f.get("id", ""), []).append(f)

    failed = 0

    def check(ok: bool, what: str) -> None:
        nonlocal failed
        print(("PASS " if ok else "FAIL ") + what)
        if not ok:
            failed += 1

    def one(fid: str):
        got = by_id.get(fid)
        return got[0] if got else None

    def show(f) -> str:
        return f'{f["id"]} [{f["severity"]}] "{f["finding"]}"'

    # ---------------------------------------------------------- completeness
    expected = (
        ["scanTime", "PFS", "cert_chain_of_trust"]
        + PROTOCOLS_OFF
        + PROTOCOLS_ON
        + CIPHER_CATEGORIES_OFF
        + VULNERABILITIES
    )
    missing = [i for i in expected if i not in by_id]
    # testssl writes scanTime at its end: the seconds taken, or "Scan
    # interrupted" (WARN) when it was stopped.
    end = one("scanTime")
    if end and not str(end["finding"]).strip().isdigit():
        missing.append(f'the end ({show(end)})')
    check(
        not missing,
        "testssl ran every test to the end"
        + (f": no result for {', '.join(missing)}" if missing else ""),
    )

    # -------------------------------------------------------------- protocols
    for pid in PROTOCOLS_OFF:
        f = one(pid)
        if f:
            check(f["finding"].startswith("not offered"), f"{pid} not offered ({show(f)})")
    for pid in PROTOCOLS_ON:
        f = one(pid)
        if f:
            check(f["finding"].startswith("offered"), f"{pid} offered ({show(f)})")

    # ---------------------------------------------------------------- ciphers
    for cid in CIPHER_CATEGORIES_OFF:
        f = one(cid)
        if f:
            check(f["finding"].startswith("not offered"), f"{cid} not offered ({show(f)})")
    f = one("PFS")
    if f:
        check(f["finding"].startswith("offered") and f["severity"] == "OK",
              f"forward secrecy offered ({show(f)})")

    # -E: "TLS 1.2   xc02c   ECDHE-ECDSA-AES256-GCM-SHA384   ECDH 253   AESGCM   256   TLS_ECDHE_..."
    suites = [f for f in findings if f["id"].startswith("cipher-")]
    check(bool(suites), f"testssl listed the accepted cipher suites per protocol ({len(suites)})")
    no_fs, weak = [], []
    for f in suites:
        cols = f["finding"].split()
        # proto (2 words), hexcode, OpenSSL name, kx (1-2 words), enc, bits, IANA name
        proto = " ".join(cols[:2])
        ossl_name, iana_name = cols[3] if len(cols) > 3 else "", cols[-1]
        kx = cols[4] if len(cols) > 4 else ""
        # TLS 1.3 suites always use an ephemeral (EC)DH exchange; below
        # it, the suite must be ECDHE or DHE (not static ECDH/DH, not RSA).
        ephemeral = kx in ("ECDH", "DH") and ossl_name.startswith(("ECDHE-", "DHE-"))
        if proto != "TLS 1.3" and not ephemeral:
            no_fs.append(f"{proto} {iana_name} (kx {kx})")
        if WEAK_NAME.search(ossl_name) or WEAK_NAME.search(iana_name):
            weak.append(f"{proto} {iana_name}")
    names = ", ".join(f'{" ".join(f["finding"].split()[:2])} {f["finding"].split()[-1]}' for f in suites)
    check(not no_fs, "every accepted cipher suite has forward secrecy"
          + (f"; without: {', '.join(no_fs)}" if no_fs else f" ({names})"))
    check(not weak, "no weak cipher suite accepted (NULL, anon, EXPORT, RC2/RC4, DES/3DES, IDEA, MD5)"
          + (f"; weak: {', '.join(weak)}" if weak else ""))

    # ----------------------------------------------------------- certificate
    f = one("cert_chain_of_trust")
    if f:
        check(f["severity"] == "OK", f"the chain verifies against the test CA ({show(f)})")

    # -------------------------------------------------------- vulnerabilities
    for vid in VULNERABILITIES:
        for f in by_id.get(vid, []):
            ok = f["severity"] in ("OK", "INFO") and "VULNERABLE" not in f["finding"]
            check(ok, f"{vid}: not vulnerable ({show(f)})")

    # -------------------------------------------------------- severity gate
    bad = []
    for f in findings:
        if f["severity"] not in FAILING_SEVERITIES:
            continue
        if f["id"] in EXCLUDED:
            print(f"NOTE excluded {show(f)}: {EXCLUDED[f['id']]}")
            continue
        bad.append(f)
    if not bad:
        check(True, f"no finding of severity {'/'.join(FAILING_SEVERITIES)}")
    for f in bad:
        check(False, f"finding of severity {f['severity']}: {show(f)}")

    # ---------------------------------------------------------- scan problems
    warns = []
    for f in findings:
        if f["severity"] != "WARN":
            continue
        known = CLIENT_WARNINGS.get(f["id"])
        if known and known[0] in f["finding"]:
            print(f"NOTE not counted {show(f)}: {known[1]}")
        else:
            warns.append(f)
    check(not warns, "no test that testssl could not complete (WARN)"
          + (": " + "; ".join(show(f) for f in warns) if warns else ""))

    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
