package upgrade_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

// With the Istio versions given, the canary plan's precheck checks them
// against Istio's support policy: a supported combination runs, an
// unsupported one (Kubernetes 1.36 is not in Istio 1.29's row of the
// table; a jump of two minor versions) stops the plan before any write.
func TestCanaryChecksVersionSkewBeforeAnyWrite(t *testing.T) {
	for _, tc := range []struct {
		name, k8s, from, to string
		refused             string // the object the error names; "" runs
	}{
		{name: "supported", k8s: "v1.34.1", from: "1.29.2", to: "1.30.1"},
		{name: "Kubernetes outside the new version's support", k8s: "v1.36.0", from: "1.28.4", to: "1.29.2", refused: "kubernetes v1.36.0"},
		{name: "two minor versions at once", k8s: "v1.33.0", from: "1.28.4", to: "1.30.1", refused: "upgrade 1.28.4 → 1.30.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube := fleetCluster().WithServerVersion(tc.k8s).Kube()
			opts := canaryOpts()
			opts.FromVersion, opts.ToVersion = tc.from, tc.to
			p, err := upgrade.Canary(ctx, kube, opts)
			require.NoError(t, err)
			kube.ClearActions()
			rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, p)
			if tc.refused == "" {
				// Passes the precheck; fails later at the pod gate, as pods
				// never move on a fake cluster.
				require.Error(t, err)
				assert.NotEqual(t, "precheck", rep.Failed().Name)
				return
			}
			require.ErrorIs(t, err, revkit.ErrVersionSkew)
			assert.Equal(t, "precheck", rep.Failed().Name)
			assert.Contains(t, err.Error(), tc.refused)
			for _, w := range revkittest.Writes(kube) {
				assert.True(t, strings.HasPrefix(w, "create selfsubjectaccessreviews"), "only access reviews before the refusal: %s", w)
			}
		})
	}
	_, err := upgrade.Canary(ctx, fleetCluster().Kube(), func() upgrade.CanaryOptions {
		o := canaryOpts()
		o.FromVersion = "1.29.0"
		return o
	}())
	assert.ErrorIs(t, err, revkit.ErrInvalidInput, "FromVersion without ToVersion")
}

// syncz serves one proxy per pod at a version.
type syncz struct {
	rev  string
	docs []string
}

func (s syncz) Revision() string { return s.rev }
func (s syncz) Syncz(context.Context) ([]byte, error) {
	return []byte("[" + strings.Join(s.docs, ",") + "]"), nil
}

func proxyDoc(pod, ns, version string) string {
	return fmt.Sprintf(`{"proxy":%q,"proxy_type":"sidecar","istio_version":%q,"cluster_id":"Kubernetes"}`, pod+"."+ns, version)
}

// The per-batch skew gate fails on a proxy ahead of its control plane and
// names it.
func TestVerifySkewGate(t *testing.T) {
	kube := revkittest.NewCluster().WithServerVersion("v1.34.0").Kube()
	src := syncz{rev: "1-30-1", docs: []string{proxyDoc("web-1", "shop", "1.30.1"), proxyDoc("web-2", "shop", "1.31.0")}}
	step := upgrade.VerifySkew(verify.ProxySkewOptions{Skew: verify.SkewOptions{Istio: "1.30.1"}, Sources: []verify.SyncSource{src}})
	assert.Equal(t, upgrade.KindVerifySkew, upgrade.KindOf(step))
	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, upgrade.Plan{Name: "skew", Steps: []upgrade.Step{step}})
	require.ErrorIs(t, err, revkit.ErrVersionSkew)
	assert.Contains(t, err.Error(), "web-2.shop")
	assert.Contains(t, rep.Steps[0].Detail, "1.30.1 ×1, 1.31.0 ×1")

	src.docs = src.docs[:1]
	step = upgrade.VerifySkew(verify.ProxySkewOptions{Skew: verify.SkewOptions{Istio: "1.30.1"}, Sources: []verify.SyncSource{src}})
	_, err = upgrade.Execute(ctx, upgrade.Env{Kube: kube}, upgrade.Plan{Name: "skew", Steps: []upgrade.Step{step}})
	require.NoError(t, err)
}

// With proxies and versions, every batch gets a skew gate after its proxy
// check.
func TestCanaryAddsSkewGates(t *testing.T) {
	opts := canaryOpts()
	opts.FromVersion, opts.ToVersion = "1.29.2", "1.30.1"
	opts.Proxies = []verify.SyncSource{syncz{rev: "1-25-0"}}
	p, err := upgrade.Canary(ctx, fleetCluster().Kube(), opts)
	require.NoError(t, err)
	assert.Contains(t, stepNames(p), "verify-skew 1/2")
	assert.Contains(t, stepNames(p), "verify-skew 2/2")
}

// A base chart in the install becomes its own step before the install,
// and the install no longer carries it.
func TestCanaryUpgradesBaseAsItsOwnStep(t *testing.T) {
	opts := canaryOpts()
	opts.Install = &revision.InstallOptions{Chart: revision.ChartSource{Path: "charts/istiod"}, Base: &revision.ChartSource{Path: "charts/base"}}
	p, err := upgrade.Canary(ctx, fleetCluster().Kube(), opts)
	require.NoError(t, err)
	names := stepNames(p)
	require.Equal(t, []string{"precheck", "upgrade-base", "install-revision 1-25-0"}, names[:3])
	assert.Equal(t, upgrade.KindUpgradeBase, upgrade.KindOf(p.Steps[1]))
	in := p.Steps[2].(upgrade.InputReporter).Inputs().(revision.InstallOptions)
	assert.Nil(t, in.Base, "the install does not upgrade the base again")
}
