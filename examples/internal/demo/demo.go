// Package demo is what the example programs share: connecting to a cluster
// from flags, or, without a kubeconfig, starting the local control plane
// with a small mesh to upgrade; and printing the mesh as tables.
package demo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

// Cluster is what an example works on.
type Cluster struct {
	Kube   kubernetes.Interface
	Config *rest.Config
	// Local is set when the example started the local control plane.
	Local *testenv.Env
	stop  func()
	// sidecars are the fake sidecars connected, by namespace and proxy ID.
	sidecars   map[string]map[string]*testenv.Sidecar
	sidecarsMu sync.Mutex
}

// Close stops the local control plane, if one was started.
func (c *Cluster) Close() {
	if c.stop != nil {
		c.stop()
	}
}

// KubeconfigFlag registers --kubeconfig, defaulting to $KUBECONFIG.
func KubeconfigFlag(fs *flag.FlagSet) *string {
	return fs.String("kubeconfig", os.Getenv("KUBECONFIG"),
		"kubeconfig of the cluster to work on (default $KUBECONFIG); without one, a local control plane is started")
}

// Connect returns the cluster at kubeconfig; with an empty kubeconfig it
// starts the local control plane (which must run in a loopback-only network
// namespace, as `make demo` arranges).
func Connect(kubeconfig string, log io.Writer) (*Cluster, error) {
	return connect(kubeconfig, log, testenv.Options{})
}

func connect(kubeconfig string, log io.Writer, local testenv.Options) (*Cluster, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, err
		}
		cfg.QPS, cfg.Burst = 50, 100
		kube, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, err
		}
		return &Cluster{Kube: kube, Config: cfg}, nil
	}
	fmt.Fprintln(log, "no kubeconfig: starting a local control plane (etcd, kube-apiserver, controllers, KWOK, istiod)")
	env, stop, err := testenv.Launch(local, prefixWriter{w: log, prefix: "  | "})
	if err != nil {
		var hn *testenv.HostNetworkError
		if errors.As(err, &hn) {
			return nil, fmt.Errorf("%w\nrun it with `make demo`, or under hack/netns-run.sh", err)
		}
		return nil, err
	}
	return &Cluster{Kube: env.Client, Config: env.Config, Local: env, stop: stop}, nil
}

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line != "" {
			fmt.Fprint(p.w, p.prefix+line)
		}
	}
	return len(b), nil
}

// Apps are the demo's namespaces and their Deployments.
var Apps = map[string][]string{"shop": {"cart", "checkout"}, "blog": {"web"}, "search": {"api"}}

// SeedMesh installs revision rev in the local control plane, points tag at
// it and creates the demo namespaces (labelled istio.io/rev=<tag>) with
// their Deployments, two replicas each, and an ingress gateway on rev.
func (c *Cluster) SeedMesh(ctx context.Context, rev, tg string, log io.Writer) error {
	if c.Local == nil {
		return errors.New("demo: seeding needs the local control plane")
	}
	fmt.Fprintf(log, "installing revision %s (Istio %s, the \"old\" control plane)\n", rev, testenv.IstioFor(rev))
	if _, err := c.Local.StartIstiod(ctx, rev); err != nil {
		return err
	}
	if _, err := tag.Set(ctx, c.Kube, tag.SetOptions{Tag: tg, Revision: rev}); err != nil {
		return err
	}
	names := make([]string, 0, len(Apps))
	for ns := range Apps {
		names = append(names, ns)
	}
	sort.Strings(names)
	fmt.Fprintf(log, "creating namespaces %s on tag %s, and an ingress gateway\n", strings.Join(names, ", "), tg)
	for _, ns := range names {
		if err := c.namespace(ctx, ns, map[string]string{"istio.io/rev": tg, "demo": "true"}); err != nil {
			return err
		}
		for _, app := range Apps[ns] {
			if err := c.deployment(ctx, ns, app, nil, nil); err != nil {
				return err
			}
		}
	}
	if err := c.namespace(ctx, "istio-ingress", nil); err != nil {
		return err
	}
	if err := c.deployment(ctx, "istio-ingress", "istio-ingressgateway",
		map[string]string{"istio": "ingressgateway", "sidecar.istio.io/inject": "true", "istio.io/rev": rev},
		map[string]string{"inject.istio.io/templates": "gateway"}); err != nil {
		return err
	}
	if err := c.WaitReady(ctx, append(names, "istio-ingress")); err != nil {
		return err
	}
	// KWOK's pods run no Envoy: connect one for each, as the real sidecars
	// would, so that istiod reports them.
	for _, ns := range append(names, "istio-ingress") {
		if _, err := c.connectSidecars(ctx, ns); err != nil {
			return err
		}
	}
	return nil
}

