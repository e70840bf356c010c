// Package revision finds, installs and removes Istio control-plane
// revisions.
//
//	revs, err := revision.List(ctx, kube, revision.ListOptions{})
//	for _, r := range revs {
//		fmt.Println(r.Name, r.Tags, r.Namespaces, len(r.Pods))
//	}
//	_, err = revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: "1-24-0"})
//	var inUse *revkit.InUseError
//	if errors.As(err, &inUse) {
//		// inUse.Usage names the namespaces, tags and pods still on it
//	}
//
// Install, UpgradeBase and the uninstall of a revision's Helm release go
// through an [Installer] set in the options' Helm field; package helm
// provides one with the Helm SDK (helm.New). This package does not link
// Helm itself: it checks the options, and Uninstall detects a Helm release's
// objects by Helm's ownership labels and annotations.
//
//	hc, err := helm.New(restConfig, "istio-system", nil)
//	_, err = revision.Install(ctx, kube, revision.InstallOptions{
//		Revision: "1-25-0", Chart: revision.ChartSource{Path: "manifests/charts/istio-control/istio-discovery"},
//		ValuesFrom: "1-24-0", Helm: hc,
//	})
//	_, err = revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: "1-24-0", Helm: hc})
//
// A revision is present when it has its own injector webhook (labelled
// istio.io/rev=<rev> without istio.io/tag) or an istiod Deployment. It is in
// use while a namespace would have new pods injected by it (directly, through
// a tag, or through the default injectors), while a tag points to it, or
// while a running pod carries its sidecar.
//
// # Dry run
//
// Uninstall honours revkit.Common.DryRun; a client dry run lists what would
// be deleted and deletes nothing. Install and UpgradeBase hand the mode to
// the installer (package helm: rendered only, or judged by the apiserver).
//
// # Errors
//
// Uninstall refuses a malformed name (revkit.ErrInvalidInput), unless
// forced a revision in use (revkit.ErrInUse), and without an Installer a
// revision whose objects a Helm release owns (revkit.ErrInvalidInput on
// field Helm), before deleting anything; Install and UpgradeBase refuse
// invalid options, a missing Installer among them, before any request.
// Uninstall never deletes objects of a tag, of another revision, or
// gateways labelled with the revision; the result lists those as skipped.
package revision
