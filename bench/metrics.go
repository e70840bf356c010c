package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Counts maps an HTTP verb as the apiserver names it (GET, LIST, PATCH,
// WATCH, ...) to a number of requests.
type Counts map[string]float64

// Total sums all verbs.
func (c Counts) Total() float64 {
	t := 0.0
	for _, v := range c {
		t += v
	}
	return t
}

// Sub returns c - o per verb, dropping zeros.
func (c Counts) Sub(o Counts) Counts {
	out := Counts{}
	for k, v := range c {
		if d := v - o[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// String is "LIST=3 PATCH=1200 ..." sorted by verb.
func (c Counts) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%.0f", k, c[k])
	}
	return b.String()
}

var verbLabel = regexp.MustCompile(`[{,]verb="([A-Z]+)"`)

// scrapeRequests reads apiserver_request_total from the apiserver's /metrics
// and sums it by verb, over every client (controllers, KWOK, istiod and the
// way under test alike).
func scrapeRequests(ctx context.Context, kube kubernetes.Interface) (Counts, error) {
	raw, err := kube.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading /metrics: %w", err)
	}
	return parseRequestTotal(raw), nil
}

func parseRequestTotal(raw []byte) Counts {
	out := Counts{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		m := verbLabel.FindStringSubmatch(line)
		sp := strings.LastIndexByte(line, ' ')
		if m == nil || sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		out[m[1]] += v
	}
	return out
}

// clientCounter counts the requests a client sends, by the verb the
// apiserver would log (a GET on a collection is LIST, ?watch=true is WATCH).
type clientCounter struct {
	mu sync.Mutex
	c  Counts
}

func (cc *clientCounter) wrap(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			cc.add(requestVerb(r.Method, r.URL.Path, r.URL.RawQuery))
			return rt.RoundTrip(r)
		})
	})
	return cfg
}

func (cc *clientCounter) add(verb string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.c == nil {
		cc.c = Counts{}
	}
	cc.c[verb]++
}

func (cc *clientCounter) counts() Counts {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	out := Counts{}
	for k, v := range cc.c {
		out[k] = v
	}
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// collections are the resource names whose GET without a name is a LIST.
var collections = map[string]bool{
	"namespaces": true, "pods": true, "deployments": true, "statefulsets": true, "daemonsets": true,
	"mutatingwebhookconfigurations": true, "validatingwebhookconfigurations": true, "services": true,
	"configmaps": true, "replicasets": true, "events": true, "serviceaccounts": true,
}

// requestVerb maps an HTTP request to the apiserver's verb label.
func requestVerb(method, path, query string) string {
	if method != http.MethodGet {
		return method
	}
	if strings.Contains(query, "watch=true") || strings.Contains(query, "watch=1") {
		return "WATCH"
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) > 0 && collections[parts[len(parts)-1]] {
		// /api/v1/namespaces is a LIST; /api/v1/namespaces/x is a GET.
		return "LIST"
	}
	return "GET"
}

// kubectlRequest matches kubectl -v=6 request lines:
// "... round_trippers.go:632] "Response" verb="PATCH" url="https://..." status="200 OK" milliseconds=5"
// and the older "PATCH https://... 200 OK in 5 milliseconds".
var (
	kubectlRequestNew = regexp.MustCompile(`verb="([A-Z]+)" url="([^"]+)"`)
	kubectlRequestOld = regexp.MustCompile(`\] (GET|PATCH|POST|PUT|DELETE) (https?://\S+) \d{3} `)
)

// countKubectl counts the requests in kubectl -v=6 output.
func countKubectl(out []byte, into *clientCounter) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var method, url string
		if !strings.Contains(line, "Response") && !kubectlRequestOld.MatchString(line) {
			continue
		}
		if m := kubectlRequestNew.FindStringSubmatch(line); m != nil {
			method, url = m[1], m[2]
		} else if m := kubectlRequestOld.FindStringSubmatch(line); m != nil {
			method, url = m[1], m[2]
		} else {
			continue
		}
		path, query, _ := strings.Cut(url, "?")
		if i := strings.Index(path, "://"); i >= 0 {
			if j := strings.IndexByte(path[i+3:], '/'); j >= 0 {
				path = path[i+3+j:]
			}
		}
		into.add(requestVerb(method, path, query))
	}
}

// memSampler records the peak Go heap (runtime/metrics) and the peak RSS
// (VmHWM) of this process while it runs.
type memSampler struct {
	stop     chan struct{}
	done     chan struct{}
	peakHeap atomic.Uint64
}

func startMemSampler() *memSampler {
	// Reset VmHWM to the current RSS so that the peak is this run's.
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	s := &memSampler{stop: make(chan struct{}), done: make(chan struct{})}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	go func() {
		defer close(s.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > s.peakHeap.Load() {
				s.peakHeap.Store(v)
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop returns the peak heap and peak RSS in bytes.
func (s *memSampler) Stop() (heap, rss uint64) {
	close(s.stop)
	<-s.done
	return s.peakHeap.Load(), procStatusKB("VmHWM") * 1024
}

func procStatusKB(field string) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// loadAvg is the 1-minute load average.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
