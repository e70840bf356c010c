package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/internal/mesh"
	"github.com/revkit/revkit/revkittest"
)

// fakeHelm plays Helm for the gateway chart on a fake clientset: it renders
// the gateway's Deployment from the values as Istio's chart does (revision
// → istio.io/rev on the pod template; labels.app and labels.istio → the
// selector labels; the other labels on the pods) and, unless in a dry run,
// applies it and replaces the pods with pods injected by the revision the
// istio.io/rev label resolves to.
type fakeHelm struct {
	kube *fake.Clientset
	// resolve maps a tag to its revision.
	resolve map[string]string
	// calls records "verb release dry-run values".
	calls []string
	// ignoreRevision renders without the revision value (a chart that does
	// not take it); dropLabels without the caller's labels; keepPods leaves
	// the pods as they are (an injector that does not answer).
	ignoreRevision, dropLabels, keepPods bool
	// noDeployment renders a manifest without the Deployment; failRender
	// fails every call.
	noDeployment, failRender bool
	// version counts the calls that rendered, as a stand-in record number.
	version   int
	installed map[string]bool
}

func newFakeHelm(kube *fake.Clientset) *fakeHelm {
	return &fakeHelm{kube: kube, resolve: map[string]string{"prod-canary": "1-25-0"}, installed: map[string]bool{}}
}

func (f *fakeHelm) record(verb string, o revkit.ReleaseOptions) {
	f.calls = append(f.calls, fmt.Sprintf("%s %s %s chart=%s %v", verb, o.Release, o.DryRun, o.Chart.Path, valuesString(o.Values)))
}

func valuesString(v map[string]any) string {
	b, _ := yaml.Marshal(v)
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "; ")
}

// writes lists the calls that change something.
func (f *fakeHelm) writes() []string {
	var out []string
	for _, c := range f.calls {
		if strings.Contains(c, " none ") || strings.HasPrefix(c, "uninstall") {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeHelm) releaseDeployment(ctx context.Context, ns, release string) (*appsv1.Deployment, error) {
	list, err := f.kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for i := range list.Items {
		if list.Items[i].Annotations["meta.helm.sh/release-name"] == release {
			return &list.Items[i], nil
		}
	}
	return nil, &revkit.NotFoundError{Kind: "Helm release", Name: ns + "/" + release}
}

func (f *fakeHelm) UpgradeRelease(ctx context.Context, o revkit.ReleaseOptions) (*revkit.ReleaseResult, error) {
	f.record("upgrade", o)
	d, err := f.releaseDeployment(ctx, o.Namespace, o.Release)
	if err != nil {
		return nil, err
	}
	d = d.DeepCopy()
	if rev, ok := o.Values["revision"].(string); ok && !f.ignoreRevision {
		d.Spec.Template.Labels["istio.io/rev"] = rev
	}
	return f.apply(ctx, d, o.DryRun, false)
}

func (f *fakeHelm) InstallRelease(ctx context.Context, o revkit.ReleaseOptions) (*revkit.ReleaseResult, error) {
	f.record("install", o)
	if f.installed[o.Release] {
		return nil, &revkit.ExistsError{Kind: "Helm release", Name: o.Release}
	}
	name, _ := o.Values["name"].(string)
	if name == "" {
		name = o.Release
	}
	sel := map[string]string{"app": name, "istio": strings.TrimPrefix(name, "istio-")}
	pod := map[string]string{"sidecar.istio.io/inject": "true"}
	if lbls, ok := o.Values["labels"].(map[string]any); ok && !f.dropLabels {
		for k, v := range lbls {
			if k == "app" || k == "istio" {
				sel[k] = v.(string)
			} else {
				pod[k] = v.(string)
			}
		}
	}
	if rev, ok := o.Values["revision"].(string); ok && !f.ignoreRevision {
		pod["istio.io/rev"] = rev
	}
	maps.Copy(pod, sel)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: o.Namespace, Labels: maps.Clone(pod),
			Annotations: map[string]string{"meta.helm.sh/release-name": o.Release, "meta.helm.sh/release-namespace": o.Namespace}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: pod,
				Annotations: map[string]string{"inject.istio.io/templates": "gateway"}}}},
	}
	delete(d.Labels, "istio.io/rev")
	res, err := f.apply(ctx, d, o.DryRun, true)
	if err == nil && o.DryRun == revkit.DryRunNone {
		f.installed[o.Release] = true
	}
	return res, err
}

