package ambient_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/ambient"
)

const ns = "istio-system"

// cluster is a fake cluster with a ztunnel DaemonSet whose template moved
// from hash "old" to hash "new", one ztunnel pod per node on "old", and an
// ambient namespace "shop" with one pod per node, a sidecar namespace "web"
// and a pod that opted out of ambient mode.
type cluster struct {
	kube  *fake.Clientset
	ds    *appsv1.DaemonSet
	nodes []string
	// replace makes the fake DaemonSet controller create a Ready pod on the
	// new template when an old one is deleted.
	replace bool
}

func newCluster(t *testing.T, nodes ...string) *cluster {
	t.Helper()
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "ztunnel", Namespace: ns, UID: "ds-uid",
			Labels:      map[string]string{"app.kubernetes.io/managed-by": "Helm"},
			Annotations: map[string]string{"meta.helm.sh/release-name": "ztunnel"}},
		Spec: appsv1.DaemonSetSpec{
			Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "ztunnel"}},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "ztunnel"},
					Annotations: map[string]string{"istio.io/rev": "1-31-0"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "istio-proxy", Image: "istio/ztunnel:1.31.0"}}},
			},
		},
	}
	objs := []runtime.Object{ds,
		controllerRevision(ds, "old", 1), controllerRevision(ds, "new", 2),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"istio.io/dataplane-mode": "ambient"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"istio.io/rev": "1-31-0"}}},
	}
	for _, n := range nodes {
		objs = append(objs,
			&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}},
			ztunnelPod(ds, n, "old", "1.30.0"),
			workload("shop", "cart-"+n, n, nil, nil),
			workload("shop", "batch-"+n, n, map[string]string{"istio.io/dataplane-mode": "none"}, nil),
			workload("web", "front-"+n, n, nil, map[string]string{"sidecar.istio.io/status": "{}"}),
		)
	}
	c := &cluster{kube: fake.NewClientset(objs...), ds: ds, nodes: nodes, replace: true}
	c.kube.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		d := a.(k8stesting.DeleteAction)
		if d.GetNamespace() != ns || !c.replace || len(d.GetDeleteOptions().DryRun) > 0 {
			return false, nil, nil
		}
		old, err := c.kube.Tracker().Get(corev1.SchemeGroupVersion.WithResource("pods"), ns, d.GetName())
		if err != nil {
			return false, nil, nil
		}
		node := old.(*corev1.Pod).Spec.NodeName
		p := ztunnelPod(ds, node, "new", "1.31.0")
		p.Name = "ztunnel-new-" + node
		require.NoError(t, c.kube.Tracker().Add(p))
		return false, nil, nil
	})
	c.kube.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(k8stesting.CreateAction)
		name := ev.GetObject().(metav1.Object).GetName()
		return true, nil, c.kube.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), a.GetNamespace(), name)
	})
	return c
}

func controllerRevision(ds *appsv1.DaemonSet, hash string, rev int64) *appsv1.ControllerRevision {
	return &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: "ztunnel-" + hash, Namespace: ns,
			Labels:          map[string]string{"app": "ztunnel", appsv1.DefaultDaemonSetUniqueLabelKey: hash},
			OwnerReferences: []metav1.OwnerReference{owner(ds)}},
		Revision: rev,
	}
}

func owner(ds *appsv1.DaemonSet) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID, Controller: &yes}
}

func ztunnelPod(ds *appsv1.DaemonSet, node, hash, version string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "ztunnel-" + node, Namespace: ns, UID: types.UID("z-" + node + hash),
			Labels:          map[string]string{"app": "ztunnel", appsv1.DefaultDaemonSetUniqueLabelKey: hash},
			OwnerReferences: []metav1.OwnerReference{owner(ds)}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "istio-proxy", Image: "istio/ztunnel:" + version}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

func workload(namespace, name, node string, lbls, annos map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, UID: types.UID(namespace + name), Labels: lbls, Annotations: annos},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

