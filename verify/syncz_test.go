package verify

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readSyncz(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/syncz.json")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func typeStates(p *ProxyStatus) string {
	var parts []string
	for _, t := range p.Types {
		parts = append(parts, t.Type+"="+string(t.State))
	}
	return strings.Join(parts, " ")
}

func TestParseSyncz(t *testing.T) {
	proxies, err := ParseSyncz(readSyncz(t))
	if err != nil {
		t.Fatalf("ParseSyncz: %v", err)
	}
	want := []struct {
		id, pod, ns, proxyType string
		types                  string
		state                  SyncState
	}{
		{"cart-7d9f8b6c5-x2x4k.shop", "cart-7d9f8b6c5-x2x4k", "shop", "sidecar",
			"CDS=SYNCED LDS=SYNCED EDS=SYNCED RDS=SYNCED ECDS=NOT SENT", StateSynced},
		{"istio-ingressgateway-5b9c8d7f6-abcde.istio-ingress", "istio-ingressgateway-5b9c8d7f6-abcde", "istio-ingress", "router",
			"CDS=SYNCED LDS=SYNCED EDS=STALE RDS=STALE ECDS=NOT SENT", StateStale},
		{"reviews-v2-6b8f9d7c4-q9w8e.bookinfo", "reviews-v2-6b8f9d7c4-q9w8e", "bookinfo", "sidecar",
			"CDS=SYNCED LDS=ERROR EDS=SYNCED RDS=SYNCED ECDS=NOT SENT", StateError},
		{"ztunnel-7xk2p.istio-system", "ztunnel-7xk2p", "istio-system", "ztunnel",
			"CDS=IGNORED LDS=IGNORED EDS=IGNORED RDS=IGNORED ECDS=IGNORED WADS=SYNCED WDS=SYNCED", StateSynced},
		// Pod names may contain dots, namespaces may not.
		{"ratings.v1-abc.bookinfo", "ratings.v1-abc", "bookinfo", "sidecar",
			"CDS=NOT SENT LDS=NOT SENT EDS=NOT SENT RDS=NOT SENT ECDS=NOT SENT", StateNotSent},
	}
	if len(proxies) != len(want) {
		t.Fatalf("got %d proxies, want %d", len(proxies), len(want))
	}
	for i, w := range want {
		p := &proxies[i]
		if p.ID != w.id || p.Pod != w.pod || p.Namespace != w.ns || p.ProxyType != w.proxyType {
			t.Errorf("proxy %d = %q (%q in %q, %q), want %q (%q in %q, %q)", i, p.ID, p.Pod, p.Namespace, p.ProxyType, w.id, w.pod, w.ns, w.proxyType)
		}
		if got := typeStates(p); got != w.types {
			t.Errorf("%s types:\n got %s\nwant %s", p.ID, got, w.types)
		}
		if p.State != w.state || p.Synced() != (w.state == StateSynced) {
			t.Errorf("%s state = %s, want %s", p.ID, p.State, w.state)
		}
		if p.Revision != "" {
			t.Errorf("ParseSyncz set Revision %q", p.Revision)
		}
	}

	cart := &proxies[0]
	if cart.ClusterID != "Kubernetes" || cart.IstioVersion != "1.25.0" || cart.ProxyVersion != "1.25.0" {
		t.Errorf("cart metadata = %+v", cart)
	}
	if want := time.Date(2026, 11, 25, 20, 1, 2, 123456789, time.UTC); !cart.Types[0].SentTime.Equal(want) {
		t.Errorf("CDS SentTime = %v, want %v", cart.Types[0].SentTime, want)
	}
	if lds := proxies[2].Types[1]; lds.LastError == "" || lds.Sent != "Xy1=l2" || lds.Acked != "Xy1=l1" {
		t.Errorf("reviews LDS = %+v, want the NACK recorded", lds)
	}
	zt := &proxies[3]
	if st, ok := zt.TypeState("WDS"); !ok || st != StateSynced {
		t.Errorf("ztunnel WDS = %q, %v", st, ok)
	}
	if st, ok := zt.TypeState(TypeURLAuthorization); !ok || st != StateSynced {
		t.Errorf("ztunnel WADS by URL = %q, %v", st, ok)
	}
	if !zt.Types[5].SentTime.IsZero() {
		t.Errorf("an unreadable sentTime should be left zero, got %v", zt.Types[5].SentTime)
	}
	if _, ok := cart.TypeState("WDS"); ok {
		t.Errorf("cart lists WDS, which syncz did not report")
	}
	// Types of one proxy must not share spare capacity with the next.
	_ = append(proxies[0].Types, TypeStatus{Type: "X"})
	if proxies[1].Types[0].Type != "CDS" {
		t.Errorf("appending to one proxy's types overwrote the next proxy's")
	}
}

func TestTypeState(t *testing.T) {
	tests := []struct {
		sent, acked, lastError string
		want                   SyncState
	}{
		{"", "", "", StateNotSent},
		{"a", "a", "", StateSynced},
		{"b", "a", "", StateStale},
		{"a", "", "", StateStale},
		{"a", "a", "rejected", StateError},
		{"", "", "rejected", StateError},
	}
	for _, tc := range tests {
		ts := TypeStatus{Sent: tc.sent, Acked: tc.acked, LastError: tc.lastError}
		if got := typeState(&ts); got != tc.want {
			t.Errorf("typeState(sent %q, acked %q, error %q) = %s, want %s", tc.sent, tc.acked, tc.lastError, got, tc.want)
		}
	}
}