func (f *fakeHelm) UninstallRelease(ctx context.Context, release string, _ time.Duration) error {
	f.calls = append(f.calls, "uninstall "+release)
	delete(f.installed, release)
	d, err := f.releaseDeployment(ctx, "istio-edge", release)
	if err != nil {
		return err
	}
	if err := f.kube.AppsV1().Deployments(d.Namespace).Delete(ctx, d.Name, metav1.DeleteOptions{}); err != nil {
		return err
	}
	return f.replacePods(ctx, d, false)
}

func (f *fakeHelm) apply(ctx context.Context, d *appsv1.Deployment, dry revkit.DryRun, create bool) (*revkit.ReleaseResult, error) {
	if f.failRender {
		return nil, fmt.Errorf("template: gateway/templates/deployment.yaml: %w", errBoom)
	}
	if f.noDeployment {
		d = d.DeepCopy()
		d.Name += "-renamed"
	}
	d.TypeMeta = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}
	out := *d
	out.ResourceVersion, out.Status = "", appsv1.DeploymentStatus{}
	manifest, err := yaml.Marshal(&out)
	if err != nil {
		return nil, err
	}
	f.version++
	res := &revkit.ReleaseResult{Version: f.version, Manifest: "---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: " + d.Name + "\n---\n" + string(manifest)}
	if dry != revkit.DryRunNone {
		return res, nil
	}
	n := ptr.Deref(d.Spec.Replicas, 1)
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
	if create {
		_, err = f.kube.AppsV1().Deployments(d.Namespace).Create(ctx, d, metav1.CreateOptions{})
	} else {
		_, err = f.kube.AppsV1().Deployments(d.Namespace).Update(ctx, d, metav1.UpdateOptions{})
	}
	if err != nil {
		return nil, err
	}
	if f.keepPods {
		return res, nil
	}
	return res, f.replacePods(ctx, d, true)
}

// replacePods deletes d's pods and, with create, starts one injected by
// the revision its template asks for.
func (f *fakeHelm) replacePods(ctx context.Context, d *appsv1.Deployment, create bool) error {
	sel := labels.SelectorFromSet(d.Spec.Selector.MatchLabels)
	pods, err := f.kube.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return err
	}
	_, canary := d.Spec.Template.Labels[gateway.LabelCanaryRevision]
	for _, p := range pods.Items {
		if _, c := p.Labels[gateway.LabelCanaryRevision]; c == canary {
			if err := f.kube.CoreV1().Pods(d.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
				return err
			}
		}
	}
	if !create {
		return nil
	}
	rev := d.Spec.Template.Labels["istio.io/rev"]
	if r, ok := f.resolve[rev]; ok {
		rev = r
	}
	for i := range ptr.Deref(d.Spec.Replicas, 1) {
		p := revkittest.Pod(d.Namespace, fmt.Sprintf("%s-%s-%d", d.Name, rev, i), rev, maps.Clone(d.Spec.Template.Labels))
		if _, err := f.kube.CoreV1().Pods(d.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// helmCluster has a Helm-installed gateway "edge" (release istio-edge) in
// istio-edge on 1-24-0, with its Service, beside the plain gateway of
// cluster().
func helmCluster(t *testing.T) (*fake.Clientset, *fakeHelm) {
	t.Helper()
	kube := cluster().WithNamespace("istio-edge").
		WithHelmGateway("istio-edge", "edge", "1-24-0", revkittest.HelmRelease{Name: "istio-edge"}, revkittest.Replicas(2)).Kube()
	_, err := kube.CoreV1().Services("istio-edge").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "edge", Namespace: "istio-edge"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "edge", "istio": "edge"}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	// The chart's pods carry both selector labels.
	pods, err := kube.CoreV1().Pods("istio-edge").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, p := range pods.Items {
		p.Labels["istio"] = "edge"
		_, err := kube.CoreV1().Pods("istio-edge").Update(ctx, &p, metav1.UpdateOptions{})
		require.NoError(t, err)
	}
	kube.ClearActions()
	return kube, newFakeHelm(kube)
}

func edgeOpts(h revkit.Releaser, target string) gateway.ReleaseOptions {
	return gateway.ReleaseOptions{Namespace: "istio-edge", Name: "edge", Target: target, Releaser: h,
		Timeout: 2 * time.Second, PollInterval: time.Millisecond}
}

func podRevisions(t *testing.T, kube kubernetes.Interface, ns string, sel map[string]string) map[string]int {
	t.Helper()
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(sel).String()})
	require.NoError(t, err)
	out := map[string]int{}
	for i := range pods.Items {
		rev, _ := mesh.PodRevision(&pods.Items[i])
		out[rev]++
	}
	return out
}

