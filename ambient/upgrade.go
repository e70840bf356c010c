package ambient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
)

// UpgradeOptions configures Upgrade.
type UpgradeOptions struct {
	revkit.Common
	// Namespace of the agent; default istio-system.
	Namespace string
	// Component to upgrade: Ztunnel or CNI (required).
	Component Component
	// Name of the DaemonSet when the namespace holds several of the
	// component.
	Name string
	// Release is the agent's Helm release; default the release recorded on
	// its DaemonSet.
	Release string
	// Chart is the chart to upgrade to (required).
	Chart revkit.ChartSource
	// Values are laid over the release's values.
	Values map[string]any
	// Revision is the control-plane revision the agent will talk to; it is
	// set as the chart's revision value. Default: the revision it talks to
	// now.
	Revision string
	// ControlPlaneVersion is that revision's Istio version; default: the tag
	// of its istiod Deployment's image.
	ControlPlaneVersion string
	// Version is the agent's new version; default: the tag of the image the
	// chart renders for it.
	Version string
	// NodeByNode upgrades the release with updateStrategy OnDelete and then
	// replaces the pods with Roll, a node at a time, with Roll's options
	// (Cordon, Drain, Check, NodeTimeout, Nodes). Without it the DaemonSet
	// rolls itself and Upgrade waits for its rollout.
	NodeByNode bool
	Roll       RollOptions
	// Releaser performs the helm upgrade (required).
	Releaser revkit.Releaser `json:"-"`
	// Timeout bounds the helm upgrade and, without NodeByNode, the rollout;
	// default 5 minutes.
	Timeout time.Duration
}

// Validate checks the options as Upgrade does before any request.
func (o *UpgradeOptions) Validate() error {
	c := *o
	return c.validate()
}

