# revkit. `make test` runs the unit tests, then the integration tests against a
# real local control plane (see docs/TESTING.md); `make tools` builds that
# control plane's binaries into bin/.

GO ?= go
BIN := $(CURDIR)/bin
export REVKIT_BIN := $(BIN)

.PHONY: all test unit integration tools clean-tools

all: test

## test: unit tests, then integration tests in a loopback-only network namespace
test: unit integration

## unit: go test ./... with coverage (no control plane needed)
unit:
	$(GO) test -cover ./...

## integration: build tools if missing, run integration tests in a netns, check for leaks
integration: tools
	hack/integration.sh

## tools: build kube-apiserver, etcd, kwok, istiod, ... into bin/ (cached)
tools:
	hack/tools.sh

## clean-tools: remove bin/ (the cache in ~/.cache/revkit/tools stays)
clean-tools:
	rm -rf $(BIN)
