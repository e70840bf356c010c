// Package ambient reads and upgrades the node agents of Istio's ambient
// data plane: ztunnel, the per-node proxy, and istio-cni, the node agent
// that enrolls pods in ambient mode. Both run as DaemonSets, usually from
// their own Helm releases (the "ztunnel" and "istio-cni" charts).
//
// Istio's ambient upgrade guide orders an upgrade base → istiod →
// istio-cni → ztunnel, and states the skew rule this package enforces: a
// node agent at version 1.x works with a control plane at 1.x or 1.x+1, so
// the control plane is upgraded first and an agent is never newer than the
// istiod it talks to. Unlike sidecars, ztunnel serves every ambient pod of
// its node, so its upgrade touches a node at a time; the guide recommends
// cordoning and draining a node before its ztunnel is replaced when
// applications keep long-lived connections.
//
//   - [Read]: the ztunnel and istio-cni DaemonSets (release, revision,
//     version, update strategy, per-node pods and whether each runs the
//     DaemonSet's current template) and the namespaces in ambient mode.
//   - [CheckSkew]: the skew rule for one agent against its control plane.
//   - [Upgrade]: upgrades an agent's Helm release to a new chart through a
//     [revkit.Releaser] (package helm provides one), after checking the skew rule
//     against the version the chart renders, before anything is written;
//     with NodeByNode it sets updateStrategy OnDelete and then calls Roll.
//     Rolling back is an Upgrade to the old chart and revision.
//   - [Roll]: replaces a DaemonSet's pods node by node — optional cordon
//     and drain, delete the old pod, wait for the new one to be Ready, an
//     optional health check per node, uncordon — for a DaemonSet whose
//     release set updateStrategy OnDelete, so that the DaemonSet controller
//     itself does not roll every node at once.
//
// # Usage
//
//	st, err := ambient.Read(ctx, kube, ambient.ReadOptions{})
//	if err != nil {
//		return err
//	}
//	// After the control plane is upgraded, check the new ztunnel against it.
//	if err := ambient.CheckSkew(ambient.Ztunnel, "1.31.0", "1.31.0"); err != nil {
//		return err // errors.Is(err, revkit.ErrVersionSkew)
//	}
//	// helm upgrade ztunnel with updateStrategy.type=OnDelete, then:
//	res, err := ambient.Roll(ctx, kube, ambient.RollOptions{
//		Component: ambient.Ztunnel,
//		Drain:     true, // cordon, evict the node's ambient pods, then replace its ztunnel
//	})
//
// # Dry run and errors
//
// Roll honours [revkit.Common.DryRun]: a client dry run reads and reports
// what it would do per node; a server dry run also sends each write with
// dryRun=All. Neither waits for pods that would not be replaced.
//
// Bad options are refused before any request with a
// *[revkit.InvalidInputError]; a missing DaemonSet is a
// *[revkit.NotFoundError]; a DaemonSet that would roll itself (not
// OnDelete) is refused before any write. A skew violation is a
// *[SkewError] matching [revkit.ErrVersionSkew]. A node that does not come
// back is a *[NodeError] naming the node and what was pending; that node
// stays cordoned so that drained workloads do not return to a node without
// a working ztunnel, and the nodes after it are not touched.
package ambient
