# tnl — build, run, test. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BINARIES := $(notdir $(wildcard cmd/tnl-*))
PREFIX   ?= /usr/local
DESTDIR  ?=

# Pinned tool versions, run through `go run` so nothing is installed by hand.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
MD2MAN      := github.com/cpuguy83/go-md2man/v2@v2.0.7
GORELEASER  := github.com/goreleaser/goreleaser/v2@v2.15.1

# Debian packages the tests use; installed when missing (CI runs as root).
APT_TEST_PKGS := shellcheck mandoc

.PHONY: all help build run test test-go test-shell deps lint fmt clean
all: build

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## build the static binaries into bin/
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(BINARIES))

run: build ## build, then run tnl-server on 127.0.0.1:7654 in the foreground
	./bin/tnl-server --listen 127.0.0.1:7654

deps: ## install what the tests need (Debian packages, Go modules)
	@missing=""; for p in $(APT_TEST_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
	fi
	$(GO) mod download

test: deps build ## everything the tests need, then every test
	$(GO) test -race -count=1 ./...
	$(MAKE) --no-print-directory lint

lint: ## gofmt, go vet, staticcheck, shellcheck
	@out=$$(gofmt -l cmd lib test); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@files=$$(git ls-files '*.sh' 'shell/*' 'completions/*.bash' 2>/dev/null | grep -v '\.md$$' || true); \
	if [ -n "$$files" ]; then shellcheck -x $$files; fi

fmt:
	gofmt -w cmd lib test

clean:
	rm -rf bin dist
