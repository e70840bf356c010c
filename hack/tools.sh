#!/usr/bin/env bash
# Builds the binaries of the local test control plane (internal/testenv) into
# bin/ (or $REVKIT_BIN): kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd, kwok, two istiods (pilot-discovery from the
# pinned istio.io/istio in tools/istio, pilot-discovery-old from the older one in
# tools/istio-old), istioctl (pinned version) and istio-render, plus both
# versions' Istio charts (bin/istio-charts, bin/istio-charts-old), the Gateway
# API CRDs (bin/gateway-api-crds) and the KWOK stages they need at run time; and prometheus, taken from Debian's package
# (no build: apt-get download and dpkg-deb, no root needed).
#
# Each tool is keyed on what determines its bytes (its tools/<module> go.mod and
# go.sum, the Go version, the link flags, its own sources). A tool whose stamp in
# bin/ matches is skipped; otherwise it is restored from the cache directory
# ${REVKIT_TOOLS_CACHE:-$HOME/.cache/revkit/tools} if a build with that key is
# there, and built (then cached) if not. A cold build takes ~20 minutes of CPU;
# a warm run takes seconds.
#
#   hack/tools.sh           check prerequisites, say what will be built, build
#   hack/tools.sh --plan    only say what a run would build and roughly how long
#   hack/tools.sh --data    only the data step (charts, CRDs, stages), e.g. to check
#                           it against an empty module cache (hack/fresh-check.sh --quick)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=all
case ${1:-} in
"") ;;
--plan) MODE=plan ;;
--data) MODE=data ;;
*)
	echo "usage: $0 [--plan|--data]" >&2
	exit 2
	;;
esac
if [[ $MODE != plan ]]; then
	"$ROOT/hack/prereqs.sh" build
fi
BIN=${REVKIT_BIN:-$ROOT/bin}
CACHE=${REVKIT_TOOLS_CACHE:-${HOME:-/root}/.cache/revkit/tools}
SCRIPT_VERSION=1

K8S_VERSION=v1.36.3
K8S_MINOR=36
K8S_LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	K8S_LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR"
	K8S_LDFLAGS+=" -X $pkg.gitTreeState=clean"
done
ETCD_LDFLAGS="-s -w"
KWOK_LDFLAGS="-s -w"
# istio_ldflags MODULE: istiod and istioctl report the module's Istio version
# (VERSION file + pseudo-version date and commit, e.g. 1.31-dev.20260827.eed52ebb66ad),
# which tells the two istiods apart in their logs and in `version` output.
istio_pin() { awk '{for (i = 1; i < NF; i++) if ($i == "istio.io/istio" && $(i + 1) ~ /^v[0-9]/) {print $(i + 1); exit}}' "$ROOT/tools/$1/go.mod"; }
istio_ldflags() {
	local v pin
	pin=$(istio_pin "$1")
	v=$(echo "$pin" | awk -F'[-.]' '{print substr($(NF-1),1,8) "." $NF}')
	echo "-s -w -X istio.io/istio/pkg/version.buildVersion=1.31-dev.$v -X istio.io/istio/pkg/version.buildGitRevision=${pin##*-} -X istio.io/istio/pkg/version.buildStatus=Clean"
}
ISTIO_LDFLAGS=$(istio_ldflags istio)
ISTIO_OLD_LDFLAGS=$(istio_ldflags istio-old)
# Prometheus for the metric gates' tests (internal/testenv StartPrometheus):
# Debian's build of it (bookworm: 2.42.0+ds-5+b6, or the security rebuild
# 2.42.0+ds-5+deb12u1; the same Prometheus 2.42.0). Building it from its Go module instead would
# add minutes of compilation and a module tree as large as Kubernetes' (its
# service discovery pulls in every cloud SDK); the package is 19 MB and
# unpacks in a second.
PROMETHEUS_DEB=prometheus
PROMETHEUS_UPSTREAM=2.42.0+ds

