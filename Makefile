# The whole test suite: installs what the tests need (as root, with apt-get),
# then runs every test. CI runs exactly this (see .ci/run).
.PHONY: test deps build demo bench
GO ?= go

# Prints how long it took at the end (about 15 to 25 minutes on 2 cores,
# plus a few minutes for the packages on a fresh machine).
test: deps
	@start=$$(date +%s); \
	$(GO) vet ./... && $(GO) test -count=1 -timeout 60m ./...; rc=$$?; \
	echo "test suite: exit $$rc after $$(( $$(date +%s) - start ))s"; exit $$rc

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
