package revision

import "github.com/revkit/revkit"

// ObjectChanges lists the release's objects as changes: created by a new
// release, updated by an upgrade (Helm applies every object of the release
// and does not say which of them differed); see revkit.Result.
func (r *InstallResult) ObjectChanges() []revkit.Change {
	action := revkit.ActionCreate
	if r.Upgraded {
		action = revkit.ActionUpdate
	}
	out := make([]revkit.Change, 0, len(r.Objects))
	for _, o := range r.Objects {
		out = append(out, revkit.Change{Object: o, Action: action, Reason: "release " + r.Release})
	}
	return out
}
