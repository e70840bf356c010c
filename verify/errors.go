package verify

import (
	"errors"
	"fmt"
	"strings"

	"github.com/revkit/revkit"
)

// ProblemKind classifies one finding of a verification.
type ProblemKind string

const (
	// ProblemStraggler: a pod or proxy is not on the expected revision.
	ProblemStraggler ProblemKind = "straggler"
	// ProblemNotSynced: a proxy has not acknowledged the latest configuration.
	ProblemNotSynced ProblemKind = "not-synced"
	// ProblemNotConnected: a running pod carries a revision's sidecar, but
	// no istiod of that revision reports its proxy.
	ProblemNotConnected ProblemKind = "not-connected"
	// ProblemOverlap: two injectors would inject the same pod.
	ProblemOverlap ProblemKind = "overlap"
	// ProblemDanglingService: a webhook calls a Service that does not exist.
	ProblemDanglingService ProblemKind = "dangling-service"
	// ProblemMissingRevision: a webhook belongs to a revision that is not
	// installed.
	ProblemMissingRevision ProblemKind = "missing-revision"
	// ProblemVersion: the Kubernetes server is older than required.
	ProblemVersion ProblemKind = "version"
	// ProblemPermission: the caller lacks a permission the workflow needs.
	ProblemPermission ProblemKind = "permission"
)

// Problem is one finding that makes a report not OK.
type Problem struct {
	Kind ProblemKind
	// Object names what the finding is about: "namespace/pod", a proxy ID, a
	// webhook configuration.
	Object string
	// Detail says what is wrong, e.g. "on revision 1-23-0".
	Detail string
}

// String returns "<kind> <object>: <detail>".
func (p Problem) String() string {
	if p.Object == "" {
		return string(p.Kind) + ": " + p.Detail
	}
	return string(p.Kind) + " " + p.Object + ": " + p.Detail
}

// maxListed bounds how many problems an error message spells out; the
// VerificationError still carries all of them.
const maxListed = 10

// VerificationError is returned by the Err method of every report when the
// cluster is not in the expected state. It matches
// [revkit.ErrVerificationFailed], and also [revkit.ErrOverlap] when one of
// its problems is an injector overlap.
type VerificationError struct {
	// Check is the verification that failed, e.g. "verify.Pods".
	Check string
	// Problems lists every finding, in report order.
	Problems []Problem

	// causes are typed errors behind some problems, e.g. a
	// *revkit.OverlapError per overlap, for errors.As.
	causes []error
}

// Unwrap returns the typed errors behind the problems: a
// *revkit.OverlapError for every injector overlap, so that errors.As finds
// the same details the operations that refuse overlapping changes give.
func (e *VerificationError) Unwrap() []error { return e.causes }

// Error names the check and the first few problems.
func (e *VerificationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s: %d problem", e.Check, revkit.ErrVerificationFailed, len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteString("s")
	}
	for i, p := range e.Problems {
		if i == maxListed {
			fmt.Fprintf(&b, "; and %d more", len(e.Problems)-maxListed)
			break
		}
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Is matches revkit.ErrVerificationFailed, revkit.ErrOverlap when an
// overlap was found, revkit.ErrForbidden for a missing permission and
// revkit.ErrVersionSkew for versions outside Istio's support policy.
func (e *VerificationError) Is(target error) bool {
	switch target {
	case revkit.ErrVerificationFailed:
		return true
	case revkit.ErrForbidden:
		for _, p := range e.Problems {
			if p.Kind == ProblemPermission {
				return true
			}
		}
	case revkit.ErrOverlap:
		for _, p := range e.Problems {
			if p.Kind == ProblemOverlap {
				return true
			}
		}
	case revkit.ErrVersionSkew:
		for _, p := range e.Problems {
			if p.Kind == ProblemSkew {
				return true
			}
		}
	}
	return false
}

// verificationErr returns nil for no problems, so that reports can return
// it directly from Err.
func verificationErr(check string, problems []Problem, causes ...error) error {
	if len(problems) == 0 {
		return nil
	}
	return &VerificationError{Check: check, Problems: problems, causes: causes}
}

// ErrMalformedSyncz is matched by every error ParseSyncz returns.
var ErrMalformedSyncz = errors.New("malformed syncz response")

// SynczError reports a syncz document that cannot be parsed.
type SynczError struct {
	// Offset is where in the input (counting from 0) decoding stopped:
	// just past the offending byte or the value of the wrong type, or the
	// length of a truncated input.
	Offset int64
	// Err is the underlying decoding error: a *json.SyntaxError or a
	// *json.UnmarshalTypeError.
	Err error
}

// Error says where decoding stopped and why.
func (e *SynczError) Error() string {
	return fmt.Sprintf("%s at offset %d: %v", ErrMalformedSyncz, e.Offset, e.Err)
}

// Unwrap returns the decoding error.
func (e *SynczError) Unwrap() error { return e.Err }

// Is matches ErrMalformedSyncz.
func (e *SynczError) Is(target error) bool { return target == ErrMalformedSyncz }

// SourceError reports a syncz source that could not be read or parsed.
type SourceError struct {
	// Revision is the revision of the istiod behind the source.
	Revision string
	Err      error
}

// Error names the revision whose source failed.
func (e *SourceError) Error() string {
	return fmt.Sprintf("read syncz of revision %q: %v", e.Revision, e.Err)
}

// Unwrap returns the cause.
func (e *SourceError) Unwrap() error { return e.Err }

// HTTPStatusError reports a syncz endpoint that answered with a status other
// than 200 OK.
type HTTPStatusError struct {
	URL        string
	StatusCode int
	// Status is the status line, e.g. "503 Service Unavailable".
	Status string
	// Body is the start of the response body, for diagnosis.
	Body string
}

// Error gives the URL, the status and the start of the body.
func (e *HTTPStatusError) Error() string {
	s := fmt.Sprintf("GET %s: %s", e.URL, e.Status)
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}
