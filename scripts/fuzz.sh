#!/usr/bin/env bash
# make fuzz: run every Go fuzz target for FUZZTIME (default 30s), one after another.
# `go test -fuzz` takes a single target in a single package, hence the loop. Targets are
# found by their declaration (func FuzzXxx(f *testing.F) in a _test.go file), so a new
# one is picked up without editing this script.
#
#   scripts/fuzz.sh                       every target
#   scripts/fuzz.sh ./agent/...           targets under a directory
#   FUZZTIME=5m scripts/fuzz.sh ./pki     longer runs
#
# A failure leaves its input in the package's testdata/fuzz/FuzzXxx/ (see docs/dev/fuzzing.md);
# the script goes on with the other targets and exits non-zero at the end.
set -uo pipefail
cd "$(dirname "$0")/.."

export GOFLAGS=${GOFLAGS:--tags=nobadger,nobbolt,nomysql}
FUZZTIME=${FUZZTIME:-30s}
# One worker: the fuzzer otherwise takes every core, and the machine is usually shared.
FUZZ_PARALLEL=${FUZZ_PARALLEL:-1}

dirs=("$@")
[ ${#dirs[@]} -eq 0 ] && dirs=(.)
failed=()
n=0
while IFS=: read -r file target; do
	pkg=./$(dirname "${file#./}")
	n=$((n + 1))
	echo "== $target ($pkg, $FUZZTIME)"
	if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -parallel "$FUZZ_PARALLEL" "$pkg"; then
		failed+=("$target ($pkg)")
	fi
done < <(for d in "${dirs[@]}"; do
	grep -rHo --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' "${d%/...}" |
		sed -E 's/:func (Fuzz[A-Za-z0-9_]*)\(.*/:\1/'
done | sort -u)

if [ "$n" -eq 0 ]; then
	echo "no fuzz targets under ${dirs[*]}" >&2
	exit 1
fi
if [ ${#failed[@]} -gt 0 ]; then
	printf 'fuzz: %d of %d targets failed:\n' "${#failed[@]}" "$n" >&2
	printf '  %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "fuzz: $n targets, $FUZZTIME each, no failure"
