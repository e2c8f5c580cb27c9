#!/bin/sh
# Entrypoint of the echo server stand-in (standins.Containerfile): the test
# origin, HTTP on 8080 and a WebSocket echo on 9222, whatever PORT says, so
# the same image serves the compose services `app` and `ws`. As PID 1 the
# origin would ignore SIGTERM; this shell passes it on and exits 0.
origin --http 0.0.0.0:8080 --ws 0.0.0.0:9222 --threads 1 &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM INT
wait "$pid"
