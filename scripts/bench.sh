#!/usr/bin/env bash
# Runs lemctl's benchmarks (go test -bench) in every module and prints their tables. Figures that
# go into docs/performance.md come from this script, with the commit, date and machine it prints.
# BENCH_COUNT (default 5) repetitions; BENCH_FILTER selects benchmarks (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
count=${BENCH_COUNT:-5}
filter=${BENCH_FILTER:-.}
out=$(mktemp -d)
echo "# lemctl benchmarks — commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
export GOWORK=off LEM_BIN=${LEM_BIN:-$PWD/bin}
for m in . sdk plugins/estimate plugins/fsstore plugins/nvml plugins/onnx plugins/openai plugins/rapl; do
  pkgs=$(cd "$m" && grep -rl --include='*_test.go' '^func Benchmark' . 2>/dev/null | xargs -r -n1 dirname | sort -u || true)
  [ -n "$pkgs" ] || continue
  for p in $pkgs; do
    name=$(echo "$m/$p" | sed 's|^\./||; s|/\./|/|; s|/$||')
    echo
    echo "## $name"
    (cd "$m" && go test -run '^$' -bench "$filter" -benchmem -count "$count" "$p") | tee "$out/$(echo "$name" | tr / _).txt" | grep -E '^(Benchmark|ok|FAIL)' || true
  done
done
if command -v benchstat >/dev/null 2>&1 || [ -x "$(go env GOPATH)/bin/benchstat" ]; then
  bs=$(command -v benchstat || echo "$(go env GOPATH)/bin/benchstat")
  echo
  echo "# benchstat summaries"
  for f in "$out"/*.txt; do echo "## $(basename "$f" .txt)"; "$bs" "$f" || true; done
else
  echo
  echo "# (install benchstat for summaries: go install golang.org/x/perf/cmd/benchstat@latest)"
fi
rm -rf "$out"
