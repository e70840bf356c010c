#!/usr/bin/env bash
# Checks what `make demo`, `make test` and `make tools` need from the machine
# before anything is built, so that a fresh machine stops at once with a
# message that says what to install instead of failing twenty minutes in.
#
#   hack/prereqs.sh [build|run|all]
#
#   build  what building the tools needs: Go (at the version go.mod asks
#          for), flock, sha256sum and friends, apt-get and dpkg-deb (for
#          Debian's prometheus package), writable Go and tools caches,
#          enough free disk
#   run    what running the local control plane needs: root (or
#          CAP_SYS_ADMIN) for a network namespace, unshare and ip
#   all    both (the default)
#
# Missing Debian packages (iproute2 for `ip`, util-linux for `unshare` and
# `flock`) are installed with apt-get when this runs as root on a machine that
# has it; REVKIT_NO_INSTALL=1 turns that off. Everything else is reported, and
# the script exits 1 after listing every problem it found.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
what=${1:-all}
case $what in build | run | all) ;; *)
	echo "usage: $0 [build|run|all]" >&2
	exit 2
	;;
esac

problems=()
problem() { problems+=("$*"); }
log() { printf '[prereqs] %s\n' "$*"; }

# want_cmd CMD PACKAGE: CMD on PATH, installing Debian's PACKAGE if allowed.
declare -a to_install=()
want_cmd() {
	command -v "$1" >/dev/null 2>&1 && return
	# Debian keeps ip in /usr/sbin and /sbin, which a non-login PATH may lack.
	for d in /usr/sbin /sbin; do
		if [[ -x $d/$1 ]]; then
			PATH=$PATH:$d
			export PATH
			return
		fi
	done
	to_install+=("$2")
}

install_missing() {
	((${#to_install[@]} == 0)) && return
	local pkgs
	mapfile -t pkgs < <(printf '%s\n' "${to_install[@]}" | sort -u)
	if [[ -z ${REVKIT_NO_INSTALL:-} && $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
		log "installing ${pkgs[*]} with apt-get (REVKIT_NO_INSTALL=1 to stop this)"
		if DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/tmp/revkit-apt.$$ 2>&1 ||
			{ apt-get update -q >>/tmp/revkit-apt.$$ 2>&1 &&
				DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" >>/tmp/revkit-apt.$$ 2>&1; }; then
			rm -f /tmp/revkit-apt.$$
			hash -r
			return
		fi
		problem "apt-get install ${pkgs[*]} failed; see /tmp/revkit-apt.$$"
		return
	fi
	problem "missing commands; install the Debian packages: ${pkgs[*]} (apt-get install ${pkgs[*]})"
}

check_go() {
	if ! command -v go >/dev/null 2>&1; then
		problem "go is not on PATH: install Go $(awk '/^go /{print $2}' "$ROOT/go.mod") or newer from https://go.dev/dl and put its bin/ on PATH"
		return
	fi
	local have want
	have=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
	want=$(awk '/^go /{print $2}' "$ROOT/go.mod")
	# sort -V orders versions; the lower of the two must be the one go.mod wants.
	if [[ -z $have ]]; then
		problem "go env GOVERSION failed: is the Go installation complete?"
	elif [[ $(printf '%s\n%s\n' "$want" "$have" | sort -V | head -1) != "$want" ]]; then
		problem "Go $have is older than the go $want that go.mod needs: install Go $want or newer (or set GOTOOLCHAIN=auto to let go fetch it)"
	fi
	# Go's caches default to $HOME; with no HOME (or an unwritable one) every
	# go command fails later with a less helpful message.
	local v dir
	for v in GOCACHE GOMODCACHE; do
		dir=$(go env "$v" 2>/dev/null)
		if [[ -z $dir || $dir == off ]]; then
			problem "go env $v is empty: set HOME (or $v) to a writable directory"
			continue
		fi
		if ! mkdir -p "$dir" 2>/dev/null || [[ ! -w $dir ]]; then
			problem "$v=$dir is not writable: set $v (or HOME) to a writable directory"
		fi
	done
	if [[ -z $(go env GOPROXY 2>/dev/null) || $(go env GOPROXY) == off ]]; then
		problem "GOPROXY is off: the tools are built from modules fetched through a Go module proxy"
	fi
}

check_build() {
	local c
	for c in sort sha256sum cut du cp mv date; do
		want_cmd "$c" coreutils
	done
	want_cmd awk mawk
	want_cmd sed sed
	want_cmd find findutils
	want_cmd flock util-linux
	# prometheus comes from Debian's package (hack/tools.sh: apt-get
	# download, dpkg-deb -x; no root needed).
	want_cmd apt-get apt
	want_cmd dpkg-deb dpkg
	check_go
	local cache=${REVKIT_TOOLS_CACHE:-${HOME:-}/.cache/revkit/tools}
	if [[ -z ${REVKIT_TOOLS_CACHE:-} && -z ${HOME:-} ]]; then
		problem "neither REVKIT_TOOLS_CACHE nor HOME is set: set one (the built tools are cached there)"
	elif ! mkdir -p "$cache" 2>/dev/null || [[ ! -w $cache ]]; then
		problem "the tools cache $cache is not writable: set REVKIT_TOOLS_CACHE to a writable directory"
	fi
	local bin=${REVKIT_BIN:-$ROOT/bin}
	if ! mkdir -p "$bin" 2>/dev/null || [[ ! -w $bin ]]; then
		problem "$bin is not writable: set REVKIT_BIN to a writable directory"
	else
		# A cold build writes ~2 GB of modules, ~7 GB of build cache and
		# ~2.5 GB of binaries and tools cache (measured by hack/fresh-check.sh).
		local free
		free=$(df -Pk "$bin" 2>/dev/null | awk 'NR==2{print int($4/1024/1024)}')
		if [[ -n $free && $free -lt 12 && ! -f $bin/.stamp-kube-apiserver ]]; then
			problem "only ${free} GiB free where $bin lives; a cold build needs about 12 GiB (modules 2 GB, Go build cache 7 GB, binaries 2.5 GB)"
		fi
	fi
}

check_run() {
	want_cmd unshare util-linux
	want_cmd ip iproute2
	want_cmd getconf libc-bin
}

case $what in
build) check_build ;;
run) check_run ;;
all)
	check_build
	check_run
	;;
esac
install_missing
if [[ $what != build ]] && command -v unshare >/dev/null 2>&1 && command -v ip >/dev/null 2>&1 &&
	((${#problems[@]} == 0)); then
	# unshare --net needs CAP_SYS_ADMIN; try it rather than guess.
	if ! out=$(unshare --net -- ip link set lo up 2>&1); then
		problem "cannot make a network namespace (unshare --net: $out): the local control plane runs in one; run as root (e.g. sudo -E make test) on a kernel that allows network namespaces"
	fi
fi

if ((${#problems[@]} > 0)); then
	for p in "${problems[@]}"; do
		echo "[prereqs] MISSING: $p" >&2
	done
	echo "[prereqs] ${#problems[@]} problem(s); fix them and run again" >&2
	exit 1
fi
log "ok ($what)"
