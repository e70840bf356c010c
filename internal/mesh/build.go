package mesh

import (
	"net/url"
	"strings"

	admv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// InjectorClient returns the client config of the first injection webhook of
// a revision's injector: the tag webhook calls the same endpoint.
func InjectorClient(inj *Injector) (admv1.WebhookClientConfig, *admv1.ReinvocationPolicyType, bool) {
	if len(inj.Webhooks) == 0 {
		return admv1.WebhookClientConfig{}, nil, false
	}
	w := inj.Webhooks[0]
	return *w.ClientConfig.DeepCopy(), w.ReinvocationPolicy, true
}

// NeverMatchSelector is the selector istioctl writes into a deactivated
// injector.
func NeverMatchSelector() *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{LabelDeactivated: DeactivatedValue}}
}

func expr(key string, op metav1.LabelSelectorOperator, values ...string) metav1.LabelSelectorRequirement {
	return metav1.LabelSelectorRequirement{Key: key, Operator: op, Values: values}
}

// InjectionWebhooks returns the injection webhooks Istio's charts generate
// for a revision or tag named selectorValue: one for namespaces labelled
// istio.io/rev=<value>, one for pods labelled so in unlabelled namespaces,
// and for the default revision or tag two more for istio-injection=enabled
// namespaces and sidecar.istio.io/inject=true pods.
func InjectionWebhooks(selectorValue string, isDefault bool, cc admv1.WebhookClientConfig, reinvocation *admv1.ReinvocationPolicyType) []admv1.MutatingWebhook {
	mk := func(prefix string, nsSel, objSel []metav1.LabelSelectorRequirement) admv1.MutatingWebhook {
		return admv1.MutatingWebhook{
			Name:         prefix + InjectorSuffix,
			ClientConfig: *cc.DeepCopy(),
			Rules: []admv1.RuleWithOperations{{
				Operations: []admv1.OperationType{admv1.Create},
				Rule: admv1.Rule{
					APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
					Scope: ptr.To(admv1.AllScopes),
				},
			}},
			FailurePolicy:           ptr.To(admv1.Fail),
			MatchPolicy:             ptr.To(admv1.Equivalent),
			SideEffects:             ptr.To(admv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To[int32](10),
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      ptr.To(reinvocationOrNever(reinvocation)),
			NamespaceSelector:       &metav1.LabelSelector{MatchExpressions: nsSel},
			ObjectSelector:          &metav1.LabelSelector{MatchExpressions: objSel},
		}
	}
	notDisabled := expr(LabelSidecarInject, metav1.LabelSelectorOpNotIn, "false")
	out := []admv1.MutatingWebhook{
		mk("rev.namespace.",
			[]metav1.LabelSelectorRequirement{
				expr(LabelRev, metav1.LabelSelectorOpIn, selectorValue),
				expr(LabelInjection, metav1.LabelSelectorOpDoesNotExist),
			},
			[]metav1.LabelSelectorRequirement{notDisabled}),
		mk("rev.object.",
			[]metav1.LabelSelectorRequirement{
				expr(LabelRev, metav1.LabelSelectorOpDoesNotExist),
				expr(LabelInjection, metav1.LabelSelectorOpDoesNotExist),
			},
			[]metav1.LabelSelectorRequirement{notDisabled, expr(LabelRev, metav1.LabelSelectorOpIn, selectorValue)}),
	}
	if isDefault {
		out = append(out,
			mk("namespace.",
				[]metav1.LabelSelectorRequirement{expr(LabelInjection, metav1.LabelSelectorOpIn, "enabled")},
				[]metav1.LabelSelectorRequirement{notDisabled}),
			mk("object.",
				[]metav1.LabelSelectorRequirement{
					expr(LabelInjection, metav1.LabelSelectorOpDoesNotExist),
					expr(LabelRev, metav1.LabelSelectorOpDoesNotExist),
				},
				[]metav1.LabelSelectorRequirement{
					expr(LabelSidecarInject, metav1.LabelSelectorOpIn, "true"),
					expr(LabelRev, metav1.LabelSelectorOpDoesNotExist),
				}),
		)
	}
	return out
}

func reinvocationOrNever(p *admv1.ReinvocationPolicyType) admv1.ReinvocationPolicyType {
	if p == nil || *p == "" {
		return admv1.NeverReinvocationPolicy
	}
	return *p
}

// TagWebhook builds the MutatingWebhookConfiguration of a tag from the
// revision's own injector, the way istioctl does: the revision injector's
// labels (but "app"), the tag labels, and its client config (service or URL,
// path and caBundle).
func TagWebhook(tag string, revInjector *Injector) *admv1.MutatingWebhookConfiguration {
	cc, reinv, _ := InjectorClient(revInjector)
	labels := InjectorLabels(revInjector)
	labels["app"] = "sidecar-injector"
	labels[LabelTag] = tag
	labels[LabelRev] = revInjector.Revision
	return &admv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: TagWebhookName(tag), Labels: labels},
		Webhooks:   InjectionWebhooks(tag, tag == DefaultRevision, cc, reinv),
	}
}

