package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sort"
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

// ReleaseInstaller is what a canary release needs of Helm beyond the
// upgrade: installing a release beside the gateway's and uninstalling it.
// helm.Client implements it (helm.New), with its release records in the
// gateway's namespace.
type ReleaseInstaller interface {
	revkit.Releaser
	InstallRelease(ctx context.Context, opts revkit.ReleaseOptions) (*revkit.ReleaseResult, error)
	UninstallRelease(ctx context.Context, release string, timeout time.Duration) error
}

// ReleaseOptions configures UpgradeRelease, CanaryRelease,
// PromoteCanaryRelease and RollbackCanaryRelease: one gateway installed by
// Istio's gateway chart, and the revision it should run.
type ReleaseOptions struct {
	revkit.Common
	// Namespace of the gateway (required). Its release is recorded there:
	// the Releaser must keep its records in that namespace (helm.New with
	// it).
	Namespace string
	// Name is the gateway's Deployment; Release the Helm release that
	// installed it. Set one or both.
	Name, Release string
	// Target is the revision or tag the gateway should run (required); it
	// becomes the chart's revision value, which Istio's gateway chart puts
	// on the pod template as istio.io/rev.
	Target string
	// Chart to upgrade the release to, or to install the canary release
	// from. UpgradeRelease and PromoteCanaryRelease reuse the release's own
	// chart when it is zero; CanaryRelease needs one.
	Chart revkit.ChartSource
	// Values are laid over the release's values for an upgrade, and are the
	// canary release's values (beside those CanaryRelease sets).
	Values map[string]any
	// Releaser performs the helm upgrade (required); the canary operations
	// need a ReleaseInstaller.
	Releaser revkit.Releaser `json:"-"`
	// ControlPlaneNamespace; default istio-system.
	ControlPlaneNamespace string
	// Wait blocks until the gateway (or its canary) has rolled out with
	// every pod injected by the target revision, or, after an uninstall,
	// until the canary's pods are gone.
	Wait bool
	// Timeout bounds the Helm calls and the wait; default 5 minutes.
	// PollInterval is the pause between checks; default 1 second.
	Timeout, PollInterval time.Duration
}

// Validate checks the options as the release operations do before any
// request.
func (o *ReleaseOptions) Validate() error {
	if err := revkit.ValidateNamespace("Namespace", o.Namespace); err != nil {
		return err
	}
	if o.Namespace == "" {
		return &revkit.InvalidInputError{Field: "Namespace", Reason: "required: the gateway's namespace, where its release is recorded"}
	}
	if o.Name == "" && o.Release == "" {
		return &revkit.InvalidInputError{Field: "Name", Reason: "name the gateway Deployment or its Release"}
	}
	if o.Target == "" {
		return &revkit.InvalidInputError{Field: "Target", Reason: "must name a revision or a tag"}
	}
	if err := revkit.ValidateRevision(o.Target); err != nil {
		return err
	}
	if err := revkit.ValidateNamespace("ControlPlaneNamespace", o.ControlPlaneNamespace); err != nil {
		return err
	}
	if o.Releaser == nil {
		return &revkit.InvalidInputError{Field: "Releaser", Reason: "required: the gateway is a Helm release (helm.New gives one)"}
	}
	if o.Timeout < 0 || o.PollInterval < 0 {
		return &revkit.InvalidInputError{Field: "Timeout", Reason: "durations must not be negative"}
	}
	return o.DryRun.Validate()
}

func (o *ReleaseOptions) installer() (ReleaseInstaller, error) {
	ri, ok := o.Releaser.(ReleaseInstaller)
	if !ok {
		return nil, &revkit.InvalidInputError{Field: "Releaser", Value: fmt.Sprintf("%T", o.Releaser),
			Reason: "a canary release needs a ReleaseInstaller (helm.Client is one)"}
	}
	return ri, nil
}

