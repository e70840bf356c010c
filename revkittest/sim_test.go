package revkittest_test

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/verify"
)

const (
	oldRev, newRev = "1-24-0", "1-25-0"
	restartPatch   = `{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"now"}}}}}`
)

// twoRevisions is a mesh on oldRev with newRev installed beside it; shop is
// on oldRev and moves to newRev with moveShop.
func twoRevisions() *revkittest.Cluster {
	return revkittest.NewCluster().WithRevision(oldRev).WithRevision(newRev).
		WithNamespace("shop", revkittest.Rev(oldRev))
}

func moveShop(t *testing.T, kube kubernetes.Interface) {
	t.Helper()
	_, err := kube.CoreV1().Namespaces().Patch(ctx, "shop", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"istio.io/rev":"`+newRev+`"}}}`), metav1.PatchOptions{})
	require.NoError(t, err)
}

// podRevisions counts the active pods of ns by the revision of their
// sidecar ("none" without one).
func podRevisions(t *testing.T, kube kubernetes.Interface, ns string) map[string]int {
	t.Helper()
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	out := map[string]int{}
	for i := range pods.Items {
		if !mesh.PodActive(&pods.Items[i]) {
			continue
		}
		rev, ok := mesh.PodRevision(&pods.Items[i])
		if !ok {
			rev = "none"
		}
		out[rev]++
	}
	return out
}

func podNames(t *testing.T, kube kubernetes.Interface, ns string) []string {
	t.Helper()
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	var out []string
	for _, p := range pods.Items {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

func getWorkload(t *testing.T, kube kubernetes.Interface, kind, ns, name string) runtime.Object {
	t.Helper()
	var (
		obj runtime.Object
		err error
	)
	switch kind {
	case "Deployment":
		obj, err = kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	case "StatefulSet":
		obj, err = kube.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
	case "DaemonSet":
		obj, err = kube.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
	}
	require.NoError(t, err)
	return obj
}

func patchWorkload(kube kubernetes.Interface, kind, ns, name, patch string, opts metav1.PatchOptions) error {
	var err error
	switch kind {
	case "Deployment":
		_, err = kube.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), opts)
	case "StatefulSet":
		_, err = kube.AppsV1().StatefulSets(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), opts)
	case "DaemonSet":
		_, err = kube.AppsV1().DaemonSets(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), opts)
	}
	return err
}

// TestSimRollouts restarts one workload per case after its namespace moved
// to newRev, and checks the pods, the status its controller reports and
// the one write the test sent.
func TestSimRollouts(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind string
		// build adds the workload "web" to the cluster.
		build func(*revkittest.Cluster) *revkittest.Cluster
		// before patches the workload first (not counted in the writes).
		before string
		// want counts the pods by revision after the restart.
		want map[string]int
		// names are the pod names after, when they are kept.
		names []string
	}{
		{name: "deployment rolls onto the new revision", kind: "Deployment",
			build: func(c *revkittest.Cluster) *revkittest.Cluster {
				return c.WithDeployment("shop", "web", revkittest.Replicas(4), revkittest.OnRevision(oldRev))
			},
			want: map[string]int{newRev: 4}},
		{name: "deployment with Recreate", kind: "Deployment",
			build: func(c *revkittest.Cluster) *revkittest.Cluster {
				return c.WithDeployment("shop", "web", revkittest.Replicas(3), revkittest.OnRevision(oldRev))
			},
			before: `{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}`,
			want:   map[string]int{newRev: 3}},
		{name: "paused deployment does not roll out", kind: "Deployment",
			build: func(c *revkittest.Cluster) *revkittest.Cluster {
				return c.WithDeployment("shop", "web", revkittest.Replicas(2), revkittest.OnRevision(oldRev), revkittest.Paused())
			},
			want: map[string]int{oldRev: 2}, names: []string{"web-0", "web-1"}},
		{name: "statefulset replaces pods by ordinal, keeping names", kind: "StatefulSet",
			build: func(c *revkittest.Cluster) *revkittest.Cluster {
				return c.WithStatefulSet("shop", "web", revkittest.Replicas(3), revkittest.OnRevision(oldRev))
			},
			want: map[string]int{newRev: 3}, names: []string{"web-0", "web-1", "web-2"}},
		{name: "statefulset partition keeps the lower ordinals", kind: "StatefulSet",
			build: func(c *revkittest.Cluster) *revkittest.Cluster {
				return c.WithStatefulSet("shop", "web", revkittest.Replicas(3), revkittest.OnRevision(oldRev))
			},
			before: `{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}`,
			want:   map[string]int{oldRev: 2, newRev: 1}, names: []string{"web-0", "web-1", "web-2"}},
		{name: "statefulset OnDelete replaces nothing", kind: "StatefulSet",
			build: func(c *revkittest.Cluster) *revkittest.Cluster {
				return c.WithStatefulSet("shop", "web", revkittest.Replicas(2), revkittest.OnRevision(oldRev))
			},
			before: `{"spec":{"updateStrategy":{"type":"OnDelete","rollingUpdate":null}}}`,
			want:   map[string]int{oldRev: 2}, names: []string{"web-0", "web-1"}},
		{name: "daemonset replaces its pod on every node", kind: "DaemonSet",
			build: func(c *revkittest.Cluster) *revkittest.Cluster {
				return c.WithDaemonSet("shop", "web", revkittest.Replicas(3), revkittest.OnRevision(oldRev))
			},
			want: map[string]int{newRev: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := tc.build(twoRevisions()).Simulate(revkittest.SimOptions{})
			kube := sim.Kube()
			if tc.before != "" {
				require.NoError(t, patchWorkload(kube, tc.kind, "shop", "web", tc.before, metav1.PatchOptions{}))
			}
			moveShop(t, kube)
			kube.ClearActions()
			require.NoError(t, patchWorkload(kube, tc.kind, "shop", "web", restartPatch, metav1.PatchOptions{}))
			assert.Equal(t, []string{strings.ToLower(tc.kind) + "s shop/web"}, trimVerb(revkittest.Writes(kube)),
				"the controllers' writes are not the client's")
			assert.Equal(t, tc.want, podRevisions(t, kube, "shop"))
			if tc.names != nil {
				assert.Equal(t, tc.names, podNames(t, kube, "shop"))
			}
			obj := getWorkload(t, kube, tc.kind, "shop", "web")
			pending, err := kubeutil.RolloutStatus(obj)
			require.NoError(t, err)
			if d, ok := obj.(*appsv1.Deployment); ok && d.Spec.Paused {
				assert.Equal(t, "Updated: 0/2", pending, "a paused Deployment does not roll out (revkit does not restart one)")
			} else {
				assert.Empty(t, pending, "the rollout is complete as kstatus (and revkit's waits) judge it")
			}
			m := obj.(metav1.Object)
			gen := m.GetGeneration()
			if tc.before != "" {
				assert.Equal(t, int64(3), gen, "two spec changes")
			} else {
				assert.Equal(t, int64(2), gen, "the restart changed the spec")
			}
			switch w := obj.(type) {
			case *appsv1.Deployment:
				assert.Equal(t, gen, w.Status.ObservedGeneration)
				if w.Spec.Paused {
					assert.Equal(t, "DeploymentPaused", condition(w, appsv1.DeploymentProgressing).Reason)
					return
				}
				n := *w.Spec.Replicas
				assert.Equal(t, appsv1.DeploymentStatus{ObservedGeneration: gen, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n},
					withoutConditions(w.Status))
				assert.Equal(t, "NewReplicaSetAvailable", condition(w, appsv1.DeploymentProgressing).Reason)
				assert.Equal(t, corev1.ConditionTrue, condition(w, appsv1.DeploymentAvailable).Status)
				rss, err := kube.AppsV1().ReplicaSets("shop").List(ctx, metav1.ListOptions{})
				require.NoError(t, err)
				require.Len(t, rss.Items, 2, "the adopted template's ReplicaSet and the restart's")
				pods, err := kube.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{})
				require.NoError(t, err)
				for _, rs := range rss.Items {
					hash := rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
					require.NotEmpty(t, hash)
					assert.Equal(t, "web-"+hash, rs.Name)
					if *rs.Spec.Replicas > 0 {
						for _, p := range pods.Items {
							assert.Equal(t, hash, p.Labels[appsv1.DefaultDeploymentUniqueLabelKey])
							assert.True(t, strings.HasPrefix(p.Name, rs.Name+"-"), p.Name)
							assert.Equal(t, rs.Name, metav1.GetControllerOf(&p).Name)
						}
					}
				}
			case *appsv1.StatefulSet:
				assert.Equal(t, gen, w.Status.ObservedGeneration)
				assert.Equal(t, int32(tc.want[newRev]), w.Status.UpdatedReplicas)
				if tc.want[oldRev] == 0 {
					assert.Equal(t, w.Status.UpdateRevision, w.Status.CurrentRevision, "every pod updated: the current revision caught up")
					assert.Equal(t, w.Status.UpdatedReplicas, w.Status.CurrentReplicas)
				} else {
					assert.NotEqual(t, w.Status.UpdateRevision, w.Status.CurrentRevision)
					assert.Equal(t, int32(tc.want[oldRev]), w.Status.CurrentReplicas)
				}
			case *appsv1.DaemonSet:
				assert.Equal(t, appsv1.DaemonSetStatus{ObservedGeneration: gen, DesiredNumberScheduled: 3, CurrentNumberScheduled: 3,
					UpdatedNumberScheduled: 3, NumberReady: 3, NumberAvailable: 3}, w.Status)
			}
		})
	}
}

func trimVerb(writes []string) []string {
	var out []string
	for _, w := range writes {
		out = append(out, strings.TrimPrefix(w, "patch "))
	}
	return out
}

func withoutConditions(st appsv1.DeploymentStatus) appsv1.DeploymentStatus {
	st.Conditions = nil
	return st
}

func condition(d *appsv1.Deployment, t appsv1.DeploymentConditionType) appsv1.DeploymentCondition {
	for _, c := range d.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return appsv1.DeploymentCondition{}
}

// A failed rollout (FailRollout, or pods of a crashing revision) stops
// within the strategy's limits and reports ProgressDeadlineExceeded; the
// next rollout is healthy and cleans up the broken pods.
func TestSimStuckRollouts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(*revkittest.Simulation)
		hold  bool
		// updated and ready are the Deployment's counts when stuck; want
		// the pods by revision then.
		updated, ready int32
		want           map[string]int
	}{
		{name: "image cannot be pulled", fault: func(s *revkittest.Simulation) { s.FailRollout("shop", "web") },
			updated: 2, ready: 3, want: map[string]int{oldRev: 3, newRev: 2}},
		{name: "new revision's sidecar crashes", fault: func(s *revkittest.Simulation) { s.CrashRevision(newRev) },
			updated: 2, ready: 3, want: map[string]int{oldRev: 3, newRev: 2}},
		{name: "held before the deadline", fault: func(s *revkittest.Simulation) { s.FailRollout("shop", "web") }, hold: true,
			updated: 2, ready: 3, want: map[string]int{oldRev: 3, newRev: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := twoRevisions().WithDeployment("shop", "web", revkittest.Replicas(4), revkittest.OnRevision(oldRev)).
				Simulate(revkittest.SimOptions{HoldStuckRollouts: tc.hold})
			kube := sim.Kube()
			moveShop(t, kube)
			tc.fault(sim)
			require.NoError(t, patchWorkload(kube, "Deployment", "shop", "web", restartPatch, metav1.PatchOptions{}))
			d := getWorkload(t, kube, "Deployment", "shop", "web").(*appsv1.Deployment)
			// 25% surge and 25% unavailable of 4: one pod over, one under.
			assert.Equal(t, tc.updated, d.Status.UpdatedReplicas)
			assert.Equal(t, tc.ready, d.Status.ReadyReplicas)
			assert.Equal(t, int32(5), d.Status.Replicas)
			assert.Equal(t, tc.want, podRevisions(t, kube, "shop"))
			pending, err := kubeutil.RolloutStatus(d)
			if tc.hold {
				require.NoError(t, err)
				assert.NotEmpty(t, pending, "still in progress")
				assert.Equal(t, "ReplicaSetUpdated", condition(d, appsv1.DeploymentProgressing).Reason)
			} else {
				var failed *revkit.RolloutFailedError
				require.ErrorAs(t, err, &failed)
				assert.Equal(t, "ProgressDeadlineExceeded", failed.Reason)
				assert.Equal(t, "Progressing", failed.Condition)
			}

			// Back to the old revision: a healthy rollout replaces the
			// broken pods first.
			_, err = kube.CoreV1().Namespaces().Patch(ctx, "shop", types.MergePatchType,
				[]byte(`{"metadata":{"labels":{"istio.io/rev":"`+oldRev+`"}}}`), metav1.PatchOptions{})
			require.NoError(t, err)
			require.NoError(t, patchWorkload(kube, "Deployment", "shop", "web",
				`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"later"}}}}}`, metav1.PatchOptions{}))
			assert.Equal(t, map[string]int{oldRev: 4}, podRevisions(t, kube, "shop"))
			d = getWorkload(t, kube, "Deployment", "shop", "web").(*appsv1.Deployment)
			pending, err = kubeutil.RolloutStatus(d)
			require.NoError(t, err)
			assert.Empty(t, pending)
		})
	}
}

// TestSimInjection creates a pod per case and checks what admission made
// of it: the sidecar of which revision, none, or a refusal.
func TestSimInjection(t *testing.T) {
	base := func() *revkittest.Cluster {
		return revkittest.NewCluster().WithRevision(oldRev).WithRevision(newRev).
			WithTag(revkit.DefaultTag, oldRev).WithTag("prod-canary", newRev)
	}
	for _, tc := range []struct {
		name      string
		nsOpts    []revkittest.NamespaceOption
		podLabels map[string]string
		podAnnots map[string]string
		setup     func(*testing.T, *revkittest.Simulation)
		want      string // revision injected, "" for none
		wantErr   string // part of the refusal
	}{
		{name: "revision label", nsOpts: []revkittest.NamespaceOption{revkittest.Rev(newRev)}, want: newRev},
		{name: "tag label", nsOpts: []revkittest.NamespaceOption{revkittest.Rev("prod-canary")}, want: newRev},
		{name: "istio-injection=enabled goes to the default tag", nsOpts: []revkittest.NamespaceOption{revkittest.InjectionEnabled()}, want: oldRev},
		{name: "both labels: istio-injection wins (IST0123)",
			nsOpts: []revkittest.NamespaceOption{revkittest.InjectionEnabled(), revkittest.Rev(newRev)}, want: oldRev},
		{name: "pod label opts out", nsOpts: []revkittest.NamespaceOption{revkittest.Rev(newRev)},
			podLabels: map[string]string{"sidecar.istio.io/inject": "false"}},
		{name: "pod annotation opts out", nsOpts: []revkittest.NamespaceOption{revkittest.Rev(newRev)},
			podAnnots: map[string]string{"sidecar.istio.io/inject": "false"}},
		{name: "pod label selects a revision in a plain namespace", podLabels: map[string]string{"istio.io/rev": newRev}, want: newRev},
		{name: "plain namespace"},
		{name: "stopped istiod fails closed", nsOpts: []revkittest.NamespaceOption{revkittest.Rev("prod-canary")},
			setup:   func(_ *testing.T, s *revkittest.Simulation) { s.StopIstiod(newRev) },
			wantErr: `failed calling webhook "rev.namespace.sidecar-injector.istio.io": failed to call webhook: Post "https://istiod-1-25-0.istio-system.svc:443/inject?timeout=10s": dial tcp: connect: connection refused`},
		{name: "restarted istiod injects again", nsOpts: []revkittest.NamespaceOption{revkittest.Rev(newRev)},
			setup: func(_ *testing.T, s *revkittest.Simulation) { s.StopIstiod(newRev); s.StartIstiod(newRev) }, want: newRev},
		{name: "missing Service fails closed", nsOpts: []revkittest.NamespaceOption{revkittest.Rev(newRev)},
			setup: func(t *testing.T, s *revkittest.Simulation) {
				require.NoError(t, s.Kube().CoreV1().Services("istio-system").Delete(ctx, "istiod-"+newRev, metav1.DeleteOptions{}))
			},
			wantErr: `service "istiod-1-25-0" not found`},
		{name: "failurePolicy Ignore lets the pod in without a sidecar", nsOpts: []revkittest.NamespaceOption{revkittest.Rev(newRev)},
			setup: func(t *testing.T, s *revkittest.Simulation) {
				mwcs := s.Kube().AdmissionregistrationV1().MutatingWebhookConfigurations()
				mwc, err := mwcs.Get(ctx, "istio-sidecar-injector-"+newRev, metav1.GetOptions{})
				require.NoError(t, err)
				for i := range mwc.Webhooks {
					mwc.Webhooks[i].FailurePolicy = ptr.To(admv1.Ignore)
				}
				_, err = mwcs.Update(ctx, mwc, metav1.UpdateOptions{})
				require.NoError(t, err)
				s.StopIstiod(newRev)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := base().WithNamespace("app", tc.nsOpts...).
				Simulate(revkittest.SimOptions{IstioVersions: map[string]string{newRev: "1.25.0"}})
			if tc.setup != nil {
				tc.setup(t, sim)
			}
			labels := map[string]string{"app": "web"}
			for k, v := range tc.podLabels {
				labels[k] = v
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Labels: labels, Annotations: tc.podAnnots},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/web"}}}}
			got, err := sim.Kube().CoreV1().Pods("app").Create(ctx, pod, metav1.CreateOptions{})
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.True(t, apierrors.IsInternalError(err), "the apiserver's status for a failed webhook call: %v", err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.Empty(t, podNames(t, sim.Kube(), "app"), "nothing stored")
				return
			}
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(got.Name, "web-") && len(got.Name) == len("web-")+5, got.Name)
			assert.Equal(t, corev1.PodRunning, got.Status.Phase)
			rev, injected := mesh.PodRevision(got)
			assert.Equal(t, tc.want, rev)
			assert.Equal(t, tc.want != "", injected)
			var containers []string
			for _, c := range got.Spec.Containers {
				containers = append(containers, c.Name+"="+c.Image)
			}
			if tc.want == "" {
				assert.Equal(t, []string{"app=example/web"}, containers)
				return
			}
			version := map[string]string{oldRev: oldRev, newRev: "1.25.0"}[tc.want]
			assert.Equal(t, []string{"app=example/web", "istio-proxy=istio/proxyv2:" + version}, containers)
			assert.Equal(t, "istio", got.Labels["security.istio.io/tlsMode"])
			assert.Equal(t, "web", got.Labels["service.istio.io/canonical-name"])
			assert.Equal(t, "latest", got.Labels["service.istio.io/canonical-revision"])
			assert.Equal(t, tc.want, got.Annotations["istio.io/rev"])
			// What revkit reads agrees with what was stamped.
			rep, err := verify.Pods(ctx, sim.Kube(), verify.PodsOptions{Namespaces: []string{"app"}})
			require.NoError(t, err)
			assert.Equal(t, map[string]int{tc.want: 1}, rep.Namespaces[0].Revisions)
		})
	}
}

// A dry-run write is judged — a pod goes through admission, a conflict is
// reported — but nothing is stored and nothing rolls out.
func TestSimDryRun(t *testing.T) {
	sim := twoRevisions().WithDeployment("shop", "web", revkittest.Replicas(2), revkittest.OnRevision(oldRev)).
		Simulate(revkittest.SimOptions{})
	kube := sim.Kube()
	moveShop(t, kube)
	dry := metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}
	before := podNames(t, kube, "shop")

	require.NoError(t, patchWorkload(kube, "Deployment", "shop", "web", restartPatch, dry))
	assert.Equal(t, before, podNames(t, kube, "shop"), "no rollout")
	d := getWorkload(t, kube, "Deployment", "shop", "web").(*appsv1.Deployment)
	assert.NotContains(t, d.Spec.Template.Annotations, mesh.RestartedAtAnnotation, "not stored")

	pod, err := kube.CoreV1().Pods("shop").Create(ctx, revkittest.Pod("shop", "probe", "", map[string]string{"app": "probe"}),
		metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	require.NoError(t, err)
	rev, _ := mesh.PodRevision(pod)
	assert.Equal(t, newRev, rev, "the injector is called in a dry run too")
	_, err = kube.CoreV1().Pods("shop").Get(ctx, "probe", metav1.GetOptions{})
	assert.True(t, apierrors.IsNotFound(err))

	_, err = kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	assert.True(t, apierrors.IsAlreadyExists(err), "%v", err)

	require.NoError(t, kube.AppsV1().Deployments("shop").Delete(ctx, "web", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}))
	assert.Equal(t, before, podNames(t, kube, "shop"))
	assert.Equal(t, []string{
		"patch namespaces shop",
		"patch deployments shop/web (dry-run)",
		"create pods shop/probe (dry-run)",
		"create namespaces shop (dry-run)",
		"delete deployments shop/web (dry-run)",
	}, revkittest.Writes(kube))

	// Deleting for real takes the ReplicaSets and pods with it.
	require.NoError(t, kube.AppsV1().Deployments("shop").Delete(ctx, "web", metav1.DeleteOptions{}))
	assert.Empty(t, podNames(t, kube, "shop"))
	rss, err := kube.AppsV1().ReplicaSets("shop").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	assert.Empty(t, rss.Items)
}

// The kit's faults see a call before the simulation, whether they were
// added before it started or after: a call they fail moves nothing.
func TestSimFaultsCompose(t *testing.T) {
	boom := apierrors.NewServiceUnavailable("etcd leader changed")
	for _, when := range []string{"before", "after"} {
		t.Run(when, func(t *testing.T) {
			c := twoRevisions().WithDeployment("shop", "web", revkittest.OnRevision(oldRev)).Deny("patch", "apps", "deployments")
			kube := c.Kube()
			var calls func() int
			if when == "before" {
				calls = revkittest.FailNth(kube, "patch", "deployments", 1, boom)
			}
			sim, err := revkittest.Simulate(kube, revkittest.SimOptions{})
			require.NoError(t, err)
			if when == "after" {
				calls = revkittest.FailNth(kube, "patch", "deployments", 1, boom)
			}
			revkittest.FailNth(kube, "list", "pods", 1, revkittest.ConnectionRefused())
			moveShop(t, kube)

			err = patchWorkload(kube, "Deployment", "shop", "web", restartPatch, metav1.PatchOptions{})
			require.ErrorIs(t, err, boom)
			_, err = kube.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{})
			require.Error(t, err, "the injected connection failure")
			assert.Equal(t, map[string]int{oldRev: 1}, podRevisions(t, kube, "shop"), "the failed patch rolled nothing out")
			require.NoError(t, patchWorkload(kube, "Deployment", "shop", "web", restartPatch, metav1.PatchOptions{}))
			assert.Equal(t, map[string]int{newRev: 1}, podRevisions(t, kube, "shop"))
			assert.Equal(t, 2, calls())

			// Access reviews still answer as the cluster was built.
			rep, err := verify.Precheck(ctx, kube, verify.PrecheckOptions{Permissions: []verify.Permission{
				{Verb: "patch", Group: "apps", Resource: "deployments"}}})
			require.NoError(t, err)
			assert.Error(t, rep.Err())

			sim.Close()
			moveShopBack := `{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"closed"}}}}}`
			require.NoError(t, patchWorkload(kube, "Deployment", "shop", "web", moveShopBack, metav1.PatchOptions{}))
			assert.Equal(t, map[string]int{newRev: 1}, podRevisions(t, kube, "shop"), "a closed simulation moves nothing")
		})
	}
}

// The sync sources report the simulated pods' proxies as istiod does, so
// verify.Proxies sees a healthy canary, a stale one, a crashed one and a
// stopped istiod.
func TestSimSyncSource(t *testing.T) {
	build := func() (*revkittest.Simulation, kubernetes.Interface) {
		sim := twoRevisions().WithDeployment("shop", "web", revkittest.Replicas(2), revkittest.OnRevision(oldRev)).
			WithNamespace("istio-ingress").WithGateway("istio-ingress", "ingressgateway", oldRev).
			Simulate(revkittest.SimOptions{IstioVersions: map[string]string{oldRev: "1.24.0", newRev: "1.25.0"}})
		return sim, sim.Kube()
	}
	proxies := func(sim *revkittest.Simulation, kube kubernetes.Interface) (*verify.ProxiesReport, error) {
		return verify.Proxies(ctx, verify.ProxiesOptions{Sources: []verify.SyncSource{sim.SyncSource(oldRev), sim.SyncSource(newRev)},
			Target: newRev, Namespaces: []string{"shop"}, Kube: kube})
	}

	sim, kube := build()
	rep, err := proxies(sim, kube)
	require.NoError(t, err)
	assert.Len(t, rep.Stragglers, 2, "both proxies still on the old revision")
	all, err := verify.Proxies(ctx, verify.ProxiesOptions{Sources: []verify.SyncSource{sim.SyncSource(oldRev)}})
	require.NoError(t, err)
	var listed []string
	for _, p := range all.Proxies {
		listed = append(listed, p.ID+" "+p.ProxyType+" "+p.IstioVersion+" "+string(p.State))
	}
	assert.Equal(t, []string{"ingressgateway-0.istio-ingress router 1.24.0 SYNCED", "web-0.shop sidecar 1.24.0 SYNCED",
		"web-1.shop sidecar 1.24.0 SYNCED"}, listed)

	moveShop(t, kube)
	require.NoError(t, patchWorkload(kube, "Deployment", "shop", "web", restartPatch, metav1.PatchOptions{}))
	rep, err = proxies(sim, kube)
	require.NoError(t, err)
	assert.True(t, rep.OK(), "%v", rep.Err())
	assert.Equal(t, map[string]int{"1.25.0": 2}, rep.Revisions[1].Versions)

	sim.StaleProxies(newRev)
	rep, err = proxies(sim, kube)
	require.NoError(t, err)
	assert.Len(t, rep.NotSynced, 2)
	assert.ErrorIs(t, rep.Err(), revkit.ErrVerificationFailed)

	sim, kube = build()
	moveShop(t, kube)
	sim.CrashRevision(newRev)
	require.NoError(t, patchWorkload(kube, "Deployment", "shop", "web", restartPatch, metav1.PatchOptions{}))
	rep, err = proxies(sim, kube)
	require.NoError(t, err)
	require.NotEmpty(t, rep.NotConnected, "crashed sidecars never reach istiod")
	assert.Equal(t, newRev, rep.NotConnected[0].Revision)

	sim.StopIstiod(newRev)
	_, err = proxies(sim, kube)
	var src *verify.SourceError
	require.ErrorAs(t, err, &src)
	assert.Equal(t, newRev, src.Revision)
	assert.ErrorContains(t, err, "connection refused")
}

// Workloads created through the clientset get pods at once; a DaemonSet
// runs on the simulation's nodes, a scaled Deployment keeps its template.
func TestSimCreateAndScale(t *testing.T) {
	sim := twoRevisions().Simulate(revkittest.SimOptions{Nodes: 2, Now: func() time.Time { return time.Unix(1e9, 0) }})
	kube := sim.Kube()
	labels := map[string]string{"app": "api"}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/api"}}}}
	_, err := kube.AppsV1().Deployments("shop").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl,
			Strategy: appsv1.DeploymentStrategy{RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: ptr.To(intstr.FromInt32(0))}}}},
		metav1.CreateOptions{})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{oldRev: 2}, podRevisions(t, kube, "shop"))
	first := podNames(t, kube, "shop")

	_, err = kube.AppsV1().Deployments("shop").Patch(ctx, "api", types.MergePatchType, []byte(`{"spec":{"replicas":5}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	names := podNames(t, kube, "shop")
	assert.Len(t, names, 5)
	assert.Subset(t, names, first, "scaling keeps the running pods")
	d := getWorkload(t, kube, "Deployment", "shop", "api").(*appsv1.Deployment)
	assert.Equal(t, int64(2), d.Generation)
	assert.Equal(t, metav1.NewTime(time.Unix(1e9, 0)), condition(d, appsv1.DeploymentAvailable).LastTransitionTime)

	_, err = kube.AppsV1().DaemonSets("shop").Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agent"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agent"}}, Spec: tmpl.Spec}}},
		metav1.CreateOptions{})
	require.NoError(t, err)
	pods, err := kube.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{LabelSelector: "app=agent"})
	require.NoError(t, err)
	var nodes []string
	for _, p := range pods.Items {
		nodes = append(nodes, p.Spec.NodeName)
	}
	sort.Strings(nodes)
	assert.Equal(t, []string{"sim-node-0", "sim-node-1"}, nodes)

	// Without the namespace the pod has nowhere to go.
	_, err = kube.CoreV1().Pods("nowhere").Create(ctx, revkittest.Pod("nowhere", "x", "", nil), metav1.CreateOptions{})
	assert.True(t, apierrors.IsNotFound(err), "%v", err)
	_, err = revkittest.Simulate(nil, revkittest.SimOptions{})
	assert.ErrorIs(t, err, revkit.ErrInvalidInput)
	_, err = revkittest.Simulate(fake.NewClientset(), revkittest.SimOptions{Nodes: -1})
	assert.ErrorIs(t, err, revkit.ErrInvalidInput)
}

