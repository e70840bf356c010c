package revkittest

import (
	"net"
	"net/url"
	"os"
	"syscall"
)

// ConnectionRefused returns the error client-go gives when nothing listens
// on the apiserver's address, as while it restarts: inject it with FailNth
// or FailAlways to test how a plan rides out an outage (it is transient
// for upgrade.Env.TransientRetry and the rollout waits).
func ConnectionRefused() error { return refused("Get", "https://127.0.0.1:6443/api") }

// refused is the error of an HTTP request to address that nothing answers.
func refused(op, address string) error {
	return &url.Error{Op: op, URL: address,
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
}
