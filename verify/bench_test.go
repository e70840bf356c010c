package verify

import (
	"fmt"
	"strings"
	"testing"

	admv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit/internal/mesh"
)

// largeSyncz builds a syncz document of n proxies shaped like istiod's:
// mostly synced sidecars with a resources map, some gateways, stale and
// erroring proxies, and ztunnels.
func largeSyncz(n int) []byte {
	var b strings.Builder
	b.Grow(n * 1200)
	b.WriteString("[")
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",\n")
		}
		nonce := fmt.Sprintf("k0Dj0Oe0pTI=%08x-8d8e-4a3b-9b4c-1f2e3d4c5b6a", i)
		acked := nonce
		if i%50 == 0 {
			acked = "k0Dj0Oe0pTI=00000000-0000-0000-0000-000000000000"
		}
		switch {
		case i%100 == 1:
			fmt.Fprintf(&b, `{"cluster_id":"Kubernetes","proxy":"ztunnel-%d.istio-system","proxy_type":"ztunnel","proxy_version":"1.25.0","istio_version":"1.25.0",`+
				`"resources":{"type.googleapis.com/istio.workload.Address":{"sent":%q,"acked":%q,"sentTime":"2026-11-25T20:01:02.123456789Z"},`+
				`"type.googleapis.com/istio.security.Authorization":{"sent":%q,"acked":%q,"sentTime":"2026-11-25T20:01:02.123456789Z"}}}`,
				i, nonce, acked, nonce, nonce)
		default:
			lastError := ""
			if i%250 == 0 {
				lastError = "Error adding/updating listener(s) virtualInbound: duplicate listener name"
			}
			fmt.Fprintf(&b, `{"cluster_id":"Kubernetes","proxy":"app-%d-7d9f8b6c5-x2x4k.ns-%d","proxy_type":"sidecar","proxy_version":"1.25.0","istio_version":"1.25.0",`+
				`"cluster_sent":%q,"cluster_acked":%q,"listener_sent":%q,"listener_acked":%q,"route_sent":%q,"route_acked":%q,"endpoint_sent":%q,"endpoint_acked":%q,`+
				`"resources":{"type.googleapis.com/envoy.config.cluster.v3.Cluster":{"sent":%q,"acked":%q,"sentTime":"2026-11-25T20:01:02.123456789Z"},`+
				`"type.googleapis.com/envoy.config.listener.v3.Listener":{"sent":%q,"acked":%q,"sentTime":"2026-11-25T20:01:02.123456789Z","lastError":%q}}}`,
				i, i%40, nonce, acked, nonce, nonce, nonce, nonce, nonce, nonce, nonce, acked, nonce, nonce, lastError)
		}
	}
	b.WriteString("]")
	return []byte(b.String())
}

func TestLargeSyncz(t *testing.T) {
	proxies, err := ParseSyncz(largeSyncz(1000))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[SyncState]int{}
	for _, p := range proxies {
		counts[p.State]++
	}
	// Every 50th is stale, every 250th (a subset) erroring, every 100th+1 a
	// synced ztunnel.
	want := map[SyncState]int{StateStale: 16, StateError: 4, StateSynced: 980}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("states = %v, want %v", counts, want)
	}
}

func BenchmarkParseSyncz(b *testing.B) {
	data := largeSyncz(10000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		proxies, err := ParseSyncz(data)
		if err != nil || len(proxies) != 10000 {
			b.Fatalf("ParseSyncz: %d proxies, %v", len(proxies), err)
		}
	}
}

// manyInjectors returns n injector configurations, one per revision, built
// the way Istio's charts build them; none overlaps another.
func manyInjectors(n int) []mesh.Injector {
	out := make([]mesh.Injector, 0, n)
	for i := 0; i < n; i++ {
		rev := fmt.Sprintf("1-%d-0", i)
		cc := admv1.WebhookClientConfig{Service: &admv1.ServiceReference{Namespace: "istio-system", Name: "istiod-" + rev, Path: ptr.To("/inject")}}
		mwc := &admv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "istio-sidecar-injector-" + rev, Labels: map[string]string{mesh.LabelRev: rev}},
			Webhooks:   mesh.InjectionWebhooks(rev, false, cc, nil),
		}
		inj, _ := mesh.ToInjector(mwc)
		out = append(out, inj)
	}
	return out
}

func TestManyInjectorsDoNotOverlap(t *testing.T) {
	injectors := manyInjectors(100)
	if got := mesh.FindOverlaps(injectors); len(got) != 0 {
		t.Errorf("%d overlaps among distinct revisions, first %+v", len(got), got[0])
	}
	// A copy of one of them overlaps it and nothing else.
	dup := injectors[42]
	dup.Name = "zz-copy"
	if got := mesh.FindOverlaps(append(injectors, dup)); len(got) != 1 || got[0].First != injectors[42].Name {
		t.Errorf("overlaps with a copy = %+v", got)
	}
}

func BenchmarkFindOverlaps(b *testing.B) {
	injectors := manyInjectors(100)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if ov := mesh.FindOverlaps(injectors); len(ov) != 0 {
			b.Fatalf("unexpected overlaps: %d", len(ov))
		}
	}
}
