package upgrade

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/revkit/revkit"
)

// Plan is an ordered list of steps plus the steps to run when one of them
// fails. It is plain data: build it, print it for review, then Execute it.
type Plan struct {
	// Name labels the plan in its printout and report.
	Name string
	// Steps run in order; the first failure stops the plan.
	Steps []Step
	// OnFailure run, in order and all of them, after a step failed.
	OnFailure []Step
}

// DuplicateStepError refuses a plan in which two steps (on-failure steps
// included) share a name: reports and events could not tell them apart.
// Rename one with Named.
type DuplicateStepError struct {
	Name string
}

func (e *DuplicateStepError) Error() string {
	return fmt.Sprintf("invalid plan: step name %q used twice (rename one with upgrade.Named)", e.Name)
}

// Is matches revkit.ErrInvalidInput.
func (e *DuplicateStepError) Is(target error) bool { return target == revkit.ErrInvalidInput }

// InvalidStepError refuses a plan with a step whose options are invalid. It
// matches revkit.ErrInvalidInput and unwraps to the step's own error.
type InvalidStepError struct {
	// Step is the step's name; Index its position in Steps, or in OnFailure
	// when OnFailure is set.
	Step      string
	Index     int
	OnFailure bool
	Err       error
}

func (e *InvalidStepError) Error() string {
	list := "step"
	if e.OnFailure {
		list = "on-failure step"
	}
	if e.Step == "" {
		return fmt.Sprintf("invalid plan: %s %d: %v", list, e.Index+1, e.Err)
	}
	return fmt.Sprintf("invalid plan: %s %d %q: %v", list, e.Index+1, e.Step, e.Err)
}

func (e *InvalidStepError) Unwrap() error { return e.Err }

// Is matches revkit.ErrInvalidInput, whatever error the step's Validate
// returned.
func (e *InvalidStepError) Is(target error) bool { return target == revkit.ErrInvalidInput }

// Validate checks the plan without touching the cluster: every step is
// present and named, no name is used twice, and every step that implements
// Validator accepts its options. Errors match revkit.ErrInvalidInput.
func (p Plan) Validate() error {
	seen := map[string]bool{}
	check := func(steps []Step, onFailure bool) error {
		for i, s := range steps {
			bad := func(err error) error {
				name := ""
				if s != nil {
					name = s.Name()
				}
				return &InvalidStepError{Step: name, Index: i, OnFailure: onFailure, Err: err}
			}
			if s == nil {
				return bad(&revkit.InvalidInputError{Field: "step", Reason: "must not be nil"})
			}
			name := s.Name()
			if strings.TrimSpace(name) == "" {
				return bad(&revkit.InvalidInputError{Field: "name", Reason: "must not be empty"})
			}
			if strings.ContainsAny(name, "\n\r\t") {
				return bad(&revkit.InvalidInputError{Field: "name", Value: name, Reason: "must be one line without tabs"})
			}
			if seen[name] {
				return &DuplicateStepError{Name: name}
			}
			seen[name] = true
			if v, ok := s.(Validator); ok {
				if err := v.Validate(); err != nil {
					return bad(err)
				}
			}
		}
		return nil
	}
	if err := check(p.Steps, false); err != nil {
		return err
	}
	return check(p.OnFailure, true)
}

// String prints the plan for review, one numbered line per step with its
// description, then the on-failure steps:
//
//	Plan "canary":
//	  1. set-tag prod-canary→1-25-0   point tag prod-canary at revision 1-25-0
//	  2. migrate-namespaces           …
//	On failure:
//	  1. …
func (p Plan) String() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 3, ' ', 0)
	if p.Name == "" {
		fmt.Fprintln(tw, "Plan:")
	} else {
		fmt.Fprintf(tw, "Plan %q:\n", p.Name)
	}
	list := func(steps []Step) {
		if len(steps) == 0 {
			fmt.Fprintln(tw, "  (none)\t")
		}
		for i, s := range steps {
			name, desc := "<nil>", ""
			if s != nil {
				name, desc = s.Name(), s.Description()
			}
			fmt.Fprintf(tw, "  %d. %s\t%s\n", i+1, name, desc)
		}
	}
	list(p.Steps)
	// The tab keeps both lists in one block of aligned columns.
	fmt.Fprintln(tw, "On failure:\t")
	list(p.OnFailure)
	tw.Flush()
	return trimLines(b.String())
}

// trimLines drops the padding tabwriter leaves after a last empty cell.
func trimLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}
