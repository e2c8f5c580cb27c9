"""The NATS client side of tests/interop/nats.sh: nats-py through portcullis.

Each subcommand connects as a real client would and exits 0 when what it
checks holds, printing one line per step; otherwise it prints why and
exits 1.

  pubsub URL       publish/subscribe, request/reply and a 1 MiB payload,
                   on one connection (TLS verified against --ca for the
                   name localhost; --tls-first for the TLS-first handshake;
                   --cert/--key to present a client certificate)
  refused URL      the connection must fail (an mTLS stream without a
                   client certificate)
  renewal URL      as pubsub, then writes --ready, waits for --renewed to
                   exist, and checks the same connection still works with
                   no reconnect
  idle URL         connects with pings far apart and expects the
                   connection to be closed by the proxy within --within s
"""

import argparse
import asyncio
import os
import ssl
import sys
import time

import nats
from nats.errors import NoServersError


def context(args):
    ctx = ssl.create_default_context(cafile=args.ca)
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    return ctx


async def connect(args, **options):
    return await nats.connect(
        servers=[args.url],
        tls=context(args),
        tls_hostname="localhost",
        tls_handshake_first=args.tls_first,
        allow_reconnect=False,
        connect_timeout=10,
        **options,
    )


async def exercise(nc, tag):
    """Publish/subscribe, request/reply and 1 MiB both ways on `nc`."""
    got = asyncio.get_running_loop().create_future()

    async def on_message(msg):
        if not got.done():
            got.set_result(msg.data)

    sub = await nc.subscribe(f"interop.{tag}", cb=on_message)
    await nc.flush()
    await nc.publish(f"interop.{tag}", b"hello " + tag.encode())
    data = await asyncio.wait_for(got, 10)
    assert data == b"hello " + tag.encode(), data
    await sub.unsubscribe()
    print(f"{tag}: publish/subscribe ok")

    async def responder(msg):
        await msg.respond(msg.data[::-1])

    service = await nc.subscribe(f"interop.{tag}.service", cb=responder)
    await nc.flush()
    reply = await nc.request(f"interop.{tag}.service", b"ping-pong", timeout=10)
    assert reply.data == b"gnop-gnip", reply.data
    print(f"{tag}: request/reply ok")

    payload = os.urandom(1 << 20)
    reply = await nc.request(f"interop.{tag}.service", payload, timeout=20)
    assert reply.data == payload[::-1], "the 1 MiB reply differs"
    print(f"{tag}: 1 MiB payload both ways ok")
    await service.unsubscribe()


async def pubsub(args):
    nc = await connect(args)
    if not args.url.startswith("ws"):
        # Over a WebSocket the TLS is the HTTP listener's, not NATS's.
        info = nc._server_info
        assert info.get("tls_required") is True, info
    await exercise(nc, "tls-first" if args.tls_first else "default")
    await nc.close()


async def refused(args):
    try:
        nc = await connect(args)
    except (NoServersError, ssl.SSLError, ConnectionError, OSError, asyncio.TimeoutError) as e:
        print(f"refused as expected: {type(e).__name__}: {e}")
        return
    try:
        # TLS 1.3: the refusal may arrive only after the handshake.
        await nc.flush(timeout=5)
    except Exception as e:
        print(f"refused after the handshake as expected: {type(e).__name__}: {e}")
        return
    finally:
        await nc.close()
    raise AssertionError("the connection worked without a client certificate")


async def renewal(args):
    reconnects = []

    async def on_reconnect():
        reconnects.append(1)

    nc = await connect(args, reconnected_cb=on_reconnect)
    await exercise(nc, "before-renewal")
    open(args.ready, "w").close()
    deadline = time.monotonic() + 90
    while not os.path.exists(args.renewed):
        assert time.monotonic() < deadline, "no renewal signalled"
        await asyncio.sleep(0.1)
    await exercise(nc, "after-renewal")
    assert nc.is_connected and not reconnects, "the connection did not stay up"
    print("the connection stayed up across the renewal")
    await nc.close()


async def idle(args):
    closed = asyncio.get_running_loop().create_future()

    async def on_disconnect():
        if not closed.done():
            closed.set_result(time.monotonic())

    start = time.monotonic()
    nc = await connect(args, ping_interval=600, disconnected_cb=on_disconnect)
    await nc.flush()
    await asyncio.wait_for(closed, args.within)
    print(f"closed by the proxy after {time.monotonic() - start:.1f}s of quiet")
    await nc.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["pubsub", "refused", "renewal", "idle"])
    parser.add_argument("url")
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--tls-first", action="store_true")
    parser.add_argument("--ready")
    parser.add_argument("--renewed")
    parser.add_argument("--within", type=float, default=15)
    args = parser.parse_args()
    try:
        asyncio.run(globals()[args.mode](args))
    except Exception as e:  # every failure is reported the same way
        print(f"FAILED: {type(e).__name__}: {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
