package sim

import (
	"net"
	"net/url"
	"os"
	"syscall"
)

// Refused is the error of an HTTP request to address that nothing
// answers, as client-go gives it.
func Refused(op, address string) error {
	return &url.Error{Op: op, URL: address,
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
}
