package helm_test

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v2loader "helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	repo "helm.sh/helm/v4/pkg/repo/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/helm"
	"github.com/revkit/revkit/revision"
)

func TestNew(t *testing.T) {
	_, err := helm.New(nil, "istio-system", nil)
	require.Error(t, err)

	cfg := &rest.Config{Host: "https://127.0.0.1:1", BearerToken: "t", TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	hc, err := helm.New(cfg, "istio-system", nil)
	require.NoError(t, err)
	getter, ok := hc.Configuration().RESTClientGetter.(genericclioptions.RESTClientGetter)
	require.True(t, ok)
	rc, err := getter.ToRESTConfig()
	require.NoError(t, err)
	assert.Equal(t, cfg.Host, rc.Host)
	assert.Equal(t, "t", rc.BearerToken)
	ns, _, err := getter.ToRawKubeConfigLoader().Namespace()
	require.NoError(t, err)
	assert.Equal(t, "istio-system", ns)
	_, err = getter.ToDiscoveryClient()
	require.NoError(t, err)
	_, err = getter.ToRESTMapper()
	require.NoError(t, err)
}

// A chart repository on loopback serves the chart by reference.
func TestInstallFromRepository(t *testing.T) {
	dir := t.TempDir()
	ch, err := v2loader.Load(chartDir)
	require.NoError(t, err)
	_, err = chartutil.Save(ch, dir)
	require.NoError(t, err)
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	idx, err := repo.IndexDirectory(dir, srv.URL)
	require.NoError(t, err)
	require.NoError(t, idx.WriteFile(filepath.Join(dir, "index.yaml"), 0o644))
	for _, v := range []string{"HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"} {
		t.Setenv(v, t.TempDir())
	}

	hc := memHelm(t)
	res, err := revision.Install(ctx, base().Kube(), revision.InstallOptions{
		Revision: "1-26-0", Helm: hc,
		Chart: revision.ChartSource{Ref: "istiod", RepoURL: srv.URL, Version: "1.31.0"},
	})
	require.NoError(t, err)
	assert.Equal(t, "istio-sidecar-injector-1-26-0", res.Injector)

	_, err = revision.Install(ctx, base().Kube(), revision.InstallOptions{
		Revision: "1-27-0", Helm: memHelm(t),
		Chart: revision.ChartSource{Ref: "istiod", RepoURL: srv.URL, Version: "9.9.9"},
	})
	require.Error(t, err, "no such chart version")
}

func TestInstallBaseUpgrade(t *testing.T) {
	hc := memHelm(t)
	opts := revision.InstallOptions{Revision: "1-26-0", Chart: revision.ChartSource{Path: chartDir}, Helm: hc,
		Base: &revision.ChartSource{Path: "testdata/base"}}
	_, err := revision.Install(ctx, base().Kube(), opts)
	require.NoError(t, err)

	var events []revkit.Event
	opts.Revision = "1-27-0"
	opts.OnEvent = func(e revkit.Event) { events = append(events, e) }
	_, err = revision.Install(ctx, base().Kube(), opts)
	require.NoError(t, err)
	require.Len(t, events, 2)
	assert.Equal(t, "istio-base", events[0].Object.Name)
	assert.Equal(t, revkit.ActionUpdate, events[0].Action, "the base release is upgraded")
	assert.ElementsMatch(t, []string{"istio-base#1", "istio-base#2", "istiod-1-26-0#1", "istiod-1-27-0#1"}, releases(t, hc))
}
