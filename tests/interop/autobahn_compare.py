#!/usr/bin/env python3
"""Run Autobahn WebSocket cases (via kosoku) against two endpoints and
compare the verdicts case by case.

    autobahn_compare.py --direct ws://A/ws --proxied ws://B/ws \
        [--case '1.*' ...] [--exclude ID ...] [--outdir DIR] [--timeout SECS]

Exits 1 when any case's verdict (behavior, close behavior) differs between
the two runs, when the direct baseline itself does not pass a case, or
when a run does not finish in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

import kosoku

GROUPS = [f"{g}.*" for g in (1, 2, 3, 4, 5, 6, 7, 9, 10)]  # there is no group 8


async def run(url: str, cases: list[str], exclude: list[str], timeout: float):
    """Return {case_id: result} for one endpoint."""
    try:
        results = await asyncio.wait_for(
            kosoku.run_fuzzingclient(url, cases, exclude or None, concurrency=1), timeout
        )
    except kosoku.FailureError as failure:
        results = failure.results
    return {r.case_id: r for r in results}


def verdict(r) -> tuple[str, str]:
    return (r.behavior.value, r.behavior_close.value)


def summary(r) -> dict:
    return {
        "behavior": r.behavior.value,
        "behaviorClose": r.behavior_close.value,
        "passed": r.passed,
        "remoteCloseCode": r.remote_close_code,
        "durationMs": r.duration,
        "result": r.result,
        "resultClose": r.result_close,
    }


def case_key(case_id: str) -> list[int]:
    return [int(p) for p in case_id.split(".")]


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--direct", required=True, help="ws:// URL of the echo server itself")
    ap.add_argument("--proxied", required=True, help="ws:// URL reaching it through the proxy")
    ap.add_argument("--case", action="append", help="case id or glob (default: groups 1-10)")
    ap.add_argument("--exclude", action="append", default=[], help="case id or glob to skip")
    ap.add_argument("--outdir", help="write verdicts as JSON (and kosoku's reports) here")
    ap.add_argument("--timeout", type=float, default=900, help="seconds allowed per run")
    args = ap.parse_args()
    cases = args.case or GROUPS

    runs = {}
    for name, url in (("direct", args.direct), ("proxied", args.proxied)):
        start = time.monotonic()
        try:
            runs[name] = await run(url, cases, args.exclude, args.timeout)
        except asyncio.TimeoutError:
            print(f"autobahn: the {name} run ({url}) did not finish in {args.timeout:.0f}s",
                  file=sys.stderr)
            return 1
        took = time.monotonic() - start
        passed = sum(1 for r in runs[name].values() if r.passed)
        print(f"autobahn: {name:8} {url}: {len(runs[name])} cases, {passed} pass, "
              f"{took:.1f}s", flush=True)

    direct, proxied = runs["direct"], runs["proxied"]
    ids = sorted(set(direct) | set(proxied), key=case_key)
    differ, baseline_bad = [], []
    for cid in ids:
        d, p = direct.get(cid), proxied.get(cid)
        if d is None or p is None or verdict(d) != verdict(p):
            differ.append(cid)
        if d is not None and not d.passed:
            baseline_bad.append(cid)

    for cid in differ:
        d, p = direct.get(cid), proxied.get(cid)
        dv = "/".join(verdict(d)) if d else "missing"
        pv = "/".join(verdict(p)) if p else "missing"
        print(f"  DIFFERS {cid}: direct {dv}, proxied {pv}", file=sys.stderr)
        if p is not None:
            print(f"    proxied: {p.result} | {p.result_close} "
                  f"(close code {p.remote_close_code})", file=sys.stderr)
            print(f"    {p.description.strip()[:200]}", file=sys.stderr)
    for cid in baseline_bad:
        d = direct[cid]
        print(f"  BASELINE {cid} does not pass directly: {'/'.join(verdict(d))}: "
              f"{d.result} | {d.result_close}", file=sys.stderr)

    if args.outdir:
        os.makedirs(args.outdir, exist_ok=True)
        with open(os.path.join(args.outdir, "verdicts.json"), "w") as f:
            json.dump({cid: {"direct": summary(direct[cid]) if cid in direct else None,
                             "proxied": summary(proxied[cid]) if cid in proxied else None}
                       for cid in ids}, f, indent=1)
        try:  # kosoku's HTML/JSON reports, for a closer look at a failure
            from kosoku._report import write_reports
            write_reports(list(direct.values()), os.path.join(args.outdir, "direct"))
            write_reports(list(proxied.values()), os.path.join(args.outdir, "proxied"))
        except Exception as e:  # reports are a convenience only
            print(f"autobahn: could not write kosoku reports: {e}", file=sys.stderr)

    nonok = {}
    for r in proxied.values():
        v = "/".join(verdict(r))
        if v != "OK/OK":
            nonok[v] = nonok.get(v, 0) + 1
    if nonok:
        print("autobahn: proxied verdicts other than OK/OK: "
              + ", ".join(f"{k} x{n}" for k, n in sorted(nonok.items())))
    same = len(ids) - len(differ)
    bad = len(set(differ) | set(baseline_bad))
    print(f"autobahn: {len(ids)} cases, {same} same through the proxy, {len(differ)} differ, "
          f"{len(baseline_bad)} baseline failures")
    print(f"autobahn: {len(ids) - bad} passed, {bad} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