func (o *ReleaseOptions) timeout() time.Duration  { return cmp.Or(o.Timeout, 5*time.Minute) }
func (o *ReleaseOptions) interval() time.Duration { return cmp.Or(o.PollInterval, time.Second) }

// ReleaseResult reports a release operation.
type ReleaseResult struct {
	// Gateway is the gateway as it was before.
	Gateway Gateway
	// Target is the revision or tag asked for, Revision the revision it
	// resolves to.
	Target, Revision string
	// Release is the gateway's release; Canary the canary release, for the
	// canary operations.
	Release, Canary string
	// Manifest is what the chart rendered for the release installed or
	// upgraded (the gateway's, for a promotion), and Version that release's
	// record number after it (0 when nothing was sent).
	Manifest string
	Version  int
	Changes  []revkit.Change
	DryRun   revkit.DryRun
}

// ObjectChanges lists what the operation changed; see revkit.Result.
func (r *ReleaseResult) ObjectChanges() []revkit.Change { return r.Changes }

// CanaryReleaseName is the release (and Deployment) name of a gateway
// release's canary on a revision.
func CanaryReleaseName(release, rev string) string { return release + "-" + rev }

// RenderError refuses a chart whose rendering would not do what was asked:
// the gateway's Deployment missing from the manifest, not on the target
// revision, or (for a canary) its pods not selected by the gateway's
// Services. Nothing was written. It matches revkit.ErrInvalidInput.
type RenderError struct {
	Release, Deployment, Reason string
}

func (e *RenderError) Error() string {
	return fmt.Sprintf("release %s: the chart renders Deployment %s %s; nothing was written", e.Release, e.Deployment, e.Reason)
}

// Is matches revkit.ErrInvalidInput.
func (e *RenderError) Is(target error) bool { return target == revkit.ErrInvalidInput }

// releaseTarget is what every release operation reads before writing: the
// gateway, its release and the target revision.
type releaseTarget struct {
	dep     *appsv1.Deployment
	gw      Gateway
	release string
	relNS   string
	rev     string
}

func resolveRelease(ctx context.Context, kube kubernetes.Interface, op string, opts *ReleaseOptions) (*releaseTarget, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	model, err := mesh.Load(ctx, kube, revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace))
	if err != nil {
		return nil, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "control plane"}, Err: err}
	}
	rev, _, ok := model.Resolve(opts.Target)
	if !ok {
		return nil, &revkit.NotFoundError{Kind: "revision or tag", Name: opts.Target}
	}
	deps, err := kube.AppsV1().Deployments(opts.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "Deployment", Namespace: opts.Namespace}, Err: err}
	}
	var found *appsv1.Deployment
	for i := range deps.Items {
		d := &deps.Items[i]
		if !IsGateway(d) || d.Labels[LabelCanaryOf] != "" {
			continue
		}
		if (opts.Name == "" || d.Name == opts.Name) && (opts.Release == "" || helmRelease(d) == opts.Release) {
			if found != nil {
				return nil, &revkit.InvalidInputError{Field: "Name", Value: opts.Release,
					Reason: fmt.Sprintf("release %s owns several gateways (%s, %s); name one", opts.Release, found.Name, d.Name)}
			}
			found = d
		}
	}
	if found == nil {
		name := cmp.Or(opts.Name, "of release "+opts.Release)
		return nil, &revkit.NotFoundError{Kind: "gateway", Name: opts.Namespace + "/" + name}
	}
	release := helmRelease(found)
	if release == "" {
		return nil, &revkit.InvalidInputError{Field: "Name", Value: found.Name,
			Reason: "gateway " + found.Namespace + "/" + found.Name + " was not installed by a Helm release: move it with Move"}
	}
	t := &releaseTarget{dep: found, release: release, rev: rev,
		relNS: cmp.Or(found.Annotations["meta.helm.sh/release-namespace"], found.Namespace)}
	if t.relNS != opts.Namespace {
		return nil, &revkit.InvalidInputError{Field: "Namespace", Value: opts.Namespace,
			Reason: "gateway " + found.Name + "'s release " + release + " is recorded in namespace " + t.relNS}
	}
	t.gw = Gateway{Namespace: found.Namespace, Name: found.Name, Revision: found.Spec.Template.Labels[mesh.LabelRev],
		Release: release, Chart: found.Labels["helm.sh/chart"]}
	return t, nil
}

