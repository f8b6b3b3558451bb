# Avocet build, test and benchmark targets. Run `make help` for a list.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build
MAKEFLAGS += --no-builtin-rules

GO        ?= go
BIN       ?= bin
PKGS      := ./...
FUZZTIME  ?= 30s
BENCHTIME ?= 1s

.PHONY: help build run test bench bench-compare bench-cluster fuzz e2e lint clean

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed 's/^## //'

## build: compile every command into ./bin
build:
	$(GO) build -o $(BIN)/ ./cmd/...

## run: start a broker on the embedded defaults
run:
	$(GO) run ./cmd/avocet

## test: go vet, every test with the race detector (tests needing outside programs skip), the allocation tests without it, and every benchmark once
test:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 $(PKGS)
	$(GO) test -count=1 -run 'Allocate' $(PKGS)
	@echo '$(GO) test -count=1 -run "^$$" -bench . -benchtime 1x $(PKGS)  (output shown on failure)'
	@out=$$(mktemp); $(GO) test -count=1 -run '^$$' -bench . -benchtime 1x $(PKGS) >$$out 2>&1 \
	  || { cat $$out; rm -f $$out; exit 1; }; rm -f $$out

## bench: run every benchmark with allocation counts
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

## bench-compare: Avocet against Mosquitto and Mochi MQTT with avocet-bench, side by side (env ROUNDS, DURATION, SCENARIOS, QOS, BROKERS, OUT)
bench-compare:
	GO=$(GO) ./scripts/bench-compare

## bench-cluster: cross-node throughput and latency of a 3-node cluster on loopback next to a single node, with avocet-bench (env ROUNDS, DURATION, OUT)
bench-cluster:
	GO=$(GO) BIN=$(BIN) ./scripts/bench-cluster

## fuzz: run every fuzz target for FUZZTIME each
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$target for $(FUZZTIME)"; \
	    $(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## e2e: install outside programs (Mosquitto, Chromium) and run the tests that need them
e2e:
	./.ci/install-e2e
	AVOCET_E2E=1 $(GO) test -race -count=1 -run 'E2E' $(PKGS)

## lint: check formatting and vet, changing nothing
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

## clean: remove build output and test caches
clean:
	rm -rf $(BIN)
	$(GO) clean -testcache
