#!/usr/bin/env bash
# Runs a command inside a fresh network namespace that has only loopback, so
# that nothing it starts (apiserver, istiod, ...) can reach an address off this
# machine: a dial to 10.x fails at once with "network unreachable".
#
#   hack/netns-run.sh bin/test/testenv.test -test.v
#
# If NETNS_FILE is set, the namespace's id (e.g. net:[4026532281]) is written
# there, so that hack/check-leaks.sh can look for processes left in it.
# The namespace disappears with its last process. Needs root (or CAP_SYS_ADMIN).
set -euo pipefail
if [[ $# -eq 0 ]]; then
	echo "usage: $0 command [args...]" >&2
	exit 2
fi
# Debian keeps ip (iproute2) in /usr/sbin, which a non-login PATH may lack.
export PATH=$PATH:/usr/sbin:/sbin
exec unshare --net --fork --kill-child=SIGKILL -- bash -c '
	set -e
	ip link set lo up
	if [[ -n "${NETNS_FILE:-}" ]]; then readlink /proc/self/ns/net >"$NETNS_FILE"; fi
	if [[ "$(readlink /proc/self/ns/net)" == "$(readlink /proc/1/ns/net 2>/dev/null || readlink /proc/2/ns/net)" || "$(readlink /proc/self/ns/net)" == "net:[4026531833]" ]]; then
		echo "netns-run: still in the host network namespace, refusing" >&2
		exit 1
	fi
	exec "$@"
' netns-run "$@"