func TestUpgradeRelease(t *testing.T) {
	kube, h := helmCluster(t)
	opts := edgeOpts(h, "prod-canary")
	opts.Wait = true
	res, err := gateway.UpgradeRelease(ctx, kube, opts)
	require.NoError(t, err)
	assert.Equal(t, "1-25-0", res.Revision)
	assert.Equal(t, "istio-edge", res.Release)
	assert.Equal(t, "1-24-0", res.Gateway.Revision, "as it was")
	assert.Equal(t, 2, res.Version, "what the real upgrade returned")
	assert.Equal(t, []string{
		"upgrade istio-edge client chart= revision: prod-canary",
		"upgrade istio-edge none chart= revision: prod-canary",
	}, h.calls, "rendered first, then upgraded with its own chart")
	require.Len(t, res.Changes, 1)
	assert.Equal(t, "update HelmRelease/istio-edge/istio-edge (gateway edge: revision 1-24-0 → prod-canary)", res.Changes[0].String())
	assert.Contains(t, res.Manifest, "istio.io/rev: prod-canary")
	for _, w := range revkittest.Writes(kube) {
		assert.NotContains(t, w, "patch", "the Deployment is never patched, only released")
	}
	assert.Equal(t, map[string]int{"1-25-0": 2}, podRevisions(t, kube, "istio-edge", map[string]string{"app": "edge"}))

	// Rerunning it asks nothing of Helm.
	h.calls = nil
	res, err = gateway.UpgradeRelease(ctx, kube, opts)
	require.NoError(t, err)
	assert.Empty(t, h.calls)
	assert.False(t, revkit.AnyChanged(res.Changes))

	// A new chart, or values, upgrade the release even on the same revision.
	opts.Chart, opts.Values = revkit.ChartSource{Path: "charts/gateway-1.25"}, map[string]any{"replicaCount": 2}
	_, err = gateway.UpgradeRelease(ctx, kube, opts)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"upgrade istio-edge client chart=charts/gateway-1.25 replicaCount: 2; revision: prod-canary",
		"upgrade istio-edge none chart=charts/gateway-1.25 replicaCount: 2; revision: prod-canary",
	}, h.calls)

	// Back: a rollback is an upgrade to the old revision, by release name.
	h.calls = nil
	back := edgeOpts(h, "1-24-0")
	back.Name, back.Release, back.Wait = "", "istio-edge", true
	_, err = gateway.UpgradeRelease(ctx, kube, back)
	require.NoError(t, err)
	assert.Len(t, h.writes(), 1)
	assert.Equal(t, map[string]int{"1-24-0": 2}, podRevisions(t, kube, "istio-edge", map[string]string{"app": "edge"}))
}

func TestUpgradeReleaseDryRuns(t *testing.T) {
	for _, dr := range []revkit.DryRun{revkit.DryRunClient, revkit.DryRunServer} {
		t.Run(dr.String(), func(t *testing.T) {
			kube, h := helmCluster(t)
			opts := edgeOpts(h, "1-25-0")
			opts.DryRun, opts.Wait = dr, true
			res, err := gateway.UpgradeRelease(ctx, kube, opts)
			require.NoError(t, err)
			require.Len(t, res.Changes, 1)
			assert.Equal(t, revkit.ActionUpdate, res.Changes[0].Action)
			assert.Zero(t, res.Version, "no record written")
			revkittest.NoWrites(t, kube)
			assert.Empty(t, h.writes())
			want := []string{"upgrade istio-edge client chart= revision: 1-25-0"}
			if dr == revkit.DryRunServer {
				want = append(want, "upgrade istio-edge server chart= revision: 1-25-0")
			}
			assert.Equal(t, want, h.calls)
		})
	}
}

