//go:build integration

package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/metrics"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

// TestMetricGates runs the canary plan with a metric gate after every batch
// on the real control plane, with a real Prometheus scraping the fake
// sidecars' Istio metrics every second: a canary with too little traffic
// makes the gate wait and then fail with its own reason; a canary whose
// proxies answer 20% of requests with 503 stops at the first gate and its
// batch is rolled back to its recorded state, the report naming the query
// and the values; a healthy canary passes its gates batch after batch,
// compared with the baseline and with the same workloads before.
func TestMetricGates(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	env := startTwoRevisions(ctx, t)
	kube := env.Client
	prom, err := env.StartPrometheus(ctx, testenv.PrometheusOptions{})
	require.NoError(t, err)
	client, err := api.NewClient(api.Config{Address: prom.URL})
	require.NoError(t, err)
	papi := v1.NewAPI(client)

	// Every pod gets 20 requests a second, 0.1% failing, 20 ms each; the
	// quiet namespace only one every two seconds.
	env.SetTraffic(testenv.TrafficFor{}, testenv.Traffic{RPS: 20, ErrorRate: 0.001, Latency: 20 * time.Millisecond})
	env.SetTraffic(testenv.TrafficFor{Namespace: "m-quiet"}, testenv.Traffic{RPS: 0.5, Latency: 20 * time.Millisecond})
	// The bad namespaces fail 20% of requests once their proxies run the canary.
	for _, ns := range []string{"m-bad-a", "m-bad-b"} {
		env.SetTraffic(testenv.TrafficFor{Revision: newRev, Namespace: ns}, testenv.Traffic{RPS: 20, ErrorRate: 0.2, Latency: 20 * time.Millisecond})
	}

	_, err = tag.Set(ctx, kube, tag.SetOptions{Tag: "prod-stable", Revision: oldRev})
	require.NoError(t, err)
	groups := map[string][]string{
		"control": {"m-control"}, // stays on the old revision: the baseline
		"quiet":   {"m-quiet"},
		"bad":     {"m-bad-a", "m-bad-b"},
		"healthy": {"m-healthy-a", "m-healthy-b", "m-healthy-c"},
	}
	var all []string
	for group, nss := range groups {
		for _, ns := range nss {
			createNamespace(ctx, t, env, ns, map[string]string{"istio.io/rev": "prod-stable", "metrics": group})
			createDeployment(ctx, t, kube, ns, "web", 1)
			all = append(all, ns)
		}
	}
	for _, ns := range all {
		waitRolledOut(ctx, t, kube, ns, "web")
	}
	sc := &podSidecars{env: env}
	require.NoError(t, sc.connect(ctx, all...))
	trafficSince := time.Now()
	waitScraped(ctx, t, papi, len(all))

	gate := func(mod func(*metrics.Options)) upgrade.Step {
		o := metrics.Options{
			Canary:   metrics.Workloads{Revision: newRev},
			Baseline: metrics.Workloads{Revision: oldRev},
			Window:   8 * time.Second, MinRequests: 50, Retries: 15, RetryInterval: time.Second,
		}
		if mod != nil {
			mod(&o)
		}
		return metrics.Gate(papi, o)
	}
	canary := func(group string, g upgrade.Step) upgrade.Plan {
		// Each subtest is a new upgrade of other namespaces between the same
		// revisions, so under the same plan name: the state an earlier
		// subtest recorded would be taken as this plan's (RecordState
		// keeps a record for a rerun to resume), so it goes first.
		err := kube.CoreV1().ConfigMaps(testenv.IstioNamespace).Delete(ctx, upgrade.StateName(fmt.Sprintf("canary %s → %s", oldRev, newRev)), metav1.DeleteOptions{})
		if !apierrors.IsNotFound(err) {
			require.NoError(t, err)
		}
		plan, err := upgrade.Canary(ctx, kube, upgrade.CanaryOptions{
			From: oldRev, To: newRev, CanaryTag: "prod-canary",
			Namespaces: namespace.Selection{Selector: "metrics=" + group}, BatchSize: 1,
			Gates: []upgrade.Step{g}, RecordState: true, RollbackFailedBatch: true,
			RestartTimeout: 2 * time.Minute, KeepOld: true,
		})
		require.NoError(t, err)
		return localPlan(plan, env, sc, nil)
	}

	t.Run("too little traffic makes the gate wait and then fail with its own reason", func(t *testing.T) {
		began := time.Now()
		rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, canary("quiet", gate(func(o *metrics.Options) { o.Retries = 4 })))
		t.Logf("%s", rep)
		require.Error(t, err)
		assert.ErrorIs(t, err, metrics.ErrNotEnoughTraffic)
		assert.ErrorIs(t, err, revkit.ErrVerificationFailed)
		var nt *metrics.NotEnoughTrafficError
		require.ErrorAs(t, err, &nt)
		assert.Equal(t, metrics.SideCanary, nt.Side)
		assert.Less(t, nt.Requests, 50.0)
		assert.Equal(t, 5, nt.Attempts, "the first try and 4 retries")
		assert.GreaterOrEqual(t, nt.Waited, 4*time.Second, "it waited for traffic")
		assert.Contains(t, nt.Query, `istio_io_rev="`+newRev+`"`)
		f := rep.Failed()
		require.NotNil(t, f)
		assert.Equal(t, "metric-gate 1/1", f.Name)
		assert.True(t, f.GateFailed())
		assert.Contains(t, f.Detail, "not enough traffic: canary had")
		requireRolledBack(ctx, t, rep, env, sc, "m-quiet")
		t.Logf("not enough traffic after %s", time.Since(began).Round(time.Millisecond))
	})

	t.Run("a canary with a higher error rate stops at the first gate and its batch is rolled back", func(t *testing.T) {
		rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, canary("bad", gate(nil)))
		t.Logf("%s", rep)
		require.Error(t, err)
		assert.ErrorIs(t, err, revkit.ErrVerificationFailed)
		assert.NotErrorIs(t, err, metrics.ErrNotEnoughTraffic)
		var reg *metrics.RegressionError
		require.ErrorAs(t, err, &reg)
		require.NotEmpty(t, reg.Failed)
		c := reg.Failed[0]
		assert.Equal(t, metrics.CheckSuccessRate, c.Check)
		assert.Equal(t, metrics.SideBaseline, c.Against)
		assert.InDelta(t, 0.8, c.Canary, 0.06, "the canary's success rate")
		assert.InDelta(t, 0.999, c.Reference, 0.005, "the baseline's")
		require.Len(t, c.Queries, 2)
		successQuery := fmt.Sprintf(`sum(rate(istio_requests_total{reporter="destination", istio_io_rev=%q, response_code!~"5.."}[8s]))`, newRev)
		assert.True(t, strings.HasPrefix(c.Queries[0].PromQL, successQuery), c.Queries[0].PromQL)
		assert.Contains(t, err.Error(), successQuery, "the error names the query")
		assert.Contains(t, err.Error(), "FAILED")

		f := rep.Failed()
		require.NotNil(t, f)
		assert.Equal(t, "metric-gate 1/2", f.Name, "the first gate")
		assert.Regexp(t, `success-rate vs baseline: canary (7|8)\d\.\d\d%, must be >= (98|99)\.\d\d% \(baseline (99|100)\.\d\d%\): FAILED`, f.Detail)
		for _, s := range rep.Steps {
			if strings.HasSuffix(s.Name, " 2/2") {
				assert.Equal(t, upgrade.NotRun, s.Outcome, s.Name)
			}
		}
		requireRolledBack(ctx, t, rep, env, sc, "m-bad-a")
		inj, err := revkittest.NamespaceInjection(ctx, kube)
		require.NoError(t, err)
		assert.Equal(t, "istio.io/rev=prod-stable", inj["m-bad-b"], "the second batch was never moved")
	})

	t.Run("a healthy canary passes its metric gates batch after batch", func(t *testing.T) {
		// Against the baseline and against the same workloads 15 s before
		// (volume included); each gate settles one window first, so that
		// the canary's window holds only its new pods' traffic.
		g := gate(func(o *metrics.Options) { o.History, o.Settle = 15*time.Second, 8*time.Second })
		// History needs traffic that long (and a window) before the first
		// gate, which comes after a batch's restart and one settling window.
		time.Sleep(time.Until(trafficSince.Add(15 * time.Second)))
		rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, canary("healthy", g))
		t.Logf("%s", rep)
		require.NoError(t, err)
		var gates int
		for _, s := range rep.Steps {
			if !strings.HasPrefix(s.Name, "metric-gate") {
				continue
			}
			gates++
			assert.Equal(t, upgrade.Done, s.Outcome, s.Name)
			assert.Contains(t, s.Detail, "success-rate vs baseline", s.Name)
			assert.Contains(t, s.Detail, "latency p99 vs baseline", s.Name)
			assert.Contains(t, s.Detail, "volume vs history", s.Name)
			assert.NotContains(t, s.Detail, "FAILED", s.Name)
		}
		assert.Equal(t, 3, gates)
		assert.Empty(t, rep.OnFailure)
		pods, err := verify.Pods(ctx, kube, verify.PodsOptions{Selector: "metrics=healthy", Target: newRev})
		require.NoError(t, err)
		assert.NoError(t, pods.Err())
	})
}

