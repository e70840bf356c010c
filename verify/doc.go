// Package verify gathers evidence that a canary upgrade of the Istio
// control plane worked, or is safe to start. It only reads: nothing here
// writes to the cluster.
//
//   - [Pods]: per namespace, how many pods run a sidecar of which revision,
//     and the stragglers that a rollout restart has not reached yet.
//   - [Proxies]: the control plane's view, from istiod's /debug/syncz:
//     which revision each proxy is connected to and whether it is SYNCED.
//   - [Webhooks]: overlapping injectors, webhooks calling a Service that is
//     gone, and validators or tags left pointing at a removed revision.
//   - [Precheck]: Kubernetes version, permissions, installed revisions.
//
// # Usage
//
//	pods, err := verify.Pods(ctx, kube, verify.PodsOptions{
//		Namespaces: []string{"shop"},
//		Target:     "prod-canary", // a revision or a tag
//	})
//	if err != nil {
//		return err // bad options, unknown target, API failure
//	}
//	for _, s := range pods.Stragglers {
//		fmt.Println(s) // shop/cart-0: on revision 1-24-0
//	}
//
//	proxies, err := verify.Proxies(ctx, verify.ProxiesOptions{
//		Sources: []verify.SyncSource{
//			verify.HTTPSource{Rev: "1-25-0", URL: "http://127.0.0.1:15014"},
//		},
//		Target: "1-25-0",
//	})
//	if err == nil && !proxies.OK() {
//		return proxies.Err()
//	}
//
// Each operation returns a typed report. A report describes the cluster; a
// finding is not an error of the call. OK tells whether the report found
// nothing wrong, and Err turns the findings into an error for callers (such
// as an upgrade plan step) that want to stop on them.
//
// # Errors
//
// Bad options are refused before any request with an error matching
// [revkit.ErrInvalidInput] (a *[revkit.InvalidInputError]). A Target that
// is neither a revision nor a tag, or a listed namespace that does not
// exist, returns a *[revkit.NotFoundError] matching [revkit.ErrNotFound].
//
// A failed API call comes back as a *[revkit.OpError], or wrapped with
// what was being read; either way the API status survives, so
// apierrors.IsForbidden(err) and friends still work. A syncz source that
// cannot be read returns a *[SourceError] wrapping the cause: an
// *[HTTPStatusError] for a non-200 answer, a *[SynczError] (matching
// [ErrMalformedSyncz]) for a document that does not parse.
//
// The Err method of a report returns nil or a *[VerificationError] listing
// every [Problem]. It matches [revkit.ErrVerificationFailed], and also
// [revkit.ErrOverlap] when two injectors overlap:
//
//	if err := report.Err(); errors.Is(err, revkit.ErrOverlap) {
//		// fix the webhooks before labelling any namespace
//	}
package verify
