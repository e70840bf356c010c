package helm_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	"helm.sh/helm/v4/pkg/action"
	chartcommon "helm.sh/helm/v4/pkg/chart/common"
	kubefake "helm.sh/helm/v4/pkg/kube/fake"
	rv1 "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage"
	"helm.sh/helm/v4/pkg/storage/driver"

	"github.com/revkit/revkit/helm"
	"github.com/revkit/revkit/revkittest"
)

var ctx = context.Background()

// chartDir is a small stand-in for Istio's istiod chart: an injector
// webhook, istiod's Deployment and its Service.
const chartDir = "testdata/istiod"

// base is a cluster with revisions 1-24-0 and 1-25-0, installed without
// Helm.
func base() *revkittest.Cluster {
	return revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0")
}

// memConfig is a Helm configuration with in-memory release storage and a
// kube client that applies nothing.
func memConfig() *action.Configuration {
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	mem := driver.NewMemory()
	mem.SetNamespace("istio-system") // as Init does for the memory driver
	cfg.Releases = storage.Init(mem)
	cfg.KubeClient = &kubefake.PrintingKubeClient{Out: io.Discard, LogOutput: io.Discard}
	cfg.Capabilities = chartcommon.DefaultCapabilities
	return cfg
}

// memHelm is a Client on memConfig.
func memHelm(t *testing.T) *helm.Client {
	t.Helper()
	return helm.NewFromConfiguration(memConfig())
}

// releases names the releases hc keeps, as "name#version".
func releases(t *testing.T, hc *helm.Client) []string {
	t.Helper()
	rels, err := hc.Configuration().Releases.ListReleases()
	require.NoError(t, err)
	var out []string
	for _, r := range rels {
		rel, ok := r.(*rv1.Release)
		require.True(t, ok, "release type %T", r)
		out = append(out, fmt.Sprintf("%s#%d", rel.Name, rel.Version))
	}
	return out
}