// requireRolledBack checks that the failed batch was rolled back by the
// recorded-state rollback: its namespace is labelled as before and its
// pods run the old revision again. The canary pods' sidecars go with their
// pods, and the new pods' connect.
func requireRolledBack(ctx context.Context, t *testing.T, rep *upgrade.Report, env *testenv.Env, sc *podSidecars, ns string) {
	t.Helper()
	require.Len(t, rep.OnFailure, 1)
	rb := rep.OnFailure[0]
	assert.Equal(t, "rollback-failed-batch", rb.Name)
	assert.Equal(t, upgrade.Done, rb.Outcome, rb.Detail)
	assert.Contains(t, rb.Detail, "back on "+oldRev)
	inj, err := revkittest.NamespaceInjection(ctx, env.Client)
	require.NoError(t, err)
	assert.Equal(t, "istio.io/rev=prod-stable", inj[ns], "recorded label back")
	waitNoTerminating(ctx, t, env.Client, ns)
	pods, err := verify.Pods(ctx, env.Client, verify.PodsOptions{Namespaces: []string{ns}, Target: oldRev})
	require.NoError(t, err)
	assert.NoError(t, pods.Err(), "pods of %s back on %s", ns, oldRev)
	require.NoError(t, sc.connect(ctx, ns))
}

// waitScraped waits until Prometheus has two samples of the requests of n
// pods' sidecars.
func waitScraped(ctx context.Context, t *testing.T, papi v1.API, n int) {
	t.Helper()
	q := `count(count by (namespace, pod) (count_over_time(istio_requests_total{reporter="destination"}[5s]) >= 2))`
	deadline := time.Now().Add(time.Minute)
	for {
		v, _, err := papi.Query(ctx, q, time.Now())
		last := fmt.Sprint(v, err)
		if vec, ok := v.(model.Vector); ok && err == nil && len(vec) == 1 && int(vec[0].Value) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus does not scrape %d sidecars: %s = %s", n, q, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
