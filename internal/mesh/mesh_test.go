package mesh

import (
	"testing"

	"github.com/stretchr/testify/assert"
	admv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func sel(reqs ...metav1.LabelSelectorRequirement) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: reqs}
}

func TestSatisfiable(t *testing.T) {
	cases := []struct {
		name string
		sels []*metav1.LabelSelector
		ok   bool
		want map[string]string
	}{
		{"nothing", nil, true, map[string]string{}},
		{"in and in intersect", []*metav1.LabelSelector{
			sel(expr("a", metav1.LabelSelectorOpIn, "x", "y")), sel(expr("a", metav1.LabelSelectorOpIn, "y", "z"))},
			true, map[string]string{"a": "y"}},
		{"in and in disjoint", []*metav1.LabelSelector{
			sel(expr("a", metav1.LabelSelectorOpIn, "x")), sel(expr("a", metav1.LabelSelectorOpIn, "y"))}, false, nil},
		{"exists and does not exist", []*metav1.LabelSelector{
			sel(expr("a", metav1.LabelSelectorOpExists)), sel(expr("a", metav1.LabelSelectorOpDoesNotExist))}, false, nil},
		{"not in is met by absence", []*metav1.LabelSelector{
			sel(expr("a", metav1.LabelSelectorOpNotIn, "false"))}, true, map[string]string{}},
		{"exists avoids forbidden values", []*metav1.LabelSelector{
			sel(expr("a", metav1.LabelSelectorOpExists), expr("a", metav1.LabelSelectorOpNotIn, "any"))},
			true, map[string]string{"a": "any1"}},
		{"in minus not in empty", []*metav1.LabelSelector{
			sel(expr("a", metav1.LabelSelectorOpIn, "x"), expr("a", metav1.LabelSelectorOpNotIn, "x"))}, false, nil},
		{"match labels", []*metav1.LabelSelector{{MatchLabels: map[string]string{"istio-injection": "enabled"}}},
			true, map[string]string{"istio-injection": "enabled"}},
		{"deactivated never matches", []*metav1.LabelSelector{NeverMatchSelector()}, false, nil},
		{"unknown operator", []*metav1.LabelSelector{sel(expr("a", "Gt", "1"))}, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := Satisfiable(c.sels...)
			assert.Equal(t, c.ok, ok)
			if c.ok {
				assert.Equal(t, c.want, got)
				for _, s := range c.sels {
					assert.True(t, Matches(s, got), "witness must match every selector")
				}
			}
		})
	}
}

func injector(name, rev, tag string, isDefault bool) Injector {
	labels := map[string]string{LabelRev: rev}
	if tag != "" {
		labels[LabelTag] = tag
	}
	value := rev
	if tag != "" {
		value = tag
	}
	mwc := &admv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Webhooks: InjectionWebhooks(value, isDefault, admv1.WebhookClientConfig{URL: ptr.To("https://x")}, nil)}
	inj, _ := ToInjector(mwc)
	return inj
}

func TestFindOverlaps(t *testing.T) {
	a := injector("istio-sidecar-injector-a", "a", "", false)
	b := injector("istio-sidecar-injector-b", "b", "", false)
	legacy := injector("istio-sidecar-injector", "default", "", true)
	defTag := injector("istio-revision-tag-default", "b", "default", true)
	assert.Empty(t, FindOverlaps([]Injector{a, b, legacy}), "revisions and a legacy default do not overlap")

	ovs := FindOverlaps([]Injector{a, legacy, defTag})
	if assert.Len(t, ovs, 1) {
		assert.Equal(t, "istio-sidecar-injector", ovs[0].First)
		assert.Equal(t, "istio-revision-tag-default", ovs[0].Second)
		ns, pod := ovs[0].NamespaceLabels, ovs[0].PodLabels
		assert.True(t, legacy.Matches(ns, pod) && defTag.Matches(ns, pod), "the witness is matched by both: %v %v", ns, pod)
	}

	// Deactivating the legacy injector removes the overlap.
	for i := range legacy.Webhooks {
		legacy.Webhooks[i].NamespaceSelector = NeverMatchSelector()
		legacy.Webhooks[i].ObjectSelector = NeverMatchSelector()
	}
	assert.True(t, legacy.Deactivated())
	assert.Empty(t, FindOverlaps([]Injector{a, legacy, defTag}))
}

