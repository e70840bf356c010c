package verify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revkittest"
)

// synczDoc builds a syncz document; each entry is "pod.ns" plus an
// optional ":stale" or ":error".
func synczDoc(entries ...string) []byte {
	var parts []string
	for _, e := range entries {
		id, mode, _ := strings.Cut(e, ":")
		acked := "n1"
		lastError := ""
		switch mode {
		case "stale":
			acked = "n0"
		case "error":
			lastError = "rejected"
		}
		parts = append(parts, fmt.Sprintf(`{"proxy":%q,"proxy_type":"sidecar","istio_version":"1.25.0",
			"cluster_sent":"n1","cluster_acked":%q,"listener_sent":"n1","listener_acked":"n1",
			"resources":{%q:{"sent":"n1","acked":"n1","lastError":%q}}}`, id, acked, TypeURLListener, lastError))
	}
	return []byte("[" + strings.Join(parts, ",") + "]")
}

func proxyIDs(list []ProxyStatus) []string {
	var out []string
	for _, p := range list {
		out = append(out, p.Revision+"/"+p.ID)
	}
	return out
}

func TestProxies(t *testing.T) {
	old := StaticSource{Rev: "1-24-0", JSON: synczDoc("cart-0.shop", "gw-1.istio-ingress:stale")}
	canary := StaticSource{Rev: "1-25-0", JSON: synczDoc("web-0.shop", "cart-1.shop:error", "post-0.blog")}
	canary2 := StaticSource{Rev: "1-25-0", JSON: synczDoc("api-0.shop")}
	tests := []struct {
		name       string
		opts       ProxiesOptions
		revisions  []RevisionProxies
		proxies    []string
		stragglers []string
		notSynced  []string
		problems   []string
	}{
		{
			name: "mid-upgrade, two revisions",
			opts: ProxiesOptions{Sources: []SyncSource{canary, old}, Target: "1-25-0"},
			revisions: []RevisionProxies{
				{Revision: "1-24-0", Proxies: 2, Synced: 1, Stale: 1},
				{Revision: "1-25-0", Proxies: 3, Synced: 2, Error: 1},
			},
			proxies:    []string{"1-24-0/gw-1.istio-ingress", "1-24-0/cart-0.shop", "1-25-0/post-0.blog", "1-25-0/cart-1.shop", "1-25-0/web-0.shop"},
			stragglers: []string{"1-24-0/gw-1.istio-ingress", "1-24-0/cart-0.shop"},
			notSynced:  []string{"1-24-0/gw-1.istio-ingress", "1-25-0/cart-1.shop"},
			problems: []string{
				"straggler gw-1.istio-ingress: on revision 1-24-0",
				"straggler cart-0.shop: on revision 1-24-0",
				"not-synced gw-1.istio-ingress: CDS STALE",
				"not-synced cart-1.shop: LDS ERROR (rejected)",
			},
		},
		{
			name: "namespace filter",
			opts: ProxiesOptions{Sources: []SyncSource{canary, old}, Target: "1-25-0", Namespaces: []string{"blog"}},
			revisions: []RevisionProxies{
				{Revision: "1-24-0"},
				{Revision: "1-25-0", Proxies: 1, Synced: 1},
			},
			proxies: []string{"1-25-0/post-0.blog"},
		},
		{
			name: "two replicas of one revision add up",
			opts: ProxiesOptions{Sources: []SyncSource{canary, canary2}, Target: "1-25-0"},
			revisions: []RevisionProxies{
				{Revision: "1-25-0", Proxies: 4, Synced: 3, Error: 1},
			},
			proxies:   []string{"1-25-0/post-0.blog", "1-25-0/api-0.shop", "1-25-0/cart-1.shop", "1-25-0/web-0.shop"},
			notSynced: []string{"1-25-0/cart-1.shop"},
			problems:  []string{"not-synced cart-1.shop: LDS ERROR (rejected)"},
		},
		{
			name: "no target: only sync state counts",
			opts: ProxiesOptions{Sources: []SyncSource{old}},
			revisions: []RevisionProxies{
				{Revision: "1-24-0", Proxies: 2, Synced: 1, Stale: 1},
			},
			proxies:   []string{"1-24-0/gw-1.istio-ingress", "1-24-0/cart-0.shop"},
			notSynced: []string{"1-24-0/gw-1.istio-ingress"},
			problems:  []string{"not-synced gw-1.istio-ingress: CDS STALE"},
		},
		{
			name: "ztunnel, never-acked and not-sent proxies",
			opts: ProxiesOptions{Sources: []SyncSource{StaticSource{Rev: "1-25-0", JSON: []byte(`[
				{"proxy":"ztunnel-1.istio-system","proxy_type":"ztunnel"},
				{"proxy":"new-0.shop","proxy_type":"sidecar"},
				{"proxy":"slow-0.shop","proxy_type":"sidecar","cluster_sent":"n1"}]`)}}},
			revisions: []RevisionProxies{
				{Revision: "1-25-0", Proxies: 3, Ignored: 1, NotSent: 1, Stale: 1},
			},
			proxies:   []string{"1-25-0/ztunnel-1.istio-system", "1-25-0/new-0.shop", "1-25-0/slow-0.shop"},
			notSynced: []string{"1-25-0/new-0.shop", "1-25-0/slow-0.shop"},
			problems: []string{
				"not-synced new-0.shop: NOT SENT",
				"not-synced slow-0.shop: CDS STALE (never acknowledged)",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Proxies(context.Background(), tc.opts)
			if err != nil {
				t.Fatalf("Proxies: %v", err)
			}
			// Sources and Versions are checked in TestProxiesComplete.
			for i := range r.Revisions {
				r.Revisions[i].Sources, r.Revisions[i].Versions = 0, nil
			}
			if !reflect.DeepEqual(r.Revisions, tc.revisions) {
				t.Errorf("revisions:\n got %+v\nwant %+v", r.Revisions, tc.revisions)
			}
			if got := proxyIDs(r.Proxies); !reflect.DeepEqual(got, tc.proxies) {
				t.Errorf("proxies = %v, want %v", got, tc.proxies)
			}
			if got := proxyIDs(r.Stragglers); !reflect.DeepEqual(got, tc.stragglers) {
				t.Errorf("stragglers = %v, want %v", got, tc.stragglers)
			}
			if got := proxyIDs(r.NotSynced); !reflect.DeepEqual(got, tc.notSynced) {
				t.Errorf("not synced = %v, want %v", got, tc.notSynced)
			}
			if r.OK() != (len(tc.problems) == 0) {
				t.Errorf("OK() = %v", r.OK())
			}
			err = r.Err()
			if len(tc.problems) == 0 {
				if err != nil {
					t.Errorf("Err() = %v", err)
				}
				return
			}
			var ve *VerificationError
			if !errors.As(err, &ve) || !errors.Is(err, revkit.ErrVerificationFailed) {
				t.Fatalf("Err() = %v", err)
			}
			var got []string
			for _, p := range ve.Problems {
				got = append(got, p.String())
			}
			if !reflect.DeepEqual(got, tc.problems) {
				t.Errorf("problems:\n got %q\nwant %q", got, tc.problems)
			}
		})
	}
}

