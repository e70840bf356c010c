package testenv

import (
	"fmt"
	"os"
	"strings"
)

// HostNetworkError is returned by Start when the calling process shares its
// network namespace with the host's init process (pid 1), or when that cannot
// be ruled out. The control plane
// would then reach 10.x addresses through the host's routes, which is
// forbidden; run the test binary in a loopback-only namespace instead.
type HostNetworkError struct {
	// Self and Host are the namespace links of /proc/self/ns/net and of the
	// host (see HostNetNS), e.g. "net:[4026531833]".
	Self, Host string
	// Err is set when the namespaces could not be compared; Start refuses
	// then too.
	Err error
}

func (e *HostNetworkError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("testenv: refusing to start: cannot tell whether this process is in the host network namespace: %v (run it inside a loopback-only namespace, e.g. hack/netns-run.sh)", e.Err)
	}
	return fmt.Sprintf("testenv: refusing to start in the host network namespace (%s); run the test binary inside a loopback-only namespace, e.g. hack/netns-run.sh", e.Self)
}

func (e *HostNetworkError) Unwrap() error { return e.Err }

// NetNS returns the network namespace link of a process ("self" or a pid),
// e.g. "net:[4026532281]".
func NetNS(pid string) (string, error) {
	return os.Readlink("/proc/" + pid + "/ns/net")
}

// initNetNS is the network namespace link of the kernel's initial network
// namespace, whose inode number is fixed (PROC_NET_INIT_INO).
const initNetNS = "net:[4026531833]"

// HostNetNS returns the host's network namespace link: pid 1's, or, where a
// sandbox hides pid 1's namespaces, kthreadd's (pid 2), which always lives in
// the kernel's initial namespaces.
func HostNetNS() (string, error) {
	ns, err := NetNS("1")
	if err == nil {
		return ns, nil
	}
	if ns2, err2 := NetNS("2"); err2 == nil {
		return ns2, nil
	}
	return "", err
}

// CheckNetworkIsolated returns a *HostNetworkError unless the calling process
// is in a network namespace other than the host's (and other than the
// kernel's initial one) that has no default route.
func CheckNetworkIsolated() error {
	self, err := NetNS("self")
	if err != nil {
		return &HostNetworkError{Err: err}
	}
	host, err := HostNetNS()
	if err != nil {
		return &HostNetworkError{Self: self, Err: err}
	}
	if self == host || self == initNetNS {
		return &HostNetworkError{Self: self, Host: host}
	}
	// A namespace of its own with a default route (e.g. a veth to the host)
	// would leak just the same.
	routes, err := os.ReadFile("/proc/self/net/route")
	if err != nil {
		return &HostNetworkError{Self: self, Host: host, Err: err}
	}
	for _, line := range strings.Split(string(routes), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 2 && f[1] == "00000000" && f[0] != "lo" {
			return &HostNetworkError{Self: self, Host: host, Err: fmt.Errorf("namespace has a default route via %s", f[0])}
		}
	}
	return nil
}
