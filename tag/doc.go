// Package tag manages revision tags: stable names such as prod-stable and
// prod-canary that namespaces select with istio.io/rev=<tag>, so that
// moving a tag moves every namespace that uses it.
//
//	res, err := tag.Set(ctx, kube, tag.SetOptions{
//		Tag:       "prod-stable",
//		Revision:  "1-25-0",
//		Overwrite: true, // the tag exists and points elsewhere
//	})
//
// Set builds the same objects istioctl tag set does (a webhook
// "istio-revision-tag-<tag>" copying the revision injector's endpoint and
// CA, and a Service "istiod-revision-tag-<tag>"). The tag "default" has more
// meaning: it also injects namespaces labelled istio-injection=enabled,
// deactivates a non-revisioned injector (without deleting it, so that one
// can switch back) and points the validating webhook
// "istiod-default-validator" at the revision.
//
// # Dry run
//
// All writes honour revkit.Common.DryRun; a client dry run reports the
// changes it would make and sends nothing.
//
// # Errors
//
// Set refuses, before any write: malformed names (revkit.ErrInvalidInput),
// an unknown revision (revkit.ErrNotFound), a tag named like a revision or
// a move without Overwrite (revkit.ErrExists, *revkit.ExistsError), and a
// tag whose webhook would overlap another injector (revkit.ErrOverlap,
// *revkit.OverlapError). Remove refuses while namespaces or pods depend on
// the tag (revkit.ErrInUse, *revkit.InUseError naming them) unless forced.
// Who depends on a tag is decided as the apiserver decides which webhook to
// call, from the webhooks' selectors: a namespace labelled both
// istio-injection=enabled and istio.io/rev=<x> depends on the default tag,
// not on x (Istio's IST0123). Note that removing
// the default tag does not reactivate a deactivated non-revisioned
// injector; set the tag to another revision instead.
package tag