// UpgradeRelease moves a gateway installed by Istio's gateway chart to the
// target revision in place, through its own release: a helm upgrade with
// the chart's revision value set to the target, the release's other values
// kept. Its Deployment is never patched, so a later helm upgrade of the
// release (with its values reused) keeps the revision. Rolling back is an
// UpgradeRelease to the old revision.
//
// It refuses before any write: malformed options, an unknown revision or
// tag, a missing gateway (*revkit.NotFoundError), a gateway no release owns,
// and a chart that does not render the gateway's Deployment on the target
// (*RenderError) — the release is rendered first (a client dry run) and
// checked. A client dry run stops there; a server dry run also sends the
// rendered objects with dryRun=All. With Wait it returns once the
// Deployment has rolled out and every pod of it was injected by the target
// revision.
func UpgradeRelease(ctx context.Context, kube kubernetes.Interface, opts ReleaseOptions) (*ReleaseResult, error) {
	const op = "gateway.UpgradeRelease"
	t, err := resolveRelease(ctx, kube, op, &opts)
	if err != nil {
		return nil, err
	}
	res := &ReleaseResult{Gateway: t.gw, Target: opts.Target, Revision: t.rev, Release: t.release, DryRun: opts.DryRun}
	rec := kubeutil.NewRecorder(op, opts.Common)
	defer func() { res.Changes = rec.Changes }()
	return res, upgradeInPlace(ctx, kube, rec, t, opts, res)
}

func upgradeInPlace(ctx context.Context, kube kubernetes.Interface, rec *kubeutil.Recorder, t *releaseTarget, opts ReleaseOptions, res *ReleaseResult) error {
	ref := revkit.ObjectRef{Kind: "HelmRelease", Namespace: t.relNS, Name: t.release}
	if t.gw.Revision == opts.Target && opts.Chart == (revkit.ChartSource{}) && len(opts.Values) == 0 {
		// Nothing to ask of Helm: rerunning changes nothing.
		rec.Record(ctx, ref, revkit.ActionUnchanged, "gateway "+t.dep.Name+" already on "+opts.Target)
	} else if err := upgradeRelease(ctx, rec, t, opts, res); err != nil {
		return err
	}
	if opts.Wait && opts.DryRun.Persists() {
		return waitInjected(ctx, kube, rec.Op, t.dep.Namespace, t.dep.Name, t.rev, opts.timeout(), opts.interval())
	}
	return nil
}

func upgradeRelease(ctx context.Context, rec *kubeutil.Recorder, t *releaseTarget, opts ReleaseOptions, res *ReleaseResult) error {
	ro := revkit.ReleaseOptions{Namespace: t.relNS, Release: t.release, Chart: opts.Chart,
		Values: withValues(opts.Values, map[string]any{"revision": opts.Target}), Timeout: opts.timeout(), DryRun: revkit.DryRunClient}
	rendered, err := opts.Releaser.UpgradeRelease(ctx, ro)
	if err != nil {
		return fmt.Errorf("%s: rendering release %s: %w", rec.Op, t.release, err)
	}
	d, err := renderedDeployment(rendered.Manifest, t.release, t.dep.Name)
	if err != nil {
		return err
	}
	if got := d.Spec.Template.Labels[mesh.LabelRev]; got != opts.Target {
		return &RenderError{Release: t.release, Deployment: d.Name,
			Reason: fmt.Sprintf("with pod label %s=%q, not %q (does the chart take a revision value?)", mesh.LabelRev, got, opts.Target)}
	}
	res.Manifest = rendered.Manifest
	ref := revkit.ObjectRef{Kind: "HelmRelease", Namespace: t.relNS, Name: t.release}
	if rec.Sends() {
		ro.DryRun = opts.DryRun
		done, err := opts.Releaser.UpgradeRelease(ctx, ro)
		if err != nil {
			return rec.Fail("helm upgrade", ref, err)
		}
		if opts.DryRun.Persists() {
			res.Version = done.Version
		}
	}
	rec.Record(ctx, ref, revkit.ActionUpdate, fmt.Sprintf("gateway %s: revision %s → %s", t.dep.Name, orNone(t.gw.Revision), opts.Target))
	return nil
}

