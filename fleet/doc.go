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
// Every plan is built and validated before the first wave starts, so bad
// input anywhere stops the fleet before anything is written. Events carry
// the cluster's name (revkit.Event.Cluster).
package fleet
