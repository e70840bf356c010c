package ambient

import (
	"context"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
)

// ReadOptions configures Read.
type ReadOptions struct {
	// Namespace of the node agents; default istio-system.
	Namespace string
}

// Status is the ambient data plane found in a cluster.
type Status struct {
	// Agents are the ztunnel and istio-cni DaemonSets, sorted by component
	// and name.
	Agents []Agent
	// AmbientNamespaces are the namespaces labelled
	// istio.io/dataplane-mode=ambient, sorted.
	AmbientNamespaces []string
}

// Agent returns the DaemonSets of one component.
func (s *Status) Agent(c Component) []Agent {
	var out []Agent
	for _, a := range s.Agents {
		if a.Component == c {
			out = append(out, a)
		}
	}
	return out
}

// Agent is one node agent DaemonSet.
type Agent struct {
	Component Component
	Namespace string
	Name      string
	// Release is the Helm release that owns it ("" when Helm does not).
	Release string
	// Revision is the control-plane revision it serves (istio.io/rev on its
	// pod template; "" for the default revision).
	Revision string
	// Version is the Istio version in its image tag, "" when the tag is not
	// a version.
	Version        string
	UpdateStrategy appsv1.DaemonSetUpdateStrategyType
	// CurrentHash is the controller-revision-hash of its newest template,
	// "" before the DaemonSet controller has recorded one.
	CurrentHash string
	// Nodes are its pods, one per node, sorted by node.
	Nodes []NodeAgent
}

// Ref names the DaemonSet.
func (a *Agent) Ref() revkit.ObjectRef {
	return revkit.ObjectRef{Kind: "DaemonSet", Namespace: a.Namespace, Name: a.Name}
}

// Pending lists the nodes whose pod is not on the current template or not
// Ready.
func (a *Agent) Pending() []NodeAgent {
	var out []NodeAgent
	for _, n := range a.Nodes {
		if !n.Current || !n.Ready {
			out = append(out, n)
		}
	}
	return out
}

// NodeAgent is an agent's pod on one node.
type NodeAgent struct {
	Node string
	Pod  string
	// Version is the Istio version of the pod's image.
	Version string
	Ready   bool
	// Current reports whether the pod runs the DaemonSet's newest template.
	Current bool
}

// Read returns the node agents in the namespace and the namespaces in
// ambient mode. It only reads.
func Read(ctx context.Context, kube kubernetes.Interface, opts ReadOptions) (*Status, error) {
	ns := revkit.ControlPlaneNamespace(opts.Namespace)
	const op = "ambient.Read"
	dss, err := kube.AppsV1().DaemonSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "DaemonSet", Namespace: ns}, Err: err}
	}
	st := &Status{}
	for i := range dss.Items {
		c, ok := componentOf(&dss.Items[i])
		if !ok {
			continue
		}
		a, err := readAgent(ctx, kube, op, c, &dss.Items[i])
		if err != nil {
			return nil, err
		}
		st.Agents = append(st.Agents, *a)
	}
	sort.Slice(st.Agents, func(i, j int) bool {
		if st.Agents[i].Component != st.Agents[j].Component {
			return st.Agents[i].Component > st.Agents[j].Component // ztunnel first
		}
		return st.Agents[i].Name < st.Agents[j].Name
	})
	nss, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{
		LabelSelector: labels.Set{mesh.LabelDataplaneMode: "ambient"}.String()})
	if err != nil {
		return nil, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "Namespace"}, Err: err}
	}
	for _, n := range nss.Items {
		st.AmbientNamespaces = append(st.AmbientNamespaces, n.Name)
	}
	sort.Strings(st.AmbientNamespaces)
	return st, nil
}

// componentOf tells a node agent's DaemonSet by the pod labels its chart
// selects on.
func componentOf(ds *appsv1.DaemonSet) (Component, bool) {
	if ds.Spec.Selector == nil {
		return "", false
	}
	sel := ds.Spec.Selector.MatchLabels
	switch {
	case sel["app"] == "ztunnel":
		return Ztunnel, true
	case sel["k8s-app"] == "istio-cni-node":
		return CNI, true
	}
	return "", false
}

