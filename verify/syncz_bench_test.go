package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// synczJSON is the schema of one syncz entry for encoding/json: the
// candidate that would replace the hand-written decoder.
type synczJSON struct {
	ClusterID            string                 `json:"cluster_id"`
	Proxy                string                 `json:"proxy"`
	ProxyType            string                 `json:"proxy_type"`
	ProxyVersion         string                 `json:"proxy_version"`
	IstioVersion         string                 `json:"istio_version"`
	ClusterSent          string                 `json:"cluster_sent"`
	ClusterAcked         string                 `json:"cluster_acked"`
	ListenerSent         string                 `json:"listener_sent"`
	ListenerAcked        string                 `json:"listener_acked"`
	RouteSent            string                 `json:"route_sent"`
	RouteAcked           string                 `json:"route_acked"`
	EndpointSent         string                 `json:"endpoint_sent"`
	EndpointAcked        string                 `json:"endpoint_acked"`
	ExtensionConfigSent  string                 `json:"extensionconfig_sent"`
	ExtensionConfigAcked string                 `json:"extensionconfig_acked"`
	Resources            map[string]rawResource `json:"resources"`
}

// parseSynczStd is ParseSyncz with encoding/json in place of the
// hand-written decoder, producing the same []ProxyStatus.
func parseSynczStd(data []byte) ([]ProxyStatus, error) {
	var entries []synczJSON
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, err
	}
	raw := make([]rawStatus, len(entries))
	for i := range entries {
		e := &entries[i]
		raw[i].fields = [nFields]string{
			e.ClusterID, e.Proxy, e.ProxyType, e.ProxyVersion, e.IstioVersion,
			e.ClusterSent, e.ClusterAcked, e.ListenerSent, e.ListenerAcked,
			e.RouteSent, e.RouteAcked, e.EndpointSent, e.EndpointAcked,
			e.ExtensionConfigSent, e.ExtensionConfigAcked,
		}
		for url, res := range e.Resources {
			raw[i].resources = append(raw[i].resources, rawResourceEntry{typeURL: url, res: res})
		}
	}
	out := make([]ProxyStatus, len(raw))
	backing := make([]TypeStatus, 0, len(raw)*len(envoyTypes))
	for i := range raw {
		start := len(backing)
		backing = appendTypes(backing, &raw[i])
		out[i] = newProxyStatus(&raw[i], backing[start:len(backing):len(backing)])
	}
	return out, nil
}

// BenchmarkSyncz10k compares, in one run, the two ways to decode a syncz
// document of 10,000 proxies with the time to read that document over an
// HTTP loopback connection, which stands for one read through a
// port-forward (a real port-forward, through the apiserver and kubelet,
// is slower still).
func BenchmarkSyncz10k(b *testing.B) {
	data := largeSyncz(10000)
	check := func(b *testing.B, proxies []ProxyStatus, err error) {
		if err != nil || len(proxies) != 10000 {
			b.Fatalf("%d proxies, %v", len(proxies), err)
		}
	}
	b.Run("decode=hand-written", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			proxies, err := ParseSyncz(data)
			check(b, proxies, err)
		}
	})
	b.Run("decode=encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			proxies, err := parseSynczStd(data)
			check(b, proxies, err)
		}
	})
	// What RevisionSource adds to a read when a revision has two replicas:
	// joining their documents (5,000 proxies each).
	halves := [][]byte{largeSyncz(5000), largeSyncz(5000)}
	b.Run("merge=two-replicas", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := mergeSyncz(halves, []string{"istiod-0", "istiod-1"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read=http-loopback", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(data)
		}))
		defer srv.Close()
		src := HTTPSource{Rev: "r", URL: srv.URL, Client: srv.Client()}
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			got, err := src.Syncz(context.Background())
			if err != nil || len(got) != len(data) {
				b.Fatalf("read %d bytes, %v", len(got), err)
			}
		}
	})
}

// TestParseSynczStdAgrees keeps the benchmark honest: both decoders give
// the same proxies.
func TestParseSynczStdAgrees(t *testing.T) {
	data := largeSyncz(500)
	a, err := ParseSyncz(data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseSynczStd(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("%d proxies against %d", len(a), len(b))
	}
	for i := range a {
		if got, want := strings.TrimSpace(fmtProxy(b[i])), strings.TrimSpace(fmtProxy(a[i])); got != want {
			t.Fatalf("proxy %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

func fmtProxy(p ProxyStatus) string {
	out, _ := json.Marshal(p)
	return string(out)
}

func TestMergeSyncz(t *testing.T) {
	tests := []struct {
		name string
		docs []string
		want string // "" for an error
	}{
		{"one document unchanged", []string{` [{"proxy":"a.b"}] `}, ` [{"proxy":"a.b"}] `},
		{"two", []string{`[{"proxy":"a.b"}]`, "\n[ {\"proxy\":\"c.d\"} , {} ]\n"}, `[{"proxy":"a.b"},{"proxy":"c.d"} , {}]`},
		{"empty and null", []string{`[]`, `null`, `[ ]`, `[1]`}, `[1]`},
		{"none", []string{`[]`, `null`}, `[]`},
		{"object", []string{`[]`, `{"proxy":"a.b"}`}, ""},
		{"invalid", []string{`[{"proxy":"a.b"}]`, `[{"proxy":"c.d"}`}, ""},
		{"empty", []string{`[]`, ``}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var docs [][]byte
			var names []string
			for i, d := range tc.docs {
				docs = append(docs, []byte(d))
				names = append(names, fmt.Sprintf("istiod-%d", i))
			}
			got, err := mergeSyncz(docs, names)
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), "istiod-1") {
					t.Fatalf("mergeSyncz = %q, %v; want an error naming istiod-1", got, err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("mergeSyncz = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
