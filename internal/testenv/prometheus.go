package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// PrometheusOptions configures StartPrometheus.
type PrometheusOptions struct {
	// ScrapeInterval is how often every fake sidecar is scraped; default one
	// second, so that rates over a few seconds mean something.
	ScrapeInterval time.Duration
}

// Prometheus is the environment's Prometheus server (bin/prometheus, from
// Debian's package: see hack/tools.sh).
type Prometheus struct {
	// URL is its HTTP API on loopback, e.g. http://127.0.0.1:40123.
	URL     string
	Process *Process
	// ConfigFile is its configuration; TargetsFile the file_sd targets
	// testenv rewrites as sidecars connect and close.
	ConfigFile, TargetsFile string
}

// StartPrometheus starts Prometheus on a loopback port, scraping every fake
// sidecar's metrics endpoint (connected before or after) as a Kubernetes pod
// scrape job would: with labels namespace, pod and istio_io_rev (the
// revision the pod's injector recorded), from a file of targets that
// testenv rewrites as sidecars connect and close. It returns once
// Prometheus is ready. It runs until the environment stops.
func (e *Env) StartPrometheus(ctx context.Context, opts PrometheusOptions) (*Prometheus, error) {
	if opts.ScrapeInterval <= 0 {
		opts.ScrapeInterval = time.Second
	}
	e.mu.Lock()
	running := e.prometheus
	e.mu.Unlock()
	if running != nil && !running.Process.Exited() {
		return nil, errors.New("testenv: Prometheus is running already")
	}
	dir := filepath.Join(e.Dir, "prometheus")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &Prometheus{URL: "http://" + loopback(port), ConfigFile: filepath.Join(dir, "prometheus.yml"),
		TargetsFile: filepath.Join(dir, "sidecars.json")}
	interval := strconv.FormatInt(opts.ScrapeInterval.Milliseconds(), 10) + "ms"
	config := fmt.Sprintf(`global:
  scrape_interval: %[1]s
  evaluation_interval: %[1]s
scrape_configs:
- job_name: sidecars
  metrics_path: /stats/prometheus
  file_sd_configs:
  - files: [%[2]q]
    refresh_interval: %[1]s
`, interval, p.TargetsFile)
	if err := os.WriteFile(p.ConfigFile, []byte(config), 0o600); err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.prometheus = p
	e.mu.Unlock()
	if err := e.writeTargets(); err != nil {
		return nil, err
	}
	proc, err := e.spawn("prometheus", "prometheus", dir, nil, []string{
		"--config.file=" + p.ConfigFile,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--storage.tsdb.retention.time=1h",
		"--web.listen-address=" + loopback(port),
		"--log.level=warn",
	})
	if err != nil {
		return nil, err
	}
	p.Process = proc
	step := time.Now()
	if err := pollOK(ctx, "prometheus", p.URL+"/-/ready", proc); err != nil {
		return nil, err
	}
	e.t.Logf("testenv: prometheus ready in %s at %s", time.Since(step).Round(time.Millisecond), p.URL)
	return p, nil
}

// pollOK waits until url answers 200, as poll does: until ctx ends or the
// process exits.
func pollOK(ctx context.Context, what, url string, proc *Process) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	return poll(ctx, what+" "+url, 100*time.Millisecond, []*Process{proc}, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	})
}

// writeTargets writes the sidecars' endpoints where Prometheus reads them
// (atomically: a rename), if Prometheus was started.
func (e *Env) writeTargets() error {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	// One writer at a time, each writing what it read last.
	e.targetsMu.Lock()
	defer e.targetsMu.Unlock()
	e.mu.Lock()
	p := e.prometheus
	groups := make([]group, 0, len(e.targets))
	for _, t := range e.targets {
		groups = append(groups, group{Targets: []string{t.addr}, Labels: t.labels})
	}
	e.mu.Unlock()
	if p == nil {
		return nil
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].Targets[0] < groups[j].Targets[0] })
	b, err := json.MarshalIndent(groups, "", "  ")
	if err != nil {
		return err
	}
	tmp := p.TargetsFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p.TargetsFile)
}