func TestOverallState(t *testing.T) {
	mk := func(states ...SyncState) []TypeStatus {
		var out []TypeStatus
		for _, s := range states {
			out = append(out, TypeStatus{State: s})
		}
		return out
	}
	tests := []struct {
		types []TypeStatus
		want  SyncState
	}{
		{mk(StateSynced, StateNotSent, StateIgnored), StateSynced},
		{mk(StateSynced, StateStale), StateStale},
		{mk(StateStale, StateError, StateSynced), StateError},
		{mk(StateNotSent, StateNotSent), StateNotSent},
		{mk(StateIgnored, StateIgnored), StateIgnored},
		{nil, StateIgnored},
	}
	for i, tc := range tests {
		if got := overallState(tc.types); got != tc.want {
			t.Errorf("case %d: overallState = %s, want %s", i, got, tc.want)
		}
	}
}

func TestShortTypeName(t *testing.T) {
	tests := map[string]string{
		TypeURLCluster: "CDS", TypeURLListener: "LDS", TypeURLRoute: "RDS", TypeURLEndpoint: "EDS",
		TypeURLExtensionConfig: "ECDS", TypeURLSecret: "SDS", TypeURLAddress: "WDS",
		TypeURLAuthorization: "WADS", TypeURLNameTable: "NDS",
		"type.googleapis.com/example.v1.Thing": "example.v1.Thing",
		"bare":                                 "bare",
	}
	for url, want := range tests {
		if got := ShortTypeName(url); got != want {
			t.Errorf("ShortTypeName(%q) = %q, want %q", url, got, want)
		}
	}
}

func TestParseSynczEmpty(t *testing.T) {
	for _, in := range []string{"null", "[]", " [ ] \n"} {
		got, err := ParseSyncz([]byte(in))
		if err != nil || len(got) != 0 {
			t.Errorf("ParseSyncz(%q) = %v, %v; want no proxies", in, got, err)
		}
	}
}

func TestParseSynczMalformed(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		offset int64
		msg    string
	}{
		{"empty", "", 0, "unexpected end of JSON input"},
		{"blank", "  \n", 3, "unexpected end of JSON input"},
		{"truncated string", `[{"proxy": "a.b", "cluster_sent": "x`, 36, "unexpected end of JSON input"},
		{"truncated array", `[{"proxy": "a.b"}`, 17, "unexpected end of JSON input"},
		{"object instead of array", `{"proxy": "a.b"}`, 1, "cannot unmarshal object"},
		{"number field", `[{"proxy": 5}]`, 12, "cannot unmarshal number"},
		{"array of numbers", `[1, 2]`, 2, "cannot unmarshal number"},
		{"resources not a map", `[{"proxy": "a.b", "resources": ["x"]}]`, 32, "cannot unmarshal array"},
		{"resource not an object", `[{"proxy": "a.b", "resources": {"t": "x"}}]`, 40, "cannot unmarshal string"},
		{"resource field not a string", `[{"resources": {"t": {"sent": 1}}}]`, 31, "cannot unmarshal number"},
		{"trailing garbage", `[] ]`, 4, "invalid character ']' after top-level value"},
		{"html error page", "<html>503</html>", 1, "invalid character '<' looking for beginning of value"},
		{"missing colon", `[{"proxy" "a"}]`, 11, "invalid character '\"' after object key"},
		{"missing comma", `[{"proxy":"a" "b":1}]`, 15, "invalid character '\"' after object key:value pair"},
		{"unquoted key", `[{proxy:"a"}]`, 3, "invalid character 'p' looking for beginning of object key string"},
		{"bad literal", `[{"x": nul}]`, 11, "invalid character '}' in literal null"},
		{"bad number", `[{"x": -}]`, 9, "invalid character '}' in numeric literal"},
		{"bad fraction", `[{"x": 1.}]`, 10, "invalid character '}' after decimal point in numeric literal"},
		{"bad exponent", `[{"x": 1e+}]`, 11, "invalid character '}' in exponent of numeric literal"},
		{"control character in string", "[{\"proxy\": \"a\tb\"}]", 14, "invalid character"},
		{"bad escape", `[{"proxy": "a\qb"}]`, 15, "invalid character 'q' in string escape code"},
		{"unclosed nested value", `[{"x": [1, {"y": 2}`, 19, "unexpected end of JSON input"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSyncz([]byte(tc.in))
			if err == nil {
				t.Fatalf("ParseSyncz(%q) = %v, want an error", tc.in, got)
			}
			var se *SynczError
			if !errors.As(err, &se) || !errors.Is(err, ErrMalformedSyncz) {
				t.Fatalf("err = %#v, want a *SynczError", err)
			}
			if se.Offset != tc.offset || !strings.Contains(se.Err.Error(), tc.msg) {
				t.Errorf("err = %v (offset %d), want %q at offset %d", err, se.Offset, tc.msg, tc.offset)
			}
			if se.Unwrap() == nil || !strings.HasPrefix(err.Error(), "malformed syncz response at offset ") {
				t.Errorf("err = %q", err)
			}
		})
	}
}

func TestProxyStatusTypesAreIndependent(t *testing.T) {
	proxies, err := ParseSyncz([]byte(`[{"proxy":"a.x"},{"proxy":"b.y"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(proxies[0].Types, proxies[1].Types) {
		t.Errorf("two empty proxies differ: %v / %v", proxies[0].Types, proxies[1].Types)
	}
	proxies[0].Types[0].State = StateError
	if proxies[1].Types[0].State == StateError {
		t.Errorf("proxies share their types")
	}
}
