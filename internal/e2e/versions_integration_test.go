//go:build integration

package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	rv1 "helm.sh/helm/v4/pkg/release/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/helm"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

// TestUpgradeAcrossIstioVersions upgrades a mesh installed entirely with the
// old Istio version's charts through Helm — base (CRDs) and istiod, two
// istiod replicas — to the new version with the standard canary plan: the
// base chart upgraded as its own step, the new revision installed with the
// old release's values carried over, the version skew checked before any
// write and against every batch's proxies, the proxies read from every
// replica; it then rolls back to the old version, and finally completes the
// upgrade and uninstalls the old revision, leaving nothing dangling.
func TestUpgradeAcrossIstioVersions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	from, to := testenv.OldIstio, testenv.NewIstio
	// The CRDs come from the old base chart, installed by Helm, not from
	// the environment.
	env, err := testenv.Start(t, testenv.Options{SkipIstioCRDs: true})
	require.NoError(t, err)
	kube := env.Client
	hc, err := helm.New(env.Config, "istio-system", nil)
	require.NoError(t, err)
	// No default validator from the base chart: the default tag is
	// revkit's to set (as with istioctl's revision tags), and the chart's
	// would point at a Service no local istiod serves.
	baseValues := map[string]any{"defaultRevision": ""}

	base, err := revision.UpgradeBase(ctx, kube, revision.BaseOptions{Chart: revision.ChartSource{Path: env.VersionChartDir(from, "base")},
		Values: baseValues, Helm: hc, Wait: true, Timeout: 2 * time.Minute})
	require.NoError(t, err, "installing the old base chart with Helm")
	require.Len(t, base.CRDs, 15, "Istio's CRDs")
	for _, c := range base.CRDs {
		assert.Equal(t, revkit.ActionCreate, c.Action, c.Name)
	}
	var crds []testenv.ObjectRef
	for _, c := range base.CRDs {
		crds = append(crds, testenv.ObjectRef{Kind: "CustomResourceDefinition", Name: c.Name})
	}
	require.NoError(t, env.WaitCRDsEstablished(ctx, crds))

	// The old revision, from the old istio-discovery chart, with a value
	// of the user's that the upgrade must carry over, and a second replica.
	userValues := map[string]any{"meshConfig": map[string]any{"accessLogFile": "/dev/stdout"}}
	old, err := env.ReserveIstiod(from.Revision)
	require.NoError(t, err)
	old.Version = from
	_, err = revision.Install(ctx, kube, revision.InstallOptions{Revision: from.Revision,
		Chart: revision.ChartSource{Path: env.VersionChartDir(from, "istio-discovery")}, Values: mergeMaps(userValues, old.ChartValues()),
		Helm: hc, Wait: true, Timeout: 3 * time.Minute})
	require.NoError(t, err)
	_, err = env.StartInstalledIstiod(ctx, old)
	require.NoError(t, err)
	_, err = env.StartReplica(ctx, from.Revision)
	require.NoError(t, err)

	_, err = tag.Set(ctx, kube, tag.SetOptions{Tag: "prod-stable", Revision: from.Revision})
	require.NoError(t, err)
	apps := []string{"blog", "search", "shop"}
	for _, ns := range apps {
		createNamespace(ctx, t, env, ns, map[string]string{"istio.io/rev": "prod-stable", "tier": "app"})
		createDeployment(ctx, t, kube, ns, "web", 2)
	}
	for _, ns := range apps {
		waitRolledOut(ctx, t, kube, ns, "web")
	}
	sc := &podSidecars{env: env}
	require.NoError(t, sc.connect(ctx, apps...))
	for _, ns := range apps {
		assertProxyVersions(ctx, t, kube, ns, from)
	}
	oldSources := replicaSources(env, from.Revision)
	require.Len(t, oldSources, 2, "two replicas of the old istiod")
	checkProxies(ctx, t, env, oldSources, from, apps)

	canary, err := env.ReserveIstiod(to.Revision)
	require.NoError(t, err)
	canary.Version = to
	opts := upgrade.CanaryOptions{
		From: from.Revision, To: to.Revision, FromVersion: from.Name, ToVersion: to.Name,
		CanaryTag: "prod-canary", StableTag: "prod-stable",
		Namespaces: namespace.Selection{Selector: "tier=app"}, BatchSize: 2,
		Install: &revision.InstallOptions{
			Chart: revision.ChartSource{Path: env.VersionChartDir(to, "istio-discovery")}, Values: canary.ChartValues(),
			ValuesFrom: from.Revision, Base: &revision.ChartSource{Path: env.VersionChartDir(to, "base")}, BaseValues: baseValues,
			Helm: hc, Wait: true, Timeout: 3 * time.Minute,
		},
		// Every replica of the new istiod; the sources are filled in when
		// its replicas run (after the install step).
		Proxies:        []verify.SyncSource{replicasOf{env: env, rev: to.Revision}},
		RestartTimeout: 3 * time.Minute, KeepOld: true,
	}

	t.Run("an unsupported version stops the plan before any write", func(t *testing.T) {
		bad := opts
		// Istio 1.29 does not support the control plane's Kubernetes 1.36.
		bad.FromVersion, bad.ToVersion = "1.28.2", "1.29.0"
		plan, err := upgrade.Canary(ctx, kube, bad)
		require.NoError(t, err)
		rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, plan)
		require.ErrorIs(t, err, revkit.ErrVersionSkew)
		assert.Equal(t, "precheck", rep.Failed().Name)
		assert.Contains(t, rep.Failed().Detail, "Kubernetes")
		assert.Empty(t, rep.Changes(), "nothing written")
		rel, err := hc.Configuration().Releases.Last(revision.BaseRelease)
		require.NoError(t, err)
		assert.Equal(t, 1, rel.(*rv1.Release).Version, "the base release was not upgraded")
		_, err = hc.Configuration().Releases.Last(revision.ReleaseName(to.Revision))
		assert.Error(t, err, "no release of the new revision")
	})

	t.Run("the base upgrade's dry run lists the CRD changes", func(t *testing.T) {
		res, err := revision.UpgradeBase(ctx, kube, revision.BaseOptions{Common: revkit.Common{DryRun: revkit.DryRunClient},
			Chart: *opts.Install.Base, Values: baseValues, Helm: hc})
		require.NoError(t, err)
		require.Len(t, res.CRDs, 15)
		for _, c := range res.CRDs {
			// The two builds serve the same versions of every CRD.
			assert.Empty(t, c.Removed, c.Name)
			assert.Equal(t, c.StorageFrom, c.StorageTo, c.Name)
			assert.NotEmpty(t, c.StoredVersions, "read from the apiserver: %s", c.Name)
		}
	})

	t.Run("canary to the new version", func(t *testing.T) {
		plan, err := upgrade.Canary(ctx, kube, opts)
		require.NoError(t, err)
		plan = localPlan(plan, env, sc, canary)
		t.Logf("plan:\n%s", plan)
		rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, plan)
		t.Logf("report:\n%s", rep)
		require.NoError(t, err)
		assert.Contains(t, stepDetail(rep, "upgrade-base"), "of 15 CRDs changed")
		assert.Regexp(t, `installed release istiod-`+to.Revision+`.*top-level values carried over`, stepDetail(rep, "install-revision "+to.Revision))
		for i := 1; i <= 2; i++ {
			assert.Contains(t, stepDetail(rep, fmt.Sprintf("verify-skew %d/2", i)), to.Name, "the proxies' versions")
		}

		baseRel, err := hc.Configuration().Releases.Last(revision.BaseRelease)
		require.NoError(t, err)
		assert.Equal(t, 2, baseRel.(*rv1.Release).Version, "the base release upgraded in place")
		const differs = "templates/reader-serviceaccount.yaml" // differs between the two charts
		assert.True(t, sameTemplate(t, baseRel.(*rv1.Release), env.VersionChartDir(to, "base"), differs), "made from the new base chart")
		assert.False(t, sameTemplate(t, baseRel.(*rv1.Release), env.VersionChartDir(from, "base"), differs))

		// Values carried over from the old release; its addresses replaced
		// by the new revision's.
		rel, err := hc.Configuration().Releases.Last(revision.ReleaseName(to.Revision))
		require.NoError(t, err)
		cfg := rel.(*rv1.Release).Config
		assert.Equal(t, "/dev/stdout", dig(cfg, "meshConfig", "accessLogFile"), "carried from the old release")
		assert.Equal(t, "https://"+canary.WebhookAddr+"/inject", dig(cfg, "istiodRemote", "injectionURL"), "the new revision's own")
		assert.Equal(t, to.Revision, dig(cfg, "revision"), "a revision-specific key is not carried")

		for _, ns := range apps {
			assertProxyVersions(ctx, t, kube, ns, to)
		}
		newSources := replicaSources(env, to.Revision)
		require.Len(t, newSources, 2)
		checkProxies(ctx, t, env, newSources, to, apps)

		// Reading one replica of two is not enough: the pods connected to
		// the other are reported as never connected.
		prox, err := verify.Proxies(ctx, verify.ProxiesOptions{Sources: newSources[:1], Target: to.Revision, Namespaces: apps, Kube: kube})
		require.NoError(t, err)
		assert.NotEmpty(t, prox.NotConnected)
		assert.ErrorIs(t, prox.Err(), revkit.ErrVerificationFailed)
	})

	t.Run("rollback to the old version", func(t *testing.T) {
		back := opts
		back.KeepOld = true // keep the new revision for the next attempt
		plan, err := upgrade.Rollback(ctx, kube, back)
		require.NoError(t, err)
		plan = localPlan(plan, env, sc, nil)
		rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, plan)
		t.Logf("report:\n%s", rep)
		require.NoError(t, err)
		assert.Contains(t, stepDetail(rep, "precheck"), "Kubernetes")
		for _, ns := range apps {
			assertProxyVersions(ctx, t, kube, ns, from)
		}
		checkProxies(ctx, t, env, oldSources, from, apps)
		tags, err := tag.List(ctx, kube, tag.ListOptions{})
		require.NoError(t, err)
		for _, tg := range tags {
			if tg.Name == "prod-stable" {
				assert.Equal(t, from.Revision, tg.Revision)
			}
		}
		// The CRDs stay as the new base chart made them: a rollback does not
		// downgrade the base release (the old istiod reads the new CRDs).
		baseRel, err := hc.Configuration().Releases.Last(revision.BaseRelease)
		require.NoError(t, err)
		assert.Equal(t, 2, baseRel.(*rv1.Release).Version)
	})

	t.Run("complete the upgrade and uninstall the old version", func(t *testing.T) {
		again := opts
		again.Install, again.KeepOld = nil, false
		again.Helm = hc // the old revision's release goes with its objects
		again.Proxies = replicaSources(env, to.Revision)
		plan, err := upgrade.Canary(ctx, kube, again)
		require.NoError(t, err)
		plan = localPlan(plan, env, sc, nil)
		rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, plan)
		t.Logf("report:\n%s", rep)
		require.NoError(t, err)

		for _, ns := range apps {
			assertProxyVersions(ctx, t, kube, ns, to)
		}
		checkProxies(ctx, t, env, again.Proxies, to, apps)
		_, err = hc.Configuration().Releases.Last(revision.ReleaseName(from.Revision))
		assert.Error(t, err, "the old release is gone")
		for _, name := range []string{"istio-sidecar-injector-" + from.Revision} {
			_, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
			assert.True(t, apierrors.IsNotFound(err), "%s must be gone: %v", name, err)
		}
		_, err = kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "istio-validator-"+from.Revision+"-istio-system", metav1.GetOptions{})
		assert.True(t, apierrors.IsNotFound(err), "the old validator must be gone: %v", err)
		wh, err := verify.Webhooks(ctx, kube, verify.WebhooksOptions{})
		require.NoError(t, err)
		assert.NoError(t, wh.Err(), "nothing dangling, no overlap")
		revs, err := revision.List(ctx, kube, revision.ListOptions{})
		require.NoError(t, err)
		require.Len(t, revs, 1)
		assert.Equal(t, to.Revision, revs[0].Name)
		assert.ElementsMatch(t, []string{"prod-canary", "prod-stable"}, revs[0].Tags)
	})
}

