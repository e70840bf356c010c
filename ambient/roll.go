package ambient

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
)

// RollOptions configures Roll.
type RollOptions struct {
	revkit.Common
	// Namespace of the DaemonSet; default istio-system.
	Namespace string
	// Component selects the DaemonSet; default Ztunnel.
	Component Component
	// Name of the DaemonSet, needed only when the namespace holds more than
	// one of the component.
	Name string
	// Nodes, when set, are the only nodes rolled, in this order. By default
	// every node whose pod is not on the current template, sorted by name.
	Nodes []string
	// Cordon marks each node unschedulable while its agent is replaced, and
	// schedulable again after (unless it already was unschedulable).
	Cordon bool
	// Drain cordons each node and evicts its pods in ambient mode (through
	// the Eviction API, so PodDisruptionBudgets hold) before the agent is
	// replaced, so that long-lived connections move off the node first.
	Drain bool
	// NodeTimeout bounds each node: drain, replacement and check; default
	// 5 minutes.
	NodeTimeout time.Duration
	// Interval between reads while waiting; default 1 second.
	Interval time.Duration
	// Check, when set, runs after a node's new pod is Ready; an error stops
	// the roll at that node.
	Check func(ctx context.Context, node string) error `json:"-"`
}

func (o *RollOptions) defaults() error {
	if o.Component == "" {
		o.Component = Ztunnel
	}
	if err := o.Component.validate(); err != nil {
		return err
	}
	if err := o.DryRun.Validate(); err != nil {
		return err
	}
	if o.NodeTimeout < 0 {
		return &revkit.InvalidInputError{Field: "NodeTimeout", Value: o.NodeTimeout.String(), Reason: "must not be negative"}
	}
	if o.Interval < 0 {
		return &revkit.InvalidInputError{Field: "Interval", Value: o.Interval.String(), Reason: "must not be negative"}
	}
	seen := map[string]bool{}
	for _, n := range o.Nodes {
		if n == "" || seen[n] {
			return &revkit.InvalidInputError{Field: "Nodes", Value: n, Reason: "empty or repeated node name"}
		}
		seen[n] = true
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = 5 * time.Minute
	}
	if o.Interval == 0 {
		o.Interval = time.Second
	}
	return nil
}

// RollResult reports a Roll.
type RollResult struct {
	// Agent is the DaemonSet as it was read before the roll.
	Agent Agent
	// Nodes are the nodes rolled, in order, up to and including a failed one.
	Nodes []NodeResult
	// Changes are every write, in order.
	Changes []revkit.Change
}

// ObjectChanges lists what Roll changed; see revkit.Result.
func (r *RollResult) ObjectChanges() []revkit.Change { return r.Changes }

// NodeResult is what Roll did on one node.
type NodeResult struct {
	Node string
	// OldPod was replaced by NewPod ("" in a dry run or when the node was
	// already current).
	OldPod, NewPod string
	// Cordoned reports that Roll cordoned the node (and uncordoned it after,
	// unless the node failed).
	Cordoned bool
	// Evicted are the pods ("namespace/name") drained from the node.
	Evicted []string
	// Action is ActionUpdate for a replaced agent, ActionUnchanged for a
	// node that was already current and Ready.
	Action   revkit.Action
	Duration time.Duration
}

// NodeError reports a node whose agent did not come back (or whose drain
// or check failed). The node stays cordoned if Roll cordoned it; nodes
// after it are not touched.
type NodeError struct {
	Node string
	// Pending says what was being waited for, when the wait ran out.
	Pending string
	Err     error
}

