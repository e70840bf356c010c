package testenv

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Traffic is the inbound traffic a fake sidecar reports in Istio's standard
// metrics, as if its pod received requests: RPS requests a second, a share
// ErrorRate of them answered 503, each taking Latency. The zero value is no
// traffic.
type Traffic struct {
	RPS       float64
	ErrorRate float64
	Latency   time.Duration
}

// TrafficFor selects the sidecars a SetTraffic applies to: those connected
// to Revision's istiod, those of pods in Namespace, or both; empty fields
// match any.
type TrafficFor struct {
	Revision, Namespace string
}

// SetTraffic sets the traffic the fake sidecars that match report from now
// on, connected already or later; a sidecar's own SetTraffic wins, then the
// rule that names both a revision and a namespace, then a namespace, then a
// revision, then one naming neither.
func (e *Env) SetTraffic(match TrafficFor, t Traffic) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.traffic == nil {
		e.traffic = map[TrafficFor]Traffic{}
	}
	e.traffic[match] = t
}

// trafficOf is the traffic rule for a sidecar of rev in ns.
func (e *Env) trafficOf(rev, ns string) Traffic {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, k := range []TrafficFor{{rev, ns}, {"", ns}, {rev, ""}, {}} {
		if t, ok := e.traffic[k]; ok {
			return t
		}
	}
	return Traffic{}
}

// SetTraffic overrides, for this sidecar alone, the traffic Env.SetTraffic
// gives it.
func (s *Sidecar) SetTraffic(t Traffic) {
	s.telemetry.mu.Lock()
	defer s.telemetry.mu.Unlock()
	s.telemetry.own = &t
}

// Istio's default buckets of istio_request_duration_milliseconds.
var durationBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// telemetry is a sidecar's metrics endpoint: Istio's standard request
// metrics of its pod as the inbound listener of its Envoy reports them
// (reporter="destination"), advanced at every scrape by the traffic since
// the one before.
type telemetry struct {
	// MetricsAddr is the loopback host:port serving /stats/prometheus.
	addr     string
	srv      *http.Server
	labels   prometheus.Labels
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	traffic  func() Traffic

	mu   sync.Mutex
	own  *Traffic
	last time.Time
	// carried fractions of a request, and of an error.
	reqCarry, errCarry float64
}

// serveTelemetry starts the metrics endpoint of a sidecar for pod
// namespace/pod of workload, and registers it with the environment's
// Prometheus targets.
func (s *Sidecar) serveTelemetry(e *Env, o SidecarOptions) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	canonical := o.Labels["service.istio.io/canonical-name"]
	if canonical == "" {
		canonical = o.Labels["app"]
	}
	if canonical == "" {
		canonical = o.Workload
	}
	version := o.Labels["service.istio.io/canonical-revision"]
	if version == "" {
		version = "latest"
	}
	t := &telemetry{
		addr: l.Addr().String(),
		labels: prometheus.Labels{
			"reporter":                       "destination",
			"source_workload":                "unknown",
			"source_workload_namespace":      "unknown",
			"destination_workload":           o.Workload,
			"destination_workload_namespace": o.Namespace,
			"destination_canonical_service":  canonical,
			"destination_canonical_revision": version,
			"destination_service_name":       canonical,
			"request_protocol":               "http",
			"response_flags":                 "-",
			"connection_security_policy":     "mutual_tls",
		},
		last: time.Now(),
	}
	t.traffic = func() Traffic {
		t.mu.Lock()
		own := t.own
		t.mu.Unlock()
		if own != nil {
			return *own
		}
		return e.trafficOf(s.Revision, o.Namespace)
	}
	names := make([]string, 0, len(t.labels)+1)
	for k := range t.labels {
		names = append(names, k)
	}
	names = append(names, "response_code")
	t.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_requests_total", Help: "Requests received."}, names)
	t.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "istio_request_duration_milliseconds",
		Help: "Duration of requests.", Buckets: durationBuckets}, names)
	reg := prometheus.NewRegistry()
	reg.MustRegister(t.requests, t.duration)
	mux := http.NewServeMux()
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mux.HandleFunc("/stats/prometheus", func(w http.ResponseWriter, r *http.Request) {
		t.advance(time.Now())
		h.ServeHTTP(w, r)
	})
	t.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = t.srv.Serve(l) }()
	s.telemetry = t
	s.MetricsAddr = t.addr
	e.addTarget(s, o)
	return nil
}

// advance counts the requests of the traffic since the last scrape.
func (t *telemetry) advance(now time.Time) {
	tr := t.traffic()
	t.mu.Lock()
	defer t.mu.Unlock()
	dt := now.Sub(t.last).Seconds()
	t.last = now
	if dt <= 0 || tr.RPS <= 0 {
		return
	}
	t.reqCarry += tr.RPS * dt
	n := math.Floor(t.reqCarry)
	t.reqCarry -= n
	t.errCarry += n * min(max(tr.ErrorRate, 0), 1)
	errs := math.Floor(t.errCarry)
	t.errCarry -= errs
	ms := float64(tr.Latency) / float64(time.Millisecond)
	for code, count := range map[string]float64{"200": n - errs, "503": errs} {
		if count <= 0 {
			continue
		}
		l := prometheus.Labels{"response_code": code}
		for k, v := range t.labels {
			l[k] = v
		}
		t.requests.With(l).Add(count)
		h := t.duration.With(l)
		// Capped: enough for a percentile, cheap at any rate.
		for range int(min(count, 2000)) {
			h.Observe(ms)
		}
	}
}

func (t *telemetry) close() {
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := t.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = t.srv.Close()
	}
}

// workloadOf is the name Istio gives a pod's workload: its Deployment's (the
// ReplicaSet's name without the pod-template-hash), else the pod's own.
func workloadOf(pod string, owner string, hash string) string {
	if owner != "" && hash != "" && strings.HasSuffix(owner, "-"+hash) {
		return strings.TrimSuffix(owner, "-"+hash)
	}
	if owner != "" {
		return owner
	}
	return pod
}

// metricsTarget is one scrape target of the environment's Prometheus.
type metricsTarget struct {
	addr   string
	labels map[string]string
}

func (e *Env) addTarget(s *Sidecar, o SidecarOptions) {
	e.mu.Lock()
	if e.targets == nil {
		e.targets = map[*Sidecar]metricsTarget{}
	}
	// As a Kubernetes pod scrape job labels a pod's series, with the
	// injector's istio.io/rev annotation relabelled to istio_io_rev.
	e.targets[s] = metricsTarget{addr: s.MetricsAddr, labels: map[string]string{
		"namespace": o.Namespace, "pod": o.Pod, "istio_io_rev": s.Revision}}
	e.mu.Unlock()
	e.writeTargets()
}

func (e *Env) removeTarget(s *Sidecar) {
	e.mu.Lock()
	_, ok := e.targets[s]
	delete(e.targets, s)
	e.mu.Unlock()
	if ok {
		e.writeTargets()
	}
}