// Every refusal comes before any write: nothing sent to the cluster, no
// helm upgrade or install (at most a client-side rendering).
func TestReleaseRefusals(t *testing.T) {
	type op func(context.Context, kubernetes.Interface, gateway.ReleaseOptions) (*gateway.ReleaseResult, error)
	ops := map[string]op{"upgrade": gateway.UpgradeRelease, "canary": gateway.CanaryRelease,
		"promote": gateway.PromoteCanaryRelease, "rollback": gateway.RollbackCanaryRelease}
	cases := []struct {
		name  string
		ops   []string
		setup func(*fake.Clientset, *fakeHelm, *gateway.ReleaseOptions)
		want  error
		as    any
	}{
		{name: "no namespace", setup: func(_ *fake.Clientset, _ *fakeHelm, o *gateway.ReleaseOptions) { o.Namespace = "" }, want: revkit.ErrInvalidInput},
		{name: "no gateway named", setup: func(_ *fake.Clientset, _ *fakeHelm, o *gateway.ReleaseOptions) { o.Name = "" }, want: revkit.ErrInvalidInput},
		{name: "no target", setup: func(_ *fake.Clientset, _ *fakeHelm, o *gateway.ReleaseOptions) { o.Target = "" }, want: revkit.ErrInvalidInput},
		{name: "no releaser", setup: func(_ *fake.Clientset, _ *fakeHelm, o *gateway.ReleaseOptions) { o.Releaser = nil }, want: revkit.ErrInvalidInput},
		{name: "a releaser that cannot install", ops: []string{"canary", "promote", "rollback"},
			setup: func(_ *fake.Clientset, h *fakeHelm, o *gateway.ReleaseOptions) { o.Releaser = upgradeOnly{h} }, want: revkit.ErrInvalidInput},
		{name: "negative timeout", setup: func(_ *fake.Clientset, _ *fakeHelm, o *gateway.ReleaseOptions) { o.Timeout = -1 }, want: revkit.ErrInvalidInput},
		{name: "bad dry run", setup: func(_ *fake.Clientset, _ *fakeHelm, o *gateway.ReleaseOptions) { o.DryRun = 7 }, want: revkit.ErrInvalidInput},
		{name: "unknown revision", setup: func(_ *fake.Clientset, _ *fakeHelm, o *gateway.ReleaseOptions) { o.Target = "1-99-0" }, want: revkit.ErrNotFound},
		{name: "unknown gateway", setup: func(_ *fake.Clientset, _ *fakeHelm, o *gateway.ReleaseOptions) { o.Name = "nope" }, want: revkit.ErrNotFound},
		{name: "unknown release", setup: func(_ *fake.Clientset, _ *fakeHelm, o *gateway.ReleaseOptions) { o.Name, o.Release = "", "nope" }, want: revkit.ErrNotFound},
		{name: "gateway and release that do not match", setup: func(_ *fake.Clientset, _ *fakeHelm, o *gateway.ReleaseOptions) { o.Release = "other" },
			want: revkit.ErrNotFound},
		{name: "a gateway no release owns", setup: func(_ *fake.Clientset, _ *fakeHelm, o *gateway.ReleaseOptions) {
			o.Namespace, o.Name = "istio-ingress", "ingressgateway"
		}, want: revkit.ErrInvalidInput},
		{name: "a chart without the revision value", ops: []string{"upgrade", "canary", "promote"},
			setup: func(_ *fake.Clientset, h *fakeHelm, _ *gateway.ReleaseOptions) { h.ignoreRevision = true },
			want:  revkit.ErrInvalidInput, as: new(*gateway.RenderError)},
		{name: "a canary chart that drops the selected labels", ops: []string{"canary"},
			setup: func(_ *fake.Clientset, h *fakeHelm, _ *gateway.ReleaseOptions) { h.dropLabels = true },
			want:  revkit.ErrInvalidInput, as: new(*gateway.RenderError)},
		{name: "a chart that renders no such Deployment", ops: []string{"upgrade", "canary", "promote"},
			setup: func(_ *fake.Clientset, h *fakeHelm, _ *gateway.ReleaseOptions) { h.noDeployment = true },
			want:  revkit.ErrInvalidInput, as: new(*gateway.RenderError)},
		{name: "a chart that does not render", ops: []string{"upgrade", "canary", "promote"},
			setup: func(_ *fake.Clientset, h *fakeHelm, _ *gateway.ReleaseOptions) { h.failRender = true }, want: errBoom},
		{name: "a canary without a chart", ops: []string{"canary"},
			setup: func(_ *fake.Clientset, _ *fakeHelm, o *gateway.ReleaseOptions) { o.Chart = revkit.ChartSource{} }, want: revkit.ErrInvalidInput},
		{name: "the canary's name taken by another Deployment", ops: []string{"canary"},
			setup: func(k *fake.Clientset, _ *fakeHelm, _ *gateway.ReleaseOptions) {
				_, err := k.AppsV1().Deployments("istio-edge").Create(ctx, &appsv1.Deployment{
					ObjectMeta: metav1.ObjectMeta{Name: "istio-edge-1-25-0", Namespace: "istio-edge"}}, metav1.CreateOptions{})
				require.NoError(t, err)
			}, want: revkit.ErrExists},
	}
	for _, tc := range cases {
		names := tc.ops
		if names == nil {
			names = []string{"upgrade", "canary", "promote", "rollback"}
		}
		for _, name := range names {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				kube, h := helmCluster(t)
				opts := edgeOpts(h, "1-25-0")
				opts.Chart = revkit.ChartSource{Path: "charts/gateway"}
				tc.setup(kube, h, &opts)
				kube.ClearActions()
				_, err := ops[name](ctx, kube, opts)
				require.ErrorIs(t, err, tc.want)
				if tc.as != nil {
					require.ErrorAs(t, err, tc.as)
				}
				revkittest.NoWrites(t, kube)
				assert.Empty(t, h.writes())
				for _, c := range h.calls {
					assert.Contains(t, c, " client ", "only rendered")
				}
			})
		}
	}
}