mkdir -p "$BIN" "$CACHE"
if [[ $MODE != plan ]]; then
	# One build at a time per bin/ (a second `make test` in the same tree waits).
	exec 9>"$BIN/.tools.lock"
	if ! flock -n 9; then
		echo "[tools] waiting for another hack/tools.sh using $BIN ..."
		flock 9
	fi
fi
GOVERSION=$(go env GOVERSION)
total_start=$(date +%s)
declare -a SUMMARY=()

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
log() { printf '[tools] %s\n' "$*"; }

# key MODULE LDFLAGS [EXTRA_FILES...]: a short hash of everything that makes
# the binary what it is.
key() {
	local mod=$1 ldflags=$2
	shift 2
	{
		echo "script=$SCRIPT_VERSION go=$GOVERSION goos=$(go env GOOS) goarch=$(go env GOARCH)"
		echo "ldflags=$ldflags"
		cat "$ROOT/tools/$mod/go.mod" "$ROOT/tools/$mod/go.sum"
		for f in "$@"; do cat "$f"; done
	} | sha256sum | cut -c1-16
}

# reuse NAME KEY: with MODE=plan, record what a run would do with NAME;
# otherwise succeed if bin/NAME is up to date (its stamp holds KEY) or was
# restored from the cache, and fail if it must be made.
reuse() {
	local name=$1 k=$2 start
	local stamp="$BIN/.stamp-$name" cached="$CACHE/$name-$k"
	if [[ $MODE == plan ]]; then
		plan "$name" "$k" "$stamp" "$cached"
		return 0
	fi
	if [[ -x $BIN/$name && -f $stamp && $(cat "$stamp") == "$k" ]]; then
		log "$name: up to date ($k)"
		SUMMARY+=("$name up-to-date 0.0s")
		return 0
	fi
	start=$(now)
	if [[ -x $cached/$name ]]; then
		cp -f "$cached/$name" "$BIN/$name.tmp" && mv -f "$BIN/$name.tmp" "$BIN/$name"
		echo "$k" >"$stamp"
		log "$name: restored from $cached in $(elapsed "$start")s"
		SUMMARY+=("$name restored $(elapsed "$start")s")
		return 0
	fi
	return 1
}

# store NAME KEY: stamp the new bin/NAME with KEY and cache it under KEY,
# dropping the tool's older cache entries (they would pile up, ~100 MB
# each).
store() {
	local name=$1 k=$2
	local cached="$CACHE/$name-$k"
	echo "$k" >"$BIN/.stamp-$name"
	mkdir -p "$cached.tmp$$" && cp -f "$BIN/$name" "$cached.tmp$$/$name"
	rm -rf "$cached" && mv "$cached.tmp$$" "$cached"
	find "$CACHE" -maxdepth 1 -name "$name-*" ! -name "$name-$k" -exec rm -rf {} + 2>/dev/null || true
}

# build NAME MODULE PACKAGE LDFLAGS [EXTRA_FILES...]
build() {
	local name=$1 mod=$2 pkg=$3 ldflags=$4
	shift 4
	local k start
	k=$(key "$mod" "$ldflags" "$@")
	reuse "$name" "$k" && return
	start=$(now)
	log "$name: building $pkg (module tools/$mod, key $k) ..."
	(cd "$ROOT/tools/$mod" && go build -trimpath -ldflags "$ldflags" -o "$BIN/$name.tmp" "$pkg")
	mv -f "$BIN/$name.tmp" "$BIN/$name"
	store "$name" "$k"
	log "$name: built in $(elapsed "$start")s ($(du -h "$BIN/$name" | cut -f1))"
	SUMMARY+=("$name built $(elapsed "$start")s")
}

