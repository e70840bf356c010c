package mesh

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
)

// slowRevision is the reference: what encoding/json reads.
func slowRevision(raw string) string {
	var st struct {
		Revision string `json:"revision"`
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return ""
	}
	return st.Revision
}

var statusCases = []struct {
	name, raw, want string
	fast            bool // read without encoding/json
}{
	{"istio shape", `{"initContainers":["istio-validation"],"containers":["istio-proxy"],"volumes":["workload-socket","istio-envoy","istio-data","istio-podinfo","istio-token","istiod-ca-cert"],"imagePullSecrets":null,"revision":"1-24-0"}`, "1-24-0", true},
	{"revision first", `{"revision":"canary","containers":["istio-proxy"]}`, "canary", true},
	{"spaces", "{ \"revision\" :\t\"canary\" }", "canary", true},
	{"no revision", `{"containers":["istio-proxy"]}`, "", true},
	{"empty revision", `{"revision":""}`, "", true},
	{"last duplicate wins", `{"revision":"a","revision":"b"}`, "b", true},
	{"nested revision ignored", `{"x":{"revision":"nested"},"y":[{"revision":"n2"}]}`, "", true},
	{"key-like text in a value", `{"x":"\"revision\":\"fake\"","revision":"real"}`, "real", true},
	{"revision as a value", `{"x":"revision","y":["revision"]}`, "", true},
	{"not json", `not json`, "", true},
	{"truncated", `{"revision":"a"`, "", true},
	{"array", `[{"revision":"a"}]`, "", true},
	{"null", `null`, "", true},
	{"null revision", `{"revision":null}`, "", false},
	{"number revision", `{"revision":5}`, "", false},
	{"escaped value", `{"revision":"a\u002db"}`, "a-b", false},
	{"upper-case key", `{"Revision":"upper"}`, "upper", false},
	{"long s key", `{"reviſion":"folded"}`, "folded", false},
	{"escaped key", `{"rev\u0069sion":"esc"}`, "esc", false},
	{"non-ASCII value", "{\"revision\":\"r\xffv\"}", "r\ufffdv", false},
}

func TestStatusRevision(t *testing.T) {
	for _, tc := range statusCases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, slowRevision(tc.raw), "reference")
			assert.Equal(t, tc.want, statusRevision(tc.raw))
			_, ok := scanRevision(tc.raw)
			assert.Equal(t, tc.fast, ok, "fast path taken")
		})
	}
}

// FuzzStatusRevision checks the fast path against encoding/json.
func FuzzStatusRevision(f *testing.F) {
	for _, tc := range statusCases {
		f.Add(tc.raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if got, want := statusRevision(raw), slowRevision(raw); got != want {
			t.Fatalf("statusRevision(%q) = %q, encoding/json reads %q", raw, got, want)
		}
	})
}

func BenchmarkPodRevision(b *testing.B) {
	raw := statusCases[0].raw
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if statusRevision(raw) != "1-24-0" {
				b.Fatal("wrong revision")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if slowRevision(raw) != "1-24-0" {
				b.Fatal("wrong revision")
			}
		}
	})
}
