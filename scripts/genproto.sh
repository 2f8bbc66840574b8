#!/usr/bin/env bash
# Regenerates sdk/proto/**.pb.go from the .proto files with pinned generators, and the Python
# example plugin's stubs, or with --check fails when the committed code differs from what would
# be generated.
set -euo pipefail
cd "$(dirname "$0")/.."
PROTOC_GEN_GO=v1.36.12
PROTOC_GEN_GO_GRPC=v1.5.1
gobin=$(go env GOPATH)/bin
need() { "$gobin/$1" --version 2>/dev/null | grep -q "${2#v}" || GOBIN=$gobin GOFLAGS=-mod=mod go install "$3@$2"; }
command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
need protoc-gen-go "$PROTOC_GEN_GO" google.golang.org/protobuf/cmd/protoc-gen-go
need protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC" google.golang.org/grpc/cmd/protoc-gen-go-grpc
out=$PWD/sdk/proto
if [ "${1:-}" = "--check" ]; then out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi
files=$(cd sdk/proto && find lem -name '*.proto' | sort)
(cd sdk/proto && PATH="$gobin:$PATH" protoc -I . \
  --go_out="$out" --go_opt=module=github.com/lemctl/lemctl/sdk/proto \
  --go-grpc_out="$out" --go-grpc_opt=module=github.com/lemctl/lemctl/sdk/proto \
  $files)
# The Python example plugin's stubs (sdk/examples/python/gen): lemctl's protos and the go-plugin
# services, with protoc's Python generator and Debian's grpc_python_plugin (protobuf-compiler-grpc).
pyplugin=$(command -v grpc_python_plugin || true)
[ -n "$pyplugin" ] || { echo "grpc_python_plugin not found: apt-get install protobuf-compiler-grpc" >&2; exit 1; }
pyout=$PWD/sdk/examples/python/gen
if [ "${1:-}" = "--check" ]; then pyout=$(mktemp -d); trap 'rm -rf "$out" "$pyout"' EXIT; else rm -rf "$pyout"; mkdir -p "$pyout"; fi
(cd sdk/proto && protoc -I . --python_out="$pyout" --grpc_python_out="$pyout" --plugin=protoc-gen-grpc_python="$pyplugin" $files)
pyfiles=$(cd sdk/examples/python/proto && find goplugin -name '*.proto' | sort)
(cd sdk/examples/python/proto && protoc -I . --python_out="$pyout" --grpc_python_out="$pyout" --plugin=protoc-gen-grpc_python="$pyplugin" $pyfiles)
if [ "${1:-}" = "--check" ]; then
  status=0
  while IFS= read -r f; do
    rel=${f#"$out"/}
    if ! cmp -s "$f" "sdk/proto/$rel"; then echo "proto-check: sdk/proto/$rel differs from generated code; run 'make proto'" >&2; status=1; fi
  done < <(find "$out" -name '*.go')
  committed=$(cd sdk/proto && find lem -name '*.go' | sort); generated=$(cd "$out" && find lem -name '*.go' | sort)
  if [ "$committed" != "$generated" ]; then echo "proto-check: the set of generated files differs; run 'make proto'" >&2; status=1; fi
  if ! diff -r -x __pycache__ "$pyout" sdk/examples/python/gen >/dev/null; then
    echo "proto-check: sdk/examples/python/gen differs from generated code; run 'make proto'" >&2; status=1
  fi
  [ $status -eq 0 ] && echo "proto-check: generated code is up to date"
  exit $status
fi
