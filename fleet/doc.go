// Package fleet upgrades many clusters in waves: dev clusters first, then
// staging, then production regions, stopping everything when a wave goes
// wrong.
//
// Each cluster runs its own plan (built by Options.Plan, usually
// upgrade.Canary against that cluster), with its own journal in that
// cluster when Options.Journal is set, so rerunning the fleet after a stop
// resumes every cluster where it stopped and passes over those that had
// completed. A wave runs its clusters at most Wave.MaxParallel at once;
// between waves the fleet checks that every cluster of the wave completed
// and has no dangling or overlapping injector (verify.Webhooks), then runs
// the caller's gates; Wave.Approve is a manual approval point. The fleet
// stops at the first failed cluster, or once more clusters failed than
// Options.FailureBudget allows: clusters not started are reported NotRun,
// those running finish their plans.
//
// In a primary-remote mesh a remote cluster runs no istiod: its webhooks
// call the primary's istiod of each revision (its revisions are installed
// with revision.RemoteValues). Name its primary in Cluster.Primary and put
// it in a wave after the primary's: the primary's plan installs the new
// revision and keeps the old one (upgrade.CanaryOptions.KeepOld), the
// remote's plan installs the new revision's remote-side objects, moves its
// namespaces and removes the old revision's; the old revision leaves the
// primary once no remote uses it. After every wave the "remotes" gate
// checks that each remote's revisions and tags are installed on its
// primary.
//
// A plan that installs revisions with Helm gets each cluster's installer
// from helm.New(cluster.Config, …); fleet itself does not link Helm.
//
// Every plan is built and validated before the first wave starts, so bad
// input anywhere stops the fleet before anything is written. Events carry
// the cluster's name (revkit.Event.Cluster).
package fleet
