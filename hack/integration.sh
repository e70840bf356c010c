#!/usr/bin/env bash
# Builds the integration tests (build tag `integration`) of every package that
# has them with `go test -c` (outside, where the module proxy is reachable),
# then runs each test binary with -test.v inside a fresh loopback-only network
# namespace (hack/netns-run.sh), and finally checks that no process the run
# started is still alive (hack/check-leaks.sh).
#
# Prints go test's usual closing line per package ("ok  <pkg> <time>" or
# "FAIL <pkg> <time>") and a plain "integration: N passed, N failed" line.
# With CI set, a skipped integration test fails the run.
#
# Environment: REVKIT_BIN (default <repo>/bin), INTEGRATION_TIMEOUT (default
# 30m), INTEGRATION_RUN (a -test.run pattern), INTEGRATION_PKGS
# (package folders such as ./internal/e2e; default: every package with an integration test file).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export REVKIT_BIN=${REVKIT_BIN:-$ROOT/bin}
TESTBIN=$REVKIT_BIN/test
RUN=$TESTBIN/run-$(date +%Y%m%d-%H%M%S)-$$
mkdir -p "$RUN"
export REVKIT_TESTENV_PIDFILE=$RUN/pids
export REVKIT_TESTENV_LOG_DIR=$RUN/logs
: >"$REVKIT_TESTENV_PIDFILE"

if [[ -n ${INTEGRATION_PKGS:-} ]]; then
	read -r -a dirs <<<"$INTEGRATION_PKGS"
else
	mapfile -t dirs < <(grep -rlE --include='*_test.go' '^//go:build .*\bintegration\b' . \
		--exclude-dir=tools --exclude-dir=bin --exclude-dir=.git | xargs -r -n1 dirname | sort -u)
fi
if ((${#dirs[@]} == 0)); then
	echo "integration: no package has integration tests" >&2
	exit 1
fi

declare -a pkgs=() pkgdirs=() bins=()
status=0
for d in "${dirs[@]}"; do
	# Each package is built from its own folder, so that the module it belongs
	# to (the library, or internal/e2e, bench, examples) is the main module.
	d=${d#./}
	pkg=$(cd "$d" && go list -tags integration .) || { status=1; continue; }
	name=${pkg#github.com/revkit/revkit/}
	name=${name//\//_}.test
	# Into the run's own folder: two runs at once must not build over each
	# other's binary.
	echo "integration: go test -c -tags integration -o $RUN/$name $pkg"
	if ! (cd "$d" && go test -c -tags integration -o "$RUN/$name" .); then
		echo "FAIL	$pkg [build failed]"
		status=1
		continue
	fi
	pkgs+=("$pkg")
	pkgdirs+=("$ROOT/$d")
	bins+=("$RUN/$name")
done

passed=0 failed=0 skipped=0
for i in "${!pkgs[@]}"; do
	pkg=${pkgs[$i]} bin=${bins[$i]} dir=${pkgdirs[$i]}
	out=$RUN/$(basename "$bin").out
	args=(-test.v -test.count=1 -test.timeout="${INTEGRATION_TIMEOUT:-30m}")
	[[ -n ${INTEGRATION_RUN:-} ]] && args+=(-test.run="$INTEGRATION_RUN")
	echo "integration: running $pkg in a loopback-only network namespace"
	start=$(date +%s.%N)
	(cd "$dir" && NETNS_FILE=$RUN/netns-$i "$ROOT/hack/netns-run.sh" "$bin" "${args[@]}") 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	# The namespace is gone with its last process; check-leaks.sh ignores
	# processes started after this in a namespace that reuses its id.
	touch "$RUN/netns-$i.end"
	secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.3f", b-a}')
	p=$(grep -cE '^--- PASS' "$out") f=$(grep -cE '^--- FAIL' "$out") s=$(grep -cE '^--- SKIP' "$out")
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
	if ((rc == 0)); then
		printf 'ok  \t%s\t%ss\n' "$pkg" "$secs"
	else
		printf 'FAIL\t%s\t%ss\n' "$pkg" "$secs"
		status=1
		((f == 0)) && failed=$((failed + 1))
	fi
done

nsfiles=()
for f in "$RUN"/netns-*; do
	[[ -f $f && $f != *.end ]] && nsfiles+=("$f")
done
if ! "$ROOT/hack/check-leaks.sh" "$REVKIT_TESTENV_PIDFILE" "${nsfiles[@]}"; then
	status=1
fi
if [[ -n ${CI:-} ]] && ((skipped > 0)); then
	echo "integration: $skipped integration test(s) skipped; none may be skipped in CI" >&2
	status=1
fi
# The binaries are large and rebuilt from the build cache in seconds.
rm -f "${bins[@]}"
echo "integration logs: $RUN"
if ((skipped > 0)); then
	echo "integration: $passed passed, $failed failed, $skipped skipped"
else
	echo "integration: $passed passed, $failed failed"
fi
exit $status