// InjectorLabels are the labels of a revision's injector that istioctl
// copies into the objects of a tag (its webhook, and the default validator
// for the default tag): all but "app", which names the object's own role,
// and the installer's *operator.istio.io* labels. istioctl drops those
// because a tag is user-managed: with them, an installer pruning the
// revision's components (istioctl uninstall --revision, --purge) would
// delete the tag as well.
func InjectorLabels(inj *Injector) map[string]string {
	labels := map[string]string{}
	for k, v := range inj.Object.Labels {
		if k == "app" || strings.Contains(k, "operator.istio.io") {
			continue
		}
		labels[k] = v
	}
	return labels
}

// StandardIstiodPorts are the ports of an istiod Service.
func StandardIstiodPorts() []corev1.ServicePort {
	return []corev1.ServicePort{
		{Name: "grpc-xds", Port: 15010, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(15010)},
		{Name: "https-dns", Port: 15012, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(15012)},
		{Name: "https-webhook", Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(15017)},
		{Name: "http-monitoring", Port: 15014, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(15014)},
	}
}

// TagService builds the Service "istiod-revision-tag-<tag>" that selects the
// revision's istiod pods.
func TagService(tag, rev, ns string, ports []corev1.ServicePort) *corev1.Service {
	if len(ports) == 0 {
		ports = StandardIstiodPorts()
	}
	selector := map[string]string{"app": "istiod", LabelRev: rev}
	if rev == DefaultRevision {
		selector = map[string]string{"app": "istiod", "istio": "pilot"}
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: TagServiceName(tag), Namespace: ns,
			Labels: map[string]string{LabelRev: rev, LabelTag: tag, "app": "istiod", "istio": "pilot"},
		},
		Spec: corev1.ServiceSpec{Ports: ports, Selector: selector},
	}
}

// ValidationClient derives the validation endpoint from an injection client
// config when no validating webhook of the revision can be copied: the same
// service or host, path /validate.
func ValidationClient(cc admv1.WebhookClientConfig) admv1.WebhookClientConfig {
	out := *cc.DeepCopy()
	if out.URL != nil {
		if u, err := url.Parse(*out.URL); err == nil {
			u.Path = "/validate"
			out.URL = ptr.To(u.String())
		}
	}
	if out.Service != nil {
		out.Service.Path = ptr.To("/validate")
	}
	return out
}

// DefaultValidator builds "istiod-default-validator", the validating webhook
// the default tag owns, calling the revision's istiod, as Istio's "default"
// chart renders it. failurePolicy starts at Ignore: istiod flips it to Fail
// once its endpoint is ready.
func DefaultValidator(rev string, cc admv1.WebhookClientConfig, failure *admv1.FailurePolicyType) *admv1.ValidatingWebhookConfiguration {
	if failure == nil {
		failure = ptr.To(admv1.Ignore)
	}
	return &admv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{
			Name: DefaultValidatorName,
			Labels: map[string]string{
				"app": "istiod", "istio": "istiod",
				LabelRev: rev, LabelTag: DefaultRevision,
			},
		},
		Webhooks: []admv1.ValidatingWebhook{{
			Name:         "validation.istio.io",
			ClientConfig: cc,
			Rules: []admv1.RuleWithOperations{{
				Operations: []admv1.OperationType{admv1.Create, admv1.Update},
				Rule: admv1.Rule{
					APIGroups:   []string{"security.istio.io", "networking.istio.io", "telemetry.istio.io", "extensions.istio.io"},
					APIVersions: []string{"*"}, Resources: []string{"*"},
					Scope: ptr.To(admv1.AllScopes),
				},
			}},
			FailurePolicy:           failure,
			MatchPolicy:             ptr.To(admv1.Equivalent),
			SideEffects:             ptr.To(admv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To[int32](10),
			AdmissionReviewVersions: []string{"v1"},
			NamespaceSelector:       &metav1.LabelSelector{},
			// Objects labelled with a revision are validated by that
			// revision's own validator.
			ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				expr(LabelRev, metav1.LabelSelectorOpDoesNotExist),
			}},
		}},
	}
}

// WebhookService returns the namespace/name of the Service a client config
// calls, or "" for a URL.
func WebhookService(cc admv1.WebhookClientConfig) (ns, name string) {
	if cc.Service == nil {
		return "", ""
	}
	return cc.Service.Namespace, cc.Service.Name
}

// RevisionFromServiceName guesses the revision behind an istiod Service name.
func RevisionFromServiceName(name string) (string, bool) {
	switch {
	case name == "istiod":
		return DefaultRevision, true
	case strings.HasPrefix(name, "istiod-revision-tag-"):
		return "", false
	case strings.HasPrefix(name, "istiod-"):
		return strings.TrimPrefix(name, "istiod-"), true
	}
	return "", false
}
