# Everyday tasks. CI runs .ci/run; these are shortcuts for working locally.

GO         ?= go
FUZZTIME   ?= 10s
BENCHFLAGS ?=
# Packages whose micro-benchmarks BENCHMARKS.md reports.
MICRO      := ./internal/wire/ ./internal/herd/ ./internal/store/ ./internal/places/offline/

.PHONY: all test vet bench bench-micro bench-compare fuzz

all: vet test

## test: the README's test command
test:
	$(GO) test -race ./...

## vet: go vet, and gofmt must have nothing to change
vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## bench: micro-benchmarks, then the whole herd (herd bench; BENCHFLAGS=-quick for a smoke run)
bench: bench-micro
	$(GO) run ./cmd/herd bench $(BENCHFLAGS)

bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem $(MICRO)

## bench-compare: herd against Redis with four replicas, and memory per client (needs redis-server)
bench-compare:
	$(GO) run ./cmd/herd bench -only redis,memory,herd-memory -conns 8,64 -inflight 1,16 $(BENCHFLAGS)

## fuzz: every fuzz target for FUZZTIME each
fuzz:
	@set -e; for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for target in $$(grep -h -o '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | cut -c6-); do \
	    echo "== $$dir $$target"; \
	    $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$dir; \
	  done; \
	done
