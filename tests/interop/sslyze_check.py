#!/usr/bin/env python3
"""Read one sslyze run for tests/interop/sslyze.sh.

Prints "INFO <what>" lines (what the server accepted) and one line per
check, "PASS <what>" or "FAIL <what>"; exits 1 if a check failed.

  * the scan was complete: sslyze reached the server and every scan
    command it scheduled finished (sslyze exits 0 when it cannot connect
    at all, so its exit code alone proves nothing);
  * the compliance verdict against the Mozilla profile is the expected
    one: --expect compliant needs exit 0 and "OK - Compliant." for the
    target; --expect not-compliant (a control) needs exit 1, "FAILED -
    Not compliant." and the reason named by --reason. A failed check
    quotes sslyze's reasons.
"""

import argparse
import json
import sys

SUITE_SCANS = [
    ("ssl_2_0_cipher_suites", "SSL 2.0"),
    ("ssl_3_0_cipher_suites", "SSL 3.0"),
    ("tls_1_0_cipher_suites", "TLS 1.0"),
    ("tls_1_1_cipher_suites", "TLS 1.1"),
    ("tls_1_2_cipher_suites", "TLS 1.2"),
    ("tls_1_3_cipher_suites", "TLS 1.3"),
]


def compliance_section(text: str, target: str):
    """sslyze's verdict line for target and the reasons listed under it."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(f"{target}:"):
            reasons = []
            for more in lines[i + 1 :]:
                if more.strip().startswith("* "):
                    reasons.append(more.strip()[2:])
                elif more.strip():
                    break
            return line.strip(), reasons
    return None, []


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--out", required=True, help="sslyze's console output")
    ap.add_argument("--rc", type=int, required=True, help="sslyze's exit code")
    ap.add_argument("--target", required=True, help="host:port as sslyze displays it")
    ap.add_argument("--profile", required=True)
    ap.add_argument("--what", required=True, help="what was scanned, for the messages")
    ap.add_argument("--expect", choices=["compliant", "not-compliant"], required=True)
    ap.add_argument("--reason", default="", help="with not-compliant: the criterion expected")
    args = ap.parse_args()

    failed = 0

    def check(ok: bool, what: str) -> None:
        nonlocal failed
        print(("PASS " if ok else "FAIL ") + what)
        if not ok:
            failed += 1

    with open(args.out, errors="replace") as f:
        text = f.read()

    # --------------------------------------------------------- completeness
    problems = []
    result = None
    try:
        with open(args.json) as f:
            doc = json.load(f)
        results = doc.get("server_scan_results") or []
        if len(results) != 1:
            problems.append(f"{len(results)} server results instead of 1")
        else:
            result = results[0]
            if result.get("connectivity_status") != "COMPLETED":
                trace = (result.get("connectivity_error_trace") or "").strip().splitlines()
                problems.append(
                    f"connectivity {result.get('connectivity_status')}: {trace[-1] if trace else '?'}"
                )
            if result.get("scan_status") != "COMPLETED":
                problems.append(f"scan status {result.get('scan_status')}")
            for name, attempt in (result.get("scan_result") or {}).items():
                status = (attempt or {}).get("status")
                if status not in ("COMPLETED", "NOT_SCHEDULED"):
                    problems.append(f"{name}: {status} {attempt.get('error_reason')}")
    except (OSError, ValueError) as e:
        problems.append(f"no readable JSON: {e}")
    check(not problems, f"sslyze scanned the {args.what} completely"
          + (": " + "; ".join(problems) if problems else ""))

    if result and result.get("scan_result"):
        sr = result["scan_result"]
        for key, label in SUITE_SCANS:
            got = ((sr.get(key) or {}).get("result") or {}).get("accepted_cipher_suites") or []
            names = [s["cipher_suite"]["name"] for s in got]
            print(f"INFO {args.what}: {label}: {', '.join(names) if names else 'rejected'}")
        curves = ((sr.get("elliptic_curves") or {}).get("result") or {}).get("supported_curves") or []
        print(f"INFO {args.what}: groups sslyze knows and the server accepts: "
              f"{', '.join(c['name'] for c in curves) or 'none'}")

    # ----------------------------------------------------------- compliance
    verdict, reasons = compliance_section(text, args.target)
    reasons_text = "; ".join(reasons) if reasons else "(sslyze listed no reason)"
    if args.expect == "compliant":
        ok = args.rc == 0 and verdict is not None and "OK - Compliant." in verdict
        check(ok, f"the {args.what} is compliant with Mozilla's {args.profile} configuration"
              + ("" if ok else f": sslyze exit {args.rc}, verdict {verdict!r}, reasons: {reasons_text}"))
    else:
        ok = (
            args.rc == 1
            and verdict is not None
            and "FAILED - Not compliant." in verdict
            and any(r.startswith(f"{args.reason}:") for r in reasons)
        )
        check(ok, f"control: sslyze reports the {args.what} NOT compliant with Mozilla's "
              f"{args.profile} configuration, for {args.reason}"
              + (f" ({reasons_text})" if ok else f": sslyze exit {args.rc}, verdict {verdict!r}, reasons: {reasons_text}"))

    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
