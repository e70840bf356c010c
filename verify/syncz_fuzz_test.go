package verify

import (
	"testing"
)

// TestParseSynczLenient covers what encoding/json accepts beyond the usual
// shape and ParseSyncz relies on: null elements and fields, keys in
// another case, escapes, unknown fields, and a resources map given twice.
func TestParseSynczLenient(t *testing.T) {
	proxies, err := ParseSyncz([]byte(`[null,
		{"PROXY":"a.b","Proxy_Type":"ztunnel","cluster_id":null,"x":{"y":[1,true,null]},
		 "RESOURCES":{"t":{"SENT":"1","Acked":"1"}}},
		{"pro\u0078y":"c\u002dd.shop","cluster_sent":"1","resources":{"` + TypeURLCluster + `":{"sent":"2","acked":"1"}},"resources":null}]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(proxies) != 3 {
		t.Fatalf("%d proxies, want 3", len(proxies))
	}
	if p := proxies[0]; p.ID != "" || p.State != StateNotSent {
		t.Errorf("null element = %+v, want an empty proxy, NOT SENT", p)
	}
	if p := proxies[1]; p.ID != "a.b" || p.ProxyType != ProxyTypeZtunnel || p.State != StateSynced || len(p.Types) != 6 || p.Types[5].TypeURL != "t" {
		t.Errorf("upper-case keys: %+v", p)
	}
	// The second "resources" (null) drops the map: CDS comes from the
	// flat fields, sent and never acknowledged.
	if p := proxies[2]; p.Pod != "c-d" || p.Namespace != "shop" || p.State != StateStale {
		t.Errorf("escapes and a null map: %+v", p)
	}
}

func FuzzParseSyncz(f *testing.F) {
	f.Add(readSyncz(f))
	f.Add([]byte(`[{"PROXY":"a.b","resources":{"t":{"sent":"1","lastError":"\u00e9"}},"x":[1,{"y":null}]}]`))
	f.Add([]byte(`[null,{"proxy":"\ud83d\ude00.x","resources":null}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		// ParseSyncz never panics, returns a typed error or classifies
		// every proxy.
		proxies, err := ParseSyncz(data)
		if err != nil {
			if se, ok := err.(*SynczError); !ok || se.Offset < 0 || se.Offset > int64(len(data)) {
				t.Fatalf("err = %#v, want a *SynczError within the input", err)
			}
			return
		}
		for _, p := range proxies {
			if p.State == "" || len(p.Types) < len(envoyTypes) {
				t.Errorf("proxy %q has no state or too few types: %+v", p.ID, p)
			}
		}
	})
}
