#!/usr/bin/env bash
# `make bench`: speed of the simulator, the mock host and the plugin in real Envoy, measured side
# by side in one run and printed as ratios. It never fails on a timing: timings on a shared
# machine are noisy, so it reports them and the reference they are compared with.
#
#   1. simulator: simulated requests/s of the release ballast-sim on host-tests/bench/throughput.json
#      (with and without the module load time), against the 200,000 req/s target; determinism
#      (same seed twice -> identical JSON, another seed -> different JSON);
#   2. mock host: the raw speed of the mock host (`throughput` example, fixture plugin), and the
#      simulator's speed as a fraction of it;
#   3. Envoy: requests/s and p99 through Envoy 1.40 on loopback, without a wasm filter, with
#      ballast as shipped (envoy-config/envoy.yaml: retry budget), with ballast's concurrency
#      limiter (examples/configs/concurrency.json) and with Envoy's native adaptive_concurrency
#      (envoy-config/native-adaptive-concurrency.yaml), with wrk, plus the upstream alone. The
#      upstream is fast and unlimited, so the limiters never reject: this is their cost per
#      request.
#
# Environment: ENVOY (the envoy binary; make sets it), BENCH_SECONDS (wrk duration per run,
# default 5), BENCH_CONNECTIONS (default 2), BENCH_ROUNDS (wrk rounds, alternating, default 2).
# Every process started here runs in its own process group and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

SECONDS_PER_RUN=${BENCH_SECONDS:-5}
CONNECTIONS=${BENCH_CONNECTIONS:-2}
ROUNDS=${BENCH_ROUNDS:-2}
TARGET_RPS=200000
SIM=target/release/ballast-sim
UPSTREAM=target/release/ballast-demo-upstream
WASM=$ROOT/target/ballast.wasm
FIXTURE=$ROOT/target/wasm32-wasip1/release/ballast_fixture_plugin.wasm
SCENARIO=host-tests/bench/throughput.json
LOAD_ONLY=host-tests/bench/load-only.json

WORK=$(mktemp -d -t ballast-bench.XXXXXX)
pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${pids[@]}"; do kill -KILL "-$pid" 2>/dev/null || true; done
  echo "(logs and configs kept in $WORK)"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { printf '== %s\n' "$*" >&2; }
# Floating-point helpers (awk is everywhere; bc is not).
calc() { awk "BEGIN { printf \"%.${2:-0}f\", $1 }"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "") printf "%.2f", a / b; else printf "n/a" }'; }
now() { date +%s.%N; }

rows=()
row() { rows+=("$1|$2|$3|$4"); }

[ -f "$WASM" ] || { echo "missing $WASM: run make build" >&2; exit 2; }
[ -f "$FIXTURE" ] || { echo "missing $FIXTURE: run make fixture" >&2; exit 2; }

say "building release binaries (simulator, throughput example, demo upstream)"
# One package per invocation, as `make run` and the tests build them: building them together
# unifies features differently and recompiles shared dependencies.
cargo build --release --quiet -p ballast-sim
cargo build --release --quiet -p ballast-demo-upstream
cargo build --release --quiet -p ballast-mock-host --example throughput

# ---------------------------------------------------------------------------------------------
# 1. Simulator speed and determinism

sim_run() { # sim_run OUT.json [args...] → prints wall seconds
  local out=$1; shift
  local t0 t1
  t0=$(now)
  "$SIM" run "$SCENARIO" --wasm "$WASM" --json "$out" --quiet "$@" >/dev/null || {
    local rc=$?
    # Exit 1 only means an expectation failed; the benchmark scenario has none, but be lenient.
    [ "$rc" -eq 1 ] || { echo "ballast-sim failed (exit $rc)" >&2; exit 2; }
  }
  t1=$(now)
  calc "$t1 - $t0" 3
}
json_streams() { grep -m1 '"streams"' "$1" | tr -dc '0-9'; }

