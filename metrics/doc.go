// Package metrics judges a canary revision by its traffic: it asks
// Prometheus how the requests received by the workloads on the new
// revision's proxies compare with those of the workloads still on the old
// one, and with the same workloads before they moved, and fails a gate
// when they regressed. It only reads.
//
// The numbers come from Istio's standard metrics as the sidecars export
// them, reporter="destination": istio_requests_total (requests, and the
// success rate: requests not answered 5xx) and the
// istio_request_duration_milliseconds histogram (a latency percentile),
// each over a window. The queries go through Prometheus's Go API client
// (github.com/prometheus/client_golang/api/prometheus/v1), whose v1.API
// is an interface: tests give [Compare] a fake.
//
// # Usage
//
//	client, err := api.NewClient(api.Config{Address: "http://prometheus.istio-system:9090"})
//	…
//	gate := metrics.Gate(v1.NewAPI(client), metrics.Options{
//		Canary:   metrics.Workloads{Revision: "1-25-0"},
//		Baseline: metrics.Workloads{Revision: "1-24-0"},
//		History:  15 * time.Minute, // and against themselves before the batch
//		Window:   2 * time.Minute,
//		Settle:   2 * time.Minute, // the window holds only the moved pods' traffic
//	})
//	plan, err := upgrade.Canary(ctx, kube, upgrade.CanaryOptions{
//		From: "1-24-0", To: "1-25-0", BatchSize: 2,
//		Gates: []upgrade.Step{gate}, RecordState: true, RollbackFailedBatch: true,
//		…
//	})
//
// [Gate] is a plan step: in CanaryOptions.Gates it runs after every batch
// (as "metric-gate 1/3", …) and a failure stops the plan and, with
// RollbackFailedBatch, moves that batch back (to exactly its recorded
// state with RecordState). In a plan of one's own it goes after the steps
// that move a batch. Between the waves of a fleet, [WaveGate] runs Compare
// for the wave just done (fleet.Options.Gates). With Workloads.Namespaces a gate
// can judge one batch's namespaces only.
//
// # Which workloads: the revision label
//
// Istio's metrics name the destination workload and namespace, and the
// workload's own version (destination_canonical_revision, from the pod
// label service.istio.io/canonical-revision), but not the control-plane
// revision of the proxy that reported them. The injector writes that as
// the pod annotation istio.io/rev, which a scrape can copy into a label of
// every series; [Workloads].Revision matches the label named by
// Options.RevisionLabel, by default istio_io_rev, as a Kubernetes pod
// scrape job adds it with
//
//	relabel_configs:
//	- source_labels: [__meta_kubernetes_pod_annotation_istio_io_rev]
//	  target_label: istio_io_rev
//
// Without such a label, select by Workloads.Namespaces (the batch's
// namespaces against namespaces left on the old revision) or Matchers.
//
// # Comparisons
//
// For each side — canary, baseline, and with History the canary's
// workloads History ago ("history", whatever revision served them then) —
// three queries run at the same instant: requests in the window, success
// rate, latency percentile. The canary passes when, against each reference
// with enough traffic, its success rate is at most MaxSuccessRateDrop below
// (default one percentage point), its latency at most MaxLatencyRatio times
// (default 1.5), and, against history only, its request count has not
// dropped by more than MaxVolumeDrop (default half); MinSuccessRate and
// MaxLatency add absolute bounds. The [Report] lists every query (PromQL
// and value) and every [Comparison].
//
// Too little traffic is not a pass: while the canary has fewer than
// MinRequests requests in the window (new pods not scraped yet, a quiet
// hour), or neither reference has, Compare waits RetryInterval and asks
// again, up to Retries times, and then reports not enough traffic. A
// reference without traffic is left out (Report.Skipped) while the other
// one has enough — the baseline after the last batch, say.
//
// # Dry run
//
// Compare only reads. The Gate step is skipped in a dry run (and in
// upgrade.Preview): nothing moved, so there is no new traffic to judge.
//
// # Errors
//
// Invalid options are refused before any query with a
// *[revkit.InvalidInputError] (revkit.ErrInvalidInput). A query Prometheus
// does not answer, after the retries, is a *[QueryError] wrapping the
// client's error. Findings are in the report: Report.Err returns a
// *[RegressionError] naming each failed check with its queries and values,
// or a *[NotEnoughTrafficError] (matching [ErrNotEnoughTraffic]); both
// match revkit.ErrVerificationFailed, so the plan's report counts the step
// as a failed gate (StepReport.GateFailed).
//
// # Layering
//
// This package imports upgrade (for the Step it builds); upgrade does not
// import it, so a program that does not gate on metrics does not link the
// Prometheus client. The step is a type of its own rather than an
// upgrade.Func, so that a plan can validate its options before the first
// write and a saved plan records them (Inputs).
package metrics