func (e *NodeError) Error() string {
	s := "node " + e.Node
	if e.Pending != "" {
		s += ": " + e.Pending
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *NodeError) Unwrap() error { return e.Err }

// Roll replaces the pods of a node agent DaemonSet one node at a time. The
// DaemonSet must use updateStrategy OnDelete — set it through the chart's
// updateStrategy value in the same helm upgrade that changes the image —
// so that its controller replaces a pod only when Roll deletes it;
// otherwise Roll refuses before any write. Nodes whose pod already runs the
// current template and is Ready are reported unchanged, so Roll can be run
// again after a failure and goes on where it stopped.
func Roll(ctx context.Context, kube kubernetes.Interface, opts RollOptions) (*RollResult, error) {
	res := &RollResult{}
	if err := opts.defaults(); err != nil {
		return res, err
	}
	ns := revkit.ControlPlaneNamespace(opts.Namespace)
	const op = "ambient.Roll"
	ds, agent, err := loadAgent(ctx, kube, op, ns, opts.Component, opts.Name)
	if err != nil {
		return res, err
	}
	res.Agent = *agent
	if ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType {
		return res, &revkit.InvalidInputError{Field: "DaemonSet", Value: ds.Namespace + "/" + ds.Name,
			Reason: fmt.Sprintf("its updateStrategy is %q: the DaemonSet controller would replace every node's pod itself; "+
				"set updateStrategy.type=OnDelete through the release's values to roll node by node", ds.Spec.UpdateStrategy.Type)}
	}
	if agent.CurrentHash == "" {
		return res, &revkit.InvalidInputError{Field: "DaemonSet", Value: ds.Namespace + "/" + ds.Name,
			Reason: "its controller has not recorded a revision of its template yet"}
	}
	byNode := map[string]NodeAgent{}
	for _, n := range agent.Nodes {
		byNode[n.Node] = n
	}
	nodes := opts.Nodes
	if len(nodes) == 0 {
		for _, n := range agent.Pending() {
			nodes = append(nodes, n.Node)
		}
		sort.Strings(nodes)
	}
	for _, n := range nodes {
		if _, ok := byNode[n]; !ok {
			return res, &revkit.NotFoundError{Kind: "pod of " + ds.Name + " on node", Name: n}
		}
	}
	rec := kubeutil.NewRecorder(op, opts.Common)
	defer func() { res.Changes = rec.Changes }()
	for _, n := range nodes {
		start := time.Now()
		nr, err := rollNode(ctx, kube, rec, ds, agent.CurrentHash, byNode[n], &opts)
		nr.Duration = time.Since(start)
		res.Nodes = append(res.Nodes, nr)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// loadAgent finds a component's DaemonSet and reads it as an Agent.
func loadAgent(ctx context.Context, kube kubernetes.Interface, op, ns string, c Component, name string) (*appsv1.DaemonSet, *Agent, error) {
	ds, err := findDaemonSet(ctx, kube, op, ns, c, name)
	if err != nil {
		return nil, nil, err
	}
	agent, err := readAgent(ctx, kube, op, c, ds)
	return ds, agent, err
}

func findDaemonSet(ctx context.Context, kube kubernetes.Interface, op, ns string, c Component, name string) (*appsv1.DaemonSet, error) {
	if name != "" {
		ds, err := kube.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, &revkit.NotFoundError{Kind: "DaemonSet", Name: ns + "/" + name}
		}
		if err != nil {
			return nil, &revkit.OpError{Op: op, Verb: "get", Object: revkit.ObjectRef{Kind: "DaemonSet", Namespace: ns, Name: name}, Err: err}
		}
		if got, ok := componentOf(ds); !ok || got != c {
			return nil, &revkit.InvalidInputError{Field: "Name", Value: name, Reason: "not a " + string(c) + " DaemonSet"}
		}
		return ds, nil
	}
	list, err := kube.AppsV1().DaemonSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "DaemonSet", Namespace: ns}, Err: err}
	}
	var found []*appsv1.DaemonSet
	for i := range list.Items {
		if got, ok := componentOf(&list.Items[i]); ok && got == c {
			found = append(found, &list.Items[i])
		}
	}
	switch len(found) {
	case 0:
		return nil, &revkit.NotFoundError{Kind: string(c) + " DaemonSet in namespace", Name: ns}
	case 1:
		return found[0], nil
	}
	var names []string
	for _, d := range found {
		names = append(names, d.Name)
	}
	return nil, &revkit.InvalidInputError{Field: "Name", Reason: "namespace " + ns + " has several " + string(c) +
		" DaemonSets (" + strings.Join(names, ", ") + "); name one"}
}

