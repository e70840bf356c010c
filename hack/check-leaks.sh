#!/usr/bin/env bash
# Fails loudly if any process that an integration run started is still alive.
#
#   hack/check-leaks.sh PIDFILE [NETNS_FILE...]
#
# PIDFILE has "pid starttime name" lines, written by internal/testenv for every
# process it starts (REVKIT_TESTENV_PIDFILE). A pid counts as alive when
# /proc/<pid> exists with the same start time (so a reused pid is not blamed)
# and is not a zombie. Each NETNS_FILE names a namespace made by
# hack/netns-run.sh; any process still in it is a leak too — unless it started
# after NETNS_FILE.end was written (when the command in the namespace ended):
# the kernel reuses a dead namespace's id, so such a process lives in a later
# namespace of someone else's. Survivors are listed, then killed (only those,
# by pid), and the script exits 1.
set -uo pipefail
pidfile=${1:?usage: $0 PIDFILE [NETNS_FILE...]}
shift
leaks=()
checked=0
if [[ -f $pidfile ]]; then
	while read -r pid start name; do
		[[ -n ${pid:-} ]] || continue
		checked=$((checked + 1))
		stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		rest=${stat##*) }
		read -r -a f <<<"$rest"
		state=${f[0]}
		[[ $state == Z || $state == X ]] && continue
		[[ ${f[19]} == "$start" ]] || continue
		leaks+=("$pid")
		echo "LEAK: $name (pid $pid) is still running: $(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-200)" >&2
	done <"$pidfile"
fi
btime=$(awk '/^btime/ {print $2}' /proc/stat)
hz=$(getconf CLK_TCK)
# started_at prints a process's start time in seconds since the epoch.
started_at() {
	local stat rest f
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	rest=${stat##*) }
	read -r -a f <<<"$rest"
	echo $((btime + f[19] / hz))
}
for nsfile in "$@"; do
	[[ -f $nsfile ]] || continue
	ns=$(cat "$nsfile")
	ended=""
	[[ -f $nsfile.end ]] && ended=$(stat -c %Y "$nsfile.end")
	for d in /proc/[0-9]*; do
		pid=${d#/proc/}
		[[ $(readlink "$d/ns/net" 2>/dev/null) == "$ns" ]] || continue
		if [[ -n $ended ]]; then
			at=$(started_at "$pid") || continue
			((at > ended)) && continue
		fi
		[[ " ${leaks[*]} " == *" $pid "* ]] && continue
		leaks+=("$pid")
		echo "LEAK: pid $pid is still in test network namespace $ns: $(tr '\0' ' ' <"$d/cmdline" 2>/dev/null | cut -c1-200)" >&2
	done
done
if ((${#leaks[@]} > 0)); then
	echo "check-leaks: FAIL: ${#leaks[@]} process(es) started by the integration run outlived it; killing them" >&2
	for pid in "${leaks[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
	exit 1
fi
echo "check-leaks: ok: none of the $checked processes started by the integration run is alive; test namespaces are empty"
