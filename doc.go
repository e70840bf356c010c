// Package revkit is a library for revision-based (canary) upgrades of the
// Istio control plane.
//
// The work is split into one package per noun of the domain:
//
//   - revision: control-plane revisions: List, InUse, Install, UpgradeBase,
//     Uninstall, RemoteValues; installs go through a revision.Installer.
//   - helm: that Installer, and the Releaser of the node agents and
//     gateways, with the Helm SDK (helm.New): Istio's charts as Helm
//     releases. The only package that links Helm.
//   - tag: revision tags: Set, Remove, List.
//   - namespace: data-plane moves: Migrate, RolloutRestart, Restore.
//   - gateway: gateway Deployments: List, Move, RemoveCanaries; Gateway API
//     gateways and waypoints: ListAPI, MoveAPI.
//   - ambient: the ambient node agents (ztunnel, istio-cni): Read,
//     CheckSkew, Upgrade through their Helm releases, Roll node by node.
//   - verify: evidence that it worked: Pods, Proxies, Webhooks, Precheck,
//     CheckSkew.
//   - upgrade: the Plan/Step executor that strings operations together,
//     and the standard Canary and Rollback plans.
//   - fleet: many clusters upgraded in waves, each with its own plan.
//   - metrics: the canary's traffic compared with the baseline's in
//     Prometheus, and a plan gate built on it.
//   - revkittest: fake clusters and an in-memory simulation for tests.
//
// This root package holds only what every operation shares: the dry-run
// mode, progress events, the shared error values, name validation, and the
// chart and release types (ChartSource, Releaser) that packages taking a
// Helm release share without linking Helm.
//
// # Usage
//
//	res, err := namespace.Migrate(ctx, kube, namespace.MigrateOptions{
//		Namespaces: []string{"shop"},
//		Target:     "prod-canary",
//	})
//	if errors.Is(err, revkit.ErrNotFound) {
//		// the target is neither a revision nor a tag
//	}
//
// # Dry run
//
// Every write honours [DryRun]: [DryRunNone] writes, [DryRunClient] computes
// and reports the changes without sending a single write request, and
// [DryRunServer] sends the writes with dryRun=All so that the apiserver (and
// its admission webhooks) validate them while nothing persists. Results and
// events say which mode produced them.
//
// # Errors
//
// Bad input is refused before any request with an error that matches
// [ErrInvalidInput] (and is an [*InvalidInputError]). Guards return errors that
// match [ErrInUse], [ErrExists], [ErrNotFound] or [ErrOverlap] and carry the
// details as typed values ([*InUseError], [*ExistsError], [*NotFoundError]).
// Failed API calls are wrapped in an [*OpError] that names the operation, the
// verb and the object and keeps the API status, so apierrors.IsForbidden and
// friends still work. A wait for a rollout that the workload's controller
// reports failed (a Deployment past its progress deadline) ends at once with
// an error that matches [ErrRolloutFailed] and is a [*RolloutFailedError].
package revkit