// writes lists the writes the fake saw, as "verb resource[/sub] ns/name".
func writes(kube *fake.Clientset) []string {
	var out []string
	for _, a := range kube.Actions() {
		switch a.GetVerb() {
		case "get", "list", "watch":
			continue
		}
		res := a.GetResource().Resource
		if a.GetSubresource() != "" {
			res += "/" + a.GetSubresource()
		}
		name := ""
		switch x := a.(type) {
		case k8stesting.DeleteAction:
			name = x.GetName()
		case k8stesting.PatchAction:
			name = x.GetName() + " " + string(x.GetPatch())
		case k8stesting.CreateAction:
			name = x.GetObject().(metav1.Object).GetName()
		case k8stesting.UpdateAction:
			name = x.GetObject().(metav1.Object).GetName()
		}
		out = append(out, fmt.Sprintf("%s %s %s/%s", a.GetVerb(), res, a.GetNamespace(), name))
	}
	return out
}

func fast(o ambient.RollOptions) ambient.RollOptions {
	o.Interval = time.Millisecond
	if o.NodeTimeout == 0 {
		o.NodeTimeout = 2 * time.Second
	}
	return o
}

func TestRollDrainsAndReplacesNodeByNode(t *testing.T) {
	c := newCluster(t, "node-b", "node-a")
	res, err := ambient.Roll(context.Background(), c.kube, fast(ambient.RollOptions{Drain: true}))
	require.NoError(t, err)

	cordon, uncordon := `{"spec":{"unschedulable":true}}`, `{"spec":{"unschedulable":false}}`
	assert.Equal(t, []string{
		"patch nodes /node-a " + cordon,
		"create pods/eviction shop/cart-node-a",
		"delete pods istio-system/ztunnel-node-a",
		"patch nodes /node-a " + uncordon,
		"patch nodes /node-b " + cordon,
		"create pods/eviction shop/cart-node-b",
		"delete pods istio-system/ztunnel-node-b",
		"patch nodes /node-b " + uncordon,
	}, writes(c.kube), "one node at a time, in name order; only ambient pods are evicted (not the opted-out batch pods, not the sidecar pods)")

	require.Len(t, res.Nodes, 2)
	for i, n := range []string{"node-a", "node-b"} {
		got := res.Nodes[i]
		assert.Equal(t, n, got.Node)
		assert.Equal(t, revkit.ActionUpdate, got.Action)
		assert.Equal(t, "ztunnel-"+n, got.OldPod)
		assert.Equal(t, "ztunnel-new-"+n, got.NewPod)
		assert.True(t, got.Cordoned)
		assert.Equal(t, []string{"shop/cart-" + n}, got.Evicted)
	}
	assert.Len(t, res.Changes, 8)

	st, err := ambient.Read(context.Background(), c.kube, ambient.ReadOptions{})
	require.NoError(t, err)
	zt := st.Agent(ambient.Ztunnel)
	require.Len(t, zt, 1)
	assert.Empty(t, zt[0].Pending(), "every node runs the new template")
	for _, n := range zt[0].Nodes {
		assert.Equal(t, "1.31.0", n.Version)
	}

	// Run again: every node is current, nothing is written.
	c.kube.ClearActions()
	res, err = ambient.Roll(context.Background(), c.kube, fast(ambient.RollOptions{Drain: true}))
	require.NoError(t, err)
	assert.Empty(t, res.Nodes)
	assert.Empty(t, writes(c.kube))
}

func TestRollNamedNodesAndUnchanged(t *testing.T) {
	c := newCluster(t, "node-a", "node-b", "node-c")
	_, err := ambient.Roll(context.Background(), c.kube, fast(ambient.RollOptions{Nodes: []string{"node-c"}}))
	require.NoError(t, err)
	assert.Equal(t, []string{"delete pods istio-system/ztunnel-node-c"}, writes(c.kube),
		"no cordon or drain unless asked; only the named node")

	c.kube.ClearActions()
	res, err := ambient.Roll(context.Background(), c.kube, fast(ambient.RollOptions{Nodes: []string{"node-c", "node-a"}, Cordon: true}))
	require.NoError(t, err)
	require.Len(t, res.Nodes, 2)
	assert.Equal(t, revkit.ActionUnchanged, res.Nodes[0].Action, "node-c is already current")
	assert.Equal(t, revkit.ActionUpdate, res.Nodes[1].Action)
	assert.Equal(t, []string{
		`patch nodes /node-a {"spec":{"unschedulable":true}}`,
		"delete pods istio-system/ztunnel-node-a",
		`patch nodes /node-a {"spec":{"unschedulable":false}}`,
	}, writes(c.kube))
}

