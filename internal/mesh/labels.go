// Package mesh reads the Istio control plane's footprint in a cluster:
// injector webhooks, revisions, tags and injected pods. It decides which
// injector a namespace or pod falls to the same way the apiserver does, by
// evaluating the webhooks' selectors.
package mesh

import (
	"encoding/json"
	corev1 "k8s.io/api/core/v1"

	"istio.io/api/annotation"
	"istio.io/api/label"
)

// Labels and annotations Istio uses to select and record injection.
var (
	LabelRev           = label.IoIstioRev.Name
	LabelTag           = label.IoIstioTag.Name
	LabelSidecarInject = label.SidecarInject.Name
	AnnotationStatus   = annotation.SidecarStatus.Name
	// LabelDataplaneMode on a namespace or pod selects ambient mode
	// ("ambient"); on a pod, "none" opts it out.
	LabelDataplaneMode = label.IoIstioDataplaneMode.Name
	// AnnotationAmbientRedirection is set (to "enabled") by istio-cni on a
	// pod it enrolled in ambient mode.
	AnnotationAmbientRedirection = annotation.AmbientRedirection.Name
)

// Ambient reports whether a pod without a sidecar is in ambient mode —
// served by its node's ztunnel rather than by an injector: istio-cni
// enrolled it, or its namespace or itself asks for ambient mode and it did
// not opt out. A pod with a sidecar is never ambient (the sidecar wins).
func Ambient(nsLabels, podLabels, podAnnotations map[string]string) bool {
	if podAnnotations[AnnotationAmbientRedirection] == "enabled" {
		return true
	}
	switch podLabels[LabelDataplaneMode] {
	case "none":
		return false
	case "ambient":
		return true
	}
	return nsLabels[LabelDataplaneMode] == "ambient"
}

const (
	// LabelInjection is the legacy namespace label istio-injection=enabled.
	LabelInjection = "istio-injection"
	// LabelDeactivated is the key of the never-matching selector istioctl
	// writes into an injector it deactivates.
	LabelDeactivated = "istio.io/deactivated"
	// DeactivatedValue is that selector's value.
	DeactivatedValue = "never-match"
	// DefaultRevision is the revision name of a non-revisioned install.
	DefaultRevision = "default"
	// InjectorSuffix ends the name of every injection webhook.
	InjectorSuffix = "sidecar-injector.istio.io"
	// ValidatorSuffix ends the name of every Istio validation webhook.
	ValidatorSuffix = "validation.istio.io"
	// RestartedAtAnnotation is what kubectl rollout restart sets.
	RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"
	// RestartTargetAnnotation records, beside RestartedAtAnnotation, the
	// revision a restart by revkit moved the pods to, so that a rerun of a
	// plan tells its own restarts from another plan's (a rollback's).
	RestartTargetAnnotation = "revkit.io/restart-target"
)

// TagWebhookName is the name of a tag's MutatingWebhookConfiguration.
func TagWebhookName(tag string) string { return "istio-revision-tag-" + tag }

// TagServiceName is the name of a tag's Service.
func TagServiceName(tag string) string { return "istiod-revision-tag-" + tag }

// IstiodName is the name of a revision's Deployment and Service.
func IstiodName(rev string) string {
	if rev == DefaultRevision || rev == "" {
		return "istiod"
	}
	return "istiod-" + rev
}

// ClusterRoleNames are the names Istio's istiod chart gives the
// cluster-scoped RBAC objects (ClusterRoles and their ClusterRoleBindings)
// of revision rev installed in the control-plane namespace cp: the chart
// does not label them with istio.io/rev, so they are found by name.
func ClusterRoleNames(rev, cp string) []string {
	var out []string
	for _, base := range []string{"istiod-clusterrole", "istiod-gateway-controller", "istio-reader-clusterrole"} {
		out = append(out, base+"-"+rev+"-"+cp)
	}
	return out
}

// DefaultValidatorName is the validating webhook owned by the default tag.
const DefaultValidatorName = "istiod-default-validator"

// PodRevision returns the revision whose injector injected pod, and whether
// the pod carries a sidecar at all.
func PodRevision(pod *corev1.Pod) (rev string, injected bool) {
	raw, ok := pod.Annotations[AnnotationStatus]
	if !ok || raw == "" {
		return "", false
	}
	if rev := statusRevision(raw); rev != "" {
		return rev, true
	}
	// Old injectors wrote no revision: that is the default revision.
	return DefaultRevision, true
}

// PodActive reports whether pod counts as running: not finished and not
// being deleted.
func PodActive(pod *corev1.Pod) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	return pod.DeletionTimestamp == nil
}

// statusRevision returns the "revision" of a sidecar status annotation, or
// "" when the annotation is not a JSON object with a string revision.
func statusRevision(raw string) string {
	var st struct {
		Revision string `json:"revision"`
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return ""
	}
	return st.Revision
}

// InjectionDisabled reports whether a pod (or pod template) opts out of
// injection.
func InjectionDisabled(labels, annotations map[string]string) bool {
	if v, ok := labels[LabelSidecarInject]; ok {
		return v == "false"
	}
	return annotations[LabelSidecarInject] == "false"
}
