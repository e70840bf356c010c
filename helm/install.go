package helm

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	"helm.sh/helm/v4/pkg/action"
	chartcommon "helm.sh/helm/v4/pkg/chart"
	"helm.sh/helm/v4/pkg/chart/loader"
	"helm.sh/helm/v4/pkg/cli"
	helmkube "helm.sh/helm/v4/pkg/kube"
	"helm.sh/helm/v4/pkg/registry"
	rv1 "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"
	admv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/resource"
	"k8s.io/client-go/kubernetes"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
	"github.com/revkit/revkit/revision"
)

// Install installs a revision's control plane from the istiod chart with
// Helm, as release "istiod-<revision>" in the control-plane namespace, beside
// the revisions already there; revision.Install calls it for
// InstallOptions.Helm. opts.Helm is not used: c installs.
//
// Before changing anything it refuses: malformed options
// (revkit.ErrInvalidInput); a revision that exists already, unless Upgrade
// is set and it has a Helm release (revkit.ErrExists); and a chart whose
// injector webhooks would overlap an existing injector, found by rendering
// the chart first (revkit.ErrOverlap, *revkit.OverlapError).
//
// In a client dry run nothing is sent; in a server dry run every rendered
// object is sent as a server-side apply with dryRun=All, so the apiserver
// and its admission webhooks check it, and nothing persists.
func (c *Client) Install(ctx context.Context, kube kubernetes.Interface, opts revision.InstallOptions) (*revision.InstallResult, error) {
	const op = "revision.Install"
	opts.Helm = c
	if err := cmp.Or(c.usable(), opts.Validate()); err != nil {
		return &revision.InstallResult{Revision: opts.Revision, DryRun: opts.DryRun}, err
	}
	ns := revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace)
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	name := revision.ReleaseName(opts.Revision)
	res := &revision.InstallResult{Revision: opts.Revision, Release: name, DryRun: opts.DryRun}

	model, err := mesh.Load(ctx, kube, ns)
	if err != nil {
		return res, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "control plane"}, Err: err}
	}
	hasRelease, err := releaseExists(c.cfg, name)
	if err != nil {
		return res, &revkit.OpError{Op: op, Verb: "get", Object: revkit.ObjectRef{Kind: "HelmRelease", Namespace: ns, Name: name}, Err: err}
	}
	switch {
	case hasRelease && !opts.Upgrade:
		return res, &revkit.ExistsError{Kind: "revision", Name: opts.Revision,
			Detail: fmt.Sprintf("Helm release %s exists; set Upgrade to upgrade it", name)}
	case !hasRelease && model.HasRevision(opts.Revision):
		return res, &revkit.ExistsError{Kind: "revision", Name: opts.Revision,
			Detail: "it is installed without a Helm release (e.g. by istioctl); Install will not take it over"}
	}
	res.Upgraded = hasRelease

	chrt, err := loadChart(opts.Chart, c.cfg)
	if err != nil {
		return res, fmt.Errorf("%s: load chart: %w", op, err)
	}
	values := deepCopy(opts.Values)
	if values == nil {
		values = map[string]any{}
	}
	if opts.ValuesFrom != "" {
		carried, oldDefaults, err := carriedValues(c.cfg, opts.ValuesFrom)
		if err != nil {
			return res, &revkit.OpError{Op: op, Verb: "get", Object: revkit.ObjectRef{Kind: "HelmRelease", Namespace: ns, Name: revision.ReleaseName(opts.ValuesFrom)}, Err: err}
		}
		res.CarriedValues = carried
		values = mergeValues(carried, values)
		res.DefaultChanges = diffDefaults(oldDefaults, chartDefaults(chrt), values)
	}
	values["revision"] = opts.Revision

	// Render first: the injector it would create is checked against the
	// injectors in the cluster before anything is written.
	manifest, err := runHelm(ctx, c.cfg, chrt, values, name, ns, hasRelease, action.DryRunClient, false, timeout)
	if err != nil {
		return res, fmt.Errorf("%s: render %s: %w", op, name, err)
	}
	objs, injectors, err := parseManifest(manifest, ns)
	if err != nil {
		return res, fmt.Errorf("%s: read rendered manifest: %w", op, err)
	}
	if ovs := mesh.OverlapsAfter(model.Injectors, injectors); len(ovs) > 0 {
		return res, &revkit.OverlapError{Subject: fmt.Sprintf("revision %q", opts.Revision), Overlap: ovs[0]}
	}
	res.Objects, res.Manifest = objs, manifest
	for _, inj := range injectors {
		if !inj.IsTag() && inj.Revision == opts.Revision {
			res.Injector = inj.Name
		}
	}

	rec := kubeutil.NewRecorder(op, opts.Common)
	if opts.Base != nil {
		res.BaseRelease = revision.BaseRelease
		if err := c.installBase(ctx, *opts.Base, opts.BaseValues, opts.DryRun, opts.Wait, rec, ns, timeout); err != nil {
			return res, err
		}
	}
	ref := revkit.ObjectRef{Kind: "HelmRelease", Namespace: ns, Name: name}
	act := revkit.ActionCreate
	if hasRelease {
		act = revkit.ActionUpdate
	}
	switch opts.DryRun {
	case revkit.DryRunClient:
		rec.Record(ctx, ref, act, "rendered only")
		return res, nil
	case revkit.DryRunServer:
		if err := serverDryRun(c.cfg, manifest, ns); err != nil {
			return res, rec.Fail("apply (dry run)", ref, err)
		}
		rec.Record(ctx, ref, act, "checked by the apiserver, not persisted")
		return res, nil
	}
	if _, err := runHelm(ctx, c.cfg, chrt, values, name, ns, hasRelease, action.DryRunNone, opts.Wait, timeout); err != nil {
		return res, rec.Fail(map[bool]string{true: "helm upgrade", false: "helm install"}[hasRelease], ref, err)
	}
	rel, err := c.cfg.Releases.Last(name)
	if err == nil {
		if r, ok := rel.(*rv1.Release); ok {
			res.Version = r.Version
		}
	}
	st, err := istiodStatus(ctx, kube, ns, opts.Revision)
	if err != nil {
		return res, rec.Fail("get", revkit.ObjectRef{Kind: "Deployment", Namespace: ns, Name: mesh.IstiodName(opts.Revision)}, err)
	}
	res.IstiodStatus = st
	rec.Record(ctx, ref, act, "")
	return res, nil
}

