// Package revision finds and removes Istio control-plane revisions.
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
// A revision is present when it has its own injector webhook (labelled
// istio.io/rev=<rev> without istio.io/tag) or an istiod Deployment. It is in
// use while a namespace would have new pods injected by it (directly, through
// a tag, or through the default injectors), while a tag points to it, or
// while a running pod carries its sidecar.
//
// # Dry run
//
// Uninstall honours revkit.Common.DryRun; a client dry run lists what would
// be deleted and deletes nothing.
//
// # Errors
//
// Uninstall refuses a malformed name (revkit.ErrInvalidInput) and, unless
// forced, a revision in use (revkit.ErrInUse), before deleting anything. It
// never deletes objects of a tag, of another revision, or gateways labelled
// with the revision; the result lists those as skipped.
package revision