type upgradeOnly struct{ revkit.Releaser }

// errBoom is the fake's rendering error.
var errBoom = errors.New("boom")

func TestCanaryReleasePromote(t *testing.T) {
	kube, h := helmCluster(t)
	opts := edgeOpts(h, "prod-canary")
	opts.Chart, opts.Wait = revkit.ChartSource{Path: "charts/gateway-1.25"}, true
	opts.Values = map[string]any{"labels": map[string]any{"team": "edge"}}
	res, err := gateway.CanaryRelease(ctx, kube, opts)
	require.NoError(t, err)
	assert.Equal(t, "istio-edge-1-25-0", res.Canary)
	require.Len(t, h.calls, 2)
	for i, dry := range []string{"client", "none"} {
		c := h.calls[i]
		assert.True(t, strings.HasPrefix(c, "install istio-edge-1-25-0 "+dry+" chart=charts/gateway-1.25 "), c)
		for _, v := range []string{"app: edge", "istio: edge", "revkit.io/canary-of: edge", "revkit.io/canary-revision: 1-25-0", "team: edge",
			"name: istio-edge-1-25-0", "revision: prod-canary", "type: None"} {
			assert.Contains(t, c, v, "values of the canary")
		}
	}

	// The gateway's Service selects the old pods and the canary's.
	assert.Equal(t, map[string]int{"1-24-0": 2, "1-25-0": 1}, podRevisions(t, kube, "istio-edge", map[string]string{"app": "edge", "istio": "edge"}))
	gws, err := gateway.List(ctx, kube, gateway.ListOptions{Namespaces: []string{"istio-edge"}})
	require.NoError(t, err)
	require.Len(t, gws, 2)
	assert.Equal(t, gateway.Gateway{Namespace: "istio-edge", Name: "edge", Revision: "1-24-0", Pods: map[string]int{"1-24-0": 2},
		Release: "istio-edge", Chart: "gateway-1.31.0"}, gws[0], "the gateway counts its own pods only")
	assert.Equal(t, gateway.Gateway{Namespace: "istio-edge", Name: "istio-edge-1-25-0", Revision: "prod-canary", Pods: map[string]int{"1-25-0": 1},
		CanaryOf: "edge", Release: "istio-edge-1-25-0"}, gws[1])

	// RemoveCanaries leaves a canary release alone; a rerun changes nothing.
	ch, err := gateway.RemoveCanaries(ctx, kube, gateway.RemoveCanariesOptions{})
	require.NoError(t, err)
	assert.Empty(t, ch)
	h.calls = nil
	res, err = gateway.CanaryRelease(ctx, kube, opts)
	require.NoError(t, err)
	assert.Empty(t, h.calls)
	assert.False(t, revkit.AnyChanged(res.Changes))
	// A canary of the same revision by another target is refused.
	other := opts
	other.Target = "1-25-0"
	_, err = gateway.CanaryRelease(ctx, kube, other)
	assert.ErrorIs(t, err, revkit.ErrExists)

	// Promotion: the gateway's release upgraded in place, then the canary
	// uninstalled.
	h.calls = nil
	promote := opts
	promote.Chart = revkit.ChartSource{}
	promote.Values = nil
	res, err = gateway.PromoteCanaryRelease(ctx, kube, promote)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"upgrade istio-edge client chart= revision: prod-canary",
		"upgrade istio-edge none chart= revision: prod-canary",
		"uninstall istio-edge-1-25-0",
	}, h.calls)
	var got []string
	for _, c := range res.Changes {
		got = append(got, c.String())
	}
	assert.Equal(t, []string{
		"update HelmRelease/istio-edge/istio-edge (gateway edge: revision 1-24-0 → prod-canary)",
		"delete HelmRelease/istio-edge/istio-edge-1-25-0 (canary of gateway edge)",
	}, got)
	assert.Equal(t, map[string]int{"1-25-0": 2}, podRevisions(t, kube, "istio-edge", map[string]string{"app": "edge"}))
	gws, err = gateway.List(ctx, kube, gateway.ListOptions{Namespaces: []string{"istio-edge"}})
	require.NoError(t, err)
	require.Len(t, gws, 1)
	assert.Equal(t, "prod-canary", gws[0].Revision)

	// Promoting again changes nothing.
	h.calls = nil
	res, err = gateway.PromoteCanaryRelease(ctx, kube, promote)
	require.NoError(t, err)
	assert.Empty(t, h.calls)
	assert.False(t, revkit.AnyChanged(res.Changes))
}

