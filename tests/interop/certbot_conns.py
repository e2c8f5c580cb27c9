#!/usr/bin/env python3
"""Connections held open across a certificate renewal (for certbot.sh).

Opens, through portcullis, a WebSocket (wss://NAME:PORT/ws) and an
HTTP/1.1 keep-alive connection, both over TLS verified against the ACME
CA's root for NAME, exchanges a message on each, and checks that both
got the certificate with serial --expect-serial. It then writes --ready
and waits (polling, bounded by --timeout) for the file --go to appear.
After it, the same WebSocket must echo another message and the same
keep-alive connection must answer a second request: a renewal must leave
connections already open alone.

Each check is reported on stdout as `PASS <name>` or `FAIL <name>: why`;
the exit status is 0 only when every check passed.
"""

import argparse
import asyncio
import http.client
import inspect
import os
import socket
import ssl
import sys
import time

from websockets.asyncio.client import connect

failures = 0


def report(ok, name, why=""):
    global failures
    if ok:
        print(f"PASS {name}", flush=True)
    else:
        failures += 1
        print(f"FAIL {name}: {why}", flush=True)


def serial_of(ssl_object):
    """The peer certificate's serial as an int (the chain was verified)."""
    return int(ssl_object.getpeercert()["serialNumber"], 16)


class KeepAlive(http.client.HTTPConnection):
    """HTTP/1.1 over TLS to 127.0.0.1 with SNI and verification for a name;
    never reopens by itself, so a second answer proves the same connection."""

    auto_open = 0

    def __init__(self, port, name, ctx, timeout):
        super().__init__("127.0.0.1", port, timeout=timeout)
        self._name = name
        self._ctx = ctx

    def connect(self):
        super().connect()
        self.sock = self._ctx.wrap_socket(self.sock, server_hostname=self._name)

    def get(self, path):
        # The Host header names the certificate's name, not 127.0.0.1.
        self.putrequest("GET", path, skip_host=True)
        self.putheader("Host", f"{self._name}:{self.port}")
        self.endheaders()
        response = self.getresponse()
        body = response.read()
        return response, body


async def wait_for_file(path, deadline):
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True, help="portcullis TLS port")
    ap.add_argument("--name", required=True, help="the certificate's name (SNI, Host)")
    ap.add_argument("--cafile", required=True, help="the ACME CA's root, PEM")
    ap.add_argument("--expect-serial", required=True, help="hex, as openssl prints it")
    ap.add_argument("--ready", required=True, help="file written when both are open")
    ap.add_argument("--go", required=True, help="file to wait for")
    ap.add_argument("--timeout", type=float, default=90, help="overall deadline, seconds")
    args = ap.parse_args()
    deadline = time.monotonic() + args.timeout
    expect = int(args.expect_serial.split("=")[-1], 16)
    ctx = ssl.create_default_context(cafile=args.cafile)
    io_timeout = 10

    # The keep-alive connection: one request now, one after the renewal.
    http_conn = KeepAlive(args.port, args.name, ctx, io_timeout)
    http_conn.connect()
    response, body = http_conn.get("/headers")
    report(
        response.status == 200 and not response.will_close,
        "keep-alive connection: first request answered, connection kept open",
        f"status {response.status}, will_close {response.will_close}, body {body[:200]!r}",
    )
    http_sock = http_conn.sock
    got = serial_of(http_sock)
    report(
        got == expect,
        "keep-alive connection: served the issued certificate",
        f"serial {got:X}, expected {expect:X}",
    )

    # The WebSocket: one echo now, one after the renewal. No pings: the
    # tunnel stays completely idle while the certificate changes.
    kwargs = {}
    if "proxy" in inspect.signature(connect.__init__).parameters:
        kwargs["proxy"] = None  # never through an environment proxy
    ws = await connect(
        f"wss://{args.name}:{args.port}/ws",
        host="127.0.0.1",
        port=args.port,
        ssl=ctx,
        ping_interval=None,
        open_timeout=io_timeout,
        close_timeout=2,
        **kwargs,
    )
    try:
        await ws.send("before renewal")
        echo = await asyncio.wait_for(ws.recv(), io_timeout)
        report(echo == "before renewal", "websocket: echo before renewal", f"got {echo!r}")
        got = serial_of(ws.transport.get_extra_info("ssl_object"))
        report(
            got == expect,
            "websocket: served the issued certificate",
            f"serial {got:X}, expected {expect:X}",
        )

        tmp = args.ready + ".tmp"
        with open(tmp, "w") as f:
            f.write("ready\n")
        os.replace(tmp, args.ready)
        print("ready; waiting for the go file", flush=True)

        if not await wait_for_file(args.go, deadline):
            report(False, "go signal", f"{args.go} did not appear within {args.timeout:.0f}s")
            return

        try:
            await ws.send("after renewal")
            echo = await asyncio.wait_for(ws.recv(), io_timeout)
            report(
                echo == "after renewal",
                "websocket: the connection opened before the renewal still echoes",
                f"got {echo!r}",
            )
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            report(False, "websocket: the connection opened before the renewal still echoes", repr(e))
    finally:
        await ws.close()

    try:
        response, body = http_conn.get("/headers")
        report(
            response.status == 200 and http_conn.sock is http_sock,
            "keep-alive connection: the connection opened before the renewal answers again",
            f"status {response.status}, body {body[:200]!r}",
        )
    except Exception as e:  # noqa: BLE001
        report(
            False,
            "keep-alive connection: the connection opened before the renewal answers again",
            repr(e),
        )
    finally:
        http_conn.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # noqa: BLE001
        report(False, "connections", repr(e))
    sys.exit(1 if failures else 0)
