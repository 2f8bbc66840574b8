#!/usr/bin/env bash
# Runs `go vet` and `go test` in every module given, even after one fails, then lists what failed
# and exits 1 if anything did. go test's own output is shown unchanged (CI reads its ok/FAIL/---
# lines); the list at the end names each failed package (go test's "FAIL<TAB>pkg" lines) or, when
# a step failed without one, the module and step.
#
#   scripts/test.sh BIN_DIR MODULE...   (TEST_FLAGS: go test flags, e.g. -race -count=1; GO: the go command)
set -uo pipefail

bin=$1
go=${GO:-go}
shift
read -r -a flags <<<"${TEST_FLAGS:--count=1}"
failed=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for m in "$@"; do
	echo "== go test $m"
	if ! (cd "$m" && GOWORK=off "$go" vet ./...); then
		failed+=("$m: go vet")
	fi
	(cd "$m" && GOWORK=off LEM_BIN="$bin" "$go" test "${flags[@]}" ./...) 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	pkgs=$(grep -E $'^FAIL\t' "$log" | cut -f2 || true)
	if [ -n "$pkgs" ]; then
		while IFS= read -r p; do failed+=("$p"); done <<<"$pkgs"
	elif [ "$rc" -ne 0 ]; then
		failed+=("$m: go test exited $rc")
	fi
done

if [ ${#failed[@]} -gt 0 ]; then
	echo
	echo "make test: ${#failed[@]} failed:" >&2
	printf '  %s\n' "${failed[@]}" >&2
	exit 1
fi
echo
echo "make test: every module passed (vet and tests): $*"
