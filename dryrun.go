package revkit

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DryRun selects how writes are carried out. The zero value writes.
type DryRun int

const (
	// DryRunNone performs every write.
	DryRunNone DryRun = iota
	// DryRunClient computes and reports the changes but sends no write
	// request at all.
	DryRunClient
	// DryRunServer sends every write with dryRun=All: the apiserver validates
	// and admits it, nothing is persisted.
	DryRunServer
)

// String returns "none", "client" or "server".
func (d DryRun) String() string {
	switch d {
	case DryRunNone:
		return "none"
	case DryRunClient:
		return "client"
	case DryRunServer:
		return "server"
	}
	return fmt.Sprintf("DryRun(%d)", int(d))
}

// ParseDryRun turns "none" (or ""), "client" or "server" into a DryRun.
func ParseDryRun(s string) (DryRun, error) {
	switch s {
	case "", "none", "false":
		return DryRunNone, nil
	case "client":
		return DryRunClient, nil
	case "server":
		return DryRunServer, nil
	}
	return DryRunNone, &InvalidInputError{Field: "dryRun", Value: s, Reason: `must be "none", "client" or "server"`}
}

// Validate reports an unknown mode.
func (d DryRun) Validate() error {
	if d < DryRunNone || d > DryRunServer {
		return &InvalidInputError{Field: "DryRun", Value: d.String(), Reason: "unknown dry-run mode"}
	}
	return nil
}

// SendsRequests reports whether writes reach the apiserver at all.
func (d DryRun) SendsRequests() bool { return d != DryRunClient }

// Persists reports whether writes change the cluster.
func (d DryRun) Persists() bool { return d == DryRunNone }

// APIValue is the value of the dryRun field of Create/Update/Patch/Delete
// options for this mode.
func (d DryRun) APIValue() []string {
	if d == DryRunServer {
		return []string{metav1.DryRunAll}
	}
	return nil
}