// CanaryRelease installs a canary of a Helm-installed gateway beside it: a
// second release of the gateway chart, CanaryReleaseName(release,
// revision), on the target revision, whose pods carry the labels the
// gateway's Services select — so those Services send traffic to both (Istio's
// canary upgrade for gateways, which shifts traffic by labels). The canary
// renders no Service of its own (service.type None); its pods carry
// LabelCanaryOf and LabelCanaryRevision, and List reports it as the
// gateway's canary. The gateway's own release is not touched.
//
// Because Istio's chart selects its pods by the app and istio labels only,
// the canary's Deployment has the gateway's selector; Kubernetes keeps the
// two Deployments' pods apart by their owner references. A
// PodDisruptionBudget the chart renders (podDisruptionBudget with several
// replicas) would then cover both sets of pods: leave it out of Values.
//
// Then PromoteCanaryRelease (the gateway's release upgraded in place, the
// canary uninstalled) or RollbackCanaryRelease (the canary uninstalled).
// Rerunning it with the canary in place on the target changes nothing. It
// refuses before any write what UpgradeRelease refuses, a Chart left zero,
// a canary release of another revision (*revkit.ExistsError), and a
// rendering whose pods the gateway's Services would not select
// (*RenderError).
func CanaryRelease(ctx context.Context, kube kubernetes.Interface, opts ReleaseOptions) (*ReleaseResult, error) {
	const op = "gateway.CanaryRelease"
	ri, err := opts.installer()
	if err != nil {
		return nil, err
	}
	if err := opts.Chart.Validate("Chart"); err != nil {
		return nil, err
	}
	t, err := resolveRelease(ctx, kube, op, &opts)
	if err != nil {
		return nil, err
	}
	canary := CanaryReleaseName(t.release, t.rev)
	res := &ReleaseResult{Gateway: t.gw, Target: opts.Target, Revision: t.rev, Release: t.release, Canary: canary, DryRun: opts.DryRun}
	rec := kubeutil.NewRecorder(op, opts.Common)
	defer func() { res.Changes = rec.Changes }()
	ref := revkit.ObjectRef{Kind: "HelmRelease", Namespace: t.relNS, Name: canary}

	cur, err := kube.AppsV1().Deployments(t.dep.Namespace).Get(ctx, canary, metav1.GetOptions{})
	switch {
	case err == nil:
		if helmRelease(cur) != canary || cur.Labels[LabelCanaryOf] != t.dep.Name {
			return res, &revkit.ExistsError{Kind: "Deployment", Name: cur.Namespace + "/" + canary,
				Detail: "it is not the canary release of gateway " + t.dep.Name}
		}
		if got := cur.Spec.Template.Labels[mesh.LabelRev]; got != opts.Target {
			return res, &revkit.ExistsError{Kind: "Helm release", Name: t.relNS + "/" + canary,
				Detail: fmt.Sprintf("its gateway runs %q, not %q: roll it back first", got, opts.Target)}
		}
		rec.Record(ctx, ref, revkit.ActionUnchanged, "canary release exists")
	case isNotFound(err):
		sel, err := serviceSelectors(ctx, kube, t.dep)
		if err != nil {
			return res, rec.Fail("list", revkit.ObjectRef{Kind: "Service", Namespace: t.dep.Namespace}, err)
		}
		ro := revkit.ReleaseOptions{Namespace: t.relNS, Release: canary, Chart: opts.Chart,
			Values: withValues(opts.Values, canaryValues(t, opts.Target, sel)), Timeout: opts.timeout(), DryRun: revkit.DryRunClient}
		rendered, err := ri.InstallRelease(ctx, ro)
		if err != nil {
			return res, fmt.Errorf("%s: rendering release %s: %w", op, canary, err)
		}
		if err := checkCanary(rendered.Manifest, canary, opts.Target, sel); err != nil {
			return res, err
		}
		res.Manifest = rendered.Manifest
		if rec.Sends() {
			ro.DryRun = opts.DryRun
			done, err := ri.InstallRelease(ctx, ro)
			if err != nil {
				return res, rec.Fail("helm install", ref, err)
			}
			if opts.DryRun.Persists() {
				res.Version = done.Version
			}
		}
		rec.Record(ctx, ref, revkit.ActionCreate, fmt.Sprintf("canary of gateway %s on %s, selected by %s", t.dep.Name, opts.Target, sel))
	default:
		return res, rec.Fail("get", revkit.ObjectRef{Kind: "Deployment", Namespace: t.dep.Namespace, Name: canary}, err)
	}
	if opts.Wait && opts.DryRun.Persists() {
		return res, waitInjected(ctx, kube, op, t.dep.Namespace, canary, t.rev, opts.timeout(), opts.interval())
	}
	return res, nil
}

