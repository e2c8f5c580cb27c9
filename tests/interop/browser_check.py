#!/usr/bin/env python3
"""Drive a running chromium over the DevTools protocol: open URL in a new
tab, wait (bounded) for the origin's test page to finish its WebSocket
exchange, and check what the page and the network saw.

    browser_check.py --profile DIR --pid PID --url URL [--timeout SECS]

DIR is chromium's --user-data-dir (started with --remote-debugging-port=0);
the DevTools endpoint is read from DIR/DevToolsActivePort. Prints one line
per check and a closing 'browser: N passed, N failed' line; exits 1 when a
check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time

from websockets.asyncio.client import connect


class Cdp:
    """A minimal CDP client: commands by id, events kept in a list."""

    def __init__(self, ws):
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future] = {}
        self.events: list[dict] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self):
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                fut = self.pending.pop(msg.get("id"), None) if "id" in msg else None
                if fut is not None and not fut.done():
                    fut.set_result(msg)
                elif "method" in msg:
                    self.events.append(msg)
        finally:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("DevTools connection closed"))

    async def call(self, method: str, params: dict | None = None,
                   session: str | None = None, timeout: float = 10) -> dict:
        mid = next(self.ids)
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        fut = asyncio.get_running_loop().create_future()
        self.pending[mid] = fut
        await self.ws.send(json.dumps(msg))
        reply = await asyncio.wait_for(fut, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})


async def devtools_url(profile: str, pid: int, deadline: float) -> str:
    path = os.path.join(profile, "DevToolsActivePort")
    while True:
        try:
            with open(path) as f:
                lines = f.read().split()
            if len(lines) >= 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        except FileNotFoundError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise SystemExit(f"browser: chromium (pid {pid}) exited before DevTools came up")
        if time.monotonic() > deadline:
            raise SystemExit(f"browser: no {path} in time")
        await asyncio.sleep(0.1)


PROBE = """JSON.stringify({
  result: window.interopResult || null,
  title: document.title,
  href: location.href,
  proto: (performance.getEntriesByType('navigation')[0] || {}).nextHopProtocol || null,
  secure: window.isSecureContext
})"""


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    deadline = time.monotonic() + args.timeout

    url = await devtools_url(args.profile, args.pid, deadline)
    async with connect(url, max_size=None, open_timeout=10) as ws:
        cdp = Cdp(ws)
        target = (await cdp.call("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await cdp.call("Target.attachToTarget",
                                  {"targetId": target, "flatten": True}))["sessionId"]
        await cdp.call("Network.enable", session=session)
        await cdp.call("Page.enable", session=session)
        nav = await cdp.call("Page.navigate", {"url": args.url}, session=session)
        nav_error = nav.get("errorText")
        if nav_error:
            print(f"browser: navigation to {args.url} failed: {nav_error}")

        state = {}
        while True:
            try:
                r = await cdp.call("Runtime.evaluate",
                                   {"expression": PROBE, "returnByValue": True},
                                   session=session, timeout=5)
                state = json.loads(r["result"]["value"])
            except (RuntimeError, asyncio.TimeoutError, KeyError, ValueError) as e:
                state = {"probe_error": str(e)}
            if (state.get("result") or {}).get("done"):
                break
            if nav_error and (state.get("href") or "").startswith("chrome-error:"):
                break  # an error page will not turn into the test page
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)

        # Network's view of the same load, for the checks and for diagnosis.
        doc_proto = None
        failures, ws_events, ws_status = [], [], None
        for ev in cdp.events:
            m, p = ev["method"], ev.get("params", {})
            if m == "Network.responseReceived" and p.get("type") == "Document":
                doc_proto = p["response"].get("protocol")
            elif m == "Network.loadingFailed":
                failures.append(f"{p.get('type')}: {p.get('errorText')}")
            elif m.startswith("Network.webSocket"):
                ws_events.append(m.removeprefix("Network.webSocket"))
                if m == "Network.webSocketHandshakeResponseReceived":
                    ws_status = p.get("response", {}).get("status")
        try:
            await cdp.call("Browser.close", timeout=5)
        except Exception:
            pass  # the caller kills the browser anyway

    result = state.get("result") or {}
    print(f"browser: page {state.get('href')!r} title {state.get('title')!r}; "
          f"navigation nextHopProtocol {state.get('proto')!r}, "
          f"Network protocol {doc_proto!r}")
    if failures:
        print("browser: failed loads: " + "; ".join(failures))
    if ws_events:
        print("browser: WebSocket events: " + " ".join(ws_events))
    if ws_status is not None:
        how = {101: "HTTP/1.1 Upgrade", 200: "extended CONNECT over h2"}.get(ws_status, "?")
        print(f"browser: WebSocket handshake status {ws_status} ({how})")
    if result.get("error"):
        print(f"browser: page reported: {result['error']}")
    if "probe_error" in state:
        print(f"browser: last probe error: {state['probe_error']}")

    checks = [
        ("page loaded from the proxy", (state.get("href") or "").startswith(args.url)),
        ("secure context (TLS trusted through the NSS database)", state.get("secure") is True),
        ("page arrived over h2", state.get("proto") == "h2"),
        ("page finished its WebSocket exchange in time", bool(result.get("done"))),
        ("text message echoed over wss", result.get("text") is True),
        ("binary message echoed over wss", result.get("binary") is True),
    ]
    failed = 0
    for name, ok in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
        failed += not ok
    print(f"browser: {len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
