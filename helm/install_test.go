package helm_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v2loader "helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
)

func TestInstall(t *testing.T) {
	kube := base().Kube()
	hc := memHelm(t)
	var events []revkit.Event
	opts := revision.InstallOptions{
		Revision: "1-26-0", Chart: revision.ChartSource{Path: chartDir}, Helm: hc,
		Common: revkit.Common{OnEvent: func(e revkit.Event) { events = append(events, e) }},
	}
	res, err := revision.Install(ctx, kube, opts)
	require.NoError(t, err)
	assert.Equal(t, "istiod-1-26-0", res.Release)
	assert.Equal(t, 1, res.Version)
	assert.False(t, res.Upgraded)
	assert.Equal(t, "istio-sidecar-injector-1-26-0", res.Injector)
	assert.Equal(t, []revkit.ObjectRef{
		{Kind: "Deployment", Namespace: "istio-system", Name: "istiod-1-26-0"},
		{Kind: "MutatingWebhookConfiguration", Name: "istio-sidecar-injector-1-26-0"},
		{Kind: "Service", Namespace: "istio-system", Name: "istiod-1-26-0"},
	}, res.Objects)
	assert.Equal(t, []string{"istiod-1-26-0#1"}, releases(t, hc))
	assert.Equal(t, "", res.IstiodStatus, "the fake Helm client created no Deployment")
	require.Len(t, events, 1)
	assert.Equal(t, revkit.ActionCreate, events[0].Action)
	assert.Empty(t, revkittest.Writes(kube), "Helm writes through its own client, revkit's client only reads")

	// Again: refused without Upgrade, an upgrade with it.
	_, err = revision.Install(ctx, kube, opts)
	require.ErrorIs(t, err, revkit.ErrExists)
	opts.Upgrade = true
	res, err = revision.Install(ctx, kube, opts)
	require.NoError(t, err)
	assert.True(t, res.Upgraded)
	assert.Equal(t, 2, res.Version)
}

// After the install, the kstatus of istiod's Deployment is reported.
func TestInstallReportsIstiodStatus(t *testing.T) {
	for _, tc := range []struct {
		available int32
		want      string
	}{{1, "Current"}, {0, "InProgress"}} {
		dep := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "istiod-1-26-0", Namespace: "istio-system", Generation: 1},
			Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](1)},
			Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 1, UpdatedReplicas: 1,
				ReadyReplicas: tc.available, AvailableReplicas: tc.available,
				Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}},
		}
		res, err := revision.Install(ctx, base().WithObjects(dep).Kube(), revision.InstallOptions{
			Revision: "1-26-0", Chart: revision.ChartSource{Path: chartDir}, Helm: memHelm(t)})
		require.NoError(t, err)
		assert.Equal(t, tc.want, res.IstiodStatus)
	}
}

