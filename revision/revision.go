package revision

import (
	"context"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
)

// Revision is one control-plane revision found in the cluster, with who
// uses it.
type Revision struct {
	Name string
	// Injector is its own MutatingWebhookConfiguration, "" if missing.
	Injector string
	// Deployments are its istiod Deployments.
	Deployments []string
	// Tags pointing to it, sorted.
	Tags []string
	// Namespaces whose new pods it would inject (by istio.io/rev on the
	// namespace, a tag pointing to it, or the default injectors), sorted.
	Namespaces []string
	// Pods ("namespace/name") running its sidecar, sorted. Finished and
	// terminating pods do not count.
	Pods []string
}

// Usage returns who uses the revision.
func (r *Revision) Usage() revkit.Usage {
	return revkit.Usage{Namespaces: r.Namespaces, Tags: r.Tags, Pods: r.Pods}
}

// InUse reports whether namespaces, tags or pods use the revision.
func (r *Revision) InUse() bool { return r.Usage().InUse() }

// ListOptions configures List and InUse.
type ListOptions struct {
	// ControlPlaneNamespace; default istio-system.
	ControlPlaneNamespace string
}

// List returns the revisions present in the cluster, sorted by name: those
// with an injector webhook or an istiod Deployment.
func List(ctx context.Context, kube kubernetes.Interface, opts ListOptions) ([]Revision, error) {
	st, err := load(ctx, kube, "revision.List", revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace))
	if err != nil {
		return nil, err
	}
	return st.revisions(), nil
}

// InUse returns who uses the revision rev. A revision that is not installed
// gives a *revkit.NotFoundError.
func InUse(ctx context.Context, kube kubernetes.Interface, rev string, opts ListOptions) (revkit.Usage, error) {
	if err := revkit.ValidateRevision(rev); err != nil {
		return revkit.Usage{}, err
	}
	revs, err := List(ctx, kube, opts)
	if err != nil {
		return revkit.Usage{}, err
	}
	for i := range revs {
		if revs[i].Name == rev {
			return revs[i].Usage(), nil
		}
	}
	return revkit.Usage{}, &revkit.NotFoundError{Kind: "revision", Name: rev}
}

// state is what List reads from the cluster.
type state struct {
	model      *mesh.Model
	namespaces []corev1.Namespace
	pods       []corev1.Pod
}

func load(ctx context.Context, kube kubernetes.Interface, op, cpNS string) (*state, error) {
	model, err := mesh.Load(ctx, kube, cpNS)
	if err != nil {
		return nil, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "control plane"}, Err: err}
	}
	nss, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "Namespace"}, Err: err}
	}
	pods, err := kubeutil.ListPods(ctx, kube, "", metav1.ListOptions{})
	if err != nil {
		return nil, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "Pod"}, Err: err}
	}
	return &state{model: model, namespaces: nss.Items, pods: pods}, nil
}

func (s *state) revisions() []Revision {
	byName := map[string]*Revision{}
	for _, name := range s.model.Revisions() {
		r := &Revision{Name: name, Deployments: s.model.Deployments[name]}
		if injs := s.model.RevisionInjectors(name); len(injs) > 0 {
			r.Injector = injs[0].Name
		}
		byName[name] = r
	}
	for t, rev := range s.model.Tags() {
		if r, ok := byName[rev]; ok {
			r.Tags = append(r.Tags, t)
		}
	}
	for i := range s.namespaces {
		for _, rev := range s.model.NamespaceRevisions(&s.namespaces[i]) {
			if r, ok := byName[rev]; ok {
				r.Namespaces = append(r.Namespaces, s.namespaces[i].Name)
			}
		}
	}
	for i := range s.pods {
		p := &s.pods[i]
		if !mesh.PodActive(p) {
			continue
		}
		rev, injected := mesh.PodRevision(p)
		if !injected {
			continue
		}
		if r, ok := byName[rev]; ok {
			r.Pods = append(r.Pods, p.Namespace+"/"+p.Name)
		}
	}
	out := make([]Revision, 0, len(byName))
	for _, r := range byName {
		sort.Strings(r.Tags)
		sort.Strings(r.Namespaces)
		sort.Strings(r.Pods)
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
