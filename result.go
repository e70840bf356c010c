package revkit

// Result is the contract every write operation's result meets, as
// controller-runtime's OperationResult is one for its CreateOrUpdate: the
// operation returns a non-nil result even with an error, and ObjectChanges
// lists everything it changed (or, in a dry run, would change) before it
// stopped — object by object, with the action taken.
//
// tag.SetResult, tag.RemoveResult, namespace.MigrateResult,
// namespace.RestartResult, revision.InstallResult, revision.UninstallResult
// and gateway.MoveResult implement it; a plan step built from any of them
// reports these changes (see upgrade.Result).
type Result interface {
	ObjectChanges() []Change
}

// SetCommon replaces the shared settings of an options struct that embeds
// Common. A plan uses it to run every operation in the plan's own dry-run
// mode and with its event callback.
func (c *Common) SetCommon(to Common) { *c = to }