// countingServer serves body with status at /debug/syncz and counts hits.
func countingServer(t *testing.T, status int, body []byte) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/debug/syncz" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestHTTPSource(t *testing.T) {
	body := synczDoc("web-0.shop")
	srv, hits := countingServer(t, http.StatusOK, body)
	for _, base := range []string{srv.URL, srv.URL + "/"} {
		src := HTTPSource{Rev: "1-25-0", URL: base}
		got, err := src.Syncz(context.Background())
		if err != nil || string(got) != string(body) {
			t.Errorf("Syncz(%s) = %q, %v", base, got, err)
		}
	}
	src := HTTPSource{Rev: "1-25-0", URL: srv.URL, Client: srv.Client()}
	r, err := Proxies(context.Background(), ProxiesOptions{Sources: []SyncSource{src}, Target: "1-25-0"})
	if err != nil || !r.OK() || len(r.Proxies) != 1 || r.Proxies[0].Revision != "1-25-0" {
		t.Fatalf("Proxies over HTTP = %+v, %v", r, err)
	}
	if hits.Load() != 3 {
		t.Errorf("server hit %d times, want 3", hits.Load())
	}
}

func TestHTTPSourceErrors(t *testing.T) {
	unavailable, _ := countingServer(t, http.StatusServiceUnavailable, []byte("istiod is starting\n"))
	garbage, _ := countingServer(t, http.StatusOK, []byte("<html>hello</html>"))
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	t.Cleanup(slow.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name  string
		url   string
		ctx   func() (context.Context, context.CancelFunc)
		check func(t *testing.T, err error)
	}{
		{"503", unavailable.URL, nil, func(t *testing.T, err error) {
			var he *HTTPStatusError
			if !errors.As(err, &he) || he.StatusCode != http.StatusServiceUnavailable || he.Body != "istiod is starting" {
				t.Errorf("err = %#v, want an HTTPStatusError with the body", err)
			}
			if !strings.Contains(err.Error(), "503 Service Unavailable") || !strings.Contains(err.Error(), "/debug/syncz") {
				t.Errorf("err = %q", err)
			}
		}},
		{"not JSON", garbage.URL, nil, func(t *testing.T, err error) {
			if !errors.Is(err, ErrMalformedSyncz) {
				t.Errorf("err = %v, want ErrMalformedSyncz", err)
			}
		}},
		{"deadline", slow.URL, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, func(t *testing.T, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want the deadline", err)
			}
		}},
		{"canceled before start", slow.URL, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, func(t *testing.T, err error) {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
		}},
		{"connection refused", closedURL, nil, func(t *testing.T, err error) {
			if err == nil {
				t.Errorf("no error from a closed server")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			start := time.Now()
			_, err := Proxies(ctx, ProxiesOptions{Sources: []SyncSource{HTTPSource{Rev: "1-25-0", URL: tc.url}}})
			var se *SourceError
			if err == nil || (!errors.As(err, &se) && !errors.Is(err, context.Canceled)) {
				t.Fatalf("err = %v, want a SourceError", err)
			}
			if se != nil && (se.Revision != "1-25-0" || !strings.Contains(err.Error(), `revision "1-25-0"`)) {
				t.Errorf("err = %q, want it to name the revision", err)
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("took %v: the context was not respected", time.Since(start))
			}
			tc.check(t, err)
		})
	}
}

