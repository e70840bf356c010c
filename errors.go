package revkit

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Every typed error below matches one of them with
// errors.Is.
var (
	// ErrInvalidInput: an option or name is malformed; nothing was sent.
	ErrInvalidInput = errors.New("invalid input")
	// ErrNotFound: a named revision, tag or namespace does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInUse: a revision or tag still has users.
	ErrInUse = errors.New("in use")
	// ErrExists: the object exists already and may not be changed without
	// an explicit overwrite.
	ErrExists = errors.New("already exists")
	// ErrOverlap: more than one injector would inject the same pod.
	ErrOverlap = errors.New("overlapping sidecar injectors")
	// ErrNotImplemented: the operation is not available yet.
	ErrNotImplemented = errors.New("not implemented")
	// ErrVerificationFailed: a verification found the cluster not in the
	// expected state.
	ErrVerificationFailed = errors.New("verification failed")
	// ErrVersionSkew: versions outside Istio's support policy — Kubernetes
	// too old or too new for the Istio version, an upgrade that jumps too
	// far, a proxy ahead of or too far behind its control plane.
	ErrVersionSkew = errors.New("unsupported version skew")
)

// InvalidInputError reports a malformed option.
type InvalidInputError struct {
	Field  string
	Value  string
	Reason string
}

func (e *InvalidInputError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("invalid %s %q: %s", e.Field, e.Value, e.Reason)
}

func (e *InvalidInputError) Is(target error) bool { return target == ErrInvalidInput }

// NotFoundError reports that a named object of the mesh does not exist.
type NotFoundError struct {
	// Kind is "revision", "tag", "revision or tag", "namespace" and so on.
	Kind string
	Name string
}

func (e *NotFoundError) Error() string { return fmt.Sprintf("%s %q not found", e.Kind, e.Name) }

func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// ExistsError reports an object that exists and would be changed without an
// explicit overwrite, or a name already taken by something else.
type ExistsError struct {
	Kind   string
	Name   string
	Detail string
}

func (e *ExistsError) Error() string {
	return fmt.Sprintf("%s %q already exists: %s", e.Kind, e.Name, e.Detail)
}

func (e *ExistsError) Is(target error) bool { return target == ErrExists }

// Usage lists who uses a revision or a tag.
type Usage struct {
	// Namespaces whose new pods would be injected by it.
	Namespaces []string
	// Tags that point to it (revisions only).
	Tags []string
	// Pods ("namespace/name") running a sidecar of it (revisions only).
	Pods []string
}

// InUse reports whether anything uses it.
func (u Usage) InUse() bool { return len(u.Namespaces)+len(u.Tags)+len(u.Pods) > 0 }

func (u Usage) String() string {
	var parts []string
	add := func(what string, list []string) {
		if len(list) == 0 {
			return
		}
		shown := list
		if len(shown) > 5 {
			shown = shown[:5]
		}
		s := fmt.Sprintf("%d %s (%s", len(list), what, strings.Join(shown, ", "))
		if len(list) > len(shown) {
			s += ", …"
		}
		parts = append(parts, s+")")
	}
	add("namespaces", u.Namespaces)
	add("tags", u.Tags)
	add("pods", u.Pods)
	if len(parts) == 0 {
		return "no users"
	}
	return strings.Join(parts, ", ")
}

// InUseError refuses to remove a revision or tag that still has users.
type InUseError struct {
	Kind  string // "revision" or "tag"
	Name  string
	Usage Usage
}

func (e *InUseError) Error() string {
	return fmt.Sprintf("%s %q is in use by %s", e.Kind, e.Name, e.Usage)
}

func (e *InUseError) Is(target error) bool { return target == ErrInUse }

// OpError wraps a failed API call with what was being done.
type OpError struct {
	// Op is the operation, e.g. "tag.Set".
	Op string
	// Verb is the API verb: get, list, create, update, patch, delete.
	Verb   string
	Object ObjectRef
	Err    error
}

func (e *OpError) Error() string {
	return fmt.Sprintf("%s: %s %s: %v", e.Op, e.Verb, e.Object, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }

// Overlap is a namespace/pod label combination that two injector
// configurations would both inject (Istio's analyzer calls this IST0139).
type Overlap struct {
	// First and Second name the MutatingWebhookConfigurations,
	// FirstWebhook and SecondWebhook the webhooks inside them that match.
	First, Second               string
	FirstWebhook, SecondWebhook string
	// NamespaceLabels and PodLabels are an example that both match.
	NamespaceLabels map[string]string
	PodLabels       map[string]string
}

// String names both configurations and the example labels.
func (o Overlap) String() string {
	return fmt.Sprintf("%s and %s both inject a pod labelled %v in a namespace labelled %v",
		o.First, o.Second, o.PodLabels, o.NamespaceLabels)
}

// OverlapError refuses a change after which two injectors would inject the
// same pod (Istio's analyzer calls this IST0139). It names both webhook
// configurations and an example namespace and pod that both would match.
type OverlapError struct {
	// Subject is what was being added or changed, e.g. `tag "prod"`.
	Subject string
	Overlap
}

func (e *OverlapError) Error() string {
	return fmt.Sprintf("%s: webhook %s/%s would overlap with %s/%s (e.g. namespace labels %v, pod labels %v)",
		e.Subject, e.First, e.FirstWebhook, e.Second, e.SecondWebhook, e.NamespaceLabels, e.PodLabels)
}

func (e *OverlapError) Is(target error) bool { return target == ErrOverlap }

// ErrForbidden: the caller lacks a permission an operation needs.
var ErrForbidden = errors.New("forbidden")

// ForbiddenError names a missing permission, found before anything was
// changed (by a SelfSubjectAccessReview).
type ForbiddenError struct {
	Verb string
	// Group is the API group, "" for the core group.
	Group     string
	Resource  string
	Namespace string
}

func (e *ForbiddenError) Error() string {
	res := e.Resource
	if e.Group != "" {
		res += "." + e.Group
	}
	s := "forbidden: cannot " + e.Verb + " " + res
	if e.Namespace != "" {
		s += " in namespace " + e.Namespace
	}
	return s
}

func (e *ForbiddenError) Is(target error) bool { return target == ErrForbidden }

// ErrRolloutFailed: a workload's controller reports that its rollout has
// failed; waiting longer would not help.
var ErrRolloutFailed = errors.New("rollout failed")

// RolloutFailedError reports a workload whose rollout kstatus
// (sigs.k8s.io/cli-utils/pkg/kstatus/status) calls Failed, seen by a wait
// for the rollout: for a Deployment, the Progressing condition with reason
// ProgressDeadlineExceeded for the generation its controller has observed
// (the state `kubectl rollout status` fails on). StatefulSets and
// DaemonSets have no such condition and only time out. The wait returns it
// as soon as it sees it rather than running to its timeout.
type RolloutFailedError struct {
	// Kind ("Deployment"), Namespace and Name name the workload.
	Kind      string
	Namespace string
	Name      string
	// Condition is the type of the workload's status condition that
	// reports the failure ("Progressing"; "Stalled" when that is the one,
	// kstatus's own); Reason and Message are that condition's.
	Condition string
	Reason    string
	Message   string
}

func (e *RolloutFailedError) Error() string {
	s := fmt.Sprintf("rollout of %s failed: %s condition: %s", ObjectRef{Kind: e.Kind, Namespace: e.Namespace, Name: e.Name}, e.Condition, e.Reason)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

func (e *RolloutFailedError) Is(target error) bool { return target == ErrRolloutFailed }
