#!/usr/bin/env bash
# `make run`: the demo upstream on 127.0.0.1:8081 and Envoy with ballast on 127.0.0.1:10000,
# in the foreground until Ctrl-C; every process started here is stopped on the way out.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${ENVOY:?ENVOY must point at the envoy binary (make run sets it)}"
UPSTREAM=target/release/ballast-demo-upstream
LOGDIR=$(mktemp -d -t ballast-run.XXXXXX)
pids=()

cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${pids[@]}"; do kill -KILL "-$pid" 2>/dev/null || true; done
  echo "stopped (logs kept in $LOGDIR)"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for port in 8081 9901 10000; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port 127.0.0.1:$port is already in use; stop whatever holds it and retry" >&2
    exit 1
  fi
done

# setsid: each service gets its own process group, so cleanup reaches all of it.
setsid "$UPSTREAM" --listen 127.0.0.1:8081 --capacity 64 --service-time-ms 5 \
  >"$LOGDIR/upstream.log" 2>&1 &
pids+=($!)
setsid "$ENVOY" -c envoy-config/envoy.yaml --disable-hot-restart --concurrency 2 \
  --log-level info >"$LOGDIR/envoy.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  if curl -fs -o /dev/null http://127.0.0.1:9901/ready; then break; fi
  if ! kill -0 "${pids[1]}" 2>/dev/null; then
    echo "Envoy exited during start-up:" >&2; tail -n 20 "$LOGDIR/envoy.log" >&2; exit 1
  fi
  sleep 0.2
done
curl -fs -o /dev/null http://127.0.0.1:9901/ready || { echo "Envoy not ready after 20 s" >&2; tail -n 20 "$LOGDIR/envoy.log" >&2; exit 1; }
curl -fs -o /dev/null http://127.0.0.1:8081/__demo/health || { echo "demo upstream not answering on 127.0.0.1:8081" >&2; tail -n 20 "$LOGDIR/upstream.log" >&2; exit 1; }

cat <<MSG

ballast is running: Envoy on 127.0.0.1:10000 → demo upstream on 127.0.0.1:8081

  curl -s http://127.0.0.1:10000/api/hello        # routed to policy set "api" (echoes the headers it saw)
  curl -s http://127.0.0.1:10000/anything         # default policy set "web"
  curl -s http://127.0.0.1:9901/stats/prometheus | grep ballast_
  curl -s http://127.0.0.1:8081/__demo/stats      # what the upstream counted

Logs: $LOGDIR   Press Ctrl-C to stop.
MSG

wait -n "${pids[@]}" || true
echo "a process exited; shutting down" >&2
