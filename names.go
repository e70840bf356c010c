package revkit

import (
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Longest names that still give valid object names: the Service
// "istiod-<revision>" and "istiod-revision-tag-<tag>" must be DNS-1035 labels
// of at most 63 characters.
const (
	MaxRevisionLength = validation.DNS1035LabelMaxLength - len("istiod-")
	MaxTagLength      = validation.DNS1035LabelMaxLength - len("istiod-revision-tag-")
)

// DefaultTag is the revision tag with extra meaning: it also injects
// istio-injection=enabled namespaces and owns the default validating webhook.
const DefaultTag = "default"

// ValidateRevision checks that name can be an Istio revision.
func ValidateRevision(name string) error {
	return validateName("revision", name, MaxRevisionLength)
}

// ValidateTag checks that name can be a revision tag.
func ValidateTag(name string) error {
	return validateName("tag", name, MaxTagLength)
}

func validateName(field, name string, max int) error {
	switch {
	case name == "":
		return &InvalidInputError{Field: field, Reason: "must not be empty"}
	case strings.Contains(name, "."):
		return &InvalidInputError{Field: field, Value: name,
			Reason: `must not contain "." (write 1-24-0, not 1.24.0)`}
	case len(name) > max:
		return &InvalidInputError{Field: field, Value: name,
			Reason: "must be at most " + itoa(max) + " characters"}
	}
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return &InvalidInputError{Field: field, Value: name, Reason: strings.Join(errs, "; ")}
	}
	return nil
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// DefaultControlPlaneNamespace is used when an option leaves the control-plane
// namespace empty.
const DefaultControlPlaneNamespace = "istio-system"

// ControlPlaneNamespace returns ns, or the default when ns is empty.
func ControlPlaneNamespace(ns string) string {
	if ns == "" {
		return DefaultControlPlaneNamespace
	}
	return ns
}

// ValidateNamespace checks that name can be a namespace, reporting it
// under field. The empty name is accepted: options use it for "the
// default".
func ValidateNamespace(field, name string) error {
	if name == "" {
		return nil
	}
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return &InvalidInputError{Field: field, Value: name, Reason: strings.Join(errs, "; ")}
	}
	return nil
}
