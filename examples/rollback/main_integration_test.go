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
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/verify"
)

// The example against a cluster given by --kubeconfig, where both
// revisions are installed: the canary's first batch and gateway, then the
// rollback.
func TestRollbackExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// From the older Istio version to the newer one, and back.
	from, to := testenv.OldIstio.Revision, testenv.NewIstio.Revision
	env, _ := demo.TestMesh(t, ctx, from, "prod-stable", to)

	var out, errOut bytes.Buffer
	code := run([]string{"--kubeconfig", env.Kubeconfig, "--from", from, "--to", to, "--gateways", "canary"}, &out, &errOut)
	t.Log(out.String())
	require.Equal(t, 0, code, errOut.String())

	// The canary did happen: the first batch moved and a canary gateway
	// was created, and the rollback undid both.
	assert.Regexp(t, `migrate-namespaces 1/2\s+done\s+\S+\s+→ prod-canary \(`+to+`\): update 2`, out.String())
	assert.Regexp(t, `verify-pods 1/2\s+done\s+\S+\s+4 pods in 2 namespaces on revision `+to, out.String())
	assert.Regexp(t, `move-gateways `+to+`\s+done\s+\S+\s+create 1`, out.String())
	assert.NotContains(t, out.String(), "migrate-namespaces 2/2", "only the first batch ran")
	assert.Regexp(t, `remove-canary-gateways `+to+`\s+done\s+\S+\s+delete 1`, out.String())
	assert.Regexp(t, `uninstall-revision `+to+`\s+done`, out.String())

	inj, err := revkittest.NamespaceInjection(ctx, env.Client)
	require.NoError(t, err)
	for ns := range demo.Apps {
		assert.Equal(t, "istio.io/rev=prod-stable", inj[ns], ns)
	}
	pods, err := verify.Pods(ctx, env.Client, verify.PodsOptions{Selector: "demo=true", Target: from})
	require.NoError(t, err)
	assert.NoError(t, pods.Err(), "every demo pod is back on the old revision")
	for ns := range demo.Apps {
		list, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		for i := range list.Items {
			if list.Items[i].DeletionTimestamp != nil {
				continue
			}
			v, _ := testenv.ProxyVersion(&list.Items[i])
			assert.Equal(t, testenv.OldIstio.Name, v, "the old Istio version's sidecar in %s/%s", ns, list.Items[i].Name)
		}
	}
	restarted, err := revkittest.Restarted(ctx, env.Client)
	require.NoError(t, err)
	assert.Equal(t, []string{"Deployment/blog/web", "Deployment/search/api"}, restarted,
		"the first batch was restarted (twice); shop never left")

	tags, err := tag.List(ctx, env.Client, tag.ListOptions{})
	require.NoError(t, err)
	require.Len(t, tags, 1, "prod-canary is gone: %v", tags)
	assert.Equal(t, "prod-stable", tags[0].Name)
	assert.Equal(t, from, tags[0].Revision)
	revs, err := revision.List(ctx, env.Client, revision.ListOptions{})
	require.NoError(t, err)
	require.Len(t, revs, 1, "the canary revision is gone")
	assert.Equal(t, from, revs[0].Name)

	gws, err := gateway.List(ctx, env.Client, gateway.ListOptions{})
	require.NoError(t, err)
	require.Len(t, gws, 1, "no canary gateway is left: %v", gws)
	assert.Equal(t, "istio-ingressgateway", gws[0].Name)
	assert.Equal(t, from, gws[0].Revision)
	_, err = env.Client.AppsV1().Deployments("istio-ingress").Get(ctx, gateway.CanaryName("istio-ingressgateway", to), metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err), "the canary gateway was deleted: %v", err)

	// --help exits 0 and names the flags.
	out.Reset()
	errOut.Reset()
	assert.Equal(t, 0, run([]string{"--help"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "-rollback-only")
	// A failing step is named and the exit status is non-zero: the canary is
	// not installed any more, so the canary tag cannot point at it.
	out.Reset()
	errOut.Reset()
	assert.Equal(t, 1, run([]string{"--kubeconfig", env.Kubeconfig}, &out, &errOut))
	assert.Contains(t, errOut.String(), `step "set-tag prod-canary→`+to+`" failed`)
}