type failingSource struct{ err error }

func (failingSource) Revision() string                        { return "1-25-0" }
func (f failingSource) Syncz(context.Context) ([]byte, error) { return nil, f.err }

func TestProxiesSourceError(t *testing.T) {
	boom := errors.New("port-forward lost")
	_, err := Proxies(context.Background(), ProxiesOptions{Sources: []SyncSource{failingSource{boom}}})
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "verify.Proxies: read syncz of revision") {
		t.Errorf("err = %v", err)
	}
}

func TestStaticSourceCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (StaticSource{Rev: "a", JSON: []byte("[]")}).Syncz(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

func TestProxiesBadInput(t *testing.T) {
	srv, hits := countingServer(t, http.StatusOK, []byte("[]"))
	good := HTTPSource{Rev: "1-25-0", URL: srv.URL}
	tests := []struct {
		name  string
		opts  ProxiesOptions
		field string
	}{
		{"no sources", ProxiesOptions{}, "Sources"},
		{"nil source", ProxiesOptions{Sources: []SyncSource{good, nil}}, "Sources[1]"},
		{"source without revision", ProxiesOptions{Sources: []SyncSource{HTTPSource{URL: srv.URL}}}, "Sources[0].Revision"},
		{"dotted revision", ProxiesOptions{Sources: []SyncSource{HTTPSource{Rev: "1.25.0", URL: srv.URL}}}, "Sources[0].Revision"},
		{"empty URL", ProxiesOptions{Sources: []SyncSource{good, HTTPSource{Rev: "1-25-0"}}}, "HTTPSource.URL"},
		{"URL without scheme", ProxiesOptions{Sources: []SyncSource{HTTPSource{Rev: "1-25-0", URL: "127.0.0.1:15014"}}}, "HTTPSource.URL"},
		{"unparsable URL", ProxiesOptions{Sources: []SyncSource{HTTPSource{Rev: "1-25-0", URL: "http://[::1"}}}, "HTTPSource.URL"},
		{"bad target", ProxiesOptions{Sources: []SyncSource{good}, Target: "1.25.0"}, "Target"},
		{"bad namespace", ProxiesOptions{Sources: []SyncSource{good}, Namespaces: []string{"Shop"}}, "Namespaces"},
		{"empty namespace", ProxiesOptions{Sources: []SyncSource{good}, Namespaces: []string{""}}, "Namespaces"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Proxies(context.Background(), tc.opts)
			var iie *revkit.InvalidInputError
			if !errors.As(err, &iie) || !errors.Is(err, revkit.ErrInvalidInput) {
				t.Fatalf("err = %v, want an InvalidInputError", err)
			}
			if iie.Field != tc.field {
				t.Errorf("field = %q, want %q", iie.Field, tc.field)
			}
		})
	}
	if hits.Load() != 0 {
		t.Errorf("bad input reached the server %d times", hits.Load())
	}
	// Syncz itself refuses a bad URL without sending anything.
	if _, err := (HTTPSource{Rev: "x"}).Syncz(context.Background()); !errors.Is(err, revkit.ErrInvalidInput) {
		t.Errorf("Syncz with no URL = %v", err)
	}
}