// Two simulations of the same cluster running the same writes name their
// pods alike: tests that print pod names are stable.
func TestSimDeterministic(t *testing.T) {
	run := func() []string {
		sim := twoRevisions().WithDeployment("shop", "web", revkittest.Replicas(3), revkittest.OnRevision(oldRev)).
			Simulate(revkittest.SimOptions{})
		moveShop(t, sim.Kube())
		require.NoError(t, patchWorkload(sim.Kube(), "Deployment", "shop", "web", restartPatch, metav1.PatchOptions{}))
		return podNames(t, sim.Kube(), "shop")
	}
	first := run()
	assert.Equal(t, first, run())
	assert.NotEqual(t, []string{"web-0", "web-1", "web-2"}, first)
}

func TestReadMesh(t *testing.T) {
	kube := revkittest.NewCluster().WithRevision(oldRev).WithTag("prod", oldRev).
		WithNamespace("shop", revkittest.Rev("prod")).WithNamespace("plain").
		WithDeployment("shop", "web", revkittest.Replicas(2), revkittest.OnRevision(oldRev)).
		WithPod("plain", "job", "").Kube()
	st, err := revkittest.ReadMesh(ctx, kube, "shop", "plain")
	require.NoError(t, err)
	assert.Equal(t, revkittest.MeshState{
		Labels:     map[string]string{"shop": "istio.io/rev=prod", "plain": ""},
		Tags:       map[string]string{"prod": oldRev},
		Mutating:   []string{"istio-revision-tag-prod", "istio-sidecar-injector-1-24-0"},
		Validating: []string{"istio-validator-1-24-0-istio-system"},
		Injects:    map[string][]string{"shop": {oldRev}, "plain": nil},
		Pods:       map[string]map[string]int{"shop": {oldRev: 2}, "plain": {"": 1}},
	}, st)
	_, err = revkittest.ReadMesh(ctx, kube, "missing")
	assert.True(t, apierrors.IsNotFound(err))
}
