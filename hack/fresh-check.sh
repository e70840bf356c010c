#!/usr/bin/env bash
# Checks that the project starts on a fresh machine: a new folder, empty Go
# module and build caches, an empty tools cache and an empty HOME.
#
#   hack/fresh-check.sh          clone the committed tree (HEAD) into a temporary
#                                folder and run the README's two commands there,
#                                `make demo` then `make test`; print each one's
#                                exit status and wall time (~35 minutes on 2 cores)
#   hack/fresh-check.sh --quick  the cheap part, for CI on every submission: copy
#                                the working tree to a temporary folder and run the
#                                tool step's prerequisite check, plan and data step
#                                (charts and KWOK stages) against an empty module
#                                cache (~150 MB of downloads, seconds)
#
# Options: --keep leaves the temporary folder (its path is printed). The logs
# of a full check are copied to bin/fresh-check/ before the folder goes.
# FRESH_DIR sets where the temporary folder is made (default: $TMPDIR or /tmp;
# a full check needs ~12 GB there).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
quick=0 keep=0
for a in "$@"; do
	case $a in
	--quick) quick=1 ;;
	--keep) keep=1 ;;
	*)
		echo "usage: $0 [--quick] [--keep]" >&2
		exit 2
		;;
	esac
done

log() { printf '[fresh-check] %s\n' "$*"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.0f", b-a}'; }

tmp=$(mktemp -d "${FRESH_DIR:-${TMPDIR:-/tmp}}/revkit-fresh.XXXXXX") || exit 1
cleanup() {
	if ((keep)); then
		log "left $tmp"
		return
	fi
	# The module cache is read-only; make it writable so it can be removed.
	chmod -R u+w "$tmp" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# A machine that has never seen the project: every cache empty, HOME empty (so
# no go env file, no ~/.cache), the project in a folder of another name.
mkdir -p "$tmp/home" "$tmp/gomodcache" "$tmp/gocache" "$tmp/gopath" "$tmp/tools-cache"
fresh_env=(
	env -u GOENV -u GOFLAGS -u REVKIT_BIN -u XDG_CACHE_HOME -u XDG_CONFIG_HOME
	HOME="$tmp/home" GOPATH="$tmp/gopath" GOMODCACHE="$tmp/gomodcache"
	GOCACHE="$tmp/gocache" REVKIT_TOOLS_CACHE="$tmp/tools-cache"
)
src=$tmp/project-$RANDOM

if ((quick)); then
	# The working tree as it is (CI's checkout), without bin/ and ignored files.
	mkdir -p "$src"
	if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		(cd "$ROOT" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$src"
	else
		(cd "$ROOT" && tar --exclude=./bin -cf - .) | tar -xf - -C "$src"
	fi
	fail() {
		log "FAILED: $*"
		log "the tool step does not work on a fresh machine (empty module cache, new folder, empty HOME);"
		log "a new user's 'make demo' and 'make test' would stop here. See the output above."
		exit 1
	}
	start=$(now)
	"${fresh_env[@]}" REVKIT_BIN="$src/bin" "$src/hack/prereqs.sh" build || fail "hack/prereqs.sh build"
	plan=$("${fresh_env[@]}" REVKIT_BIN="$src/bin" "$src/hack/tools.sh" --plan 2>&1) || {
		echo "$plan"
		fail "hack/tools.sh --plan"
	}
	echo "$plan"
	for t in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok pilot-discovery istioctl pilot-discovery-old istio-render; do
		grep -qE "to build from source:.* $t( |$)" <<<"$plan" ||
			fail "hack/tools.sh --plan does not say that $t will be built although every cache is empty"
	done
	"${fresh_env[@]}" REVKIT_BIN="$src/bin" "$src/hack/tools.sh" --data || fail "hack/tools.sh --data"
	for f in istio-charts/base/Chart.yaml istio-charts/istio-discovery/Chart.yaml \
		istio-charts/base/files/crd-all.gen.yaml istio-charts/istio-discovery/templates/mutatingwebhook.yaml \
		istio-charts/gateway/Chart.yaml istio-charts/istio-cni/Chart.yaml istio-charts/ztunnel/Chart.yaml \
		istio-charts-old/base/Chart.yaml istio-charts-old/istio-discovery/templates/mutatingwebhook.yaml \
		istio-charts-old/gateway/Chart.yaml istio-charts-old/istio-cni/Chart.yaml istio-charts-old/ztunnel/Chart.yaml; do
		[[ -s $src/bin/$f ]] || fail "the data step did not produce bin/$f"
	done
	grep -q '^kind: Stage' "$src/bin/kwok-stages.yaml" 2>/dev/null || fail "the data step did not produce bin/kwok-stages.yaml with KWOK stages"
	log "ok: prerequisites, plan and data step from an empty module cache in $(secs "$start" "$(now)")s" \
		"($(du -sh "$tmp/gomodcache" | cut -f1) downloaded)"
	exit 0
fi

if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
	log "note: the working tree has uncommitted changes; this checks the committed tree (HEAD) only"
fi
log "cloning $(git -C "$ROOT" rev-parse --short HEAD) into $src"
git clone --quiet --no-hardlinks "$ROOT" "$src" || exit 1
logs=$tmp/logs
mkdir -p "$logs"

declare -a results=()
# run NAME CMD...: run a README command in the clone, from the fresh
# environment, logging to $logs/NAME.log (and to the terminal).
run() {
	local name=$1 start rc t
	shift
	log "running '$*' in $src"
	start=$(now)
	(cd "$src" && "${fresh_env[@]}" "$@") 2>&1 | tee "$logs/$name.log"
	rc=${PIPESTATUS[0]}
	t=$(secs "$start" "$(now)")
	results+=("$(printf '%-10s exit %-3s %6ss  (%dm%02ds)' "$*" "$rc" "$t" $((t / 60)) $((t % 60)))")
	return "$rc"
}

status=0
run demo make demo || status=1
run test make test || status=1

out=$ROOT/bin/fresh-check/$(date +%Y%m%d-%H%M%S)
mkdir -p "$out" && cp "$logs"/*.log "$out"/
echo
log "results (commit $(git -C "$src" rev-parse --short HEAD), $(nproc) cores):"
for r in "${results[@]}"; do log "  $r"; done
log "tool builds during make demo:"
grep -E '^\[tools\]   ' "$logs/demo.log" | sed 's/^/[fresh-check]   /'
grep -E '^(ok|FAIL)\s|^integration: [0-9]+ passed' "$logs/test.log" | sed 's/^/[fresh-check]   /'
log "caches afterwards: modules $(du -sh "$tmp/gomodcache" | cut -f1), build cache $(du -sh "$tmp/gocache" | cut -f1)," \
	"tools cache $(du -sh "$tmp/tools-cache" | cut -f1), bin/ $(du -sh "$src/bin" | cut -f1)"
log "logs in $out"
if ((status == 0)); then log "ok: both README commands pass on a fresh machine"; else log "FAILED"; fi
exit $status
