# The whole test suite: installs what the tests need (as root, with apt-get),
# then runs every test. CI runs exactly this (see .ci/run).
.PHONY: test deps build agents demo bench
GO ?= go

# Prints how long it took at the end (about 15 to 25 minutes on 2 cores,
# plus a few minutes for the packages on a fresh machine).
test: deps
	@start=$$(date +%s); \
	$(GO) vet ./... && $(GO) test -count=1 -timeout 60m ./...; rc=$$?; \
	echo "test suite: exit $$rc after $$(( $$(date +%s) - start ))s"; exit $$rc

deps:
	sh test/install-deps.sh

# Static: the daemon copies its own binary to hosts as their agent.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o bin/driftless ./cmd/driftless

# Agent binaries for hosts of either architecture (agent.binaries).
agents:
	for arch in amd64 arm64; do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags "-s -w" -o bin/agents/driftless-linux-$$arch ./cmd/driftless || exit 1; \
	done

demo:
	$(GO) run ./cmd/driftless demo

# Every benchmark of the project (speed and memory goals are checked here,
# never by timed unit tests).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
