// Package gateway finds Istio gateway workloads and moves them between
// revisions, in place or as canaries.
//
// Gateways are upgraded like any other injected workload, but a gateway
// carries its revision on its own pod template (istio.io/rev), usually in a
// namespace without an injection label. Two ways to move one:
//
//   - InPlace relabels the gateway's pod template, which rolls its pods onto
//     the new revision.
//   - Canary creates a second Deployment "<name>-<revision>" on the new
//     revision beside the old one; the gateway's Service selects both, so
//     traffic is shared until RemoveCanaries (after a rollback) or an
//     InPlace move plus RemoveCanaries (after a promotion).
//
// A gateway Deployment a Helm release owns (Istio's gateway chart) is
// listed with its release and never patched: Move refuses it with a
// *HelmOwnedError.
//
// # Gateways installed by Helm
//
// A gateway installed with Istio's gateway chart moves through its own
// release, so that the next helm upgrade of that release keeps the move
// (the chart puts its revision value on the pod template as istio.io/rev).
// The Releaser is Helm: a helm.Client made for the gateway's namespace,
// where its release is recorded.
//
//   - UpgradeRelease helm-upgrades the release in place with revision set to
//     the target revision or tag (the release's other values kept; a zero
//     Chart reuses its chart), and with Wait returns once every pod of the
//     gateway was injected by the target. Rolling back is an UpgradeRelease
//     to the old revision.
//   - CanaryRelease installs a second release of the chart beside it,
//     "<release>-<revision>", on the target, whose pods carry the labels the
//     gateway's Service selects (labels.app and labels.istio; no Service of
//     its own): the Service sends traffic to both. PromoteCanaryRelease then
//     upgrades the gateway's release in place and uninstalls the canary;
//     RollbackCanaryRelease uninstalls the canary.
//
// For instance, in place to the revision behind a tag:
//
//	hc, _ := helm.New(cfg, "istio-ingress", nil)
//	res, err := gateway.UpgradeRelease(ctx, kube, gateway.ReleaseOptions{
//		Namespace: "istio-ingress", Release: "istio-ingressgateway",
//		Target: "prod-canary", Releaser: hc, Wait: true})
//
// Each renders the release first (a client dry run) and checks that the
// chart puts the gateway's Deployment on the target — and, for a canary,
// its pods under the Service's selector — before anything is written
// (*RenderError otherwise). They refuse before any write malformed
// options, an unknown revision or tag and a missing gateway
// (*revkit.NotFoundError), a gateway no release owns (use Move), and a
// canary name already taken (*revkit.ExistsError). DryRunClient renders
// only; DryRunServer also sends the rendered objects with dryRun=All; an
// uninstall is not sent in either.
//
// # Gateway API gateways and waypoints
//
// A Kubernetes Gateway API Gateway of class istio, or an ambient waypoint
// (class istio-waypoint), has a Deployment that istiod itself creates and
// rewrites: the istiod whose revision or tag the Gateway's istio.io/rev
// label names. ListAPI lists them with the revision that serves each (a tag
// resolved through the tag webhooks, as istiod does) and the state of that
// Deployment; MoveAPI moves them by setting the label on the Gateway —
// never by patching the Deployment — and with Wait returns once the target
// revision's istiod has re-rendered each Deployment and it rolled out. The
// Gateways are read and labelled with a dynamic client, so revkit needs no
// Gateway API module:
//
//	res, err := gateway.MoveAPI(ctx, kube, dyn, gateway.MoveAPIOptions{
//		Target: "prod-canary", Wait: true, Timeout: 5 * time.Minute})
//
// MoveAPI refuses before any write an unknown revision or tag and a named
// Gateway that is missing (*revkit.NotFoundError), of another class
// (*UnsupportedClassError) or installed by Helm (*HelmOwnedError); a dry
// run writes nothing (DryRunServer sends the patches with dryRun=All).
// Rolling back is a MoveAPI to the old revision or tag.
//
// A rollback must move gateways back before the canary revision is
// uninstalled (Istio issue 33822); revision.Uninstall never deletes
// gateways.
package gateway
