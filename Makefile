# Provisor: the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     := bin/provisor
# Tests of every package; one run stays under 15 minutes on 2 cores.
TESTFLAGS ?= -count=1 -timeout 14m

.PHONY: build run test bench vet fmt clean

build:
	$(GO) build -o $(BIN) ./cmd/provisor

## run: start Provisor on the embedded SQLite database (./data) with demo data
run: build
	./$(BIN) serve --demo

## test: the whole test suite, on SQLite and on PostgreSQL (127.0.0.1:5432)
test:
	$(GO) test $(TESTFLAGS) ./...

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

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || (gofmt -l .; exit 1)

clean:
	rm -rf bin
