# usagemeter: build, test, benchmark, demo.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/usagemeter/usagemeter/internal/cli.Version=$(VERSION)

.PHONY: build deps test bench demo fuzz clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/usagemeter ./cmd/usagemeter

# The system packages the tests and the demo need (postgresql, gnupg, ...),
# installed when missing; the same script CI runs.
deps:
	@bash .ci/deps

# The test suite: gofmt, the appliance build (without the demo), vet and
# staticcheck (a tool of go.mod), then every test with the race detector, on
# a real PostgreSQL (started by the tests), real SMTP, gpg and govmomi's
# simulator. The demo is built only with -tags demo: the appliance binary
# links no simulator, no SMTP test server and no testing package. The peak
# memory of 8 endless answers is measured without -race (which multiplies it).
test: deps
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) build ./...
	$(GO) vet -tags demo ./...
	$(GO) tool staticcheck -tags demo ./...
	$(GO) test -race -tags demo -timeout 20m ./...
	$(GO) test -count=1 -run '^TestEndlessAnswers$$' -v ./collectors/internal/rest/
	$(MAKE) --no-print-directory fuzz FUZZTIME=2000x

# Every response parser's fuzz test (longer: make fuzz FUZZTIME=5m). The
# suite gives each a count of inputs, not a duration: go's fuzz coordinator
# can fail a timed run at its deadline with "context deadline exceeded" and
# no failing input when the machine is busy (golang/go#56238); a count has no
# deadline. A failure prints go test's output, with the failing input's file.
FUZZTIME ?= 30s
fuzz:
	@set -e; out=$$(mktemp); trap 'rm -f $$out' EXIT; \
	for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
	  pkg=$$(dirname $$f); \
	  for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg >$$out 2>&1 || { cat $$out; exit 1; }; \
	  done; \
	done

# Benchmarks at provider scale (minutes).
bench:
	$(GO) test -tags demo -run '^$$' -bench . -benchmem -benchtime 3x -timeout 60m ./...

# A simulated provider's month, end to end.
demo: deps
	$(GO) run -tags demo -ldflags "$(LDFLAGS)" ./cmd/usagemeter demo

clean:
	rm -rf bin

-include deploy/ova/ova.mk