# moddir MODULE PATH: the directory of a dependency of a tools module,
# downloaded into the module cache first if it is not there yet (`go list -m`
# alone prints an empty Dir for a module that is not in the cache).
moddir() {
	local dir
	(cd "$ROOT/tools/$1" && go mod download "$2") || {
		echo "[tools] go mod download $2 (tools/$1) failed" >&2
		return 1
	}
	dir=$(cd "$ROOT/tools/$1" && go list -m -f '{{.Dir}}' "$2") || return 1
	if [[ -z $dir || ! -d $dir ]]; then
		echo "[tools] module $2 of tools/$1 has no directory in the module cache (got '$dir')" >&2
		return 1
	fi
	echo "$dir"
}

# charts MODULE DEST: copy the Istio charts of a tools module's istio.io/istio
# into DEST (base, istio-discovery, gateway, istio-cni, ztunnel), with a
# MODULE_VERSION file naming the module version they came from.
charts() {
	local istio dest=$2
	istio=$(moddir "$1" istio.io/istio) || return 1
	rm -rf "$dest"
	mkdir -p "$dest"
	cp -r "$istio/manifests/charts/base" "$dest/base"
	cp -r "$istio/manifests/charts/istio-control/istio-discovery" "$dest/istio-discovery"
	cp -r "$istio/manifests/charts/gateway" "$dest/gateway"
	cp -r "$istio/manifests/charts/istio-cni" "$dest/istio-cni"
	cp -r "$istio/manifests/charts/ztunnel" "$dest/ztunnel"
	istio_pin "$1" >"$dest/MODULE_VERSION"
	chmod -R u+w "$dest"
}

# Data files that testenv reads at run time: both Istio versions' charts and
# KWOK's stages, taken from the same pinned modules the binaries are built from.
data() {
	local k stamp start kwok
	k=$(cat "$ROOT/tools/istio/go.mod" "$ROOT/tools/istio-old/go.mod" "$ROOT/tools/kwok/go.mod" <(echo "$SCRIPT_VERSION") | sha256sum | cut -c1-16)
	stamp="$BIN/.stamp-data"
	if [[ -f $stamp && $(cat "$stamp") == "$k" && -d $BIN/istio-charts && -d $BIN/istio-charts-old && -f $BIN/kwok-stages.yaml ]]; then
		log "charts and stages: up to date ($k)"
		return
	fi
	start=$(now)
	charts istio "$BIN/istio-charts"
	charts istio-old "$BIN/istio-charts-old"
	kwok=$(moddir kwok sigs.k8s.io/kwok)
	{
		local first=1
		for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml pod/fast/pod-*.yaml; do
			for g in "$kwok"/kustomize/stage/$f; do
				[[ $first == 1 ]] || echo "---"
				first=0
				cat "$g"
			done
		done
	} >"$BIN/kwok-stages.yaml"
	echo "$k" >"$stamp"
	log "charts and stages: copied in $(elapsed "$start")s"
}