// connectSidecars connects a fake sidecar for every running injected pod of
// the namespace and waits until they are synced. The sidecars of pods that
// are gone (replaced by a restart) are closed, as their Envoy would end
// with the pod, so that istiod stops reporting them.
func (c *Cluster) connectSidecars(ctx context.Context, ns string) (int, error) {
	c.sidecarsMu.Lock()
	defer c.sidecarsMu.Unlock()
	ss, err := c.Local.ConnectPodSidecars(ctx, ns, "")
	if c.sidecars == nil {
		c.sidecars = map[string]map[string]*testenv.Sidecar{}
	}
	old := c.sidecars[ns]
	now := map[string]*testenv.Sidecar{}
	for _, s := range ss {
		if prev := old[s.ProxyID]; prev != nil {
			_ = prev.Close()
		}
		delete(old, s.ProxyID)
		now[s.ProxyID] = s
	}
	for _, gone := range old {
		_ = gone.Close()
	}
	c.sidecars[ns] = now
	if err != nil {
		return 0, err
	}
	for _, s := range ss {
		if err := s.WaitSynced(ctx); err != nil {
			return 0, err
		}
	}
	return len(ss), nil
}

// FollowSidecars keeps the fake sidecars of the namespaces' pods connected
// in the background, as real Envoys start and end with their pods: when the
// running pods of a namespace change (a restart by a plan the example runs
// against --kubeconfig, say), its sidecars are connected again. It stops
// when ctx ends or stop is called.
func (c *Cluster) FollowSidecars(ctx context.Context, namespaces []string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		seen := map[string]string{}
		for {
			for _, ns := range namespaces {
				pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					continue
				}
				var running []string
				for i := range pods.Items {
					p := &pods.Items[i]
					if _, ok := testenv.InjectedRevision(p); ok && p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
						running = append(running, p.Name)
					}
				}
				sort.Strings(running)
				if key := strings.Join(running, ","); key != seen[ns] {
					if _, err := c.connectSidecars(ctx, ns); err == nil {
						seen[ns] = key
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	return func() { cancel(); <-done }
}

// StopRevisionStep returns a step that stops a revision's local istiod
// process after its uninstall (local control plane only).
func (c *Cluster) StopRevisionStep(rev string) upgrade.Step {
	return upgrade.Func("stop-local-istiod "+rev, "stop the istiod process of "+rev+" (local control plane only)",
		func(ctx context.Context, env upgrade.Env) (upgrade.Result, error) {
			if !env.Common.DryRun.Persists() {
				return upgrade.Result{Outcome: upgrade.Skipped, Detail: "dry run"}, nil
			}
			if err := c.Local.StopIstiod(rev); err != nil {
				return upgrade.Result{}, err
			}
			return upgrade.Result{Outcome: upgrade.Done, Detail: "istiod " + rev + " stopped"}, nil
		})
}

func (c *Cluster) namespace(ctx context.Context, name string, labels map[string]string) error {
	_, err := c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	return c.Local.WaitForServiceAccount(ctx, name, "default")
}

func (c *Cluster) deployment(ctx context.Context, ns, name string, extraLabels, annotations map[string]string) error {
	labels := map[string]string{"app": name}
	podLabels := map[string]string{"app": name}
	for k, v := range extraLabels {
		podLabels[k] = v
	}
	_, err := c.Kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: annotations},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/" + name + ":1"}}},
			},
		},
	}, metav1.CreateOptions{})
	return err
}

