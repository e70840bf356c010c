package upgrade

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
)

// serverDryRun sends every write the plan's operations make to the
// in-memory copy to the cluster as well, as a server-side dry run
// (dryRun=All): the apiserver validates it, runs admission (webhooks
// included) and authorization, and persists nothing. A write the cluster
// refuses fails in the copy with the cluster's error, so the preview fails
// where the real run would.
//
// A write that depends on an earlier step of the plan — an object the plan
// created or deleted in the copy only — cannot be checked on its own: the
// cluster's answers NotFound, AlreadyExists and Conflict are therefore not
// taken as refusals, and the write is counted as unchecked.
type serverDryRun struct {
	ctx  context.Context
	kube kubernetes.Interface
	// off is set while Preview itself writes to the copy (settle).
	off bool
	// checked and unchecked count the writes of the running step.
	checked, unchecked int
}

// install makes the copy forward its writes.
func (s *serverDryRun) install(c *fake.Clientset) {
	c.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if s.off || a.GetSubresource() != "" {
			return false, nil, nil
		}
		req, err := s.request(a)
		if req == nil && err == nil {
			return false, nil, nil
		}
		if err == nil {
			err = req.Do(s.ctx).Error()
		}
		switch {
		case err == nil:
			s.checked++
			return false, nil, nil
		case apierrors.IsNotFound(err) || apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err):
			s.unchecked++
			return false, nil, nil
		}
		return true, nil, err
	})
}

// take returns and resets the counts of the step that ran.
func (s *serverDryRun) take() (checked, unchecked int) {
	checked, unchecked = s.checked, s.unchecked
	s.checked, s.unchecked = 0, 0
	return checked, unchecked
}

// summary is the line a step's detail gets.
func (s *serverDryRun) summary() string {
	checked, unchecked := s.take()
	if checked+unchecked == 0 {
		return ""
	}
	out := fmt.Sprintf("server dry run: %d accepted", checked)
	if unchecked > 0 {
		out += fmt.Sprintf(", %d depend on earlier steps", unchecked)
	}
	return out
}

// request builds the dry-run request for a write action, through the REST
// client of the action's API group.
// A nil request and error means the write is not one to send.
func (s *serverDryRun) request(a k8stesting.Action) (*rest.Request, error) {
	gvr := a.GetResource()
	rc := s.restClient(gvr.Group, gvr.Version)
	if rc == nil {
		return nil, nil
	}
	var req *rest.Request
	// Create and update actions have the same interface: tell them apart
	// by verb.
	switch a.GetVerb() {
	case "create":
		ca, ok := a.(k8stesting.CreateAction)
		if !ok {
			return nil, nil
		}
		obj := ca.GetObject().DeepCopyObject()
		if m, ok := obj.(metav1.Object); ok {
			m.SetResourceVersion("") // the apiserver refuses a create with one
		}
		req = rc.Post().Body(obj)
	case "update":
		ua, ok := a.(k8stesting.UpdateAction)
		if !ok {
			return nil, nil
		}
		obj := ua.GetObject().DeepCopyObject()
		m, ok := obj.(metav1.Object)
		if !ok {
			return nil, nil
		}
		// The copy's resourceVersions are not the cluster's, and some kinds
		// (webhook configurations) refuse an unconditional update: update
		// the cluster's current version.
		rv, err := s.liveVersion(rc, a.GetNamespace(), gvr.Resource, m.GetName())
		if err != nil {
			return nil, err
		}
		m.SetResourceVersion(rv)
		req = rc.Put().Name(m.GetName()).Body(obj)
	case "patch":
		pa, ok := a.(k8stesting.PatchAction)
		if !ok {
			return nil, nil
		}
		req = rc.Patch(pa.GetPatchType()).Name(pa.GetName()).Body(pa.GetPatch())
	case "delete":
		da, ok := a.(k8stesting.DeleteAction)
		if !ok {
			return nil, nil
		}
		req = rc.Delete().Name(da.GetName())
	default:
		return nil, nil
	}
	return req.NamespaceIfScoped(a.GetNamespace(), a.GetNamespace() != "").Resource(gvr.Resource).Param("dryRun", metav1.DryRunAll), nil
}

// liveVersion reads the cluster's resourceVersion of an object.
func (s *serverDryRun) liveVersion(rc rest.Interface, ns, resource, name string) (string, error) {
	obj, err := rc.Get().NamespaceIfScoped(ns, ns != "").Resource(resource).Name(name).Do(s.ctx).Get()
	if err != nil {
		return "", err
	}
	m, err := apimeta.Accessor(obj)
	if err != nil {
		return "", err
	}
	return m.GetResourceVersion(), nil
}

// restClient is the cluster's REST client for an API group, or nil for a
// group the library does not write to (or a cluster without REST clients,
// as a fake clientset).
func (s *serverDryRun) restClient(group, version string) (rc rest.Interface) {
	defer func() {
		// A typed client's RESTClient of a fake clientset is a nil pointer
		// in an interface.
		if r, ok := rc.(*rest.RESTClient); ok && r == nil {
			rc = nil
		}
	}()
	switch group + "/" + version {
	case "/v1":
		return s.kube.CoreV1().RESTClient()
	case "apps/v1":
		return s.kube.AppsV1().RESTClient()
	case "admissionregistration.k8s.io/v1":
		return s.kube.AdmissionregistrationV1().RESTClient()
	case "rbac.authorization.k8s.io/v1":
		return s.kube.RbacV1().RESTClient()
	case "autoscaling/v2":
		return s.kube.AutoscalingV2().RESTClient()
	case "policy/v1":
		return s.kube.PolicyV1().RESTClient()
	}
	return nil
}
