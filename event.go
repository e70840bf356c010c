package revkit

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Action says what an operation did (or, in a dry run, would do) to one
// object.
type Action string

const (
	ActionCreate    Action = "create"
	ActionUpdate    Action = "update"
	ActionDelete    Action = "delete"
	ActionUnchanged Action = "unchanged"
	ActionSkip      Action = "skip"
)

// Changed reports whether the action alters the cluster.
func (a Action) Changed() bool {
	return a == ActionCreate || a == ActionUpdate || a == ActionDelete
}

// ObjectRef names a Kubernetes object.
type ObjectRef struct {
	Kind      string
	Namespace string
	Name      string
}

func (o ObjectRef) String() string {
	if o.Namespace == "" {
		return o.Kind + "/" + o.Name
	}
	return o.Kind + "/" + o.Namespace + "/" + o.Name
}

// Change is one entry of an operation's result: an object and what happened
// to it.
type Change struct {
	Object ObjectRef
	Action Action
	// Reason explains skips and refusals; it may be empty.
	Reason string
}

func (c Change) String() string {
	s := fmt.Sprintf("%s %s", c.Action, c.Object)
	if c.Reason != "" {
		s += " (" + c.Reason + ")"
	}
	return s
}

// AnyChanged reports whether at least one change alters the cluster.
func AnyChanged(changes []Change) bool {
	for _, c := range changes {
		if c.Action.Changed() {
			return true
		}
	}
	return false
}

// EventKind tells the two kinds of event apart.
type EventKind string

const (
	// EventObject: an operation created, updated, deleted or left alone one
	// object (Object and Action say which and what).
	EventObject EventKind = "object"
	// EventStep: a plan step started, ended (Action is its outcome) or is
	// retried; Object is empty.
	EventStep EventKind = "step"
	// EventFleet: a fleet run started or ended a wave or a cluster's plan,
	// or passed a gate between waves (Action is the outcome).
	EventFleet EventKind = "fleet"
)

// Event is a progress report. Operations send one for every object they
// create, update, delete or leave alone (Kind EventObject); a plan sends
// one when a step starts, ends or is retried (Kind EventStep).
type Event struct {
	Kind EventKind
	Time time.Time
	// Operation is the package-qualified operation name, e.g. "tag.Set".
	Operation string
	// Step is the name of the plan step that ran the operation, when it ran
	// inside upgrade.Execute.
	Step string
	// Cluster names the cluster the event is about in a fleet run
	// (fleet.Run); empty otherwise.
	Cluster string
	Object  ObjectRef
	Action  Action
	DryRun  DryRun
	// Message is a short human-readable summary.
	Message string
}

// Common holds the settings every operation shares. Embed it in an options
// struct; its zero value writes for real and reports nowhere.
type Common struct {
	// DryRun selects how writes are made; see [DryRun].
	DryRun DryRun
	// OnEvent, when set, receives every progress event synchronously.
	OnEvent func(Event) `json:"-"`
	// Logger, when set, receives every progress event at debug level.
	Logger *slog.Logger `json:"-"`
}

// Emit delivers an event to the callback and the logger.
func (c Common) Emit(ctx context.Context, e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.DryRun = c.DryRun
	if c.OnEvent != nil {
		c.OnEvent(e)
	}
	if c.Logger != nil {
		c.Logger.DebugContext(ctx, e.Message,
			"operation", e.Operation, "step", e.Step, "cluster", e.Cluster, "object", e.Object.String(),
			"action", string(e.Action), "dryRun", e.DryRun.String())
	}
}
