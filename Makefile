# revkit. `make demo` runs the canary-upgrade example end to end on a local
# control plane; `make test` runs the unit tests, then the integration tests
# against that control plane (see docs/TESTING.md); `make tools` builds its
# binaries into bin/.

GO ?= go
BIN := $(CURDIR)/bin
export REVKIT_BIN := $(BIN)

# The library is the root module. The local control plane (internal/testenv),
# the tests that need it (internal/e2e), the benchmark and the examples are
# modules of their own, so their dependencies (gRPC, Envoy's API, ...) stay
# out of what a user of the library inherits. tools/ holds the tool builds.
MODULES := . internal/testenv internal/e2e bench examples

.PHONY: all demo test unit integration tools clean-tools prereqs plan fresh-check fresh-check-quick

all: test

## demo: build what is missing, then upgrade a demo mesh on a local control plane
##       from the old Istio version (its charts) to the new one
##       (in a loopback-only network namespace) with examples/canary-upgrade
demo: prereqs tools
	cd examples && $(GO) build -o $(BIN)/canary-upgrade ./canary-upgrade
	hack/netns-run.sh $(BIN)/canary-upgrade $(DEMO_ARGS)

## test: unit tests, then integration tests in a loopback-only network namespace
test: prereqs plan unit integration

## unit: go test ./... with coverage in each module (no control plane needed)
unit:
	@set -e; for m in $(MODULES); do echo "unit: $$m"; (cd $$m && $(GO) test -cover ./...); done

## integration: build tools if missing, run integration tests in a netns, check for leaks
integration: prereqs tools
	hack/integration.sh

## tools: build kube-apiserver, etcd, kwok, two istiods (old and new Istio), istioctl,
##        ... and both versions' charts into bin/ (cached)
tools:
	hack/tools.sh

## prereqs: check (and where it can, install) what the machine needs: Go, root
##          for a network namespace, ip, unshare, flock, writable caches
prereqs:
	@hack/prereqs.sh

## plan: say what a cold run is about to download and build, and how long it takes
plan:
	@hack/tools.sh --plan

## fresh-check: clone the committed tree into a temporary folder and run the
##              README's two commands there with empty Go, tools and HOME caches
fresh-check:
	hack/fresh-check.sh

## fresh-check-quick: the cheap part of that check, run by .ci/run: the tool
##                    step's data step and module queries against an empty module cache
fresh-check-quick:
	hack/fresh-check.sh --quick

## clean-tools: remove bin/ (the cache in ~/.cache/revkit/tools stays)
clean-tools:
	rm -rf $(BIN)

## bench: migrate a KWOK fleet old→new three ways (revkit, kubectl loop, floor)
##        under cluster profiles a, b, c; BENCH_ARGS e.g. "-namespaces=1000 -profiles=b"
##        (see docs/BENCHMARKS.md)
.PHONY: bench
bench: tools
	cd bench && $(GO) build -o $(BIN)/bench .
	hack/netns-run.sh $(BIN)/bench $(BENCH_ARGS)

## bench-chart: draw docs/bench-fleet.png from bench JSON results (BENCH_JSON="bin/bench-results/...json ...")
.PHONY: bench-chart
bench-chart:
	cd tools/chart && $(GO) run . -o ../../docs/bench-fleet.png $(abspath $(BENCH_JSON))