// PromoteCanaryRelease completes a canary release: the gateway's own
// release is upgraded in place to the target (as UpgradeRelease, waiting
// for it with Wait), then the canary release is uninstalled. With Wait the
// canary goes only once every pod of the gateway runs the target, and
// PromoteCanaryRelease returns once the canary's pods are gone; without it
// the canary is uninstalled right after the upgrade is sent (the gateway's
// rolling update keeps its old pods serving meanwhile). A canary already
// gone is left alone; rerunning it changes nothing.
func PromoteCanaryRelease(ctx context.Context, kube kubernetes.Interface, opts ReleaseOptions) (*ReleaseResult, error) {
	ri, t, res, err := canaryTarget(ctx, kube, "gateway.PromoteCanaryRelease", &opts)
	if err != nil {
		return nil, err
	}
	rec := kubeutil.NewRecorder("gateway.PromoteCanaryRelease", opts.Common)
	defer func() { res.Changes = rec.Changes }()
	if err := upgradeInPlace(ctx, kube, rec, t, opts, res); err != nil {
		return res, err
	}
	return res, uninstallCanary(ctx, kube, ri, rec, t, res.Canary, opts)
}

// RollbackCanaryRelease abandons a canary release: the canary release of
// the gateway on the target revision is uninstalled, and with Wait its pods
// are gone when it returns. The gateway itself, never changed by
// CanaryRelease, keeps serving. A canary already gone is left alone.
func RollbackCanaryRelease(ctx context.Context, kube kubernetes.Interface, opts ReleaseOptions) (*ReleaseResult, error) {
	ri, t, res, err := canaryTarget(ctx, kube, "gateway.RollbackCanaryRelease", &opts)
	if err != nil {
		return nil, err
	}
	rec := kubeutil.NewRecorder("gateway.RollbackCanaryRelease", opts.Common)
	defer func() { res.Changes = rec.Changes }()
	return res, uninstallCanary(ctx, kube, ri, rec, t, res.Canary, opts)
}

// canaryTarget resolves what Promote- and RollbackCanaryRelease work on: the
// installer, the gateway's release and the result naming its canary.
func canaryTarget(ctx context.Context, kube kubernetes.Interface, op string, opts *ReleaseOptions) (ReleaseInstaller, *releaseTarget, *ReleaseResult, error) {
	ri, err := opts.installer()
	if err != nil {
		return nil, nil, nil, err
	}
	t, err := resolveRelease(ctx, kube, op, opts)
	if err != nil {
		return nil, nil, nil, err
	}
	res := &ReleaseResult{Gateway: t.gw, Target: opts.Target, Revision: t.rev, Release: t.release,
		Canary: CanaryReleaseName(t.release, t.rev), DryRun: opts.DryRun}
	return ri, t, res, nil
}