func rollNode(ctx context.Context, kube kubernetes.Interface, rec *kubeutil.Recorder, ds *appsv1.DaemonSet, hash string, cur NodeAgent, o *RollOptions) (NodeResult, error) {
	nr := NodeResult{Node: cur.Node, OldPod: cur.Pod, Action: revkit.ActionUnchanged}
	if cur.Current && cur.Ready {
		nr.OldPod = ""
		return nr, nil
	}
	nr.Action = revkit.ActionUpdate
	ctx, cancel := context.WithTimeout(ctx, o.NodeTimeout)
	defer cancel()
	fail := func(pending string, err error) (NodeResult, error) {
		return nr, &NodeError{Node: cur.Node, Pending: pending, Err: err}
	}
	uncordon := false
	if o.Cordon || o.Drain {
		was, err := setUnschedulable(ctx, kube, rec, cur.Node, true)
		if err != nil {
			return fail("", err)
		}
		nr.Cordoned, uncordon = !was, !was
	}
	if o.Drain {
		ev, err := drain(ctx, kube, rec, cur.Node, o.Interval)
		nr.Evicted = ev
		if err != nil {
			return fail("draining", err)
		}
	}
	podRef := revkit.ObjectRef{Kind: "Pod", Namespace: ds.Namespace, Name: cur.Pod}
	if !cur.Current {
		if rec.Sends() {
			err := kube.CoreV1().Pods(ds.Namespace).Delete(ctx, cur.Pod, rec.DeleteOptions())
			if err != nil && !apierrors.IsNotFound(err) {
				return fail("", rec.Fail("delete", podRef, err))
			}
		}
		rec.Record(ctx, podRef, revkit.ActionDelete, "replaced by the current template of "+ds.Name)
	}
	if !rec.Common.DryRun.Persists() {
		// Nothing was cordoned or replaced; say what would follow.
		if uncordon {
			rec.Record(ctx, revkit.ObjectRef{Kind: "Node", Name: cur.Node}, revkit.ActionUpdate, "uncordoned")
		}
		return nr, nil
	}
	var pending string
	err := wait.PollUntilContextCancel(ctx, o.Interval, true, func(ctx context.Context) (bool, error) {
		pods, err := agentPods(ctx, kube, ds, cur.Node)
		if err != nil {
			if kubeutil.Transient(err) {
				pending = "cannot list its pods: " + err.Error()
				return false, nil
			}
			return false, rec.Fail("list", revkit.ObjectRef{Kind: "Pod", Namespace: ds.Namespace}, err)
		}
		pending = "no pod of " + ds.Name + " on the node yet"
		for i := range pods {
			na := nodeAgent(&pods[i], hash)
			switch {
			case !na.Current:
				pending = "pod " + na.Pod + " still runs the old template"
			case !na.Ready:
				pending = "pod " + na.Pod + " is not Ready"
			default:
				nr.NewPod = na.Pod
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("not done within %s: %w", o.NodeTimeout, err)
		}
		return fail(pending, err)
	}
	if o.Check != nil {
		if err := o.Check(ctx, cur.Node); err != nil {
			return fail("health check", err)
		}
	}
	if uncordon {
		if _, err := setUnschedulable(ctx, kube, rec, cur.Node, false); err != nil {
			return fail("", err)
		}
	}
	return nr, nil
}

// setUnschedulable cordons or uncordons a node and reports whether it was
// unschedulable before.
func setUnschedulable(ctx context.Context, kube kubernetes.Interface, rec *kubeutil.Recorder, node string, on bool) (bool, error) {
	ref := revkit.ObjectRef{Kind: "Node", Name: node}
	n, err := kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return false, rec.Fail("get", ref, err)
	}
	was := n.Spec.Unschedulable
	if was == on {
		return was, nil
	}
	if rec.Sends() {
		patch := fmt.Sprintf(`{"spec":{"unschedulable":%t}}`, on)
		if _, err := kube.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType, []byte(patch), rec.PatchOptions()); err != nil {
			return was, rec.Fail("patch", ref, err)
		}
	}
	reason := "uncordoned"
	if on {
		reason = "cordoned"
	}
	rec.Record(ctx, ref, revkit.ActionUpdate, reason)
	return was, nil
}

