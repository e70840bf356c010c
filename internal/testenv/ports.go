package testenv

import (
	"fmt"
	"net"
	"strconv"
	"sync"
)

var (
	portsMu sync.Mutex
	// handed out by this test binary; the kernel may offer a port again once
	// our probe listener is closed, before the child process binds it.
	portsUsed = map[int]bool{}
)

// freePort returns a loopback TCP port that nothing listens on and that this
// process has not handed out before.
func freePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !portsUsed[port] {
			portsUsed[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("testenv: no free loopback port")
}

func freePorts(n int) ([]int, error) {
	ps := make([]int, n)
	for i := range ps {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ps[i] = p
	}
	return ps, nil
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