func uninstallCanary(ctx context.Context, kube kubernetes.Interface, ri ReleaseInstaller, rec *kubeutil.Recorder, t *releaseTarget, canary string, opts ReleaseOptions) error {
	ref := revkit.ObjectRef{Kind: "HelmRelease", Namespace: t.relNS, Name: canary}
	cur, err := kube.AppsV1().Deployments(t.dep.Namespace).Get(ctx, canary, metav1.GetOptions{})
	switch {
	case isNotFound(err):
		rec.Record(ctx, ref, revkit.ActionUnchanged, "no canary release")
		return nil
	case err != nil:
		return rec.Fail("get", revkit.ObjectRef{Kind: "Deployment", Namespace: t.dep.Namespace, Name: canary}, err)
	case helmRelease(cur) != canary || cur.Labels[LabelCanaryOf] != t.dep.Name:
		return &revkit.InvalidInputError{Field: "Target", Value: opts.Target,
			Reason: "Deployment " + t.dep.Namespace + "/" + canary + " is not the canary release of gateway " + t.dep.Name}
	}
	if rec.Sends() && opts.DryRun.Persists() {
		if err := ri.UninstallRelease(ctx, canary, opts.timeout()); err != nil {
			return rec.Fail("helm uninstall", ref, err)
		}
	}
	rec.Record(ctx, ref, revkit.ActionDelete, "canary of gateway "+t.dep.Name)
	if opts.Wait && opts.DryRun.Persists() {
		return waitCanaryGone(ctx, kube, rec.Op, t.dep.Namespace, canary, labels.Set{LabelCanaryOf: t.dep.Name, LabelCanaryRevision: t.rev},
			opts.timeout(), opts.interval())
	}
	return nil
}

