# Provisor: the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     := bin/provisor
# Tests of every package; one run stays under 15 minutes on 2 cores.
TESTFLAGS ?= -count=1 -timeout 14m

.PHONY: build run test test-race bench bench-logs vet fmt clean

build:
	$(GO) build -o $(BIN) ./cmd/provisor

## run: start Provisor on the embedded SQLite database (./data) with demo data
run: build
	./$(BIN) serve --demo

## test: the whole test suite, on SQLite and on PostgreSQL (127.0.0.1:5432)
test:
	$(GO) test $(TESTFLAGS) ./...

## test-race: the packages whose code runs concurrently, under the race detector (CI runs it after test)
# Whole packages where workers, pools and transactions meet; of access and app/api only the
# tests that send concurrent requests (the others are single-request scenarios, and bcrypt is slow under
# -race). TestLongSetRunsInSlicesWithinTheRescueDelay is left out: with a 2 s rescue delay and a 200 ms
# job timeout it needs more speed than the race detector leaves on 2 cores. TestAuthorizationMatrix sends its
# few thousand requests one at a time: nothing for the race detector, and 40 s under it instead of 2.
RACE_PKGS     := ./app/ ./database/ ./notifier/ ./requests/ ./tasks/ ./identities/ ./connectors/ ./connectors/builtin/
RACE_FILTERED := ./access/ ./app/api/
RACE_RUN      := TestSignInSlowDownUnderParallelAttempts|TestBurstOfSubmissionsAndTriggers
test-race:
	$(GO) test -race $(TESTFLAGS) -skip 'TestLongSetRunsInSlicesWithinTheRescueDelay|TestAuthorizationMatrix' $(RACE_PKGS)
	$(GO) test -race $(TESTFLAGS) -run '$(RACE_RUN)' $(RACE_FILTERED)

## bench-logs: provisioning log search and CSV download on 10,000,000 entries (PostgreSQL) and 1,000,000 (SQLite)
bench-logs:
	PROVISOR_BENCH_LOG_ROWS=10000000 PROVISOR_BENCH_LOG_DIALECT=postgres $(GO) test -count=1 -timeout 60m -v -run XXX -bench LogSearchAndExport -benchtime 1x ./provlog/
	PROVISOR_BENCH_LOG_ROWS=1000000 PROVISOR_BENCH_LOG_DIALECT=sqlite $(GO) test -count=1 -timeout 60m -v -run XXX -bench LogSearchAndExport -benchtime 1x ./provlog/

## bench: throughput and latency on PostgreSQL and SQLite (see BENCHMARKS.md)
bench: build
	./$(BIN) bench
	# Portal speed: Connector Jobs page and tasks grid on 100,000 runs, 1,000,000 jobs, 10,000 tasks (BENCHMARKS.md).
	./$(BIN) bench portal
	# API burst: 1,000 submissions from 50 concurrent clients, answer times and errors (BENCHMARKS.md).
	./$(BIN) bench burst
	# Completion emails: the outbox against go-mail sending directly (BENCHMARKS.md).
	$(GO) test -run XXX -bench Outbox -benchtime 3x ./notifier/
	# LDAP connector: grants through Provisor against raw go-ldap, and a 10,000-user import (BENCHMARKS.md).
	$(GO) test -run '^$$' -bench LDAP -benchtime 1x -timeout 30m ./connectors/ldap/

## vet: go vet, staticcheck (a tool of the module: go.mod pins its version) and gofmt
vet:
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	@test -z "$$(gofmt -l .)" || (gofmt -l .; exit 1)

clean:
	rm -rf bin
