package testenv

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scrape advances the sidecar's traffic by one second and returns the value
// of its istio_requests_total for a response code.
func scrape(t *testing.T, s *Sidecar, code string) float64 {
	t.Helper()
	s.telemetry.mu.Lock()
	s.telemetry.last = s.telemetry.last.Add(-time.Second)
	s.telemetry.mu.Unlock()
	resp, err := http.Get("http://" + s.MetricsAddr + "/stats/prometheus")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^istio_requests_total\{[^}]*response_code="` + code + `"[^}]*\} (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	require.NoError(t, err)
	return v
}

func TestSidecarTraffic(t *testing.T) {
	e := &Env{}
	e.SetTraffic(TrafficFor{}, Traffic{RPS: 1})
	e.SetTraffic(TrafficFor{Revision: "new"}, Traffic{RPS: 100, ErrorRate: 0.25, Latency: 30 * time.Millisecond})
	e.SetTraffic(TrafficFor{Revision: "new", Namespace: "quiet"}, Traffic{RPS: 2})
	serve := func(rev, ns string) *Sidecar {
		s := &Sidecar{Revision: rev}
		require.NoError(t, s.serveTelemetry(e, SidecarOptions{Pod: "web-1", Namespace: ns, Workload: "web", Labels: map[string]string{"app": "web"}}))
		t.Cleanup(func() { s.telemetry.close(); e.removeTarget(s) })
		return s
	}
	busy, quiet, other := serve("new", "shop"), serve("new", "quiet"), serve("old", "shop")

	// Time moves on one second per scrape; counters accumulate.
	assert.InDelta(t, 75, scrape(t, busy, "200"), 1, "75 a second succeed")
	assert.InDelta(t, 150, scrape(t, busy, "200"), 1, "and add up")
	assert.InDelta(t, 75, scrape(t, busy, "503"), 1, "25 a second fail")
	assert.InDelta(t, 2, scrape(t, quiet, "200"), 1, "the namespace rule wins over the revision's")
	assert.InDelta(t, 1, scrape(t, other, "200"), 1, "the default")
	other.SetTraffic(Traffic{RPS: 10})
	assert.InDelta(t, 11, scrape(t, other, "200"), 1, "the sidecar's own traffic wins")

	resp, err := http.Get("http://" + busy.MetricsAddr + "/stats/prometheus")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`reporter="destination"`, `destination_workload="web"`, `destination_workload_namespace="shop"`,
		`destination_canonical_service="web"`, `destination_canonical_revision="latest"`, `istio_request_duration_milliseconds_bucket{`, `le="50"`} {
		assert.Contains(t, string(b), want)
	}
	e.mu.Lock()
	assert.Len(t, e.targets, 3)
	assert.Equal(t, map[string]string{"namespace": "shop", "pod": "web-1", "istio_io_rev": "new"}, e.targets[busy].labels)
	e.mu.Unlock()
}

func TestWorkloadOf(t *testing.T) {
	assert.Equal(t, "web", workloadOf("web-5d8f7c-abcde", "web-5d8f7c", "5d8f7c"))
	assert.Equal(t, "db", workloadOf("db-0", "db", ""))
	assert.Equal(t, "lonely", workloadOf("lonely", "", ""))
}
