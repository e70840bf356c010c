package verify

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkSyncz10k sets decoding a syncz document of 10,000 proxies
// beside the time to read that document over an HTTP loopback connection,
// which stands for one read through a port-forward (a real port-forward,
// through the apiserver and kubelet, is slower still). docs/BENCHMARKS.md
// has the figures against the hand-written decoder this replaced.
func BenchmarkSyncz10k(b *testing.B) {
	data := largeSyncz(10000)
	b.Run("decode=encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			proxies, err := ParseSyncz(data)
			if err != nil || len(proxies) != 10000 {
				b.Fatalf("%d proxies, %v", len(proxies), err)
			}
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