func (o *UpgradeOptions) validate() error {
	if err := o.Component.validate(); err != nil {
		return err
	}
	if err := o.Chart.Validate("Chart"); err != nil {
		return err
	}
	if o.Releaser == nil {
		return &revkit.InvalidInputError{Field: "Releaser", Reason: "required: the agents are Helm releases (helm.New gives one)"}
	}
	if err := o.DryRun.Validate(); err != nil {
		return err
	}
	if o.Revision != "" {
		if err := revkit.ValidateRevision(o.Revision); err != nil {
			return err
		}
	}
	for _, f := range []struct{ name, v string }{{"ControlPlaneVersion", o.ControlPlaneVersion}, {"Version", o.Version}} {
		if f.v != "" {
			if _, err := parseVersion(f.name, f.v); err != nil {
				return err
			}
		}
	}
	if o.Timeout < 0 {
		return &revkit.InvalidInputError{Field: "Timeout", Value: o.Timeout.String(), Reason: "must not be negative"}
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	o.Roll.Namespace, o.Roll.Component, o.Roll.Name, o.Roll.Common = o.Namespace, o.Component, o.Name, o.Common
	return o.Roll.defaults()
}

// UpgradeResult reports an Upgrade.
type UpgradeResult struct {
	// Agent is the DaemonSet as it was before.
	Agent Agent
	// Release is the Helm release upgraded, and Version/ControlPlaneVersion
	// the versions the skew rule was checked with.
	Release             string
	Version             string
	ControlPlaneVersion string
	Revision            string
	// Roll is the node-by-node replacement (NodeByNode only).
	Roll    *RollResult
	Changes []revkit.Change
}

// ObjectChanges lists what Upgrade changed; see revkit.Result.
func (r *UpgradeResult) ObjectChanges() []revkit.Change { return r.Changes }

// Upgrade upgrades a node agent's Helm release to a new chart, after
// checking Istio's skew rule between the version the chart renders and the
// control-plane revision the agent will talk to — so upgrading an agent
// before its control plane is refused before anything is written. With
// NodeByNode the release sets updateStrategy OnDelete and Roll replaces the
// pods a node at a time; otherwise the DaemonSet rolls itself and Upgrade
// waits for it. Rolling back is an Upgrade to the old chart and revision.
func Upgrade(ctx context.Context, kube kubernetes.Interface, opts UpgradeOptions) (*UpgradeResult, error) {
	res := &UpgradeResult{Release: opts.Release, Revision: opts.Revision}
	if err := opts.validate(); err != nil {
		return res, err
	}
	const op = "ambient.Upgrade"
	ns := revkit.ControlPlaneNamespace(opts.Namespace)
	ds, agent, err := loadAgent(ctx, kube, op, ns, opts.Component, opts.Name)
	if err != nil {
		return res, err
	}
	res.Agent = *agent
	if res.Release == "" {
		res.Release = agent.Release
	}
	if res.Release == "" {
		return res, &revkit.InvalidInputError{Field: "Release", Reason: "DaemonSet " + ns + "/" + ds.Name +
			" records no Helm release; name the release that installed it"}
	}
	if res.Revision == "" {
		res.Revision = agent.Revision
	}
	res.ControlPlaneVersion = opts.ControlPlaneVersion
	if res.ControlPlaneVersion == "" {
		if res.ControlPlaneVersion, err = istiodVersion(ctx, kube, op, ns, res.Revision); err != nil {
			return res, err
		}
	}
	values := map[string]any{}
	for k, v := range opts.Values {
		values[k] = v
	}
	if opts.Revision != "" {
		values["revision"] = opts.Revision
	}
	if opts.NodeByNode {
		values["updateStrategy"] = map[string]any{"type": string(appsv1.OnDeleteDaemonSetStrategyType)}
	}
	ro := revkit.ReleaseOptions{Namespace: ns, Release: res.Release, Chart: opts.Chart, Values: values, Timeout: opts.Timeout}

	// Render first: the skew rule is checked against what the chart would
	// run, before anything is written.
	ro.DryRun = revkit.DryRunClient
	rendered, err := opts.Releaser.UpgradeRelease(ctx, ro)
	if err != nil {
		return res, fmt.Errorf("%s: rendering release %s: %w", op, res.Release, err)
	}
	res.Version = opts.Version
	if res.Version == "" {
		image, err := daemonSetImage(rendered.Manifest, ds.Name)
		if err != nil {
			return res, fmt.Errorf("%s: release %s: %w", op, res.Release, err)
		}
		if res.Version = imageVersion(image); res.Version == "" {
			return res, &revkit.InvalidInputError{Field: "Version", Reason: fmt.Sprintf(
				"the chart renders image %q, whose tag is not an Istio version; set Version (or the chart's tag value)", image)}
		}
	}
	if err := CheckSkew(opts.Component, res.Version, res.ControlPlaneVersion); err != nil {
		return res, err
	}

	rec := kubeutil.NewRecorder(op, opts.Common)
	defer func() {
		res.Changes = rec.Changes
		if res.Roll != nil {
			res.Changes = append(res.Changes, res.Roll.Changes...)
		}
	}()
	ref := revkit.ObjectRef{Kind: "HelmRelease", Namespace: ns, Name: res.Release}
	if rec.Sends() {
		ro.DryRun = opts.DryRun
		if _, err := opts.Releaser.UpgradeRelease(ctx, ro); err != nil {
			return res, fmt.Errorf("%s: upgrading release %s: %w", op, res.Release, err)
		}
	}
	rec.Record(ctx, ref, revkit.ActionUpdate, fmt.Sprintf("%s %s → %s (control plane %s at %s)",
		opts.Component, agent.Version, res.Version, res.Revision, res.ControlPlaneVersion))
	if !opts.DryRun.Persists() {
		return res, nil
	}
	if opts.NodeByNode {
		// Wait for the controller to record the new template's revision, then
		// replace node by node.
		if err := waitObserved(ctx, kube, ds, opts.Roll.Interval, opts.Timeout); err != nil {
			return res, err
		}
		res.Roll, err = Roll(ctx, kube, opts.Roll)
		return res, err
	}
	return res, waitDaemonSet(ctx, kube, op, ds, opts.Roll.Interval, opts.Timeout)
}

// istiodVersion is the Istio version of a revision's istiod: the tag of its
// Deployment's discovery image.
func istiodVersion(ctx context.Context, kube kubernetes.Interface, op, ns, rev string) (string, error) {
	sel := labels.Set{"app": "istiod"}
	if rev != "" && rev != mesh.DefaultRevision {
		sel[mesh.LabelRev] = rev
	}
	list, err := kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return "", &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "Deployment", Namespace: ns}, Err: err}
	}
	for _, d := range list.Items {
		if rev == "" || rev == mesh.DefaultRevision {
			if r := d.Labels[mesh.LabelRev]; r != "" && r != mesh.DefaultRevision {
				continue
			}
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if v := imageVersion(c.Image); v != "" && (c.Name == "discovery" || len(d.Spec.Template.Spec.Containers) == 1) {
				return v, nil
			}
		}
	}
	name := rev
	if name == "" {
		name = mesh.DefaultRevision
	}
	return "", &revkit.InvalidInputError{Field: "ControlPlaneVersion", Reason: fmt.Sprintf(
		"no istiod Deployment of revision %q with a versioned image in %s; set ControlPlaneVersion", name, ns)}
}