func TestInstallRefusals(t *testing.T) {
	tests := []struct {
		name    string
		cluster *revkittest.Cluster
		opts    func(*revision.InstallOptions)
		wantErr error
	}{
		{
			name:    "revision installed without Helm",
			cluster: base(),
			opts:    func(o *revision.InstallOptions) { o.Revision = "1-25-0"; o.Upgrade = true },
			wantErr: revkit.ErrExists,
		},
		{
			name:    "injector would overlap a tag",
			cluster: base().WithTag("prod", "1-24-0"),
			opts:    func(o *revision.InstallOptions) { o.Values = map[string]any{"injectorSelectorValue": "prod"} },
			wantErr: revkit.ErrOverlap,
		},
		{name: "dotted revision", cluster: base(), opts: func(o *revision.InstallOptions) { o.Revision = "1.26.0" }, wantErr: revkit.ErrInvalidInput},
		{name: "no chart", cluster: base(), opts: func(o *revision.InstallOptions) { o.Chart = revision.ChartSource{} }, wantErr: revkit.ErrInvalidInput},
		{name: "path and ref", cluster: base(), opts: func(o *revision.InstallOptions) { o.Chart.Ref = "oci://x/istiod" }, wantErr: revkit.ErrInvalidInput},
		{name: "plain ref without repo", cluster: base(), opts: func(o *revision.InstallOptions) { o.Chart = revision.ChartSource{Ref: "istiod"} }, wantErr: revkit.ErrInvalidInput},
		{name: "bad base", cluster: base(), opts: func(o *revision.InstallOptions) { o.Base = &revision.ChartSource{} }, wantErr: revkit.ErrInvalidInput},
		{name: "no helm", cluster: base(), opts: func(o *revision.InstallOptions) { o.Helm = nil }, wantErr: revkit.ErrInvalidInput},
		{name: "negative timeout", cluster: base(), opts: func(o *revision.InstallOptions) { o.Timeout = -1 }, wantErr: revkit.ErrInvalidInput},
		{name: "bad dry-run", cluster: base(), opts: func(o *revision.InstallOptions) { o.DryRun = 4 }, wantErr: revkit.ErrInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kube := tt.cluster.Kube()
			hc := memHelm(t)
			opts := revision.InstallOptions{Revision: "1-26-0", Chart: revision.ChartSource{Path: chartDir}, Helm: hc}
			tt.opts(&opts)
			kube.ClearActions()
			_, err := revision.Install(ctx, kube, opts)
			require.ErrorIs(t, err, tt.wantErr)
			assert.Empty(t, releases(t, hc), "no release recorded")
			if errors.Is(err, revkit.ErrInvalidInput) {
				assert.Empty(t, kube.Actions(), "invalid input is refused before any request")
			}
			if errors.Is(err, revkit.ErrOverlap) {
				var ov *revkit.OverlapError
				require.ErrorAs(t, err, &ov)
				assert.Equal(t, "istio-revision-tag-prod", ov.First)
				assert.Equal(t, "istio-sidecar-injector-1-26-0", ov.Second)
			}
		})
	}
}

func TestInstallDryRunAndSources(t *testing.T) {
	t.Run("client dry run records no release", func(t *testing.T) {
		hc := memHelm(t)
		kubeClient, store := hc.Configuration().KubeClient, hc.Configuration().Releases
		defer func() {
			// Helm swaps these for fakes during a client dry run; the
			// caller's configuration must keep its own.
			assert.Same(t, kubeClient, hc.Configuration().KubeClient)
			assert.Same(t, store, hc.Configuration().Releases)
		}()
		res, err := revision.Install(ctx, base().Kube(), revision.InstallOptions{
			Revision: "1-26-0", Chart: revision.ChartSource{Path: chartDir}, Helm: hc,
			Base:   &revision.ChartSource{Path: "testdata/base"},
			Common: revkit.Common{DryRun: revkit.DryRunClient},
		})
		require.NoError(t, err)
		assert.Equal(t, "istio-sidecar-injector-1-26-0", res.Injector)
		assert.Len(t, res.Objects, 3)
		assert.Empty(t, releases(t, hc))
	})
	t.Run("packaged chart and base chart", func(t *testing.T) {
		ch, err := v2loader.Load(chartDir)
		require.NoError(t, err)
		tgz, err := chartutil.Save(ch, t.TempDir())
		require.NoError(t, err)
		hc := memHelm(t)
		res, err := revision.Install(ctx, base().Kube(), revision.InstallOptions{
			Revision: "1-26-0", Chart: revision.ChartSource{Path: tgz}, Helm: hc,
			Base: &revision.ChartSource{Path: "testdata/base"},
		})
		require.NoError(t, err)
		assert.Equal(t, revision.BaseRelease, res.BaseRelease)
		assert.ElementsMatch(t, []string{"istio-base#1", "istiod-1-26-0#1"}, releases(t, hc))
	})
	t.Run("missing chart", func(t *testing.T) {
		_, err := revision.Install(ctx, base().Kube(), revision.InstallOptions{
			Revision: "1-26-0", Chart: revision.ChartSource{Path: "testdata/nope"}, Helm: memHelm(t)})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "load chart")
	})
}
