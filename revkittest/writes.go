package revkittest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	k8stesting "k8s.io/client-go/testing"

	"github.com/revkit/revkit/internal/mesh"
)

// Faker is what a fake clientset offers for inspection and fault
// injection; *fake.Clientset from k8s.io/client-go/kubernetes/fake has it.
type Faker interface {
	Actions() []k8stesting.Action
	ClearActions()
	PrependReactor(verb, resource string, reaction k8stesting.ReactionFunc)
}

// Writes lists the writes sent to the fake, in order, one string each:
// "verb resource name", with "namespace/" before the name of namespaced
// objects and " (dry-run)" after a write sent with dryRun=All. Reads are
// left out, as are writes to subresources.
func Writes(f Faker) []string {
	var out []string
	for _, a := range f.Actions() {
		if s, ok := describeWrite(a); ok {
			out = append(out, s)
		}
	}
	return out
}

func describeWrite(a k8stesting.Action) (string, bool) {
	if a.GetSubresource() != "" {
		return "", false
	}
	var name string
	var dry []string
	switch act := a.(type) {
	case k8stesting.CreateActionImpl:
		if o, ok := act.GetObject().(metav1.Object); ok {
			name = o.GetName()
		}
		dry = act.CreateOptions.DryRun
	case k8stesting.UpdateActionImpl:
		if o, ok := act.GetObject().(metav1.Object); ok {
			name = o.GetName()
		}
		dry = act.UpdateOptions.DryRun
	case k8stesting.PatchActionImpl:
		name, dry = act.GetName(), act.PatchOptions.DryRun
	case k8stesting.DeleteActionImpl:
		name, dry = act.GetName(), act.DeleteOptions.DryRun
	case k8stesting.DeleteCollectionActionImpl:
		dry = act.DeleteOptions.DryRun
	default:
		return "", false
	}
	s := fmt.Sprintf("%s %s %s", a.GetVerb(), a.GetResource().Resource, name)
	if ns := a.GetNamespace(); ns != "" {
		s = fmt.Sprintf("%s %s %s/%s", a.GetVerb(), a.GetResource().Resource, ns, name)
	}
	if len(dry) > 0 {
		s += " (dry-run)"
	}
	return s, true
}

// Patches returns the bodies of the patches sent to the fake, in order.
func Patches(f Faker) []string {
	var out []string
	for _, a := range f.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok {
			out = append(out, string(p.GetPatch()))
		}
	}
	return out
}

// NoWrites fails the test if anything was written to the fake: what a dry
// run or a refused call must leave behind.
func NoWrites(t testing.TB, f Faker) {
	t.Helper()
	if w := Writes(f); len(w) > 0 {
		t.Errorf("expected no writes, got %d: %v", len(w), w)
	}
}

// FailNth makes the nth (1-based) call of verb on resource fail with err;
// the calls before and after it go through. Use "*" for any verb or
// resource. It returns a function reporting how many matching calls were
// seen.
func FailNth(f Faker, verb, resource string, n int, err error) (calls func() int) {
	var mu sync.Mutex
	seen := 0
	f.PrependReactor(verb, resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		seen++
		if seen == n {
			return true, nil, err
		}
		return false, nil, nil
	})
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

// FailAlways makes every call of verb on resource fail with err.
func FailAlways(f Faker, verb, resource string, err error) {
	f.PrependReactor(verb, resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, err
	})
}

// NamespaceInjection returns, per namespace with an injection label, the
// label that selects its injector: "istio.io/rev=<value>" or
// "istio-injection=<value>" (which wins when both are set).
func NamespaceInjection(ctx context.Context, kube kubernetes.Interface) (map[string]string, error) {
	list, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, ns := range list.Items {
		if v, ok := ns.Labels[mesh.LabelInjection]; ok {
			out[ns.Name] = mesh.LabelInjection + "=" + v
		} else if v, ok := ns.Labels[mesh.LabelRev]; ok {
			out[ns.Name] = mesh.LabelRev + "=" + v
		}
	}
	return out, nil
}

// Restarted lists the workloads ("Kind/namespace/name", sorted) whose pod
// template carries the rollout-restart annotation.
func Restarted(ctx context.Context, kube kubernetes.Interface) ([]string, error) {
	var out []string
	deps, err := kube.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, d := range deps.Items {
		if _, ok := d.Spec.Template.Annotations[mesh.RestartedAtAnnotation]; ok {
			out = append(out, "Deployment/"+d.Namespace+"/"+d.Name)
		}
	}
	sts, err := kube.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, s := range sts.Items {
		if _, ok := s.Spec.Template.Annotations[mesh.RestartedAtAnnotation]; ok {
			out = append(out, "StatefulSet/"+s.Namespace+"/"+s.Name)
		}
	}
	dss, err := kube.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, d := range dss.Items {
		if _, ok := d.Spec.Template.Annotations[mesh.RestartedAtAnnotation]; ok {
			out = append(out, "DaemonSet/"+d.Namespace+"/"+d.Name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// MeshState is a cluster's mesh, object class by object class, in a form
// tests compare with assert.Equal: before and after a plan, or a simulated
// cluster against a real one.
type MeshState struct {
	// Labels are the injection labels of the namespaces read, as
	// NamespaceInjection reports them ("" for none).
	Labels map[string]string
	// Tags maps each revision tag to its revision.
	Tags map[string]string
	// Mutating and Validating name Istio's webhook configurations (those
	// with an injection or a validation webhook), sorted.
	Mutating, Validating []string
	// Injects lists, per namespace, the revisions whose injectors the
	// apiserver would call for a new plain pod (none: nil).
	Injects map[string][]string
	// Pods counts each namespace's running pods by the revision of their
	// sidecar ("" for none).
	Pods map[string]map[string]int
}

// ReadMesh reads the MeshState of the namespaces nss, with the injection
// model revkit's operations use.
func ReadMesh(ctx context.Context, kube kubernetes.Interface, nss ...string) (MeshState, error) {
	st := MeshState{Labels: map[string]string{}, Tags: map[string]string{}, Injects: map[string][]string{}, Pods: map[string]map[string]int{}}
	labels, err := NamespaceInjection(ctx, kube)
	if err != nil {
		return st, err
	}
	model, err := mesh.Load(ctx, kube, "")
	if err != nil {
		return st, err
	}
	st.Tags = model.Tags()
	for _, inj := range model.Injectors {
		st.Mutating = append(st.Mutating, inj.Name)
	}
	for _, v := range model.Validators {
		st.Validating = append(st.Validating, v.Name)
	}
	sort.Strings(st.Mutating)
	sort.Strings(st.Validating)
	for _, name := range nss {
		st.Labels[name] = labels[name]
		ns, err := kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return st, err
		}
		if revs := model.NamespaceRevisions(ns); len(revs) > 0 {
			st.Injects[name] = revs
		} else {
			st.Injects[name] = nil
		}
		pods, err := kube.CoreV1().Pods(name).List(ctx, metav1.ListOptions{})
		if err != nil {
			return st, err
		}
		st.Pods[name] = map[string]int{}
		for i := range pods.Items {
			if p := &pods.Items[i]; mesh.PodActive(p) {
				rev, _ := mesh.PodRevision(p)
				st.Pods[name][rev]++
			}
		}
	}
	return st, nil
}