func readAgent(ctx context.Context, kube kubernetes.Interface, op string, c Component, ds *appsv1.DaemonSet) (*Agent, error) {
	a := &Agent{
		Component:      c,
		Namespace:      ds.Namespace,
		Name:           ds.Name,
		Release:        helmRelease(ds.Labels, ds.Annotations),
		UpdateStrategy: ds.Spec.UpdateStrategy.Type,
	}
	// The charts put the revision on the pod template (ztunnel) or only on
	// the DaemonSet and the objects beside it (istio-cni).
	for _, m := range []map[string]string{ds.Spec.Template.Annotations, ds.Spec.Template.Labels, ds.Labels, ds.Annotations} {
		if r := m[mesh.LabelRev]; r != "" && a.Revision == "" {
			a.Revision = r
		}
	}
	if cs := ds.Spec.Template.Spec.Containers; len(cs) > 0 {
		a.Version = imageVersion(cs[0].Image)
	}
	hash, err := currentHash(ctx, kube, ds)
	if err != nil {
		return nil, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "ControllerRevision", Namespace: ds.Namespace}, Err: err}
	}
	a.CurrentHash = hash
	pods, err := agentPods(ctx, kube, ds, "")
	if err != nil {
		return nil, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "Pod", Namespace: ds.Namespace}, Err: err}
	}
	for i := range pods {
		a.Nodes = append(a.Nodes, nodeAgent(&pods[i], hash))
	}
	sort.Slice(a.Nodes, func(i, j int) bool { return a.Nodes[i].Node < a.Nodes[j].Node })
	return a, nil
}

func nodeAgent(p *corev1.Pod, hash string) NodeAgent {
	n := NodeAgent{Node: p.Spec.NodeName, Pod: p.Name, Ready: kubeutil.PodReady(p),
		Current: hash != "" && p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == hash}
	if len(p.Spec.Containers) > 0 {
		n.Version = imageVersion(p.Spec.Containers[0].Image)
	}
	return n
}

// helmRelease is the release Helm recorded on an object it manages.
func helmRelease(lbls, annos map[string]string) string {
	if lbls["app.kubernetes.io/managed-by"] != "Helm" {
		return ""
	}
	return annos["meta.helm.sh/release-name"]
}

// currentHash is the controller-revision-hash of the DaemonSet's newest
// ControllerRevision: the template its pods should run.
func currentHash(ctx context.Context, kube kubernetes.Interface, ds *appsv1.DaemonSet) (string, error) {
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return "", err
	}
	crs, err := kube.AppsV1().ControllerRevisions(ds.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return "", err
	}
	var newest *appsv1.ControllerRevision
	for i := range crs.Items {
		cr := &crs.Items[i]
		if !metav1.IsControlledBy(cr, ds) {
			continue
		}
		if newest == nil || cr.Revision > newest.Revision {
			newest = cr
		}
	}
	if newest == nil {
		return "", nil
	}
	return newest.Labels[appsv1.DefaultDaemonSetUniqueLabelKey], nil
}

// agentPods lists the DaemonSet's live pods, on one node when node is set.
func agentPods(ctx context.Context, kube kubernetes.Interface, ds *appsv1.DaemonSet, node string) ([]corev1.Pod, error) {
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return nil, err
	}
	lo := metav1.ListOptions{LabelSelector: sel.String()}
	if node != "" {
		lo.FieldSelector = "spec.nodeName=" + node
	}
	pods, err := kubeutil.ListPods(ctx, kube, ds.Namespace, lo)
	if err != nil {
		return nil, err
	}
	out := pods[:0]
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if node != "" && p.Spec.NodeName != node {
			continue // a fake client ignores field selectors
		}
		if !metav1.IsControlledBy(&p, ds) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}