// istiodStatus gives the kstatus of the revision's istiod Deployment, or
// "" if there is none: the rollout status kubeutil.RolloutStatus computes,
// named as kstatus names it (Current, InProgress, Failed, Terminating).
func istiodStatus(ctx context.Context, kube kubernetes.Interface, ns, rev string) (string, error) {
	d, err := kube.AppsV1().Deployments(ns).Get(ctx, mesh.IstiodName(rev), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	pending, err := kubeutil.RolloutStatus(d)
	switch {
	case errors.Is(err, revkit.ErrRolloutFailed):
		return kstatus.FailedStatus.String(), nil
	case err != nil:
		return "", err
	case pending == "":
		return kstatus.CurrentStatus.String(), nil
	case d.DeletionTimestamp != nil:
		return kstatus.TerminatingStatus.String(), nil
	}
	return kstatus.InProgressStatus.String(), nil
}

func releaseExists(cfg *action.Configuration, name string) (bool, error) {
	_, err := cfg.Releases.Last(name)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, driver.ErrReleaseNotFound):
		return false, nil
	}
	return false, err
}

func loadChart(src revision.ChartSource, cfg *action.Configuration) (chartcommon.Charter, error) {
	if src.Path != "" {
		return loader.Load(src.Path)
	}
	if strings.HasPrefix(src.Ref, "oci://") && cfg.RegistryClient == nil {
		rc, err := registry.NewClient()
		if err != nil {
			return nil, err
		}
		cfg.RegistryClient = rc
	}
	// An Install carries the registry client into chart lookup.
	locator := action.NewInstall(cfg)
	locator.RepoURL, locator.Version = src.RepoURL, src.Version
	path, err := locator.LocateChart(src.Ref, cli.New())
	if err != nil {
		return nil, err
	}
	return loader.Load(path)
}

// runHelm installs or upgrades a release and returns its manifest.
func runHelm(ctx context.Context, cfg *action.Configuration, chrt chartcommon.Charter, values map[string]any,
	name, ns string, upgrade bool, dry action.DryRunStrategy, wait bool, timeout time.Duration) (string, error) {
	ws := helmkube.HookOnlyStrategy
	if wait {
		ws = helmkube.StatusWatcherStrategy
	}
	var rel any
	var err error
	if dry == action.DryRunClient {
		// A client dry run makes Helm swap the configuration's kube client
		// and release storage for fakes; keep the caller's intact.
		cfg = renderConfig(cfg)
	}
	if upgrade {
		u := action.NewUpgrade(cfg)
		u.Namespace, u.DryRunStrategy, u.WaitStrategy, u.Timeout = ns, dry, ws, timeout
		u.MaxHistory = 10
		rel, err = u.RunWithContext(ctx, name, chrt, values)
	} else {
		i := action.NewInstall(cfg)
		i.Namespace, i.ReleaseName, i.DryRunStrategy, i.WaitStrategy, i.Timeout = ns, name, dry, ws, timeout
		rel, err = i.RunWithContext(ctx, chrt, values)
	}
	if err != nil {
		return "", err
	}
	r, ok := rel.(*rv1.Release)
	if !ok {
		return "", fmt.Errorf("unexpected release type %T", rel)
	}
	return r.Manifest, nil
}

