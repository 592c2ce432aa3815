# The whole test suite: installs what the tests need (as root, with apt-get),
# then runs every test. CI runs exactly this (see .ci/run).
.PHONY: test deps build demo bench
GO ?= go

test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 60m ./...

deps:
	sh test/install-deps.sh

build:
	$(GO) build -o bin/driftless ./cmd/driftless

demo:
	$(GO) run ./cmd/driftless demo

# Every benchmark of the project (speed and memory goals are checked here,
# never by timed unit tests).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
