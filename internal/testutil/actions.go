// Package testutil holds assertions on fake clientsets shared by revkit's
// unit tests.
package testutil

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

// Faker is what the fake clientsets offer for inspection.
type Faker interface {
	Actions() []k8stesting.Action
	ClearActions()
	PrependReactor(verb, resource string, reaction k8stesting.ReactionFunc)
}

// Writes returns the write actions, one "verb resource name" (namespace
// prefixed for namespaced objects) each, in order. A dry-run write ends in
// " (dry-run)".
func Writes(f Faker) []string {
	var out []string
	for _, a := range f.Actions() {
		var name string
		var dry []string
		switch act := a.(type) {
		case k8stesting.CreateAction:
			if o, ok := act.GetObject().(metav1.Object); ok {
				name = o.GetName()
			}
			if c, ok := a.(k8stesting.CreateActionImpl); ok {
				dry = c.CreateOptions.DryRun
			}
		case k8stesting.UpdateAction:
			if o, ok := act.GetObject().(metav1.Object); ok {
				name = o.GetName()
			}
			if u, ok := a.(k8stesting.UpdateActionImpl); ok {
				dry = u.UpdateOptions.DryRun
			}
		case k8stesting.PatchAction:
			name = act.GetName()
			if p, ok := a.(k8stesting.PatchActionImpl); ok {
				dry = p.PatchOptions.DryRun
			}
		case k8stesting.DeleteAction:
			name = act.GetName()
			if d, ok := a.(k8stesting.DeleteActionImpl); ok {
				dry = d.DeleteOptions.DryRun
			}
		default:
			continue
		}
		if a.GetSubresource() != "" {
			continue
		}
		s := fmt.Sprintf("%s %s %s", a.GetVerb(), a.GetResource().Resource, name)
		if ns := a.GetNamespace(); ns != "" {
			s = fmt.Sprintf("%s %s %s/%s", a.GetVerb(), a.GetResource().Resource, ns, name)
		}
		if len(dry) > 0 {
			s += " (dry-run)"
		}
		out = append(out, s)
	}
	return out
}

// Patches returns the bodies of patch actions, in order.
func Patches(f Faker) []string {
	var out []string
	for _, a := range f.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok {
			out = append(out, string(p.GetPatch()))
		}
	}
	return out
}

// FailOnce makes the first verb on resource fail with err; later calls go
// through.
func FailOnce(f Faker, verb, resource string, err error) {
	done := false
	f.PrependReactor(verb, resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		if done {
			return false, nil, nil
		}
		done = true
		return true, nil, err
	})
}

// FailAlways makes every verb on resource fail with err.
func FailAlways(f Faker, verb, resource string, err error) {
	f.PrependReactor(verb, resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, err
	})
}
