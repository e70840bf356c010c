package mesh

import (
	"testing"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// OverlapsAfter reports only the overlaps the change makes: a second
// injector for a revision already injected overlaps it, a replacement of
// an injector by name does not overlap its old self, and overlaps among
// the existing injectors are not the change's doing.
func TestOverlapsAfter(t *testing.T) {
	a := injector("istio-sidecar-injector-a", "a", "", false)
	b := injector("istio-sidecar-injector-b", "b", "", false)
	aCopy := injector("istio-sidecar-injector-a2", "a", "", false)

	got := OverlapsAfter([]Injector{a, b}, []Injector{aCopy})
	if assert.Len(t, got, 1) {
		assert.Equal(t, "istio-sidecar-injector-a", got[0].First)
		assert.Equal(t, "istio-sidecar-injector-a2", got[0].Second)
		assert.Contains(t, got[0].String(), "both inject")
	}
	assert.Empty(t, OverlapsAfter([]Injector{a, b}, []Injector{a}), "replacing a by name")
	assert.Empty(t, OverlapsAfter([]Injector{a, aCopy}, []Injector{b}), "an existing overlap is not reported")
	assert.Empty(t, OverlapsAfter([]Injector{a, b}, []Injector{aCopy}, a.Name), "a removed in the same change")
}

func TestPodAndNamespaceHelpers(t *testing.T) {
	now := metav1.Now()
	for _, tc := range []struct {
		name string
		pod  corev1.Pod
		want bool
	}{
		{"running", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning}}, true},
		{"pending", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending}}, true},
		{"succeeded", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}, false},
		{"failed", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed}}, false},
		{"being deleted", corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}, false},
	} {
		assert.Equal(t, tc.want, PodActive(&tc.pod), tc.name)
	}

	amb := map[string]string{LabelDataplaneMode: "ambient"}
	none := map[string]string{LabelDataplaneMode: "none"}
	assert.True(t, Ambient(amb, nil, nil), "namespace in ambient mode")
	assert.False(t, Ambient(amb, none, nil), "pod opted out")
	assert.True(t, Ambient(nil, amb, nil), "pod asks for ambient")
	assert.True(t, Ambient(nil, none, map[string]string{AnnotationAmbientRedirection: "enabled"}), "enrolled by istio-cni")
	assert.False(t, Ambient(nil, nil, nil))

	assert.Equal(t, "istiod-revision-tag-prod", TagServiceName("prod"))
	assert.Equal(t, []string{"istiod-clusterrole-1-25-0-istio-system", "istiod-gateway-controller-1-25-0-istio-system",
		"istio-reader-clusterrole-1-25-0-istio-system"}, ClusterRoleNames("1-25-0", "istio-system"))
}
