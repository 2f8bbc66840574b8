# lemctl — build, test and run. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := build

GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/lemctl/lemctl/host/version.Version=$(VERSION) -X github.com/lemctl/lemctl/host/version.Commit=$(COMMIT)
MODULES   := . sdk plugins/estimate plugins/fsstore plugins/nvml plugins/onnx plugins/openai plugins/rapl
export CGO_CFLAGS := -Wno-deprecated-declarations
# Plugins find ONNX Runtime and the GPT-2 vocabulary here after `make setup`.
THIRD_PARTY := $(CURDIR)/third_party
export LEM_THIRD_PARTY := $(THIRD_PARTY)
TEST_FLAGS ?= -race -count=1 -timeout 30m

.PHONY: help setup build lemctl plugins examples proto proto-check mod-check test bench run clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: ## fetch and verify ONNX Runtime and the GPT-2 vocabulary into third_party/ (idempotent)
	@bash scripts/setup.sh "$(THIRD_PARTY)"

build: lemctl plugins examples ## build bin/lemctl, bin/plugins/ and bin/examples/

lemctl:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/lemctl ./cmd/lemctl

# Each plugins/<name>/cmd/lem-plugin-<name> is a product plugin; cgo is allowed there.
plugins:
	@mkdir -p $(BIN)/plugins
	@set -e; for d in plugins/*/cmd/lem-plugin-*; do \
	  [ -d "$$d" ] || continue; mod=$${d%%/cmd/*}; name=$${d##*/}; \
	  echo "build $(BIN)/plugins/$$name"; \
	  (cd $$mod && $(GO) build -trimpath -o $(CURDIR)/$(BIN)/plugins/$$name ./cmd/$$name); \
	done

# The sdk's example plugins; never auto-selected (they live outside bin/plugins).
examples:
	@mkdir -p $(BIN)/examples
	@set -e; for d in sdk/examples/*/; do \
	  name=$$(basename $$d); [ -f "$$d/main.go" ] || continue; \
	  echo "build $(BIN)/examples/lem-plugin-example-$$name"; \
	  (cd sdk && CGO_ENABLED=0 $(GO) build -trimpath -o $(CURDIR)/$(BIN)/examples/lem-plugin-example-$$name ./examples/$$name); \
	done

proto: ## regenerate the committed protobuf code
	@bash scripts/genproto.sh

proto-check: ## fail if the committed protobuf code differs from what `make proto` generates
	@bash scripts/genproto.sh --check

mod-check: ## fail if any module's go.mod/go.sum is not tidy
	@set -e; for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) mod tidy -diff >/dev/null) || { echo "mod-check: $$m is not tidy: run 'go mod tidy' there" >&2; exit 1; }; done; echo "mod-check: every module is tidy"

# Every module is vetted and tested even after one fails; the failed packages are listed at the end.
test: setup build proto-check mod-check ## run every module's tests (race detector on)
	@GO='$(GO)' TEST_FLAGS='$(TEST_FLAGS)' bash scripts/test.sh $(CURDIR)/$(BIN) $(MODULES)

bench: setup build ## run the benchmarks and print their tables
	@bash scripts/bench.sh

run: setup build ## run the main job on the embedded default experiment
	@if ! $(BIN)/lemctl run --help >/dev/null 2>&1; then \
	  echo "make run: 'lemctl run' is not built yet (issue M1.7); try 'make test'." >&2; exit 2; fi
	$(BIN)/lemctl run examples/quickstart.toml

clean: ## remove build outputs (keeps third_party/)
	rm -rf $(BIN)
