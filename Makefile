# Lanyard. The two commands that matter: `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
export GOFLAGS := -tags=nobadger,nobbolt,nomysql
export CGO_ENABLED ?= 0
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/lanyardhq/lanyard/controlplane/server.Version=$(VERSION)
# The agent drops grpc's x/net/trace (2.3 MiB) with grpcnotrace; see docs/benchmarks.md.
AGENT_LDFLAGS := -s -w -X github.com/lanyardhq/lanyard/agent/cli.Version=$(VERSION)
AGENT_TAGS := nobadger,nobbolt,nomysql,grpcnotrace
BIN := bin
GOBIN ?= $(shell $(GO) env GOPATH)/bin

# Pinned tool versions (installed with go install; .ci/run calls `make tools`).
BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
STATICCHECK_VERSION := v0.8.2
# The OpenAPI linter cmd/lanyard's TestOpenAPILint runs (npm; node 20 works).
REDOCLY_VERSION := 2.77.0
TOOLS ?= $(shell $(GO) env GOPATH)/tools

AGENT_TARGETS := darwin/amd64 darwin/arm64 windows/amd64 linux/amd64 linux/arm64

.PHONY: all build build-agents ctl run test test-short lint generate tools bench fuzz packages clean docs screenshots

all: build

## build: the three binaries for this machine, plus the agent for every supported OS/arch
build: build-agents
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/lanyard ./cmd/lanyard
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/lanyardctl ./cmd/lanyardctl
	$(GO) build -trimpath -tags $(AGENT_TAGS) -ldflags '$(AGENT_LDFLAGS)' -o $(BIN)/lanyard-agent ./cmd/lanyard-agent

build-agents:
	@mkdir -p $(BIN)
	@set -e; for t in $(AGENT_TARGETS); do \
		os=$${t%/*}; arch=$${t#*/}; ext=; [ $$os = windows ] && ext=.exe; \
		echo "lanyard-agent $$os/$$arch"; \
		GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -tags $(AGENT_TAGS) -ldflags '$(AGENT_LDFLAGS)' -o $(BIN)/lanyard-agent-$$os-$$arch$$ext ./cmd/lanyard-agent; \
	done

## ctl: build bin/lanyardctl (seconds per command faster than `go run ./cmd/lanyardctl`)
ctl:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/lanyardctl ./cmd/lanyardctl

# Where `make run` listens: `make run HTTP_ADDR=127.0.0.1:9090`, or LANYARD_HTTP_ADDR /
# LANYARD_GRPC_ADDR / LANYARD_PUBLIC_URL in the environment (a flag would beat them, so
# the recipe passes what they say). The public URL and the agents' address follow.
HTTP_ADDR ?= $(or $(LANYARD_HTTP_ADDR),127.0.0.1:8080)
GRPC_ADDR ?= $(or $(LANYARD_GRPC_ADDR),127.0.0.1:8443)
PUBLIC_URL ?= $(or $(LANYARD_PUBLIC_URL),http://$(subst 127.0.0.1:,localhost:,$(HTTP_ADDR)))
AGENT_URL ?= $(or $(LANYARD_AGENT_URL),$(subst 127.0.0.1:,localhost:,$(GRPC_ADDR)))

## run: start the control plane on the embedded SQLite default with a demo organization;
## builds the agents first, so the installer links answer at once
run: build-agents ctl
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/lanyard ./cmd/lanyard
	./$(BIN)/lanyard serve --demo --data-dir .lanyard --http-addr $(HTTP_ADDR) --grpc-addr $(GRPC_ADDR) \
		--public-url $(PUBLIC_URL) --agent-url $(AGENT_URL)

## test: every test (Postgres ones run when LANYARD_TEST_DATABASE_URL is set)
test:
	$(GO) test -timeout 14m ./...

test-short:
	$(GO) test -short ./...

## screenshots: the console's main pages as docs/screenshots/*.png, made by its browser tests (needs chromium)
screenshots:
	LANYARD_SCREENSHOTS=1 $(GO) test -count=1 -run 'TestBrowser' ./controlplane/console/

## lint: go vet + staticcheck (pinned)
lint:
	$(GO) vet ./...
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck ./...

## tools: code generators at pinned versions. buf comes as Buf's own prebuilt binary (npm
## package @bufbuild/buf-<os>-<arch>, same version) where npm and a build exist: compiling it
## from source took most of a CI run. Elsewhere it is built with go install.
BUF_NPM := $(if $(filter Linux-x86_64,$(shell uname -sm | tr ' ' -)),@bufbuild/buf-linux-x64,$(if $(filter Linux-aarch64,$(shell uname -sm | tr ' ' -)),@bufbuild/buf-linux-aarch64,))
tools:
	@mkdir -p $(GOBIN)
	@if [ "$$($(GOBIN)/buf --version 2>/dev/null)" = "$(BUF_VERSION:v%=%)" ]; then echo "buf $(BUF_VERSION) present"; \
	elif [ -n "$(BUF_NPM)" ] && command -v npm >/dev/null; then \
		d=$$(mktemp -d) && npm install --no-save --silent --prefix "$$d" $(BUF_NPM)@$(BUF_VERSION:v%=%) && \
		install -m 0755 "$$d/node_modules/$(BUF_NPM)/bin/buf" $(GOBIN)/buf && rm -rf "$$d" && \
		test "$$($(GOBIN)/buf --version)" = "$(BUF_VERSION:v%=%)"; \
	else $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION); fi
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	@if [ "$$($(TOOLS)/redocly/node_modules/.bin/redocly --version 2>/dev/null)" = "$(REDOCLY_VERSION)" ]; then echo "redocly $(REDOCLY_VERSION) present"; \
	elif command -v npm >/dev/null; then npm install --silent --no-fund --no-audit --prefix $(TOOLS)/redocly @redocly/cli@$(REDOCLY_VERSION); \
	else echo "tools: npm not found; TestOpenAPILint will skip (and fail under CI=1)"; fi

## generate: regenerate protobuf code (committed; a test fails when it is stale) and docs
generate:
	@test -x $(GOBIN)/buf || $(MAKE) tools
	cd proto && PATH=$(GOBIN):$$PATH buf generate
	$(GO) run ./cmd/lanyard docs --out docs

## bench: the benchmarks whose results go into docs/benchmarks.md
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./bench/...

## fuzz: every fuzz target for FUZZTIME each, one after another (`make test` runs only the
## seed corpora); a failing input lands in the package's testdata/fuzz (docs/dev/fuzzing.md)
FUZZTIME ?= 30s
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

## packages: agent installers for the demo organization (see installers/)
packages: build-agents
	./scripts/packages.sh

clean:
	rm -rf $(BIN) dist