// localPlan adapts a plan to the local control plane, where istiod runs as
// processes and pods run no Envoy: the installed revision's istiod (and a
// second replica) start after its install, the pods' sidecars connect after
// every restart, and an uninstalled revision's istiods stop.
func localPlan(p upgrade.Plan, env *testenv.Env, sc *podSidecars, installed *testenv.Istiod) upgrade.Plan {
	var steps []upgrade.Step
	for _, s := range p.Steps {
		steps = append(steps, s)
		switch upgrade.KindOf(s) {
		case upgrade.KindInstallRevision:
			steps = append(steps, upgrade.Func("start-local-istiod", "start two istiod replicas of the installed revision",
				func(ctx context.Context, _ upgrade.Env) (upgrade.Result, error) {
					if _, err := env.StartInstalledIstiod(ctx, installed); err != nil {
						return upgrade.Result{}, err
					}
					_, err := env.StartReplica(ctx, installed.Revision)
					return upgrade.Result{Detail: "2 replicas"}, err
				}))
		case upgrade.KindRestartWorkloads:
			var nss []string
			switch in := s.(upgrade.InputReporter).Inputs().(type) {
			case namespace.RestartOptions:
				nss = in.Selection.Namespaces
			}
			steps = append(steps, upgrade.Func("connect-sidecars after "+s.Name(), "connect the restarted pods' sidecars",
				func(ctx context.Context, _ upgrade.Env) (upgrade.Result, error) {
					return upgrade.Result{}, sc.connect(ctx, nss...)
				}))
		case upgrade.KindUninstallRevision:
			rev := s.(upgrade.InputReporter).Inputs().(revision.UninstallOptions).Revision
			steps = append(steps, upgrade.Func("stop-local-istiod "+rev, "stop the uninstalled revision's istiods",
				func(context.Context, upgrade.Env) (upgrade.Result, error) {
					return upgrade.Result{}, env.StopIstiod(rev)
				}))
		}
	}
	p.Steps = steps
	return p
}