func TestCanaryReleaseRollback(t *testing.T) {
	kube, h := helmCluster(t)
	opts := edgeOpts(h, "1-25-0")
	opts.Chart, opts.Wait = revkit.ChartSource{Path: "charts/gateway-1.25"}, true
	_, err := gateway.CanaryRelease(ctx, kube, opts)
	require.NoError(t, err)

	for _, dr := range []revkit.DryRun{revkit.DryRunClient, revkit.DryRunServer} {
		h.calls = nil
		kube.ClearActions()
		o := opts
		o.DryRun = dr
		res, err := gateway.RollbackCanaryRelease(ctx, kube, o)
		require.NoError(t, err)
		require.Len(t, res.Changes, 1)
		assert.Equal(t, revkit.ActionDelete, res.Changes[0].Action)
		assert.Empty(t, h.calls, "a dry run uninstalls nothing")
		revkittest.NoWrites(t, kube)
	}

	h.calls = nil
	res, err := gateway.RollbackCanaryRelease(ctx, kube, opts)
	require.NoError(t, err)
	assert.Equal(t, []string{"uninstall istio-edge-1-25-0"}, h.calls)
	require.Len(t, res.Changes, 1)
	assert.Equal(t, "delete HelmRelease/istio-edge/istio-edge-1-25-0 (canary of gateway edge)", res.Changes[0].String())
	assert.Equal(t, map[string]int{"1-24-0": 2}, podRevisions(t, kube, "istio-edge", map[string]string{"app": "edge", "istio": "edge"}),
		"only the gateway's own pods, on the old revision")

	// Again: nothing to uninstall.
	h.calls = nil
	res, err = gateway.RollbackCanaryRelease(ctx, kube, opts)
	require.NoError(t, err)
	assert.Empty(t, h.calls)
	assert.False(t, revkit.AnyChanged(res.Changes))
}

func TestCanaryReleaseDryRuns(t *testing.T) {
	for _, dr := range []revkit.DryRun{revkit.DryRunClient, revkit.DryRunServer} {
		t.Run(dr.String(), func(t *testing.T) {
			kube, h := helmCluster(t)
			opts := edgeOpts(h, "1-25-0")
			opts.Chart, opts.DryRun, opts.Wait = revkit.ChartSource{Path: "charts/gateway"}, dr, true
			res, err := gateway.CanaryRelease(ctx, kube, opts)
			require.NoError(t, err)
			require.Len(t, res.Changes, 1)
			assert.Equal(t, revkit.ActionCreate, res.Changes[0].Action)
			assert.Contains(t, res.Manifest, "name: istio-edge-1-25-0")
			revkittest.NoWrites(t, kube)
			assert.Empty(t, h.writes())
			assert.Len(t, h.calls, map[revkit.DryRun]int{revkit.DryRunClient: 1, revkit.DryRunServer: 2}[dr])
		})
	}
}

// A wait ends with the timeout when the pods stay on the old revision,
// naming the pod.
func TestUpgradeReleaseWaitTimesOut(t *testing.T) {
	kube, h := helmCluster(t)
	h.keepPods = true
	opts := edgeOpts(h, "1-25-0")
	opts.Wait, opts.Timeout = true, 50*time.Millisecond
	res, err := gateway.UpgradeRelease(ctx, kube, opts)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, `injected by "1-24-0", not "1-25-0"`)
	assert.True(t, revkit.AnyChanged(res.Changes), "the upgrade itself is reported")
}