// WaitReady waits until every Deployment in the namespaces is rolled out.
func (c *Cluster) WaitReady(ctx context.Context, namespaces []string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		pending := 0
		for _, ns := range namespaces {
			list, err := c.Kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			for _, d := range list.Items {
				want := ptr.Deref(d.Spec.Replicas, 1)
				if d.Status.ObservedGeneration < d.Generation || d.Status.AvailableReplicas < want || d.Status.UpdatedReplicas < want || d.Status.Replicas != want {
					pending++
				}
			}
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d deployments not ready: %w", pending, ctx.Err())
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// LocalRevisionStep returns a step that starts the local istiod of a
// revision installed by the plan's install step, so that its webhooks
// answer: on a real cluster the chart's own Deployment does that.
func (c *Cluster) LocalRevisionStep(is *testenv.Istiod) upgrade.Step {
	return upgrade.Func("start-local-istiod "+is.Revision, "run the istiod process of "+is.Revision+" (local control plane only)",
		func(ctx context.Context, env upgrade.Env) (upgrade.Result, error) {
			if !env.Common.DryRun.Persists() {
				return upgrade.Result{Outcome: upgrade.Skipped, Detail: "dry run"}, nil
			}
			if _, err := c.Local.StartInstalledIstiod(ctx, is); err != nil {
				return upgrade.Result{}, err
			}
			return upgrade.Result{Outcome: upgrade.Done, Detail: "istiod " + is.Revision + " serving on " + is.WebhookAddr}, nil
		})
}

// ConnectSidecarsStep returns a step that connects a fake Envoy for every
// injected pod of the namespaces to the istiod that injected it, as real
// sidecars would (local control plane only: KWOK's pods run no Envoy).
func (c *Cluster) ConnectSidecarsStep(name string, namespaces []string) upgrade.Step {
	return upgrade.Func(name, "connect the pods' sidecars to their istiod (local control plane only)",
		func(ctx context.Context, env upgrade.Env) (upgrade.Result, error) {
			if !env.Common.DryRun.Persists() {
				return upgrade.Result{Outcome: upgrade.Skipped, Detail: "dry run"}, nil
			}
			n := 0
			for _, ns := range namespaces {
				k, err := c.connectSidecars(ctx, ns)
				if err != nil {
					return upgrade.Result{}, err
				}
				n += k
			}
			return upgrade.Result{Outcome: upgrade.Done, Detail: fmt.Sprintf("%d sidecars connected", n)}, nil
		})
}

// PrintEvents returns an event callback that prints each step as it starts
// and ends.
func PrintEvents(w io.Writer) func(revkit.Event) {
	return func(e revkit.Event) {
		if e.Operation != "upgrade.Execute" {
			return
		}
		switch e.Action {
		case upgrade.ActionStart:
			fmt.Fprintf(w, "==> %s\n", e.Step)
		case revkit.Action(upgrade.NotRun):
			fmt.Fprintf(w, "==> %s: not run, an earlier step failed\n", e.Step)
		default:
			fmt.Fprintf(w, "    %s\n", e.Message)
		}
	}
}

// PrintMesh prints revisions, tags, namespaces and (given sources) proxies
// per revision as tables.
func PrintMesh(ctx context.Context, w io.Writer, kube kubernetes.Interface, sources []verify.SyncSource) error {
	revs, err := revision.List(ctx, kube, revision.ListOptions{})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REVISION\tINJECTOR\tTAGS\tNAMESPACES\tPODS")
	for _, r := range revs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", r.Name, orDash(r.Injector), list(r.Tags), list(r.Namespaces), len(r.Pods))
	}
	tw.Flush()
	fmt.Fprintln(w)

	tags, err := tag.List(ctx, kube, tag.ListOptions{})
	if err != nil {
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TAG\tREVISION\tNAMESPACES")
	for _, t := range tags {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, t.Revision, list(t.Namespaces))
	}
	tw.Flush()
	fmt.Fprintln(w)

	pods, err := verify.Pods(ctx, kube, verify.PodsOptions{})
	if err != nil {
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tINJECTED BY\tPODS BY REVISION")
	for _, n := range pods.Namespaces {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Namespace, list(n.Injects), counts(n.Revisions))
	}
	tw.Flush()

	if len(sources) > 0 {
		fmt.Fprintln(w)
		rep, err := verify.Proxies(ctx, verify.ProxiesOptions{Sources: sources})
		if err != nil {
			return err
		}
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "REVISION\tPROXIES\tSYNCED\tSTALE\tNOT SENT\tERROR")
		for _, r := range rep.Revisions {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\n", r.Revision, r.Proxies, r.Synced, r.Stale, r.NotSent, r.Error)
		}
		tw.Flush()
	}
	return nil
}

// PrintProxyVersions prints how many pods of the namespaces matching selector
// run the sidecar of each Istio version (the injected istio-proxy image's tag).
func PrintProxyVersions(ctx context.Context, w io.Writer, kube kubernetes.Interface, selector string) error {
	nss, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return err
	}
	byVersion := map[string]int{}
	for _, ns := range nss.Items {
		pods, err := kube.CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for i := range pods.Items {
			if pods.Items[i].DeletionTimestamp != nil {
				continue
			}
			v, ok := testenv.ProxyVersion(&pods.Items[i])
			if !ok {
				v = "(no sidecar)"
			}
			byVersion[v]++
		}
	}
	fmt.Fprintf(w, "\nsidecar proxy versions (pods of %s): %s\n", selector, counts(byVersion))
	return nil
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}

// LocalSources are syncz sources for the local istiods still running.
func (c *Cluster) LocalSources(revs ...string) []verify.SyncSource {
	var out []verify.SyncSource
	for _, r := range revs {
		if is := c.Local.Istiod(r); is != nil && is.Process != nil && !is.Process.Exited() {
			out = append(out, verify.HTTPSource{Rev: r, URL: "http://" + is.MonitoringAddr})
		}
	}
	return out
}
