// Package namespace moves the data plane between revisions: Migrate points
// namespaces at a revision or tag, RolloutRestart restarts their workloads
// so that new pods get the new sidecar.
//
//	_, err := namespace.Migrate(ctx, kube, namespace.MigrateOptions{
//		Selection: namespace.Selection{Selector: "team=shop"},
//		Target:    "prod-canary",
//	})
//	...
//	res, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{
//		Selection: namespace.Selection{Selector: "team=shop"},
//		Target:    "prod-canary",
//		OnlyStale: true, // rerunning restarts nothing twice
//		Wait:      true,
//		Timeout:   5 * time.Minute,
//	})
//
// # Dry run
//
// Both honour revkit.Common.DryRun: in client mode the results say what
// would change and no write is sent; in server mode every patch goes out
// with dryRun=All and RolloutRestart does not wait.
//
// # Large fleets
//
// From ten selected namespaces on, both keep DefaultConcurrency requests in
// flight (Concurrency overrides it; the client's QPS and Burst still bound
// the rate), and RolloutRestart lists each kind once across the cluster
// instead of once per namespace and waits with one watch per kind, falling
// back to per-namespace lists and polling when the caller may not list
// across the cluster. Below ten, requests go one at a time, in order, and
// the wait watches each namespace. Every read happens before the first
// restart patch, so a failed read writes nothing.
//
// # Errors
//
// Bad options give a *revkit.InvalidInputError; a target that is neither a
// revision nor a tag, or a named namespace that does not exist, a
// *revkit.NotFoundError — both before any write. System namespaces and the
// control-plane namespace are refused unless Selection.AllowSystem is set.
// A wait that times out returns a *WaitError naming the pending workloads.
// A Deployment whose rollout has failed (past its progress deadline, so the
// controller has stopped trying) ends the wait at once with a
// *revkit.RolloutFailedError naming it and the condition, which matches
// revkit.ErrRolloutFailed; the result still lists what was restarted.
// The wait reads through an apiserver outage: reads that fail transiently
// (connection refused or reset, 429, 500, 503, 504) are retried with a
// backoff until the timeout, and the *WaitError then carries the latest
// such error in LastError.
// After a failed patch no new one starts; the result lists the workloads
// or namespaces attempted, the failed one included.
package namespace
