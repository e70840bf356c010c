package verify

import (
	"errors"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/revkit/revkit"
)

// validateNamespaceName refuses a name that cannot be a namespace.
func validateNamespaceName(field, name string) error {
	if name == "" {
		return &revkit.InvalidInputError{Field: field, Reason: "must not be empty"}
	}
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return &revkit.InvalidInputError{Field: field, Value: name, Reason: strings.Join(errs, "; ")}
	}
	return nil
}

// validateControlPlaneNamespace accepts "" (the default) or a namespace
// name.
func validateControlPlaneNamespace(ns string) error {
	if ns == "" {
		return nil
	}
	return validateNamespaceName("ControlPlaneNamespace", ns)
}

// validateTarget checks a revision (or tag) name, reporting it under field.
func validateTarget(field, name string) error {
	if err := revkit.ValidateRevision(name); err != nil {
		reason := err.Error()
		var iie *revkit.InvalidInputError
		if errors.As(err, &iie) {
			reason = iie.Reason
		}
		return &revkit.InvalidInputError{Field: field, Value: name, Reason: reason}
	}
	return nil
}

// validateNamespaces checks every entry of a namespace list.
func validateNamespaces(list []string) error {
	for _, ns := range list {
		if err := validateNamespaceName("Namespaces", ns); err != nil {
			return err
		}
	}
	return nil
}
