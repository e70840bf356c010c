package gateway

import "github.com/revkit/revkit"

// ObjectChanges lists what Move changed; see revkit.Result.
func (r *MoveResult) ObjectChanges() []revkit.Change { return r.Gateways }