# gateway_api_crds: the Kubernetes Gateway API CRDs (standard channel) of the
# sigs.k8s.io/gateway-api version the pinned istiod (tools/istio) is built
# with, as bin/gateway-api-crds/*.yaml (testenv's InstallGatewayAPI applies
# them), with a VERSION file. Taken from the module cache, where
# tools/istio's dependencies put them; keyed on that version.
gateway_api_crds() {
	local v k stamp start dir dest=$BIN/gateway-api-crds
	v=$(awk '$1 == "sigs.k8s.io/gateway-api" && $2 ~ /^v[0-9]/ {print $2; exit}' "$ROOT/tools/istio/go.mod")
	if [[ -z $v ]]; then
		echo "[tools] tools/istio/go.mod requires no sigs.k8s.io/gateway-api" >&2
		return 1
	fi
	k=$(printf 'script=%s gateway-api=%s\n' "$SCRIPT_VERSION" "$v" | sha256sum | cut -c1-16)
	stamp="$BIN/.stamp-gateway-api-crds"
	if [[ -f $stamp && $(cat "$stamp") == "$k" && -f $dest/VERSION ]]; then
		log "gateway-api-crds: up to date ($v, $k)"
		return
	fi
	start=$(now)
	dir=$(moddir istio "sigs.k8s.io/gateway-api") || return 1
	rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
	cp "$dir"/config/crd/standard/*.yaml "$dest.tmp/"
	echo "$v" >"$dest.tmp/VERSION"
	chmod -R u+w "$dest.tmp"
	rm -rf "$dest" && mv "$dest.tmp" "$dest"
	echo "$k" >"$stamp"
	log "gateway-api-crds: $v copied in $(elapsed "$start")s ($(find "$dest" -name '*.yaml' | wc -l) files)"
}

# deb NAME PACKAGE UPSTREAM PATH: the binary PATH (inside the package) of
# Debian package PACKAGE, as bin/NAME, in a Debian version of upstream version
# UPSTREAM (Debian replaces a package's revision, e.g. +b6 by +deb12u1 for a
# security fix, and its archive keeps only the latest: pinning the whole
# version would break on the next update). It is downloaded with apt-get (no
# root needed: `apt-get download` into a temporary folder, no install) and
# unpacked with dpkg-deb. If the machine's package lists have no such
# version, or it is gone from the archive, a private copy of the lists is
# fetched (apt-get update with its own state and cache folders) and tried,
# leaving the system's lists alone. Stamped and cached like the built tools,
# keyed on UPSTREAM.
deb() {
	local name=$1 pkg=$2 upstream=$3 path=$4
	local k start tmp got=""
	k=$(printf 'script=%s deb=%s upstream=%s path=%s arch=%s\n' "$SCRIPT_VERSION" "$pkg" "$upstream" "$path" "$(go env GOARCH)" | sha256sum | cut -c1-16)
	reuse "$name" "$k" && return
	start=$(now)
	log "$name: downloading Debian package $pkg ($upstream) ..."
	tmp=$(mktemp -d)
	chmod 755 "$tmp"
	# try_download APT_OPTIONS...: download the first listed version of
	# $pkg whose upstream version is $upstream; sets got.
	try_download() {
		local v
		for v in $(apt-cache "$@" madison "$pkg" 2>>"$tmp/apt.log" | awk -F'|' '{gsub(/ /, "", $2); print $2}'); do
			[[ ${v%-*} == "$upstream" ]] || continue
			if (cd "$tmp" && apt-get "$@" download -q "$pkg=$v" >>"$tmp/apt.log" 2>&1); then
				got=$v
				return 0
			fi
		done
		return 1
	}
	if ! try_download; then
		mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
		local -a apt=(-o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o "Debug::NoLocking=1")
		if ! apt-get "${apt[@]}" update -q >>"$tmp/apt.log" 2>&1 || ! try_download "${apt[@]}"; then
			cat "$tmp/apt.log" >&2
			rm -rf "$tmp"
			echo "[tools] $name: cannot download Debian package $pkg in version $upstream-* (see above); without apt-get, put a prometheus $upstream binary at $BIN/$name" >&2
			return 1
		fi
	fi
	dpkg-deb -x "$tmp"/"${pkg}"_*.deb "$tmp/root"
	cp -f "$tmp/root/$path" "$BIN/$name.tmp" && mv -f "$BIN/$name.tmp" "$BIN/$name"
	rm -rf "$tmp"
	store "$name" "$k"
	log "$name: unpacked from $pkg $got in $(elapsed "$start")s ($(du -h "$BIN/$name" | cut -f1))"
	SUMMARY+=("$name downloaded $(elapsed "$start")s")
}

# Cold-build times on 2 cores, downloads included, measured on 2026-12-01
# (docs/TESTING.md): what --plan adds up before a build starts.
# pilot-discovery-old and istioctl are what each adds after pilot-discovery,
# scaled from a run on a loaded machine (519 s and 73 s after its 614 s).
declare -A EST=(
	[etcd]=50 [kube-apiserver]=190 [kube-controller-manager]=60 [kube-scheduler]=5
	[kubectl]=25 [kwok]=90 [pilot-discovery]=450 [istio-render]=5
	[pilot-discovery-old]=380 [istioctl]=55 [prometheus]=5
)
declare -a TO_BUILD=() TO_RESTORE=()
# plan NAME KEY STAMP CACHED: record what a build run would do with NAME.
plan() {
	local name=$1 k=$2 stamp=$3 cached=$4
	if [[ -x $BIN/$name && -f $stamp && $(cat "$stamp") == "$k" ]]; then
		return
	elif [[ -x $cached/$name ]]; then
		TO_RESTORE+=("$name")
	else
		TO_BUILD+=("$name")
	fi
}

# all_tools runs build (or, with MODE=plan, plan) for every tool.
all_tools() {
	build etcd etcd go.etcd.io/etcd/server/v3 "$ETCD_LDFLAGS"
	build kube-apiserver k8s k8s.io/kubernetes/cmd/kube-apiserver "$K8S_LDFLAGS"
	build kube-controller-manager k8s k8s.io/kubernetes/cmd/kube-controller-manager "$K8S_LDFLAGS"
	build kube-scheduler k8s k8s.io/kubernetes/cmd/kube-scheduler "$K8S_LDFLAGS"
	build kubectl k8s k8s.io/kubernetes/cmd/kubectl "$K8S_LDFLAGS"
	build kwok kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_LDFLAGS"
	build pilot-discovery istio istio.io/istio/pilot/cmd/pilot-discovery "$ISTIO_LDFLAGS"
	build istioctl istio istio.io/istio/istioctl/cmd/istioctl "$ISTIO_LDFLAGS"
	build pilot-discovery-old istio-old istio.io/istio/pilot/cmd/pilot-discovery "$ISTIO_OLD_LDFLAGS"
	build istio-render istio ./cmd/istio-render "$ISTIO_LDFLAGS" "$ROOT"/tools/istio/cmd/istio-render/*.go
	deb prometheus "$PROMETHEUS_DEB" "$PROMETHEUS_UPSTREAM" usr/bin/prometheus
}

# announce: before anything is built, say what is about to be and how long
# it roughly takes, so that a first run does not look hung.
announce() {
	local saved=$MODE secs=0 t
	MODE=plan
	all_tools
	MODE=$saved
	if ((${#TO_BUILD[@]} == 0 && ${#TO_RESTORE[@]} == 0)); then
		log "all tools up to date in $BIN"
		return
	fi
	((${#TO_RESTORE[@]} > 0)) && log "to restore from $CACHE (seconds): ${TO_RESTORE[*]}"
	if ((${#TO_BUILD[@]} > 0)); then
		for t in "${TO_BUILD[@]}"; do secs=$((secs + EST[$t])); done
		log "to build from source: ${TO_BUILD[*]}"
		log "this is a cold build: roughly $(((secs + 59) / 60)) minutes on 2 cores, plus module downloads"
		log "(about 1 GB the first time); later runs restore from $CACHE in seconds."
		[[ $MODE == plan ]] || log "one line per tool follows."
	fi
}

# announce_library: the same for the library's own modules, which `go test`
# downloads and compiles before the unit tests (make test's first part).
announce_library() {
	if [[ -z $(cd "$ROOT" && go list -m -f '{{.Dir}}' k8s.io/client-go 2>/dev/null) ]]; then
		log "the library's modules are not in the module cache yet: go test ./... downloads"
		log "them (~300 MB) and compiles the library and its tests first, roughly 10 minutes cold."
	fi
}

case $MODE in
plan)
	announce_library
	announce
	exit 0
	;;
data)
	data
	gateway_api_crds
	exit 0
	;;
esac
announce
data
gateway_api_crds
all_tools

log "summary:"
for s in "${SUMMARY[@]}"; do
	# shellcheck disable=SC2086
	printf '[tools]   %-26s %-11s %8s\n' $s
done
log "done in $(($(date +%s) - total_start))s; binaries in $BIN"
