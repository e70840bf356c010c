// Package helm installs, upgrades and uninstalls Istio's charts as Helm
// releases, as Istio's Helm upgrade guide does: the istiod chart of each
// revision as release "istiod-<revision>" beside the others, the base chart
// (CRDs) as release "istio-base".
//
// It is the one package of revkit that links the Helm SDK. Its [Client]
// implements [revision.Installer], the interface through which
// revision.Install, revision.UpgradeBase and revision.Uninstall — and the
// steps and plans of package upgrade — reach Helm; a program that only
// lists, tags, migrates or verifies does not import it and does not carry
// Helm.
//
//	hc, err := helm.New(restConfig, "istio-system", logger)
//	res, err := revision.Install(ctx, kube, revision.InstallOptions{
//		Revision:   "1-26-0",
//		Chart:      revision.ChartSource{Ref: "oci://registry/istio/istiod", Version: "1.26.0"},
//		ValuesFrom: "1-25-0", // start from the old release's values
//		Helm:       hc,
//	})
//
//	plan, err := upgrade.Canary(ctx, kube, upgrade.CanaryOptions{
//		From: "1-25-0", To: "1-26-0",
//		Install: &revision.InstallOptions{Chart: chart, Helm: hc},
//		/* … */
//	})
//
// It also implements revkit.Releaser for the releases of Istio's other
// charts: [Client.UpgradeRelease] upgrades a node agent (ambient.Upgrade)
// or a gateway (gateway.UpgradeRelease) in place, with the release's own
// chart when none is given; [Client.InstallRelease] and
// [Client.UninstallRelease] install and remove a gateway's canary release
// (gateway.CanaryRelease, PromoteCanaryRelease, RollbackCanaryRelease).
//
// Release records are Secrets in the namespace given to [New] (Helm's
// default storage) — for a gateway, its own namespace; [NewFromConfiguration] runs with a Helm action
// configuration of the caller's instead, e.g. in-memory storage in tests.
//
// # Dry run
//
// An install renders its chart with Helm's client-side dry run before
// anything else, to refuse an injector that would overlap one in the
// cluster. A client dry run stops there; a server dry run sends every
// rendered object as a server-side apply with dryRun=All, so that the
// apiserver and its admission webhooks judge it, and persists nothing.
// UpgradeBase lists the change to every CRD in a dry run too.
//
// # Errors
//
// Invalid options are refused before any request (revkit.ErrInvalidInput).
// An install refuses a revision that exists without being asked to upgrade
// its release, or that was installed without Helm (revkit.ErrExists), and
// a chart whose injector would overlap another (revkit.ErrOverlap);
// UpgradeBase refuses to drop a CRD version objects may still be stored in
// (*revision.StoredVersionError, revkit.ErrInUse). All before any write.
package helm