// drain evicts the node's pods in ambient mode — the pods whose traffic its
// ztunnel carries — and waits until they are gone. DaemonSet pods and
// mirror pods stay. An eviction a PodDisruptionBudget refuses (429) is
// retried until the node's deadline.
func drain(ctx context.Context, kube kubernetes.Interface, rec *kubeutil.Recorder, node string, interval time.Duration) ([]string, error) {
	pods, err := kubeutil.ListPods(ctx, kube, "", metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return nil, rec.Fail("list", revkit.ObjectRef{Kind: "Pod"}, err)
	}
	nsLabels := map[string]map[string]string{}
	var victims []corev1.Pod
	for _, p := range pods {
		if p.Spec.NodeName != node || p.DeletionTimestamp != nil || daemonOrMirror(&p) {
			continue
		}
		l, ok := nsLabels[p.Namespace]
		if !ok {
			n, err := kube.CoreV1().Namespaces().Get(ctx, p.Namespace, metav1.GetOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return nil, rec.Fail("get", revkit.ObjectRef{Kind: "Namespace", Name: p.Namespace}, err)
			}
			if n != nil {
				l = n.Labels
			}
			nsLabels[p.Namespace] = l
		}
		if _, sidecar := p.Annotations[mesh.AnnotationStatus]; sidecar || !mesh.Ambient(l, p.Labels, p.Annotations) {
			continue
		}
		victims = append(victims, p)
	}
	var evicted []string
	for _, p := range victims {
		ref := revkit.ObjectRef{Kind: "Pod", Namespace: p.Namespace, Name: p.Name}
		if rec.Sends() {
			ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}}
			do := rec.DeleteOptions()
			ev.DeleteOptions = &do
			err := wait.PollUntilContextCancel(ctx, interval, true, func(ctx context.Context) (bool, error) {
				err := kube.PolicyV1().Evictions(p.Namespace).Evict(ctx, ev)
				switch {
				case err == nil || apierrors.IsNotFound(err):
					return true, nil
				case apierrors.IsTooManyRequests(err) || kubeutil.Transient(err):
					return false, nil // a disruption budget says not now
				}
				return false, err
			})
			if err != nil {
				return evicted, rec.Fail("evict", ref, err)
			}
		}
		rec.Record(ctx, ref, revkit.ActionDelete, "evicted from node "+node)
		evicted = append(evicted, p.Namespace+"/"+p.Name)
	}
	if !rec.Common.DryRun.Persists() {
		return evicted, nil
	}
	for _, p := range victims {
		err := wait.PollUntilContextCancel(ctx, interval, true, func(ctx context.Context) (bool, error) {
			got, err := kube.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			if err != nil {
				return false, nil
			}
			return got.UID != p.UID, nil
		})
		if err != nil {
			return evicted, fmt.Errorf("pod %s/%s is still on the node: %w", p.Namespace, p.Name, err)
		}
	}
	return evicted, nil
}

func daemonOrMirror(p *corev1.Pod) bool {
	if _, ok := p.Annotations[corev1.MirrorPodAnnotationKey]; ok {
		return true
	}
	for _, o := range p.OwnerReferences {
		if o.Kind == "DaemonSet" {
			return true
		}
	}
	return false
}
