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
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/verify"
)

// The example against a cluster given by --kubeconfig and a Prometheus
// given by --prometheus, both revisions installed, the pods' sidecars
// following their pods as Envoys would: first with a canary whose proxies
// fail 20% of requests, which stops at the first gate with its batch
// rolled back; then with a healthy canary, which passes every gate.
func TestMetricGateExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	from, to := testenv.OldIstio.Revision, testenv.NewIstio.Revision
	env, cluster := demo.TestMesh(t, ctx, from, "prod-stable", to)
	prom, err := env.StartPrometheus(ctx, testenv.PrometheusOptions{})
	require.NoError(t, err)
	normal := testenv.Traffic{RPS: 20, ErrorRate: 0.001, Latency: 20 * time.Millisecond}
	env.SetTraffic(testenv.TrafficFor{}, normal)
	bad := normal
	bad.ErrorRate = 0.2
	env.SetTraffic(testenv.TrafficFor{Revision: to}, bad)
	stop := cluster.FollowSidecars(ctx, []string{"blog", "search", "shop", "istio-ingress"})
	defer stop()

	args := []string{"--kubeconfig", env.Kubeconfig, "--prometheus", prom.URL, "--from", from, "--to", to,
		"--window", "8s", "--settle", "8s", "--min-requests", "50", "--retry-interval", "1s", "--retries", "15"}
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	t.Log(out.String())
	require.Equal(t, 1, code, errOut.String())
	assert.Contains(t, errOut.String(), `step "metric-gate 1/2" failed: canary regressed: verification failed: success-rate vs baseline`)
	assert.Contains(t, errOut.String(), `sum(rate(istio_requests_total{reporter="destination", istio_io_rev="`+to+`", response_code!~"5.."}[8s]))`, "names the query")
	assert.Contains(t, errOut.String(), "the failed batch was rolled back")
	assert.Regexp(t, `metric-gate 1/2\s+failed\s+\S+\s+success-rate vs baseline: canary (7|8)\d\.\d\d%`, out.String())
	assert.Regexp(t, `rollback-failed-batch\s+done\s+\S+\s+batch 1/2 \(blog, search\) back on `+from, out.String())
	inj, err := revkittest.NamespaceInjection(ctx, env.Client)
	require.NoError(t, err)
	for ns := range demo.Apps {
		assert.Equal(t, "istio.io/rev=prod-stable", inj[ns], "%s: batch 1 rolled back, batch 2 never moved", ns)
	}
	pods, err := verify.Pods(ctx, env.Client, verify.PodsOptions{Selector: "demo=true", Target: from})
	require.NoError(t, err)
	assert.NoError(t, pods.Err(), "every demo pod back on %s", from)

	// The canary fixed: the same run passes every gate.
	env.SetTraffic(testenv.TrafficFor{Revision: to}, normal)
	out.Reset()
	errOut.Reset()
	code = run(args, &out, &errOut)
	t.Log(out.String())
	require.Equal(t, 0, code, errOut.String())
	assert.Regexp(t, `metric-gate 1/2\s+done\s+\S+\s+success-rate vs baseline: canary (9\d|100)\.\d\d%`, out.String())
	assert.Regexp(t, `metric-gate 2/2\s+done`, out.String())
	assert.Contains(t, out.String(), "every batch passed its metric gate")
	pods, err = verify.Pods(ctx, env.Client, verify.PodsOptions{Selector: "demo=true", Target: to})
	require.NoError(t, err)
	assert.NoError(t, pods.Err(), "every demo pod on %s", to)

	// --prometheus is required with --kubeconfig; --help names the flags.
	out.Reset()
	errOut.Reset()
	assert.Equal(t, 2, run([]string{"--kubeconfig", env.Kubeconfig}, &out, &errOut))
	assert.Contains(t, errOut.String(), "--prometheus is required")
	errOut.Reset()
	assert.Equal(t, 0, run([]string{"--help"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "-max-success-drop")
}