func TestRollLeavesACordonedNodeCordoned(t *testing.T) {
	c := newCluster(t, "node-a")
	n, err := c.kube.CoreV1().Nodes().Get(context.Background(), "node-a", metav1.GetOptions{})
	require.NoError(t, err)
	n.Spec.Unschedulable = true
	_, err = c.kube.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{})
	require.NoError(t, err)
	c.kube.ClearActions()

	res, err := ambient.Roll(context.Background(), c.kube, fast(ambient.RollOptions{Cordon: true}))
	require.NoError(t, err)
	assert.False(t, res.Nodes[0].Cordoned)
	assert.Equal(t, []string{"delete pods istio-system/ztunnel-node-a"}, writes(c.kube),
		"a node someone else cordoned is neither cordoned again nor uncordoned")
}

func TestRollStopsAtAFailedNode(t *testing.T) {
	for _, tc := range []struct {
		name    string
		replace bool
		check   func(context.Context, string) error
		pending string
	}{
		{name: "the new pod never comes", replace: false, pending: "no pod of ztunnel on the node yet"},
		{name: "the health check fails", replace: true, pending: "health check",
			check: func(_ context.Context, node string) error {
				return errors.New("ztunnel on " + node + " refuses connections")
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, "node-a", "node-b")
			c.replace = tc.replace
			res, err := ambient.Roll(context.Background(), c.kube,
				fast(ambient.RollOptions{Drain: true, Check: tc.check, NodeTimeout: 50 * time.Millisecond}))
			var ne *ambient.NodeError
			require.ErrorAs(t, err, &ne)
			assert.Equal(t, "node-a", ne.Node)
			assert.Equal(t, tc.pending, ne.Pending)
			require.Len(t, res.Nodes, 1, "node-b is not touched")
			for _, w := range writes(c.kube) {
				assert.NotContains(t, w, "node-b")
			}
			n, err := c.kube.CoreV1().Nodes().Get(context.Background(), "node-a", metav1.GetOptions{})
			require.NoError(t, err)
			assert.True(t, n.Spec.Unschedulable, "the failed node stays cordoned, so drained pods do not come back to it")
		})
	}
}

func TestRollDryRun(t *testing.T) {
	for _, dr := range []revkit.DryRun{revkit.DryRunClient, revkit.DryRunServer} {
		t.Run(dr.String(), func(t *testing.T) {
			c := newCluster(t, "node-a", "node-b")
			res, err := ambient.Roll(context.Background(), c.kube, fast(ambient.RollOptions{Drain: true, Common: revkit.Common{DryRun: dr}}))
			require.NoError(t, err)
			assert.Len(t, res.Nodes, 2)
			assert.Len(t, res.Changes, 8, "cordon, evict, delete, uncordon per node")
			sent := 0
			for _, a := range c.kube.Actions() {
				var dryRun []string
				switch x := a.(type) {
				case k8stesting.DeleteActionImpl:
					dryRun = x.DeleteOptions.DryRun
				case k8stesting.PatchActionImpl:
					dryRun = x.PatchOptions.DryRun
				case k8stesting.CreateActionImpl:
					dryRun = x.Object.(*policyv1.Eviction).DeleteOptions.DryRun
				default:
					continue
				}
				sent++
				assert.Equal(t, []string{metav1.DryRunAll}, dryRun, "%s %s", a.GetVerb(), a.GetResource().Resource)
			}
			if dr == revkit.DryRunClient {
				assert.Zero(t, sent, "a client dry run sends no write")
				st, err := ambient.Read(context.Background(), c.kube, ambient.ReadOptions{})
				require.NoError(t, err)
				assert.Len(t, st.Agent(ambient.Ztunnel)[0].Pending(), 2, "nothing was replaced")
			} else {
				// The fake applies dry-run writes, so it is not asked what changed;
				// a cordon is sent per node (the uncordon of a node that was never
				// cordoned is only reported), an eviction and a delete.
				assert.Equal(t, 6, sent)
			}
		})
	}
}

func TestRollRefusesBeforeAnyWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*cluster)
		opts  ambient.RollOptions
		match error
	}{
		{name: "unknown component", opts: ambient.RollOptions{Component: "waypoint"}, match: revkit.ErrInvalidInput},
		{name: "repeated node", opts: ambient.RollOptions{Nodes: []string{"node-a", "node-a"}}, match: revkit.ErrInvalidInput},
		{name: "negative timeout", opts: ambient.RollOptions{NodeTimeout: -time.Second}, match: revkit.ErrInvalidInput},
		{name: "bad dry run", opts: ambient.RollOptions{Common: revkit.Common{DryRun: 7}}, match: revkit.ErrInvalidInput},
		{name: "no istio-cni", opts: ambient.RollOptions{Component: ambient.CNI}, match: revkit.ErrNotFound},
		{name: "named DaemonSet missing", opts: ambient.RollOptions{Name: "ztunnel-2"}, match: revkit.ErrNotFound},
		{name: "node without a pod", opts: ambient.RollOptions{Nodes: []string{"node-z"}}, match: revkit.ErrNotFound},
		{name: "rolling update would replace every node at once", match: revkit.ErrInvalidInput,
			edit: func(c *cluster) {
				c.ds.Spec.UpdateStrategy.Type = appsv1.RollingUpdateDaemonSetStrategyType
				_, err := c.kube.AppsV1().DaemonSets(ns).Update(context.Background(), c.ds, metav1.UpdateOptions{})
				if err != nil {
					panic(err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, "node-a")
			if tc.edit != nil {
				tc.edit(c)
				c.kube.ClearActions()
			}
			_, err := ambient.Roll(context.Background(), c.kube, fast(tc.opts))
			require.ErrorIs(t, err, tc.match)
			assert.Empty(t, writes(c.kube))
		})
	}
}

func TestRollHonoursCancel(t *testing.T) {
	c := newCluster(t, "node-a")
	c.replace = false
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	_, err := ambient.Roll(ctx, c.kube, ambient.RollOptions{Interval: time.Millisecond})
	require.ErrorIs(t, err, context.Canceled)
}

func TestRead(t *testing.T) {
	c := newCluster(t, "node-a", "node-b")
	st, err := ambient.Read(context.Background(), c.kube, ambient.ReadOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"shop"}, st.AmbientNamespaces)
	require.Len(t, st.Agents, 1)
	a := st.Agents[0]
	assert.Equal(t, ambient.Ztunnel, a.Component)
	assert.Equal(t, "ztunnel", a.Release)
	assert.Equal(t, "1-31-0", a.Revision)
	assert.Equal(t, "1.31.0", a.Version)
	assert.Equal(t, "new", a.CurrentHash)
	assert.Equal(t, appsv1.OnDeleteDaemonSetStrategyType, a.UpdateStrategy)
	require.Len(t, a.Nodes, 2)
	assert.Equal(t, ambient.NodeAgent{Node: "node-a", Pod: "ztunnel-node-a", Version: "1.30.0", Ready: true, Current: false}, a.Nodes[0])
	assert.Len(t, a.Pending(), 2)
	assert.Empty(t, st.Agent(ambient.CNI))
}

func TestCheckSkew(t *testing.T) {
	for _, tc := range []struct {
		agent, cp string
		want      error
	}{
		{"1.31.0", "1.31.0", nil},
		{"1.30.4", "1.31.0", nil},
		{"1.31.0-distroless", "1.31.2", nil},
		{"1.31-dev.20260423.b01690e6db7d", "1.31-dev.20260827.eed52ebb66ad", nil},
		{"1.31.0-beta.1", "1.31.0", nil},
		{"1.31.1", "1.31.0", revkit.ErrVersionSkew},
		{"1.31-dev.20260827.eed52ebb66ad", "1.31-dev.20260423.b01690e6db7d", revkit.ErrVersionSkew},
		{"1.32.0", "1.31.0", revkit.ErrVersionSkew},
		{"1.29.0", "1.31.0", revkit.ErrVersionSkew},
		{"2.0.0", "1.31.0", revkit.ErrVersionSkew},
		{"latest", "1.31.0", revkit.ErrInvalidInput},
		{"1.31.0", "", revkit.ErrInvalidInput},
	} {
		t.Run(tc.agent+"/"+tc.cp, func(t *testing.T) {
			err := ambient.CheckSkew(ambient.Ztunnel, tc.agent, tc.cp)
			if tc.want == nil {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tc.want)
			var se *ambient.SkewError
			if errors.Is(tc.want, revkit.ErrVersionSkew) {
				require.ErrorAs(t, err, &se)
				assert.Equal(t, ambient.Ztunnel, se.Component)
			}
		})
	}
	assert.ErrorIs(t, ambient.CheckSkew("waypoint", "1.31.0", "1.31.0"), revkit.ErrInvalidInput)
}