// renderConfig copies what rendering needs from cfg into a configuration
// of its own.
func renderConfig(cfg *action.Configuration) *action.Configuration {
	rc := action.NewConfiguration(action.ConfigurationSetLogger(cfg.Logger().Handler()))
	rc.RESTClientGetter = cfg.RESTClientGetter
	rc.Releases = cfg.Releases
	rc.KubeClient = cfg.KubeClient
	rc.RegistryClient = cfg.RegistryClient
	rc.Capabilities = cfg.Capabilities
	rc.CustomTemplateFuncs = cfg.CustomTemplateFuncs
	rc.HookOutputFunc = cfg.HookOutputFunc
	return rc
}

func (c *Client) installBase(ctx context.Context, chart revision.ChartSource, baseValues map[string]any, dry revkit.DryRun, wait bool,
	rec *kubeutil.Recorder, ns string, timeout time.Duration) error {
	ref := revkit.ObjectRef{Kind: "HelmRelease", Namespace: ns, Name: revision.BaseRelease}
	chrt, err := loadChart(chart, c.cfg)
	if err != nil {
		return fmt.Errorf("revision.Install: load base chart: %w", err)
	}
	exists, err := releaseExists(c.cfg, revision.BaseRelease)
	if err != nil {
		return rec.Fail("get", ref, err)
	}
	act := revkit.ActionCreate
	if exists {
		act = revkit.ActionUpdate
	}
	values := maps.Clone(baseValues)
	if values == nil {
		values = map[string]any{}
	}
	switch dry {
	case revkit.DryRunClient:
		if _, err := runHelm(ctx, c.cfg, chrt, values, revision.BaseRelease, ns, exists, action.DryRunClient, false, timeout); err != nil {
			return rec.Fail("render", ref, err)
		}
		rec.Record(ctx, ref, act, "rendered only")
		return nil
	case revkit.DryRunServer:
		manifest, err := runHelm(ctx, c.cfg, chrt, values, revision.BaseRelease, ns, exists, action.DryRunClient, false, timeout)
		if err != nil {
			return rec.Fail("render", ref, err)
		}
		if err := serverDryRun(c.cfg, manifest, ns); err != nil {
			return rec.Fail("apply (dry run)", ref, err)
		}
		rec.Record(ctx, ref, act, "checked by the apiserver, not persisted")
		return nil
	}
	if _, err := runHelm(ctx, c.cfg, chrt, values, revision.BaseRelease, ns, exists, action.DryRunNone, wait, timeout); err != nil {
		return rec.Fail(map[bool]string{true: "helm upgrade", false: "helm install"}[exists], ref, err)
	}
	rec.Record(ctx, ref, act, "")
	return nil
}

// serverDryRun sends every rendered object as a server-side apply with
// dryRun=All: the apiserver validates and admits it, nothing persists.
func serverDryRun(cfg *action.Configuration, manifest, ns string) error {
	infos, err := cfg.KubeClient.Build(bytes.NewBufferString(manifest), false)
	if err != nil {
		return err
	}
	force := true
	return infos.Visit(func(info *resource.Info, err error) error {
		if err != nil {
			return err
		}
		data, err := yaml.Marshal(info.Object)
		if err != nil {
			return err
		}
		h := resource.NewHelper(info.Client, info.Mapping).DryRun(true).WithFieldManager(kubeutil.FieldManager)
		objNS := info.Namespace
		if info.Mapping.Scope.Name() == "namespace" && objNS == "" {
			objNS = ns
		}
		_, err = h.Patch(objNS, info.Name, types.ApplyYAMLPatchType, data, &metav1.PatchOptions{Force: &force})
		if err != nil {
			return fmt.Errorf("%s %s: %w", info.Mapping.GroupVersionKind.Kind, info.Name, err)
		}
		return nil
	})
}

// parseManifest lists a rendered manifest's objects and the injectors among
// them.
func parseManifest(manifest, ns string) ([]revkit.ObjectRef, []mesh.Injector, error) {
	var objs []revkit.ObjectRef
	var injectors []mesh.Injector
	for _, doc := range splitManifest(manifest) {
		ref, err := objectRef(doc, ns)
		if err != nil {
			return nil, nil, err
		}
		if ref.Kind == "" {
			continue
		}
		objs = append(objs, ref)
		if ref.Kind == "MutatingWebhookConfiguration" {
			var mwc admv1.MutatingWebhookConfiguration
			if err := yaml.Unmarshal([]byte(doc), &mwc); err != nil {
				return nil, nil, err
			}
			if inj, ok := mesh.ToInjector(&mwc); ok {
				injectors = append(injectors, inj)
			}
		}
	}
	sort.SliceStable(objs, func(i, j int) bool { return objs[i].String() < objs[j].String() })
	return objs, injectors, nil
}
