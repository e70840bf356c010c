package mesh

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var statusCases = []struct {
	name, raw, want string
}{
	{"istio shape", `{"initContainers":["istio-validation"],"containers":["istio-proxy"],"volumes":["workload-socket","istio-envoy","istio-data","istio-podinfo","istio-token","istiod-ca-cert"],"imagePullSecrets":null,"revision":"1-24-0"}`, "1-24-0"},
	{"revision first", `{"revision":"canary","containers":["istio-proxy"]}`, "canary"},
	{"spaces", "{ \"revision\" :\t\"canary\" }", "canary"},
	{"no revision", `{"containers":["istio-proxy"]}`, ""},
	{"empty revision", `{"revision":""}`, ""},
	{"last duplicate wins", `{"revision":"a","revision":"b"}`, "b"},
	{"nested revision ignored", `{"x":{"revision":"nested"},"y":[{"revision":"n2"}]}`, ""},
	{"key-like text in a value", `{"x":"\"revision\":\"fake\"","revision":"real"}`, "real"},
	{"revision as a value", `{"x":"revision","y":["revision"]}`, ""},
	{"not json", `not json`, ""},
	{"truncated", `{"revision":"a"`, ""},
	{"array", `[{"revision":"a"}]`, ""},
	{"null", `null`, ""},
	{"null revision", `{"revision":null}`, ""},
	{"number revision", `{"revision":5}`, ""},
	{"escaped value", `{"revision":"a\u002db"}`, "a-b"},
	{"upper-case key", `{"Revision":"upper"}`, "upper"},
	{"long s key", `{"reviſion":"folded"}`, "folded"},
	{"escaped key", `{"rev\u0069sion":"esc"}`, "esc"},
	{"non-ASCII value", "{\"revision\":\"r\xffv\"}", "r\ufffdv"},
}

func TestStatusRevision(t *testing.T) {
	for _, tc := range statusCases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, statusRevision(tc.raw))
		})
	}
}

func BenchmarkPodRevision(b *testing.B) {
	raw := statusCases[0].raw
	b.ReportAllocs()
	for b.Loop() {
		if statusRevision(raw) != "1-24-0" {
			b.Fatal("wrong revision")
		}
	}
}

// injectedPodJSON is one injected pod as a list of pods delivers it.
func injectedPodJSON(b *testing.B) []byte {
	b.Helper()
	res := corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}}
	pod := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app-7d9f8b6c5-x2x4k", Namespace: "shop", UID: "1f2e3d4c-5b6a-4a3b-9b4c-8d8e00000000",
			Labels:          map[string]string{"app": "app", "pod-template-hash": "7d9f8b6c5", "security.istio.io/tlsMode": "istio", "service.istio.io/canonical-name": "app", "service.istio.io/canonical-revision": "latest"},
			Annotations:     map[string]string{AnnotationStatus: statusCases[0].raw, "kubectl.kubernetes.io/default-container": "app", "prometheus.io/path": "/stats/prometheus", "prometheus.io/port": "15020", "prometheus.io/scrape": "true"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "app-7d9f8b6c5", UID: "2f2e3d4c-5b6a-4a3b-9b4c-8d8e00000000"}}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "istio-validation", Image: "docker.io/istio/proxyv2:1.24.0", Args: []string{"istio-iptables", "--validation-mode"}, Resources: res}},
			Containers: []corev1.Container{
				{Name: "app", Image: "registry.example/app:1.2.3", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}, Resources: res},
				{Name: "istio-proxy", Image: "docker.io/istio/proxyv2:1.24.0", Args: []string{"proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local"},
					Env:       []corev1.EnvVar{{Name: "PILOT_CERT_PROVIDER", Value: "istiod"}, {Name: "CA_ADDR", Value: "istiod-1-24-0.istio-system.svc:15012"}, {Name: "ISTIO_META_CLUSTER_ID", Value: "Kubernetes"}},
					Resources: res, VolumeMounts: []corev1.VolumeMount{{Name: "istio-envoy", MountPath: "/etc/istio/proxy"}, {Name: "istio-data", MountPath: "/var/lib/istio/data"}}},
			},
			Volumes:  []corev1.Volume{{Name: "istio-envoy"}, {Name: "istio-data"}, {Name: "istio-podinfo"}, {Name: "istio-token"}, {Name: "istiod-ca-cert"}},
			NodeName: "node-1",
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.12",
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}, {Type: corev1.ContainersReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true}, {Name: "istio-proxy", Ready: true}}},
	}
	data, err := json.Marshal(pod)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkPodRevisionYardstick is what reading the revision of a pod is
// measured against: decoding that pod from the JSON of a pod list, which
// every reader of revisions does first.
func BenchmarkPodRevisionYardstick(b *testing.B) {
	data := injectedPodJSON(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var pod corev1.Pod
		if err := json.Unmarshal(data, &pod); err != nil || pod.Annotations[AnnotationStatus] == "" {
			b.Fatal(err)
		}
	}
}
