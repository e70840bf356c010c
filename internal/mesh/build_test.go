package mesh

import (
	"testing"

	"github.com/stretchr/testify/assert"
	admv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The tag webhook keeps the revision injector's labels but its role ("app")
// and the installer's operator.istio.io labels, as istioctl's tag set does
// (internal/e2e/istioctl_integration_test.go compares them on a real
// apiserver).
func TestTagWebhookLabelsAsIstioctl(t *testing.T) {
	inj, _ := ToInjector(&admv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "istio-sidecar-injector-1-25-0", Labels: map[string]string{
			LabelRev: "1-25-0", "app": "sidecar-injector", "release": "istiod-1-25-0",
			"operator.istio.io/component": "Pilot", "install.operator.istio.io/owning-resource": "unknown",
			"install.operator.istio.io/owning-resource-namespace": "istio-system",
		}},
		Webhooks: InjectionWebhooks("1-25-0", false, admv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:1/inject")}, nil),
	})
	got := TagWebhook("prod", &inj)
	assert.Equal(t, map[string]string{
		LabelRev: "1-25-0", LabelTag: "prod", "app": "sidecar-injector", "release": "istiod-1-25-0",
	}, got.Labels)
}

// Istio's "default" chart: admissionReviewVersions [v1], and objects
// labelled with a revision left to that revision's validator.
func TestDefaultValidatorAsIstioChart(t *testing.T) {
	v := DefaultValidator("1-25-0", admv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:1/validate")}, nil)
	w := v.Webhooks[0]
	assert.Equal(t, []string{"v1"}, w.AdmissionReviewVersions)
	assert.Equal(t, &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: LabelRev, Operator: metav1.LabelSelectorOpDoesNotExist},
	}}, w.ObjectSelector)
	assert.Equal(t, admv1.Ignore, *w.FailurePolicy)
}