func TestModel(t *testing.T) {
	m := &Model{Deployments: map[string][]string{"c": {"istiod-c"}}}
	a := injector("istio-sidecar-injector-a", "a", "", false)
	b := injector("istio-sidecar-injector-b", "b", "", false)
	tagged := injector("istio-revision-tag-prod", "a", "prod", false)
	def := injector("istio-revision-tag-default", "b", "default", true)
	m.Injectors = []Injector{a, b, tagged, def}
	assert.Equal(t, []string{"a", "b", "c"}, m.Revisions())
	assert.Equal(t, map[string]string{"prod": "a", "default": "b"}, m.Tags())

	rev, isTag, ok := m.Resolve("prod")
	assert.Equal(t, []any{"a", true, true}, []any{rev, isTag, ok})
	_, _, ok = m.Resolve("nope")
	assert.False(t, ok)

	ns := func(labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: labels}}
	}
	assert.Equal(t, []string{"a"}, m.NamespaceRevisions(ns(map[string]string{LabelRev: "prod"})))
	assert.Equal(t, []string{"b"}, m.NamespaceRevisions(ns(map[string]string{LabelInjection: "enabled"})))
	assert.Empty(t, m.NamespaceRevisions(ns(nil)))
	assert.Equal(t, "default", m.NamespaceTag(ns(map[string]string{LabelInjection: "enabled"})))
	assert.Equal(t, "prod", m.NamespaceTag(ns(map[string]string{LabelRev: "prod"})))
	assert.Equal(t, "", m.NamespaceTag(ns(map[string]string{LabelRev: "a"})))
}

func TestPodRevision(t *testing.T) {
	pod := func(ann string) *corev1.Pod {
		p := &corev1.Pod{}
		if ann != "" {
			p.Annotations = map[string]string{AnnotationStatus: ann}
		}
		return p
	}
	rev, ok := PodRevision(pod(`{"revision":"1-24-0"}`))
	assert.Equal(t, "1-24-0", rev)
	assert.True(t, ok)
	rev, ok = PodRevision(pod(`{"containers":["istio-proxy"]}`))
	assert.Equal(t, "default", rev, "old injectors wrote no revision")
	assert.True(t, ok)
	_, ok = PodRevision(pod(""))
	assert.False(t, ok)
	rev, ok = PodRevision(pod(`not json`))
	assert.Equal(t, "default", rev)
	assert.True(t, ok)

	assert.True(t, InjectionDisabled(map[string]string{LabelSidecarInject: "false"}, nil))
	assert.False(t, InjectionDisabled(map[string]string{LabelSidecarInject: "true"}, map[string]string{LabelSidecarInject: "false"}), "the label wins")
	assert.True(t, InjectionDisabled(nil, map[string]string{LabelSidecarInject: "false"}))
}

func TestNames(t *testing.T) {
	assert.Equal(t, "istiod", IstiodName("default"))
	assert.Equal(t, "istiod-1-24-0", IstiodName("1-24-0"))
	r, ok := RevisionFromServiceName("istiod-1-24-0")
	assert.True(t, ok)
	assert.Equal(t, "1-24-0", r)
	_, ok = RevisionFromServiceName("istiod-revision-tag-prod")
	assert.False(t, ok)
	r, _ = RevisionFromServiceName("istiod")
	assert.Equal(t, "default", r)
	cc := ValidationClient(admv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:1/inject/cluster/x")})
	assert.Equal(t, "https://127.0.0.1:1/validate", *cc.URL)
}