// podSidecars keeps one fake sidecar per running injected pod, replacing
// those of pods that are gone, as their Envoy ends with the pod.
type podSidecars struct {
	env *testenv.Env
	mu  sync.Mutex
	by  map[string]map[string]*testenv.Sidecar // namespace → proxy ID
}

func (c *podSidecars) connect(ctx context.Context, namespaces ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[string]map[string]*testenv.Sidecar{}
	}
	for _, ns := range namespaces {
		for _, s := range c.by[ns] {
			_ = s.Close()
		}
		ss, err := c.env.ConnectPodSidecars(ctx, ns, "")
		c.by[ns] = map[string]*testenv.Sidecar{}
		for _, s := range ss {
			c.by[ns][s.ProxyID] = s
		}
		if err != nil {
			return err
		}
		for _, s := range ss {
			if err := s.WaitSynced(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// replicaSources are syncz sources for every running istiod of a revision.
func replicaSources(env *testenv.Env, rev string) []verify.SyncSource {
	is := env.Istiod(rev)
	if is == nil {
		return nil
	}
	var out []verify.SyncSource
	for _, r := range is.Replicas() {
		out = append(out, verify.HTTPSource{Rev: rev, URL: "http://" + r.MonitoringAddr})
	}
	return out
}

// replicasOf is a SyncSource that reads every replica of a revision running
// when it is read: the plan is built before the revision's istiods start.
type replicasOf struct {
	env *testenv.Env
	rev string
}

func (r replicasOf) Revision() string { return r.rev }

func (r replicasOf) Syncz(ctx context.Context) ([]byte, error) {
	sources := replicaSources(r.env, r.rev)
	if len(sources) == 0 {
		return nil, fmt.Errorf("no istiod of %s runs", r.rev)
	}
	all := []json.RawMessage{}
	for _, s := range sources {
		doc, err := s.Syncz(ctx)
		if err != nil {
			return nil, err
		}
		var items []json.RawMessage
		if err := json.Unmarshal(doc, &items); err != nil {
			return nil, err
		}
		all = append(all, items...)
	}
	return json.Marshal(all)
}

// checkProxies verifies that every pod of the namespaces is connected to a
// replica of v's revision, SYNCED, and reports v as its version.
func checkProxies(ctx context.Context, t *testing.T, env *testenv.Env, sources []verify.SyncSource, v testenv.IstioVersion, namespaces []string) {
	t.Helper()
	var rep *verify.ProxiesReport
	var err error
	require.Eventually(t, func() bool {
		rep, err = verify.Proxies(ctx, verify.ProxiesOptions{Sources: sources, Target: v.Revision, Namespaces: namespaces, Kube: env.Client})
		return err == nil && rep.OK() && len(rep.Proxies) == 2*len(namespaces)
	}, time.Minute, 500*time.Millisecond, "proxies of %s: %+v %v", v.Revision, rep, err)
	perReplica := map[string]int{}
	for _, p := range rep.Proxies {
		assert.Equal(t, v.Name, p.IstioVersion, "proxy %s", p.ID)
	}
	for _, s := range sources {
		one, err := verify.Proxies(ctx, verify.ProxiesOptions{Sources: []verify.SyncSource{s}, Target: v.Revision, Namespaces: namespaces})
		require.NoError(t, err)
		perReplica[s.(verify.HTTPSource).URL] = len(one.Proxies)
	}
	for url, n := range perReplica {
		assert.NotZero(t, n, "replica %s serves some of the proxies", url)
	}
}

func stepDetail(rep *upgrade.Report, name string) string {
	for _, s := range rep.Steps {
		if s.Name == name {
			return s.Detail
		}
	}
	return ""
}

// sameTemplate reports whether the release was made from the chart in dir,
// by one of its templates (both versions' base charts say version 1.0.0).
func sameTemplate(t *testing.T, rel *rv1.Release, dir, name string) bool {
	t.Helper()
	want, err := os.ReadFile(filepath.Join(dir, name))
	require.NoError(t, err)
	require.NotNil(t, rel.Chart)
	for _, f := range rel.Chart.Templates {
		if f.Name == name {
			return bytes.Equal(f.Data, want)
		}
	}
	return false
}

func dig(m map[string]any, keys ...string) any {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

func mergeMaps(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
