package mesh

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Usage follows the webhooks the apiserver calls (issue #14): with both
// labels, istio-injection decides.
func TestInjectionFollowsWebhooks(t *testing.T) {
	a := injector("istio-sidecar-injector-a", "a", "", false)
	b := injector("istio-sidecar-injector-b", "b", "", false)
	prod := injector("istio-revision-tag-prod", "a", "prod", false)
	def := injector("istio-revision-tag-default", "b", "default", true)
	m := &Model{Injectors: []Injector{a, def, prod, b}, Deployments: map[string][]string{"c": {"istiod-c"}}}
	ns := func(labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: labels}}
	}
	both := ns(map[string]string{LabelInjection: "enabled", LabelRev: "a"})

	assert.Equal(t, []string{"b"}, m.NamespaceRevisions(both), "the default tag injects it, not a")
	assert.Equal(t, []string{"default"}, m.NamespaceTags(both))
	assert.Equal(t, "default", m.NamespaceTag(both))
	assert.Equal(t, []Injection{{Configuration: "istio-revision-tag-default", Webhook: "namespace.sidecar-injector.istio.io", Revision: "b", Tag: "default"}},
		m.PodInjections(both, nil))
	c, ok := m.NamespaceConflict(both)
	assert.True(t, ok)
	assert.Equal(t, "a", c.Rev)
	assert.Equal(t, "enabled", c.Injection)
	assert.Len(t, c.Injections, 1)
	assert.True(t, strings.Contains(c.String(), "IST0123") && strings.Contains(c.String(), "istio-revision-tag-default"), c.String())

	// A tag label with istio-injection=enabled: the default tag, not prod.
	assert.Equal(t, []string{"default"}, m.NamespaceTags(ns(map[string]string{LabelInjection: "enabled", LabelRev: "prod"})))
	// istio-injection=disabled blocks istio.io/rev: nothing injects.
	off := ns(map[string]string{LabelInjection: "disabled", LabelRev: "a"})
	assert.Empty(t, m.NamespaceRevisions(off))
	assert.Empty(t, m.NamespaceTags(off))
	c, ok = m.NamespaceConflict(off)
	assert.True(t, ok)
	assert.Empty(t, c.Injections)
	assert.Contains(t, c.String(), "no injector")
	// One label: no conflict.
	_, ok = m.NamespaceConflict(ns(map[string]string{LabelRev: "a"}))
	assert.False(t, ok)

	// A revision installed without an active injector still counts for a
	// namespace labelled with it (nothing else serves it).
	assert.Equal(t, []string{"c"}, m.NamespaceRevisions(ns(map[string]string{LabelRev: "c"})))
	assert.Equal(t, []string{"b"}, m.NamespaceRevisions(ns(map[string]string{LabelRev: "c", LabelInjection: "enabled"})),
		"but not when istio-injection blocks the label")

	// Without the default tag, istio-injection=enabled namespaces are
	// served by nothing, whatever their istio.io/rev label says.
	m.Injectors = []Injector{a, prod, b}
	assert.Empty(t, m.NamespaceRevisions(both))
	assert.Empty(t, m.NamespaceTags(both))
}
