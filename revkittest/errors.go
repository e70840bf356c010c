package revkittest

import "github.com/revkit/revkit/internal/sim"

// ConnectionRefused returns the error client-go gives when nothing listens
// on the apiserver's address, as while it restarts: inject it with FailNth
// or FailAlways to test how a plan rides out an outage (it is transient
// for upgrade.Env.TransientRetry and the rollout waits).
func ConnectionRefused() error { return sim.Refused("Get", "https://127.0.0.1:6443/api") }
