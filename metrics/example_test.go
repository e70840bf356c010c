package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/metrics"
)

// fakePrometheus answers /api/v1/query as Prometheus would for a canary
// whose proxies fail 4% of requests while the baseline's fail 0.1%.
func fakePrometheus() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		q := r.Form.Get("query")
		canary := strings.Contains(q, `istio_io_rev="1-25-0"`)
		v := "0.999" // success rate
		switch {
		case strings.HasPrefix(q, "sum(increase("):
			v = "1200"
		case strings.HasPrefix(q, "histogram_quantile("):
			v = "24"
		case canary:
			v = "0.96"
		}
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[%d,"%s"]}]}}`,
			time.Now().Unix(), v)
	}))
}

func ExampleCompare() {
	srv := fakePrometheus() // your Prometheus: its URL
	defer srv.Close()
	client, err := api.NewClient(api.Config{Address: srv.URL})
	if err != nil {
		panic(err)
	}
	rep, err := metrics.Compare(context.Background(), v1.NewAPI(client), metrics.Options{
		Canary:   metrics.Workloads{Revision: "1-25-0"},
		Baseline: metrics.Workloads{Revision: "1-24-0"},
		Window:   2 * time.Minute,
	})
	if err != nil {
		panic(err) // bad options, or Prometheus did not answer
	}
	for _, c := range rep.Comparisons {
		fmt.Println(c)
	}
	err = rep.Err()
	var reg *metrics.RegressionError
	fmt.Println(errors.Is(err, revkit.ErrVerificationFailed), errors.As(err, &reg) && reg.Failed[0].Queries[0].Name == "canary success-rate")
	// Output:
	// success-rate vs baseline: canary 96.00%, must be >= 98.90% (baseline 99.90%): FAILED
	// latency p99 vs baseline: canary 24.0ms, must be <= 36.0ms (baseline 24.0ms): ok
	// true true
}

func ExampleGate() {
	srv := fakePrometheus()
	defer srv.Close()
	client, _ := api.NewClient(api.Config{Address: srv.URL})
	gate := metrics.Gate(v1.NewAPI(client), metrics.Options{
		Canary:   metrics.Workloads{Revision: "1-25-0"},
		Baseline: metrics.Workloads{Revision: "1-24-0"},
	})
	// In upgrade.CanaryOptions{Gates: []upgrade.Step{gate}, RollbackFailedBatch: true, …}
	// it runs after every batch, as "metric-gate 1/3" and so on.
	fmt.Println(gate.Name())
	fmt.Println(gate.Description())
	// Output:
	// metric-gate
	// compare the success rate, p99 latency of workloads of revision 1-25-0 with workloads of revision 1-24-0 over 1m0s (Prometheus)
}
