#!/usr/bin/env python3
"""A generic gRPC unary client for ballast's end-to-end tests: N calls to /test.Echo/Call with
a given timeout and metadata, one JSON line per call.

Why it exists: what a gRPC caller sees (status code, message, when) is decided by a real gRPC
library, not by raw HTTP/2 frames: grpcio sends its deadline as `grpc-timeout`, runs its own
timer, and maps whatever Envoy answers to a status. The tests compare that against ballast's
promise (DEADLINE_EXCEEDED, not UNAVAILABLE, for a spent deadline). No protoc: requests and
responses are raw bytes.

usage: client.py TARGET --timeout-ms MS [--calls N] [--pause-ms MS] [--metadata KEY=VALUE ...]
                 [--deadline-metadata KEY]

  --deadline-metadata KEY: each call also carries KEY = its own deadline in Unix epoch
  milliseconds (send time + --timeout-ms), so a server further down a chain can tell whether it
  started the call after its caller had given up (grpcio's own deadline does not survive an
  application that does not pass it on).

stdout, one JSON object per call, flushed:
  {"call": I, "code": "DEADLINE_EXCEEDED", "code_number": 4, "details": "...",
   "elapsed_ms": 150.2, "trailing": {"key": "value", ...}}
or, if the channel cannot connect within 5 s, one line {"error": "..."} and exit status 1.

Bounded: every call has its timeout (at most 30 s), at most 100 calls, and the channel is
connected (up to 5 s) before the first call so that connecting does not eat a call's deadline.
"""
import argparse
import json
import sys
import time

import grpc


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("target", help="host:port, e.g. 127.0.0.1:10000")
    parser.add_argument("--timeout-ms", type=float, required=True)
    parser.add_argument("--calls", type=int, default=1)
    parser.add_argument("--pause-ms", type=float, default=0.0, help="between calls")
    parser.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--deadline-metadata", metavar="KEY")
    args = parser.parse_args()
    if not 0 < args.timeout_ms <= 30_000 or not 0 < args.calls <= 100:
        parser.error("--timeout-ms must be in (0, 30000] and --calls in 1..100")
    metadata = [tuple(kv.split("=", 1)) for kv in args.metadata]

    with grpc.insecure_channel(args.target) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=5)
        except grpc.FutureTimeoutError:
            print(json.dumps({"error": f"cannot connect to {args.target} in 5 s"}), flush=True)
            return 1
        call = channel.unary_unary(
            "/test.Echo/Call",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        for i in range(args.calls):
            if i and args.pause_ms:
                time.sleep(args.pause_ms / 1000.0)
            started = time.monotonic()
            sent = metadata
            if args.deadline_metadata:
                deadline_ms = int(time.time() * 1000 + args.timeout_ms)
                sent = metadata + [(args.deadline_metadata, str(deadline_ms))]
            try:
                _, outcome = call.with_call(
                    b"ping", timeout=args.timeout_ms / 1000.0, metadata=sent
                )
                code, details = outcome.code(), outcome.details() or ""
                trailing = outcome.trailing_metadata() or ()
            except grpc.RpcError as e:
                code, details = e.code(), e.details() or ""
                trailing = e.trailing_metadata() or ()
            elapsed = (time.monotonic() - started) * 1000
            print(json.dumps({
                "call": i,
                "code": code.name,
                "code_number": code.value[0],
                "details": details,
                "elapsed_ms": round(elapsed, 1),
                "trailing": {k: v for k, v in trailing if isinstance(v, str)},
            }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
