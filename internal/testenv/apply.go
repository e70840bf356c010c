package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// ObjectRef names one object the environment applied.
type ObjectRef struct {
	Group, Version, Kind string
	Namespace, Name      string
}

func (r ObjectRef) String() string {
	k := r.Kind
	if r.Group != "" {
		k += "." + r.Group
	}
	if r.Namespace != "" {
		return k + " " + r.Namespace + "/" + r.Name
	}
	return k + " " + r.Name
}

// FieldManager is the server-side apply field manager of the environment.
const FieldManager = "revkit-testenv"

// applyOrder puts what others depend on first and the webhooks last.
var applyOrder = map[string]int{
	"Namespace":                      0,
	"CustomResourceDefinition":       1,
	"ServiceAccount":                 2,
	"ConfigMap":                      3,
	"Secret":                         3,
	"ClusterRole":                    4,
	"ClusterRoleBinding":             5,
	"Role":                           4,
	"RoleBinding":                    5,
	"Service":                        6,
	"MutatingWebhookConfiguration":   9,
	"ValidatingWebhookConfiguration": 9,
}

// DecodeYAML splits a multi-document YAML (or JSON) stream into objects,
// skipping empty documents.
func DecodeYAML(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	return objs, nil
}

// Apply server-side applies every object in a multi-document YAML stream
// (force, field manager FieldManager), namespaced objects without a namespace
// into defaultNamespace, and returns what it applied.
func (e *Env) Apply(ctx context.Context, data []byte, defaultNamespace string) ([]ObjectRef, error) {
	objs, err := DecodeYAML(data)
	if err != nil {
		return nil, err
	}
	return e.ApplyObjects(ctx, objs, defaultNamespace)
}

// ApplyObjects is Apply for decoded objects.
func (e *Env) ApplyObjects(ctx context.Context, objs []*unstructured.Unstructured, defaultNamespace string) ([]ObjectRef, error) {
	rank := func(o *unstructured.Unstructured) int {
		if r, ok := applyOrder[o.GetKind()]; ok {
			return r
		}
		return 7
	}
	sort.SliceStable(objs, func(i, j int) bool { return rank(objs[i]) < rank(objs[j]) })
	refs := make([]ObjectRef, 0, len(objs))
	for _, o := range objs {
		ref, err := e.applyOne(ctx, o, defaultNamespace)
		if err != nil {
			return refs, err
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

func (e *Env) applyOne(ctx context.Context, o *unstructured.Unstructured, defaultNamespace string) (ObjectRef, error) {
	gvk := o.GroupVersionKind()
	mapping, err := e.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		// A CRD applied a moment ago: rediscover.
		e.mapper.Reset()
		mapping, err = e.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return ObjectRef{}, fmt.Errorf("mapping %s: %w", gvk, err)
	}
	ns := o.GetNamespace()
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		if ns == "" {
			ns = defaultNamespace
			o.SetNamespace(ns)
		}
	} else {
		ns = ""
		o.SetNamespace("")
	}
	ref := ObjectRef{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: ns, Name: o.GetName()}
	_, err = e.Dynamic.Resource(mapping.Resource).Namespace(ns).Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err != nil {
		return ref, fmt.Errorf("applying %s: %w", ref, err)
	}
	return ref, nil
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// WaitCRDsEstablished waits until each CustomResourceDefinition among refs
// is served (condition Established), e.g. after CRDs were installed by
// other means than Apply, and resets the environment's REST mapper so
// that Apply knows their kinds.
func (e *Env) WaitCRDsEstablished(ctx context.Context, refs []ObjectRef) error {
	for _, r := range refs {
		if r.Kind != "CustomResourceDefinition" {
			continue
		}
		err := poll(ctx, "CRD "+r.Name+" Established", 50*time.Millisecond, nil, func(ctx context.Context) error {
			u, err := e.Dynamic.Resource(crdGVR).Get(ctx, r.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return nil
				}
			}
			return errors.New("not Established")
		})
		if err != nil {
			return err
		}
	}
	e.mapper.Reset()
	return nil
}