// daemonSetImage finds the DaemonSet named name in a rendered manifest and
// returns its first container's image.
func daemonSetImage(manifest, name string) (string, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	for {
		var ds appsv1.DaemonSet
		if err := dec.Decode(&ds); err != nil {
			if errors.Is(err, io.EOF) {
				return "", fmt.Errorf("the chart renders no DaemonSet %q", name)
			}
			return "", fmt.Errorf("reading the rendered manifest: %w", err)
		}
		if ds.Kind == "DaemonSet" && ds.Name == name && len(ds.Spec.Template.Spec.Containers) > 0 {
			return ds.Spec.Template.Spec.Containers[0].Image, nil
		}
	}
}

// waitObserved waits until the DaemonSet controller has seen the
// DaemonSet's latest spec (and so recorded the ControllerRevision of its
// template, which it does before it updates the status). A release upgrade
// that leaves the template as it was records no new revision, and Roll then
// finds every node current.
func waitObserved(ctx context.Context, kube kubernetes.Interface, ds *appsv1.DaemonSet, interval, timeout time.Duration) error {
	const op = "ambient.Upgrade"
	ref := revkit.ObjectRef{Kind: "DaemonSet", Namespace: ds.Namespace, Name: ds.Name}
	return kubeutil.WaitAll(ctx, op, "its controller has not observed the release", []revkit.ObjectRef{ref}, timeout, interval,
		func(ctx context.Context, ref revkit.ObjectRef) (string, error) {
			cur, err := kube.AppsV1().DaemonSets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			switch {
			case err != nil:
				return "cannot read it", &revkit.OpError{Op: op, Verb: "get", Object: ref, Err: err}
			case cur.Status.ObservedGeneration < cur.Generation:
				return fmt.Sprintf("generation %d observed, %d written", cur.Status.ObservedGeneration, cur.Generation), nil
			}
			return "", nil
		})
}

func waitDaemonSet(ctx context.Context, kube kubernetes.Interface, op string, ds *appsv1.DaemonSet, interval, timeout time.Duration) error {
	ref := revkit.ObjectRef{Kind: "DaemonSet", Namespace: ds.Namespace, Name: ds.Name}
	return kubeutil.WaitAll(ctx, op, "rollout not complete", []revkit.ObjectRef{ref}, timeout, interval,
		func(ctx context.Context, ref revkit.ObjectRef) (string, error) {
			cur, err := kube.AppsV1().DaemonSets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				return "cannot read it", &revkit.OpError{Op: op, Verb: "get", Object: ref, Err: err}
			}
			return kubeutil.RolloutStatus(cur)
		})
}
