package upgrade

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/ambient"
	"github.com/revkit/revkit/verify"
)

// UpgradeAgent upgrades a node agent of the ambient data plane (istio-cni
// or ztunnel) through its Helm release with ambient.Upgrade: the skew rule
// against its control plane first, then the release, then — NodeByNode — a
// node at a time. Its name is "upgrade-<component> <revision>".
func UpgradeAgent(opts ambient.UpgradeOptions) Step {
	opts.Values = cloneValues(opts.Values)
	opts.Roll.Nodes = slices.Clone(opts.Roll.Nodes)
	rev := opts.Revision
	if rev == "" {
		rev = "its revision"
	}
	how := ""
	if opts.NodeByNode {
		how = ", node by node"
		if opts.Roll.Drain {
			how += " with drain"
		} else if opts.Roll.Cordon {
			how += " with cordon"
		}
	}
	return newOp(fmt.Sprintf("upgrade-%s %s", opts.Component, opts.Revision),
		fmt.Sprintf("upgrade %s's Helm release for %s%s", opts.Component, rev, how), opts,
		opSpec[ambient.UpgradeOptions, *ambient.UpgradeResult]{kind: KindUpgradeAgent, call: ambient.Upgrade,
			preview: previewAgent, headline: agentHeadline})
}

// previewAgent renders the release (a client dry run through the
// Releaser, which only reads the real cluster's release records) and
// checks the skew rule against Preview's copy; nothing is upgraded, so
// nothing rolls in the copy.
func previewAgent(ctx context.Context, env Env, o ambient.UpgradeOptions) (Result, error) {
	o.DryRun = revkit.DryRunClient
	res, err := ambient.Upgrade(ctx, env.Kube, o)
	if err != nil {
		return Result{Detail: err.Error()}, err
	}
	return Result{Outcome: Done, Changes: res.Changes, Detail: agentHeadline(res) + " (rendered; a preview rolls no node)"}, nil
}

func agentHeadline(res *ambient.UpgradeResult) string {
	h := fmt.Sprintf("%s %s → %s", res.Release, orUnknown(res.Agent.Version), res.Version)
	if res.Roll != nil {
		n := 0
		for _, nr := range res.Roll.Nodes {
			if nr.Action == revkit.ActionUpdate {
				n++
			}
		}
		h += fmt.Sprintf(", %d of %d nodes replaced", n, len(res.Agent.Nodes))
	}
	return h
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

func cloneValues(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			v = cloneValues(sub)
		}
		out[k] = v
	}
	return out
}

// AmbientOptions upgrades the ambient data plane as part of a canary plan,
// in the order of Istio's ambient upgrade guide: after the new control
// plane is installed and the namespaces moved, istio-cni, then ztunnel
// (node by node), each through its Helm release, each refused before any
// write if its new version would be newer than the control plane it talks
// to (To). Waypoints and Gateway API gateways labelled with CanaryTag or
// StableTag follow their tag: istiod of To re-renders them when the tag
// moves.
type AmbientOptions struct {
	// Releaser upgrades the releases (helm.New gives one). Required.
	Releaser revkit.Releaser `json:"-"`
	// To are the charts (and values) to upgrade to. A nil chart leaves that
	// agent alone.
	To AgentCharts
	// From are the charts to go back to on rollback; without them a
	// rollback leaves the agents on To's charts — which the skew rule then
	// refuses if they are newer than From's control plane, so set them
	// whenever the plan can roll back.
	From AgentCharts
	// Namespace of the agents; default the control-plane namespace.
	Namespace string
	// NodeByNode replaces ztunnel a node at a time (updateStrategy
	// OnDelete and ambient.Roll), with Cordon or Drain; NodeTimeout bounds
	// each node (default 5 minutes). istio-cni always rolls itself.
	NodeByNode  bool
	Cordon      bool
	Drain       bool
	NodeTimeout time.Duration
	// Timeout bounds each release upgrade and self-rolling rollout;
	// default 5 minutes.
	Timeout time.Duration
}

// AgentCharts are the charts of the two node agents.
type AgentCharts struct {
	CNI, Ztunnel             *revkit.ChartSource
	CNIValues, ZtunnelValues map[string]any
}

func (a *AmbientOptions) validate() error {
	if a.Releaser == nil {
		return &revkit.InvalidInputError{Field: "Ambient.Releaser", Reason: "required (helm.New gives one)"}
	}
	if a.To.CNI == nil && a.To.Ztunnel == nil {
		return &revkit.InvalidInputError{Field: "Ambient.To", Reason: "name the istio-cni chart, the ztunnel chart, or both"}
	}
	for _, c := range []struct {
		field string
		src   *revkit.ChartSource
	}{{"Ambient.To.CNI", a.To.CNI}, {"Ambient.To.Ztunnel", a.To.Ztunnel}, {"Ambient.From.CNI", a.From.CNI}, {"Ambient.From.Ztunnel", a.From.Ztunnel}} {
		if c.src != nil {
			if err := c.src.Validate(c.field); err != nil {
				return err
			}
		}
	}
	if a.NodeTimeout < 0 || a.Timeout < 0 {
		return &revkit.InvalidInputError{Field: "Ambient.Timeout", Reason: "durations must not be negative"}
	}
	return nil
}

// agentSteps are the steps that move the agents to the charts of side,
// talking to revision rev at version (checked by the skew rule; "" reads
// it from rev's istiod Deployment): istio-cni first, then ztunnel — on the
// way back, ztunnel first.
func (a *AmbientOptions) agentSteps(cp string, side AgentCharts, rev, version string, back bool) []Step {
	ns := a.Namespace
	if ns == "" {
		ns = cp
	}
	var out []Step
	if side.CNI != nil {
		out = append(out, UpgradeAgent(ambient.UpgradeOptions{Namespace: ns, Component: ambient.CNI, Chart: *side.CNI,
			Values: side.CNIValues, Revision: rev, ControlPlaneVersion: version, Releaser: a.Releaser, Timeout: a.Timeout}))
	}
	if side.Ztunnel != nil {
		z := UpgradeAgent(ambient.UpgradeOptions{Namespace: ns, Component: ambient.Ztunnel, Chart: *side.Ztunnel,
			Values: side.ZtunnelValues, Revision: rev, ControlPlaneVersion: version, Releaser: a.Releaser, Timeout: a.Timeout,
			NodeByNode: a.NodeByNode, Roll: ambient.RollOptions{Cordon: a.Cordon, Drain: a.Drain, NodeTimeout: a.NodeTimeout}})
		if back {
			out = append([]Step{z}, out...)
		} else {
			out = append(out, z)
		}
	}
	return out
}

// permissions are what the agent steps add to the precheck.
func (a *AmbientOptions) permissions(cp string) []verify.Permission {
	ns := a.Namespace
	if ns == "" {
		ns = cp
	}
	return verify.AgentUpgradePermissions(ns, a.NodeByNode, a.Drain)
}