say "simulator: module load alone ($LOAD_ONLY)"
load_best=""
for _ in 1 2 3; do
  t0=$(now)
  "$SIM" run "$LOAD_ONLY" --wasm "$WASM" --quiet >/dev/null || true
  t=$(calc "$(now) - $t0" 3)
  if [ -z "$load_best" ] || awk -v a="$t" -v b="$load_best" 'BEGIN{exit !(a<b)}'; then load_best=$t; fi
done

say "simulator: $SCENARIO, seed 1 twice, then seed 2"
wall1=$(sim_run "$WORK/sim-seed1-a.json")
wall2=$(sim_run "$WORK/sim-seed1-b.json")
wall3=$(sim_run "$WORK/sim-seed2.json" --seed 2)
streams=$(json_streams "$WORK/sim-seed1-a.json")
wall=$(awk -v a="$wall1" -v b="$wall2" 'BEGIN { print (a < b ? a : b) }')
sim_rps=$(calc "$streams / $wall")
run_only=$(awk -v w="$wall" -v l="$load_best" 'BEGIN { d = w - l; print (d > 0 ? d : w) }')
sim_rps_noload=$(calc "$streams / $run_only")
same=no; cmp -s "$WORK/sim-seed1-a.json" "$WORK/sim-seed1-b.json" && same=yes
differs=no; cmp -s "$WORK/sim-seed1-a.json" "$WORK/sim-seed2.json" || differs=yes
say "simulator: $streams streams; wall ${wall1}s / ${wall2}s / ${wall3}s (seed 2); load ${load_best}s"

row "sim: simulated req/s (incl. module load, best of 2)" "$sim_rps" "$TARGET_RPS target" "$(ratio "$sim_rps" "$TARGET_RPS")"
row "sim: simulated req/s (without load ${load_best}s)" "$sim_rps_noload" "$TARGET_RPS target" "$(ratio "$sim_rps_noload" "$TARGET_RPS")"
row "sim: same seed twice -> identical JSON" "$same" "yes" "-"
row "sim: another seed -> different JSON" "$differs" "yes" "-"

# ---------------------------------------------------------------------------------------------
# 2. Mock host raw speed

say "mock host: throughput example (fixture plugin)"
raw_out=$(BALLAST_FIXTURE_WASM="$FIXTURE" target/release/examples/throughput 400000)
raw_rps=$(printf '%s\n' "$raw_out" | sed -n 's/.*: \([0-9.]*\) requests\/s.*/\1/p')
say "mock host: $raw_out"
row "mock host: raw req/s (throughput example)" "${raw_rps:-n/a}" "-" "-"
row "sim / raw mock host (simulator overhead)" "$sim_rps_noload" "${raw_rps:-n/a}" "$(ratio "$sim_rps_noload" "${raw_rps:-0}")"

# ---------------------------------------------------------------------------------------------
# 3. Envoy: no filter vs ballast, on loopback

ENVOY=${ENVOY:-$(ls .venv/lib/python3*/site-packages/envoy/_bin/envoy 2>/dev/null | head -n1 || true)}
if [ -z "$ENVOY" ] || [ ! -x "$ENVOY" ]; then
  echo "Envoy not found (run make envoy); skipping the Envoy benchmark" >&2
  ENVOY=""
fi
if ! command -v wrk >/dev/null; then
  say "installing wrk (Debian package)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; } >/dev/null 2>&1; then
    echo "cannot install wrk; skipping the Envoy benchmark" >&2
    ENVOY=""
  fi
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_ready() { # wait_ready URL PID LOG
  for _ in $(seq 1 150); do
    if curl -fs -o /dev/null "$1"; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then echo "process exited during start-up:" >&2; tail -n 20 "$3" >&2; return 1; fi
    sleep 0.2
  done
  echo "not ready after 30 s: $1" >&2; tail -n 20 "$3" >&2; return 1
}

