# SecuMon Collector. `make serve` and `make test` install whatever is missing first (scripts/setup.sh).
SHELL := /bin/bash
BUN := $(CURDIR)/.tools/bun
export PATH := $(CURDIR)/.tools:$(CURDIR)/node_modules/.bin:$(PATH)
# Bun's allocator (mimalloc) hands freed memory back to the kernel within milliseconds by default: every argon2 hash
# (19 MiB) and every telemetry batch's buffers were then page-faulted in again. One second keeps them
# (docs/api.md, docs/telemetry-path.md); the appliance unit and the container image set the same.
export MIMALLOC_PURGE_DELAY ?= 1000

.PHONY: setup gen serve test test-only lint typecheck fmt build vendor clean bench-startup help

help:
	@echo "make serve | test | build | bench-startup | lint | typecheck | fmt | clean"

setup:
	@scripts/setup.sh

vendor: setup

gen: setup
	@$(BUN) scripts/gen-embeds.ts

## serve: run the collector from source on its embedded defaults (data in ./data, HTTP on 127.0.0.1:8080)
serve: gen
	$(BUN) src/main.ts serve $(ARGS)

## test: format/lint, type-check, build the binary, then the whole test suite
test: gen lint typecheck build
	@scripts/test.sh $(TESTS)

## test-only: the suite without lint/typecheck/build (quick iterations)
test-only: gen
	@scripts/test.sh $(TESTS)

lint: gen
	@biome check .

typecheck: gen
	@tsc --noEmit -p tsconfig.json

fmt: gen
	@biome check --write .

## build: the single executable dist/secumon-collector (nats-server, wireguard-go and migrations embedded)
build: gen
	@mkdir -p dist
	@$(BUN) build --compile --minify --bytecode --format=esm --sourcemap=none src/main.ts --outfile dist/secumon-collector 2>&1 | grep -v '^\s*$$' | tail -3
	@ls -la dist/secumon-collector | awk '{printf "{\"level\":\"info\",\"msg\":\"built dist/secumon-collector (%.1f MiB)\"}\n", $$5/1048576}'

bench-startup: build
	@$(BUN) bench/startup.ts

clean:
	rm -rf dist data .tmp

## bench-wireguard: WireGuard enrollment rate, cold apply of PEERS peers, reconcile and live-change latency (root, netns)
bench-wireguard: gen
	@PEERS=$(or $(PEERS),1000) $(BUN) bench/wireguard.ts

## bench-gateway: STREAMS concurrent agent streams (gateway RSS) and lz4 batch throughput into JetStream (AGENTS, SECONDS, INFLIGHT per agent, SYNC_INTERVAL=always|2m for nats-server)
bench-gateway: gen
	@STREAMS=$(or $(STREAMS),1000) AGENTS=$(or $(AGENTS),32) SECONDS=$(or $(SECONDS),15) INFLIGHT=$(or $(INFLIGHT),8) SYNC_INTERVAL=$(or $(SYNC_INTERVAL),always) $(BUN) bench/gateway.ts

## soak-gateway: 10,000 bad-token enrollments against one gateway (the suite runs 300)
soak-gateway: gen
	@BAD_TOKENS=10000 scripts/test.sh test/gateway/gateway.test.ts -t "bad-token"

## image: the appliance's VM disk (raw, qcow2) and live ISO under dist/image (root; Debian's packages; minutes)
image: build
	@appliance/build

## image-test: the appliance smoke test under qemu (TCG): boots, setup, a simulated agent, reboot, backup restored into a fresh copy, live ISO (~15 min; not in make test; run it under flock /tmp/secumon-bench.lock)
image-test:
	@appliance/boot-test
## image-boot-test: the same (its former name)
image-boot-test: image-test
.PHONY: image image-boot-test image-test

## bench-alerting: 2,000 rules × 20,000 series evaluation time, and alert latency (row committed → webhook) at a 1 s interval
bench-alerting: gen
	@$(BUN) bench/alerting.ts

.PHONY: bench-ingest soak-ingest

## bench-ingest: end-to-end ingest (simulator → gateway → JetStream → workers → PostgreSQL) vs raw COPY (issue #4)
bench-ingest: gen
	@$(BUN) bench/ingest.ts

## soak-ingest: the ingestion fault scenario with minute-long outages (kill -9, NATS restart, PostgreSQL down, full stream)
soak-ingest: gen
	@SECUMON_TEST_SOAK=1 scripts/test.sh test/ingestion/faults.test.ts

.PHONY: bench-api
## bench-api: API latency under 20 concurrent clients with 200 agents × 30 days of 1-minute metrics, load from wrk (AGENTS, DAYS, CLIENTS, DURATION, PHASES, LOAD=fetch, BENCH_DATABASE_URL, CPU_PROF=<dir>)
bench-api: gen
	@command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null 2>&1 || echo '{"level":"warn","msg":"wrk is not installed (apt-get install wrk): bench-api measures with the Bun fetch loop"}'
	@AGENTS=$(or $(AGENTS),200) DAYS=$(or $(DAYS),30) CLIENTS=$(or $(CLIENTS),20) $(BUN) $(if $(CPU_PROF),--cpu-prof --cpu-prof-md --cpu-prof-dir=$(CPU_PROF)) bench/api.ts

.PHONY: bench-pool
## bench-pool: µs per pooled statement over 500,000 statements (does the pool's cost grow as the process ages?) (POOL, ROUNDS, PER_ROUND)
bench-pool: gen
	@$(BUN) bench/pool.ts

.PHONY: bench-protocol
## bench-protocol: µs per 500-sample metrics batch of the strict wire check (validatePayload) and of decodePayload (ITERATIONS, ROUNDS)
bench-protocol:
	@ITERATIONS=$(or $(ITERATIONS),4000) ROUNDS=$(or $(ROUNDS),5) $(BUN) bench/protocol.ts
