//go:build integration

package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/revkit/revkit/examples/internal/demo"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/verify"
)

// The example against a cluster given by --kubeconfig, where both
// revisions are installed already.
func TestCanaryUpgradeExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	from, to := testenv.OldIstio.Revision, testenv.NewIstio.Revision
	env, _ := demo.TestMesh(t, ctx, from, "prod-stable", to)
	// A second gateway, installed as `helm install istio-gateway
	// istio/gateway -n istio-gateway --set revision=<from>` would: it moves
	// through its own release.
	hg := demo.InstallGatewayRelease(t, ctx, env, "istio-gateway", "istio-gateway", testenv.OldIstio)

	var out, errOut bytes.Buffer
	// The local control plane's istiods are processes, not pods a
	// port-forward reaches: no proxy check through the apiserver here.
	code := run([]string{"--kubeconfig", env.Kubeconfig, "--from", from, "--to", to, "--gateways", "canary", "--check-proxies=false",
		"--gateway-namespaces", "istio-ingress", "--gateway-release", "istio-gateway/istio-gateway",
		"--gateway-chart", env.VersionChartDir(testenv.NewIstio, "gateway")}, &out, &errOut)
	t.Log(out.String())
	require.Equal(t, 0, code, errOut.String())

	inj, err := revkittest.NamespaceInjection(ctx, env.Client)
	require.NoError(t, err)
	for ns := range demo.Apps {
		assert.Equal(t, "istio.io/rev=prod-canary", inj[ns], ns)
	}
	pods, err := verify.Pods(ctx, env.Client, verify.PodsOptions{Selector: "demo=true", Target: to})
	require.NoError(t, err)
	assert.NoError(t, pods.Err())
	var proxies bytes.Buffer
	require.NoError(t, demo.PrintProxyVersions(ctx, &proxies, env.Client, "demo=true"))
	assert.Contains(t, proxies.String(), testenv.NewIstio.Name+"=8", "every demo pod runs the new version's sidecar")
	assert.NotContains(t, proxies.String(), testenv.OldIstio.Name)
	revs, err := revision.List(ctx, env.Client, revision.ListOptions{})
	require.NoError(t, err)
	require.Len(t, revs, 1, "the old revision is gone")
	assert.Equal(t, to, revs[0].Name)
	assert.Equal(t, []string{"prod-canary", "prod-stable"}, revs[0].Tags)
	_, err = env.Client.AppsV1().Deployments("istio-ingress").Get(ctx, "istio-ingressgateway-"+to, metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "the canary gateway went at promotion: %v", err)
	gw, err := env.Client.AppsV1().Deployments("istio-ingress").Get(ctx, "istio-ingressgateway", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, to, gw.Spec.Template.Labels["istio.io/rev"], "the gateway itself was promoted")
	assert.Regexp(t, `move-gateways `+to+`\s+done\s+\S+\s+create 1`, out.String(), "a canary gateway ran first")
	assert.Regexp(t, `uninstall-revision `+from+`\s+done`, out.String())

	// The Helm gateway: a canary release ran beside it, then its own release
	// was upgraded to the new revision and the canary uninstalled.
	assert.Regexp(t, `canary-gateway-release istio-gateway/istio-gateway→`+to+`\s+done`, out.String())
	assert.Regexp(t, `promote-gateway-release istio-gateway/istio-gateway→`+to+`\s+done`, out.String())
	hgw, err := env.Client.AppsV1().Deployments("istio-gateway").Get(ctx, "istio-gateway", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, to, hgw.Spec.Template.Labels["istio.io/rev"], "moved through its release")
	assert.Equal(t, []string{"istio-gateway#2"}, demo.DeployedReleases(t, hg), "its release upgraded once, the canary release gone")

	// --help exits 0 and names the flags.
	out.Reset()
	errOut.Reset()
	assert.Equal(t, 0, run([]string{"--help"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "-kubeconfig")
	// A failing step is named and the exit status is non-zero: the old
	// revision is not installed any more.
	out.Reset()
	errOut.Reset()
	code = run([]string{"--kubeconfig", env.Kubeconfig, "--from", to, "--to", from, "--stable-tag", "", "--canary-tag", "", "--check-proxies=false"}, &out, &errOut)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut.String(), `step "migrate-namespaces 1/2" failed`)
}