# wrk_run URL → "rps p99_ms"
wrk_run() {
  local out rps p99
  out=$(timeout $((SECONDS_PER_RUN + 20)) wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency "$1" 2>&1) || true
  rps=$(printf '%s\n' "$out" | awk '/^Requests\/sec:/ { print $2 }')
  p99=$(printf '%s\n' "$out" | awk '$1 == "99%" {
      v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
      if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000;
      printf "%.3f", v }')
  echo "${rps:-0} ${p99:-n/a}"
}

if [ -n "$ENVOY" ]; then
  up_port=$(free_port)
  say "demo upstream on 127.0.0.1:$up_port (no service time, unlimited capacity)"
  setsid "$UPSTREAM" --listen "127.0.0.1:$up_port" >"$WORK/upstream.log" 2>&1 &
  pids+=($!)
  wait_ready "http://127.0.0.1:$up_port/__demo/health" "${pids[-1]}" "$WORK/upstream.log"

  # Envoys from the shipped configs, ports and .wasm path rewritten: ballast as shipped, ballast
  # with the concurrency example config, the ballast filter block removed (only the router
  # remains), and the native adaptive_concurrency config.
  make_config() { # make_config OUT ADMIN LISTEN WITH_FILTER(yes|no) [TEMPLATE] [PLUGIN_JSON]
    awk -v admin="$2" -v listen="$3" -v up="$up_port" -v wasm="$WASM" -v keep="$4" -v json="${6:-}" '
      replacing && ($0 ~ /^ *$/ || (match($0, /^ */) && RLENGTH > vindent)) { next }
      replacing { replacing = 0 }
      /value: \|$/ && json != "" {
        print; match($0, /^ */); vindent = RLENGTH; pad = ""; for (k = 0; k < vindent + 2; k++) pad = pad " "
        while ((getline line < json) > 0) print pad line
        replacing = 1; next }
      /^ *- name: ballast *$/ && keep == "no" { skip = 1; next }
      skip && /^ *- name: envoy\.filters\.http\.router/ { skip = 0 }
      skip { next }
      { gsub(/port_value: 9901/, "port_value: " admin)
        gsub(/port_value: 10000/, "port_value: " listen)
        gsub(/port_value: 8081/, "port_value: " up)
        gsub(/filename: target\/ballast\.wasm/, "filename: " wasm)
        print }' "${5:-envoy-config/envoy.yaml}" >"$1"
  }
  declare -A listen_port
  for variant in nofilter ballast limiter native; do
    admin=$(free_port); listen=$(free_port)
    case $variant in
      nofilter) make_config "$WORK/envoy-$variant.yaml" "$admin" "$listen" no ;;
      ballast) make_config "$WORK/envoy-$variant.yaml" "$admin" "$listen" yes ;;
      limiter) make_config "$WORK/envoy-$variant.yaml" "$admin" "$listen" yes \
                 envoy-config/envoy.yaml examples/configs/concurrency.json ;;
      native) make_config "$WORK/envoy-$variant.yaml" "$admin" "$listen" no \
                envoy-config/native-adaptive-concurrency.yaml ;;
    esac
    if [ "$variant" = nofilter ] && grep -q 'envoy.filters.http.wasm' "$WORK/envoy-$variant.yaml"; then
      echo "could not remove the wasm filter from envoy-config/envoy.yaml" >&2; exit 2
    fi
    if [ "$variant" = limiter ] && ! grep -q '"concurrency"' "$WORK/envoy-$variant.yaml"; then
      echo "could not put the concurrency config into envoy-config/envoy.yaml" >&2; exit 2
    fi
    if [ "$variant" = nofilter ] && grep -q 'envoy.filters.http.wasm' "$WORK/envoy-$variant.yaml"; then
      echo "could not remove the wasm filter from envoy-config/envoy.yaml" >&2; exit 2
    fi
    say "Envoy ($variant) on 127.0.0.1:$listen, admin $admin"
    setsid "$ENVOY" -c "$WORK/envoy-$variant.yaml" --disable-hot-restart --concurrency 2 \
      --log-level warn >"$WORK/envoy-$variant.log" 2>&1 &
    pids+=($!)
    wait_ready "http://127.0.0.1:$admin/ready" "${pids[-1]}" "$WORK/envoy-$variant.log"
    listen_port[$variant]=$listen
  done

  declare -A best_rps best_p99
  targets=(upstream nofilter ballast limiter native)
  url_of() {
    case $1 in
      upstream) echo "http://127.0.0.1:$up_port/api/hello" ;;
      *) echo "http://127.0.0.1:${listen_port[$1]}/api/hello" ;;
    esac
  }
  # Warm-up, then rounds alternating between the targets (drift hits all of them alike);
  # the best round of each counts.
  for t in "${targets[@]}"; do
    curl -fs -o /dev/null "$(url_of "$t")" || { echo "no answer from $t at $(url_of "$t")" >&2; exit 2; }
    timeout 10 wrk -t1 -c"$CONNECTIONS" -d1s "$(url_of "$t")" >/dev/null 2>&1 || true
  done
  for round in $(seq 1 "$ROUNDS"); do
    for t in "${targets[@]}"; do
      read -r rps p99 < <(wrk_run "$(url_of "$t")")
      say "wrk round $round $t: $rps req/s, p99 $p99 ms"
      if [ -z "${best_rps[$t]:-}" ] || awk -v a="$rps" -v b="${best_rps[$t]}" 'BEGIN{exit !(a>b)}'; then
        best_rps[$t]=$rps; best_p99[$t]=$p99
      fi
    done
  done
  fmt_rps() { calc "$1"; }
  row "upstream alone: req/s (p99 ${best_p99[upstream]} ms)" "$(fmt_rps "${best_rps[upstream]}")" "-" "-"
  row "Envoy, no wasm filter: req/s (p99 ${best_p99[nofilter]} ms)" "$(fmt_rps "${best_rps[nofilter]}")" "upstream alone" "$(ratio "${best_rps[nofilter]}" "${best_rps[upstream]}")"
  row "Envoy + ballast: req/s (p99 ${best_p99[ballast]} ms)" "$(fmt_rps "${best_rps[ballast]}")" "Envoy, no filter" "$(ratio "${best_rps[ballast]}" "${best_rps[nofilter]}")"
  row "Envoy + ballast: p99 ms" "${best_p99[ballast]}" "no filter: ${best_p99[nofilter]}" "$(ratio "${best_p99[ballast]}" "${best_p99[nofilter]}")"
  row "Envoy + ballast concurrency limiter: req/s (p99 ${best_p99[limiter]} ms)" "$(fmt_rps "${best_rps[limiter]}")" "Envoy, no filter" "$(ratio "${best_rps[limiter]}" "${best_rps[nofilter]}")"
  row "Envoy + native adaptive_concurrency: req/s (p99 ${best_p99[native]} ms)" "$(fmt_rps "${best_rps[native]}")" "Envoy, no filter" "$(ratio "${best_rps[native]}" "${best_rps[nofilter]}")"
  row "ballast limiter vs native adaptive_concurrency: req/s" "$(fmt_rps "${best_rps[limiter]}")" "native: $(fmt_rps "${best_rps[native]}")" "$(ratio "${best_rps[limiter]}" "${best_rps[native]}")"
fi

# ---------------------------------------------------------------------------------------------

echo
echo "ballast benchmarks ($(nproc) CPUs; wrk: ${CONNECTIONS} connections, ${SECONDS_PER_RUN}s × ${ROUNDS} rounds, best round)"
{
  echo "metric|value|reference|ratio"
  printf '%s\n' "${rows[@]}"
} | awk -F'|' '
  { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } n = NR }
  END {
    for (r = 1; r <= n; r++) {
      line = ""
      for (i = 1; i <= 4; i++) line = line sprintf(i == 1 ? "%-*s" : " | %*s", w[i], cell[r, i])
      print line
      if (r == 1) { sep = ""; for (i = 1; i <= 4; i++) { s = ""; for (k = 0; k < w[i] + (i > 1 ? 3 : 0); k++) s = s "-"; sep = sep s } print sep }
    }
  }'
