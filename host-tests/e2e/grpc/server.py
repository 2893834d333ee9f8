#!/usr/bin/env python3
"""A generic gRPC server for ballast's end-to-end tests: it answers /test.Echo/Call after
sleeping a configured time, and reports every call.

Why it exists: the gRPC deadline tests need a real gRPC server behind Envoy (grpcio's HTTP/2
stack, its grpc-timeout handling), one slow enough that Envoy's router times it out, and a way
for the test to tell whether a request reached it at all and with which metadata (the deadline
ballast forwarded). No protoc, no generated code: the method handler takes and returns raw bytes.

usage: server.py --port PORT [--sleep-ms MS] [--max-seconds S] [--forward TARGET]

  --port 0 lets the system choose a free port; the chosen port is reported.
  Metadata `x-sleep-ms` on a call overrides --sleep-ms for that call.
  --forward TARGET makes it an application between two proxies, one that knows nothing of
  deadlines: each call works --sleep-ms whether or not its caller still waits, then makes the
  same call to TARGET with the incoming metadata copied (gRPC's own keys aside; grpcio keeps
  `grpc-timeout` to itself), with no deadline of its own and never cancelled, and answers what
  came back (a proxy as the next hop bounds the wait: its route timeout). Its "end" event
  says "relayed CODE".

stdout, one JSON object per line, flushed:
  {"event": "listening", "port": P}
  {"event": "call", "call": N, "arrival_ms": EPOCH_MS, "method": ..., "metadata": {...},
   "time_remaining_ms": MS or null}             (as soon as a call arrives)
  {"event": "end", "call": N, "outcome": "finished" | "cancelled", "after_ms": MS}
                                                 (when its handler ends)
  {"event": "exit", "calls": N, "reason": "stdin closed" | "max seconds"}

It stops by itself: when its stdin closes (the test dropped it) or after --max-seconds
(default 60), whichever comes first. A cancelled call (the caller or Envoy gave up) stops
sleeping at once.
"""
import argparse
import json
import sys
import threading
import time
from concurrent import futures

import grpc

LOCK = threading.Lock()
CALLS = 0


def emit(obj):
    with LOCK:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


# Metadata an application does not copy: pseudo-headers and what its own gRPC library writes.
NOT_COPIED = ("te", "content-type", "user-agent", "host")


def relay(request, context, forward):
    """Makes the call to the next hop; returns (reply, outcome) and sets a failure's status."""
    copied = [
        (k, v)
        for k, v in context.invocation_metadata()
        if not k.startswith((":", "grpc-")) and k not in NOT_COPIED
    ]
    try:
        reply = forward(request, metadata=copied)
        return reply, "relayed OK"
    except grpc.RpcError as e:
        context.set_code(e.code())
        context.set_details(e.details() or "")
        return b"", "relayed " + e.code().name


def make_handler(method, default_sleep_ms, forward):
    def unary(request, context):
        global CALLS
        arrival = time.time()
        started = time.monotonic()
        with LOCK:
            CALLS += 1
            n = CALLS
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        remaining = context.time_remaining()
        emit({
            "event": "call",
            "call": n,
            "arrival_ms": round(arrival * 1000, 1),
            "method": method,
            "metadata": metadata,
            "time_remaining_ms": None if remaining is None else round(remaining * 1000, 1),
        })
        sleep_ms = int(metadata.get("x-sleep-ms", default_sleep_ms))
        if forward is not None:
            time.sleep(sleep_ms / 1000.0)  # works on, whether or not its caller still waits
            reply, outcome = relay(request, context, forward)
            emit({
                "event": "end",
                "call": n,
                "outcome": outcome,
                "after_ms": round((time.monotonic() - started) * 1000, 1),
            })
            return reply
        fail_code = metadata.get("x-fail-code")
        if fail_code is not None:
            # A failing leaf: answer at once with that status (trailers-only).
            code = next(c for c in grpc.StatusCode if c.value[0] == int(fail_code))
            emit({"event": "end", "call": n, "outcome": "failed " + code.name, "after_ms": 0.0})
            context.abort(code, "leaf failing")
        # Sleep, but wake when the call ends early (cancelled by the peer or its deadline).
        ended = threading.Event()
        context.add_callback(ended.set)
        cancelled = ended.wait(sleep_ms / 1000.0) and not context.is_active()
        emit({
            "event": "end",
            "call": n,
            "outcome": "cancelled" if cancelled else "finished",
            "after_ms": round((time.monotonic() - started) * 1000, 1),
        })
        return json.dumps({"call": n}).encode()

    return grpc.unary_unary_rpc_method_handler(unary)  # no (de)serializers: raw bytes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sleep-ms", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--forward", metavar="TARGET", help="host:port of the next hop")
    args = parser.parse_args()

    forward = None
    if args.forward:
        channel = grpc.insecure_channel(args.forward)
        forward = channel.unary_unary(
            "/test.Echo/Call",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"Call": make_handler("/test.Echo/Call", args.sleep_ms, forward)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    if port == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    server.start()
    emit({"event": "listening", "port": port})

    stop = threading.Event()
    reason = ["max seconds"]

    def watch_stdin():
        sys.stdin.read()  # returns at EOF: the test closed our stdin or went away
        reason[0] = "stdin closed"
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    stop.wait(args.max_seconds)
    server.stop(grace=0).wait(5)
    with LOCK:
        calls = CALLS
    emit({"event": "exit", "calls": calls, "reason": reason[0]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