// With the cluster, the check is complete: a running pod with a sidecar of
// a revision read that no replica reports fails it as never connected;
// pods of other revisions, without a sidecar or not running do not; a
// proxy listed by two replicas counts once; versions are counted.
func TestProxiesComplete(t *testing.T) {
	kube := revkittest.NewCluster().WithRevision("1-25-0").WithRevision("1-24-0").
		WithNamespace("shop", revkittest.Rev("1-25-0")).
		WithPod("shop", "web-0", "1-25-0").
		WithPod("shop", "web-1", "1-25-0").
		WithPod("shop", "lost-0", "1-25-0"). // never connected
		WithPod("shop", "old-0", "1-24-0").  // a revision not read
		WithPod("shop", "plain-0", "").      // no sidecar
		Kube()
	a := StaticSource{Rev: "1-25-0", JSON: synczDoc("web-0.shop")}
	b := StaticSource{Rev: "1-25-0", JSON: synczDoc("web-1.shop", "web-0.shop")}
	r, err := Proxies(context.Background(), ProxiesOptions{Sources: []SyncSource{a, b}, Target: "1-25-0", Kube: kube})
	if err != nil {
		t.Fatal(err)
	}
	if want := []NotConnected{{Namespace: "shop", Pod: "lost-0", Revision: "1-25-0"}}; !reflect.DeepEqual(r.NotConnected, want) {
		t.Errorf("not connected = %+v, want %+v", r.NotConnected, want)
	}
	if got := proxyIDs(r.Proxies); !reflect.DeepEqual(got, []string{"1-25-0/web-0.shop", "1-25-0/web-1.shop"}) {
		t.Errorf("proxies = %v: a proxy two replicas list counts once", got)
	}
	if rv := r.Revisions[0]; rv.Sources != 2 || !reflect.DeepEqual(rv.Versions, map[string]int{"1.25.0": 2}) {
		t.Errorf("revision summary = %+v", rv)
	}
	if r.OK() {
		t.Error("a pod never connected must fail the check")
	}
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "not-connected shop/lost-0") {
		t.Errorf("Err = %v, want it to name shop/lost-0", err)
	}
	// Without the cluster the same sources pass: the gap the check closes.
	r, err = Proxies(context.Background(), ProxiesOptions{Sources: []SyncSource{a, b}, Target: "1-25-0"})
	if err != nil || !r.OK() {
		t.Fatalf("without Kube: ok=%v err=%v", r.OK(), err)
	}
}

// seqSource returns its documents in turn, the last one from then on, and
// counts the reads.
type seqSource struct {
	rev   string
	docs  [][]byte
	reads atomic.Int32
}

func (s *seqSource) Revision() string { return s.rev }

func (s *seqSource) Syncz(ctx context.Context) ([]byte, error) {
	n := int(s.reads.Add(1)) - 1
	return s.docs[min(n, len(s.docs)-1)], nil
}

// Settle waits out a push in flight, and only that: a straggler or a
// NACK ends the wait at the first read, and a proxy that stays STALE fails
// once Settle has passed.
func TestProxiesSettle(t *testing.T) {
	synced, stale := synczDoc("cart-0.shop"), synczDoc("cart-0.shop:stale")
	for _, tc := range []struct {
		name      string
		docs      [][]byte
		rev       string
		ok        bool
		reads     int32 // exact; 0 means "more than one"
		notSynced int
	}{
		{name: "a push in flight settles", docs: [][]byte{stale, stale, synced}, rev: "1-25-0", ok: true, reads: 3},
		{name: "synced at once: one read", docs: [][]byte{synced}, rev: "1-25-0", ok: true, reads: 1},
		{name: "a straggler does not wait", docs: [][]byte{stale, synced}, rev: "1-24-0", reads: 1, notSynced: 1},
		{name: "a NACK does not wait", docs: [][]byte{synczDoc("cart-0.shop:error"), synced}, rev: "1-25-0", reads: 1, notSynced: 1},
		{name: "stale throughout fails after Settle", docs: [][]byte{stale}, rev: "1-25-0", notSynced: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &seqSource{rev: tc.rev, docs: tc.docs}
			// Long enough for a loaded machine where it should settle; short
			// where it must fail.
			settle := 10 * time.Second
			if !tc.ok && tc.reads == 0 {
				settle = 100 * time.Millisecond
			}
			rep, err := Proxies(context.Background(), ProxiesOptions{Sources: []SyncSource{src}, Target: "1-25-0", Settle: settle})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() != tc.ok || len(rep.NotSynced) != tc.notSynced {
				t.Errorf("OK %v, not synced %d; want %v, %d", rep.OK(), len(rep.NotSynced), tc.ok, tc.notSynced)
			}
			got := src.reads.Load()
			if (tc.reads > 0 && got != tc.reads) || (tc.reads == 0 && got < 2) {
				t.Errorf("%d reads, want %d (0: more than one)", got, tc.reads)
			}
		})
	}

	_, err := Proxies(context.Background(), ProxiesOptions{Sources: []SyncSource{StaticSource{Rev: "a", JSON: synced}}, Settle: -time.Second})
	if !errors.Is(err, revkit.ErrInvalidInput) {
		t.Errorf("negative Settle: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	src := &seqSource{rev: "1-25-0", docs: [][]byte{stale}}
	if _, err := Proxies(ctx, ProxiesOptions{Sources: []SyncSource{src}, Settle: time.Minute}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}
