//go:build integration

package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/revkit/revkit/examples/internal/demo"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/verify"
)

// The example against a cluster given by --kubeconfig, where both
// revisions are installed: first with a health gate that fails on
// purpose, then again, passing, which resumes where the first run stopped.
func TestCustomPlanExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	env, _ := demo.TestMesh(t, ctx, "1-30-0", "prod-stable", "1-31-0")
	args := []string{"--kubeconfig", env.Kubeconfig, "--to", "1-31-0", "--canary-tag", "prod-canary", "--batch-size", "2"}

	// The first gate fails: the plan stops there, the step is named and
	// nothing after it ran.
	var out, errOut bytes.Buffer
	code := run(append(args, "--fail-gate"), &out, &errOut)
	t.Log(out.String())
	require.Equal(t, 1, code, errOut.String())
	assert.Contains(t, errOut.String(), `step "health-gate 1/2" failed: health gate: verification failed: failing on purpose (--fail-gate)`)
	assert.Regexp(t, `verify-pods 1/2\s+done\s+\S+\s+4 pods in 2 namespaces on revision 1-31-0`, out.String())
	assert.Regexp(t, `health-gate 1/2\s+failed\s+\S+\s+4 pods: 0 not Ready, 0 restarted more than 0 times; failing on purpose`, out.String())
	for _, later := range []string{"migrate-namespaces 2/2", "restart-workloads 2/2", "verify-pods 2/2", "health-gate 2/2"} {
		assert.Regexp(t, later+`\s+not-run\s+-`, out.String())
	}
	inj, err := revkittest.NamespaceInjection(ctx, env.Client)
	require.NoError(t, err)
	assert.Equal(t, "istio.io/rev=prod-canary", inj["blog"], "batch 1 was migrated")
	assert.Equal(t, "istio.io/rev=prod-canary", inj["search"], "batch 1 was migrated")
	assert.Equal(t, "istio.io/rev=prod-stable", inj["shop"], "batch 2 was not migrated")
	restarted, err := revkittest.Restarted(ctx, env.Client)
	require.NoError(t, err)
	assert.Equal(t, []string{"Deployment/blog/web", "Deployment/search/api"}, restarted, "batch 2 was not restarted")
	shop, err := verify.Pods(ctx, env.Client, verify.PodsOptions{Namespaces: []string{"shop"}, Target: "1-30-0"})
	require.NoError(t, err)
	assert.NoError(t, shop.Err(), "shop's pods are still on 1-30-0")

	// Without --fail-gate the plan completes; batch 1 is unchanged.
	out.Reset()
	errOut.Reset()
	code = run(args, &out, &errOut)
	t.Log(out.String())
	require.Equal(t, 0, code, errOut.String())
	assert.Regexp(t, `migrate-namespaces 1/2\s+unchanged`, out.String())
	assert.Regexp(t, `health-gate 1/2\s+done\s+\S+\s+4 pods: 0 not Ready`, out.String())
	assert.Regexp(t, `migrate-namespaces 2/2\s+done\s+\S+\s+→ prod-canary \(1-31-0\): update 1`, out.String())
	assert.Regexp(t, `health-gate 2/2\s+done\s+\S+\s+4 pods: 0 not Ready`, out.String())
	inj, err = revkittest.NamespaceInjection(ctx, env.Client)
	require.NoError(t, err)
	for ns := range demo.Apps {
		assert.Equal(t, "istio.io/rev=prod-canary", inj[ns], ns)
	}
	pods, err := verify.Pods(ctx, env.Client, verify.PodsOptions{Selector: "demo=true", Target: "1-31-0"})
	require.NoError(t, err)
	assert.NoError(t, pods.Err(), "every demo pod runs 1-31-0")
	restarted, err = revkittest.Restarted(ctx, env.Client)
	require.NoError(t, err)
	assert.Equal(t, []string{"Deployment/blog/web", "Deployment/search/api", "Deployment/shop/cart", "Deployment/shop/checkout"}, restarted)

	// --help exits 0 and names the flags; a bad threshold is a usage error.
	out.Reset()
	errOut.Reset()
	assert.Equal(t, 0, run([]string{"--help"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "-max-unready")
	assert.Contains(t, errOut.String(), "-fail-gate")
	assert.Equal(t, 2, run([]string{"--max-unready", "-1"}, &out, &errOut))
}
