package verify

import (
	"encoding/json"
	"reflect"
	"sort"
	"testing"
)

// refStatus is the schema of istiod's SyncStatus as encoding/json sees it:
// the reference the hand-written decoder must agree with.
type refStatus struct {
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
	Resources            map[string]refResource `json:"resources"`
}

type refResource struct {
	Sent      string `json:"sent"`
	Acked     string `json:"acked"`
	SentTime  string `json:"sentTime"`
	LastError string `json:"lastError"`
}

// decodeReference decodes with encoding/json and converts to rawStatus,
// resources sorted by type URL (a map has no order).
func decodeReference(data []byte) ([]rawStatus, error) {
	var ref []refStatus
	if err := json.Unmarshal(data, &ref); err != nil {
		return nil, err
	}
	var out []rawStatus
	for _, r := range ref {
		raw := rawStatus{fields: [nFields]string{
			r.ClusterID, r.Proxy, r.ProxyType, r.ProxyVersion, r.IstioVersion,
			r.ClusterSent, r.ClusterAcked, r.ListenerSent, r.ListenerAcked,
			r.RouteSent, r.RouteAcked, r.EndpointSent, r.EndpointAcked,
			r.ExtensionConfigSent, r.ExtensionConfigAcked,
		}}
		for url, res := range r.Resources {
			raw.resources = append(raw.resources, rawResourceEntry{typeURL: url, res: rawResource(res)})
		}
		sortResources(raw.resources)
		out = append(out, raw)
	}
	return out, nil
}

func sortResources(list []rawResourceEntry) {
	sort.Slice(list, func(a, b int) bool { return list[a].typeURL < list[b].typeURL })
}

// sameAsReference fails t when the two decoders disagree on data.
func sameAsReference(t *testing.T, data []byte) {
	t.Helper()
	got, err := decodeSyncz(data)
	want, refErr := decodeReference(data)
	if (err == nil) != (refErr == nil) {
		t.Fatalf("decodeSyncz(%q): err = %v, encoding/json: %v", data, err, refErr)
	}
	if err != nil {
		return
	}
	for i := range got {
		sortResources(got[i].resources)
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeSyncz(%q):\n got %+v\nwant %+v", data, got, want)
	}
}

func TestDecodeSynczMatchesEncodingJSON(t *testing.T) {
	docs := []string{
		string(readSyncz(t)),
		string(largeSyncz(300)),
		`null`, `[]`, ` [ null , {} ] `,
		// encoding/json matches keys without regard to case, last one wins.
		`[{"PROXY":"a.b","Proxy_Type":"ztunnel","proxy":"c.d","RESOURCES":{"t":{"SENT":"1","Acked":"1","sentTIME":"x","LASTERROR":"e"}}}]`,
		// Kelvin sign and long s fold to k and s.
		"[{\"proxy_\u212aind\":1,\"re\u017fources\":{\"t\":{\"\u017fent\":\"x\"}}}]",
		// Escapes, unicode, surrogates, invalid UTF-8.
		`[{"proxy":"\u0063art\n\"x\"\\\/\b\f\r\t.shop","cluster_id":"K\u00e9\ud83d\ude00"}]`,
		"[{\"proxy\":\"caf\xc3\xa9.shop\",\"cluster_id\":\"bad\xff\xfeutf8\"}]",
		`[{"pro\u0078y":"escaped.key"}]`,
		// null keeps a field, clears the resources map, zeroes an entry.
		`[{"proxy":"a.b","proxy":null,"resources":{"t":{"sent":"1"}},"resources":null}]`,
		`[{"resources":{"t":{"sent":"1"}},"resources":{"u":{"sent":"2"},"t":null}}]`,
		`[{"resources":{"t":{"sent":"1","acked":"1"},"t":{"sent":"2"}}}]`,
		// Unknown fields of every kind are skipped.
		`[{"x":{"a":[1,-2.5e+3,0.1E-2,true,false,null,{"b":"c"}],"d":{}},"y":[],"z":"w","proxy":"a.b","n":-0}]`,
		`[{"resources":{"t":{"sent":"1","extra":[{"k":[]}],"other":12}}}]`,
		// Errors.
		`[{"proxy":1}]`, `[{"resources":[]}]`, `[{"resources":{"t":"x"}}]`, `{}`, `"x"`, `[1]`,
		`[{"x":01}]`, `[{"x":1.}]`, `[{"x":.5}]`, `[{"x":+1}]`, `[{"x":tru}]`, `[{"x":[1,]}]`,
		`[{"x":{"a":1,}}]`, `[{,}]`, `[,]`, `[{}`, `[{}]x`, "[{\"proxy\":\"a\x01\"}]", `[{"x":"\u12"}]`,
	}
	for _, doc := range docs {
		sameAsReference(t, []byte(doc))
	}
}

func FuzzDecodeSyncz(f *testing.F) {
	f.Add(readSyncz(f))
	f.Add([]byte(`[{"PROXY":"a.b","resources":{"t":{"sent":"1","lastError":"\u00e9"}},"x":[1,{"y":null}]}]`))
	f.Add([]byte(`[null,{"proxy":"\ud83d\ude00.x","resources":null}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		sameAsReference(t, data)
		// And the whole of ParseSyncz never panics and always classifies.
		proxies, err := ParseSyncz(data)
		if err != nil {
			return
		}
		for _, p := range proxies {
			if p.State == "" || len(p.Types) < len(envoyTypes) {
				t.Errorf("proxy %q has no state or too few types: %+v", p.ID, p)
			}
		}
	})
}