// withValues lays over on a copy of base (maps merged key by key).
func withValues(base, over map[string]any) map[string]any {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range over {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = withValues(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// serviceSelectors is the union of the selectors of the Services in the
// gateway's namespace that select its pods, and of its own Deployment
// selector: the labels a canary's pods need to take a share of its traffic.
func serviceSelectors(ctx context.Context, kube kubernetes.Interface, d *appsv1.Deployment) (labels.Set, error) {
	out := labels.Set{}
	if d.Spec.Selector != nil {
		maps.Copy(out, d.Spec.Selector.MatchLabels)
	}
	svcs, err := kube.CoreV1().Services(d.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	pod := labels.Set(d.Spec.Template.Labels)
	for _, s := range svcs.Items {
		if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(pod) {
			maps.Copy(out, s.Spec.Selector)
		}
	}
	return out, nil
}

// canaryValues are the values a canary release is installed with on top of
// the caller's: its name, the target revision, the gateway's selected labels
// (app and istio become the chart's selector labels, the others plain pod
// labels), the canary markers, and no Service of its own.
func canaryValues(t *releaseTarget, target string, sel labels.Set) map[string]any {
	lbls := map[string]any{LabelCanaryOf: t.dep.Name, LabelCanaryRevision: t.rev}
	for k, v := range sel {
		lbls[k] = v
	}
	return map[string]any{
		"name":     CanaryReleaseName(t.release, t.rev),
		"revision": target,
		"labels":   lbls,
		"service":  map[string]any{"type": "None"},
	}
}

func checkCanary(manifest, canary, target string, sel labels.Set) error {
	d, err := renderedDeployment(manifest, canary, canary)
	if err != nil {
		return err
	}
	pod := labels.Set(d.Spec.Template.Labels)
	if got := pod[mesh.LabelRev]; got != target {
		return &RenderError{Release: canary, Deployment: canary, Reason: fmt.Sprintf("with pod label %s=%q, not %q", mesh.LabelRev, got, target)}
	}
	var missing []string
	for k, v := range sel {
		if pod[k] != v {
			missing = append(missing, k+"="+v)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return &RenderError{Release: canary, Deployment: canary, Reason: "whose pods lack " + strings.Join(missing, ",") +
			" that the gateway's Services select (does the chart take labels.app and labels.istio?)"}
	}
	if _, ok := pod[LabelCanaryRevision]; !ok {
		return &RenderError{Release: canary, Deployment: canary, Reason: "whose pods lack the label " + LabelCanaryRevision}
	}
	return nil
}

// renderedDeployment finds the Deployment named name in a rendered
// manifest.
func renderedDeployment(manifest, release, name string) (*appsv1.Deployment, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	for {
		var d appsv1.Deployment
		if err := dec.Decode(&d); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, &RenderError{Release: release, Deployment: name, Reason: "not at all"}
			}
			return nil, fmt.Errorf("release %s: reading the rendered manifest: %w", release, err)
		}
		if d.Kind == "Deployment" && d.Name == name {
			return &d, nil
		}
	}
}

// waitInjected waits until the Deployment has rolled out and every active
// pod of it (told from a canary's by LabelCanaryRevision) was injected by
// rev.
func waitInjected(ctx context.Context, kube kubernetes.Interface, op, ns, name, rev string, timeout, interval time.Duration) error {
	ref := revkit.ObjectRef{Kind: "Deployment", Namespace: ns, Name: name}
	return kubeutil.WaitAll(ctx, op, "gateway not on revision "+rev, []revkit.ObjectRef{ref}, timeout, interval,
		func(ctx context.Context, ref revkit.ObjectRef) (string, error) {
			d, err := kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return "cannot read it", &revkit.OpError{Op: op, Verb: "get", Object: ref, Err: err}
			}
			return podsPending(ctx, kube, d, rev)
		})
}

// podsPending says why d is not yet on rev ("" when it is).
func podsPending(ctx context.Context, kube kubernetes.Interface, d *appsv1.Deployment, rev string) (string, error) {
	why, err := kubeutil.RolloutStatus(d)
	if err != nil || why != "" {
		return why, err
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return "", err
	}
	pods, err := kubeutil.ListPods(ctx, kube, d.Namespace, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return "cannot list its pods: " + err.Error(), nil
	}
	n := 0
	for i := range pods {
		p := &pods[i]
		if !mesh.PodActive(p) || !ownedBy(p, d) {
			continue
		}
		got, injected := mesh.PodRevision(p)
		if !injected || got != rev {
			return fmt.Sprintf("pod %s injected by %q, not %q", p.Name, orNone(got), rev), nil
		}
		n++
	}
	if n == 0 && (d.Spec.Replicas == nil || *d.Spec.Replicas > 0) {
		return "no pod yet", nil
	}
	return "", nil
}

// waitCanaryGone waits until the canary's Deployment is gone, and its pods
// (those carrying podLabels).
func waitCanaryGone(ctx context.Context, kube kubernetes.Interface, op, ns, canary string, podLabels labels.Set, timeout, interval time.Duration) error {
	ref := revkit.ObjectRef{Kind: "Deployment", Namespace: ns, Name: canary}
	return kubeutil.WaitAll(ctx, op, "canary release not gone", []revkit.ObjectRef{ref}, timeout, interval,
		func(ctx context.Context, ref revkit.ObjectRef) (string, error) {
			_, err := kube.AppsV1().Deployments(ns).Get(ctx, canary, metav1.GetOptions{})
			switch {
			case err == nil:
				return "its Deployment is still there", nil
			case !isNotFound(err):
				return "cannot read it: " + err.Error(), nil
			}
			pods, err := kubeutil.ListPods(ctx, kube, ns, metav1.ListOptions{LabelSelector: podLabels.String()})
			switch {
			case err != nil:
				return "cannot list pods: " + err.Error(), nil
			case len(pods) > 0:
				return fmt.Sprintf("%d of its pods are still there (%s)", len(pods), pods[0].Name), nil
			}
			return "", nil
		})
}
