package verify

import (
	"errors"

	"github.com/revkit/revkit"
)

// validateNamespaceName refuses a name that cannot be a namespace.
func validateNamespaceName(field, name string) error {
	if name == "" {
		return &revkit.InvalidInputError{Field: field, Reason: "must not be empty"}
	}
	return revkit.ValidateNamespace(field, name)
}

// validateControlPlaneNamespace accepts "" (the default) or a namespace
// name.
func validateControlPlaneNamespace(ns string) error {
	return revkit.ValidateNamespace("ControlPlaneNamespace", ns)
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
