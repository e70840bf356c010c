package ambient_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/ambient"
)

// releaser is a fake Helm: a chart path names the ztunnel version it
// renders ("charts/ztunnel-1.31.0"); a real upgrade changes the DaemonSet as
// helm would (image, update strategy) and records a new template revision,
// as the DaemonSet controller would.
type releaser struct {
	c     *cluster
	calls []revkit.ReleaseOptions
	fail  error
}

func (r *releaser) UpgradeRelease(ctx context.Context, o revkit.ReleaseOptions) (*revkit.ReleaseResult, error) {
	r.calls = append(r.calls, o)
	version := strings.TrimPrefix(o.Chart.Path, "charts/ztunnel-")
	manifest := fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata:
  name: ztunnel
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: ztunnel
spec:
  template:
    spec:
      containers:
      - name: istio-proxy
        image: istio/ztunnel:%s
`, version)
	if o.DryRun != revkit.DryRunNone {
		return &revkit.ReleaseResult{Version: 1, Manifest: manifest}, nil
	}
	if r.fail != nil {
		return nil, r.fail
	}
	kube := r.c.kube
	ds, err := kube.AppsV1().DaemonSets(ns).Get(ctx, "ztunnel", metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	ds.Spec.Template.Spec.Containers[0].Image = "istio/ztunnel:" + version
	if us, ok := o.Values["updateStrategy"].(map[string]any); ok {
		ds.Spec.UpdateStrategy.Type = appsv1.DaemonSetUpdateStrategyType(us["type"].(string))
	}
	if rev, ok := o.Values["revision"].(string); ok {
		ds.Spec.Template.Annotations["istio.io/rev"] = rev
	}
	ds.Generation++
	// A DaemonSet that rolls itself is reported done at once.
	ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, DesiredNumberScheduled: int32(len(r.c.nodes)),
		CurrentNumberScheduled: int32(len(r.c.nodes)), UpdatedNumberScheduled: int32(len(r.c.nodes)),
		NumberReady: int32(len(r.c.nodes)), NumberAvailable: int32(len(r.c.nodes))}
	if _, err := kube.AppsV1().DaemonSets(ns).Update(ctx, ds, metav1.UpdateOptions{}); err != nil {
		return nil, err
	}
	_, err = kube.AppsV1().ControllerRevisions(ns).Create(ctx, controllerRevision(ds, "new", 2), metav1.CreateOptions{})
	return &revkit.ReleaseResult{Version: 2, Manifest: manifest}, err
}

// oldCluster is a cluster whose ztunnel has not been upgraded yet (only the
// "old" template revision exists), with istiod revisions 1-30-2 and 1-31-0.
func oldCluster(t *testing.T, nodes ...string) *cluster {
	c := newCluster(t, nodes...)
	ctx := context.Background()
	require.NoError(t, c.kube.AppsV1().ControllerRevisions(ns).Delete(ctx, "ztunnel-new", metav1.DeleteOptions{}))
	ds, err := c.kube.AppsV1().DaemonSets(ns).Get(ctx, "ztunnel", metav1.GetOptions{})
	require.NoError(t, err)
	ds.Spec.UpdateStrategy.Type = appsv1.RollingUpdateDaemonSetStrategyType
	ds.Spec.Template.Spec.Containers[0].Image = "istio/ztunnel:1.30.2"
	ds.Spec.Template.Annotations["istio.io/rev"] = "1-30-2"
	_, err = c.kube.AppsV1().DaemonSets(ns).Update(ctx, ds, metav1.UpdateOptions{})
	require.NoError(t, err)
	for _, rev := range []struct{ name, version string }{{"1-30-2", "1.30.2"}, {"1-31-0", "1.31.0"}} {
		_, err := c.kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "istiod-" + rev.name, Namespace: ns,
				Labels: map[string]string{"app": "istiod", "istio.io/rev": rev.name}},
			Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "discovery", Image: "istio/pilot:" + rev.version}}}}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	c.kube.ClearActions()
	return c
}

func TestUpgradeNodeByNode(t *testing.T) {
	c := oldCluster(t, "node-a", "node-b")
	r := &releaser{c: c}
	res, err := ambient.Upgrade(context.Background(), c.kube, ambient.UpgradeOptions{
		Component: ambient.Ztunnel, Chart: revkit.ChartSource{Path: "charts/ztunnel-1.31.0"},
		Revision: "1-31-0", Releaser: r, NodeByNode: true,
		Roll: ambient.RollOptions{Drain: true, Interval: time.Millisecond, NodeTimeout: 2 * time.Second},
	})
	require.NoError(t, err)
	assert.Equal(t, "ztunnel", res.Release)
	assert.Equal(t, "1.31.0", res.Version)
	assert.Equal(t, "1.31.0", res.ControlPlaneVersion, "read from istiod-1-31-0's image")
	assert.Equal(t, "1.30.2", res.Agent.Version)

	require.Len(t, r.calls, 2, "a render, then the upgrade")
	assert.Equal(t, revkit.DryRunClient, r.calls[0].DryRun)
	assert.Equal(t, revkit.DryRunNone, r.calls[1].DryRun)
	assert.Equal(t, map[string]any{"revision": "1-31-0", "updateStrategy": map[string]any{"type": "OnDelete"}}, r.calls[1].Values)
	assert.Equal(t, "ztunnel", r.calls[1].Release)
	assert.Equal(t, ns, r.calls[1].Namespace)

	require.NotNil(t, res.Roll)
	require.Len(t, res.Roll.Nodes, 2)
	for _, n := range res.Roll.Nodes {
		assert.Equal(t, revkit.ActionUpdate, n.Action)
		assert.NotEmpty(t, n.NewPod)
	}
	assert.Equal(t, "HelmRelease", res.Changes[0].Object.Kind)
	assert.Len(t, res.Changes, 1+8, "the release, then cordon, evict, delete, uncordon per node")

	st, err := ambient.Read(context.Background(), c.kube, ambient.ReadOptions{})
	require.NoError(t, err)
	z := st.Agent(ambient.Ztunnel)[0]
	assert.Empty(t, z.Pending())
	assert.Equal(t, "1-31-0", z.Revision)
	assert.Equal(t, appsv1.OnDeleteDaemonSetStrategyType, z.UpdateStrategy)
}

func TestUpgradeRollsItselfWithoutNodeByNode(t *testing.T) {
	c := oldCluster(t, "node-a")
	r := &releaser{c: c}
	res, err := ambient.Upgrade(context.Background(), c.kube, ambient.UpgradeOptions{
		Component: ambient.Ztunnel, Chart: revkit.ChartSource{Path: "charts/ztunnel-1.31.0"}, Revision: "1-31-0",
		Releaser: r, Roll: ambient.RollOptions{Interval: time.Millisecond}, Timeout: time.Second,
	})
	require.NoError(t, err)
	assert.Nil(t, res.Roll)
	assert.Equal(t, map[string]any{"revision": "1-31-0"}, r.calls[1].Values, "no update strategy forced")
	assert.Equal(t, []string{"update daemonsets istio-system/ztunnel", "create controllerrevisions istio-system/ztunnel-new"}, writes(c.kube),
		"only the fake helm's own writes: no pod deleted, no node cordoned")
}

func TestUpgradeRefusesBeforeAnyWrite(t *testing.T) {
	good := func() ambient.UpgradeOptions {
		return ambient.UpgradeOptions{Component: ambient.Ztunnel, Chart: revkit.ChartSource{Path: "charts/ztunnel-1.31.0"}, Revision: "1-31-0"}
	}
	for _, tc := range []struct {
		name    string
		edit    func(*ambient.UpgradeOptions)
		match   error
		renders bool // the chart was rendered (client dry run) before the refusal
	}{
		{name: "the agent before its control plane (ztunnel 1.31 on istiod 1.30)", renders: true, match: revkit.ErrVersionSkew,
			edit: func(o *ambient.UpgradeOptions) { o.Revision = "" }},
		{name: "two minors behind", renders: true, match: revkit.ErrVersionSkew,
			edit: func(o *ambient.UpgradeOptions) { o.Chart.Path = "charts/ztunnel-1.29.0" }},
		{name: "a tag that is not a version", renders: true, match: revkit.ErrInvalidInput,
			edit: func(o *ambient.UpgradeOptions) { o.Chart.Path = "charts/ztunnel-latest" }},
		{name: "a revision without istiod", match: revkit.ErrInvalidInput,
			edit: func(o *ambient.UpgradeOptions) { o.Revision = "1-32-0" }},
		{name: "no component", match: revkit.ErrInvalidInput, edit: func(o *ambient.UpgradeOptions) { o.Component = "" }},
		{name: "no chart", match: revkit.ErrInvalidInput, edit: func(o *ambient.UpgradeOptions) { o.Chart = revkit.ChartSource{} }},
		{name: "no releaser", match: revkit.ErrInvalidInput, edit: func(o *ambient.UpgradeOptions) { o.Releaser = nil }},
		{name: "bad revision", match: revkit.ErrInvalidInput, edit: func(o *ambient.UpgradeOptions) { o.Revision = "Not_A_Label" }},
		{name: "bad version", match: revkit.ErrInvalidInput, edit: func(o *ambient.UpgradeOptions) { o.Version = "one" }},
		{name: "no istio-cni installed", match: revkit.ErrNotFound, edit: func(o *ambient.UpgradeOptions) { o.Component = ambient.CNI }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := oldCluster(t, "node-a")
			r := &releaser{c: c}
			o := good()
			o.Releaser = r
			tc.edit(&o)
			_, err := ambient.Upgrade(context.Background(), c.kube, o)
			require.ErrorIs(t, err, tc.match)
			assert.Empty(t, writes(c.kube))
			for _, call := range r.calls {
				assert.Equal(t, revkit.DryRunClient, call.DryRun, "only rendered")
			}
			assert.Equal(t, tc.renders, len(r.calls) == 1)
		})
	}
}

func TestUpgradeDryRun(t *testing.T) {
	c := oldCluster(t, "node-a")
	r := &releaser{c: c}
	res, err := ambient.Upgrade(context.Background(), c.kube, ambient.UpgradeOptions{
		Common:    revkit.Common{DryRun: revkit.DryRunClient},
		Component: ambient.Ztunnel, Chart: revkit.ChartSource{Path: "charts/ztunnel-1.31.0"}, Revision: "1-31-0",
		Releaser: r, NodeByNode: true,
	})
	require.NoError(t, err)
	require.Len(t, r.calls, 1)
	assert.Empty(t, writes(c.kube))
	require.Len(t, res.Changes, 1)
	assert.Equal(t, "update HelmRelease/istio-system/ztunnel", strings.SplitN(res.Changes[0].String(), " (", 2)[0])
	assert.Contains(t, res.Changes[0].Reason, "1.30.2 → 1.31.0")
}

func TestUpgradeReportsAFailedHelmUpgrade(t *testing.T) {
	c := oldCluster(t, "node-a")
	r := &releaser{c: c, fail: fmt.Errorf("another operation is in progress")}
	_, err := ambient.Upgrade(context.Background(), c.kube, ambient.UpgradeOptions{
		Component: ambient.Ztunnel, Chart: revkit.ChartSource{Path: "charts/ztunnel-1.31.0"}, Revision: "1-31-0", Releaser: r,
	})
	require.ErrorContains(t, err, "upgrading release ztunnel: another operation is in progress")
}
