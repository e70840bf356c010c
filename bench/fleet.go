package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/testenv"
)

// fleetLabel marks every namespace and Deployment of the fleet.
const (
	fleetLabel    = "bench"
	fleetValue    = "fleet"
	fleetSelector = fleetLabel + "=" + fleetValue
)

// Fleet is N namespaces × D Deployments × R replicas.
type Fleet struct {
	Namespaces, Deployments, Replicas int
}

// Workloads is the number of Deployments.
func (f Fleet) Workloads() int { return f.Namespaces * f.Deployments }

// MinimalWrites is one label patch per namespace plus one restart patch per
// Deployment.
func (f Fleet) MinimalWrites() int { return f.Namespaces + f.Workloads() }

func (f Fleet) namespace(i int) string  { return fmt.Sprintf("bench-%04d", i) }
func (f Fleet) deployment(j int) string { return fmt.Sprintf("app-%d", j) }

// parallel runs fn(0..n-1) on at most workers goroutines and returns the
// first error.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return first
}

// create makes the namespaces (labelled istio.io/rev=old) and their
// Deployments, then waits until every Deployment has rolled out.
func (f Fleet) create(ctx context.Context, env *testenv.Env, kube kubernetes.Interface, rev string) error {
	err := parallel(ctx, f.Namespaces, 32, func(ctx context.Context, i int) error {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.namespace(i),
			Labels: map[string]string{fleetLabel: fleetValue, "istio.io/rev": rev}}}
		if _, err := kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		if err := env.WaitForServiceAccount(ctx, ns.Name, "default"); err != nil {
			return err
		}
		for j := range f.Deployments {
			if _, err := kube.AppsV1().Deployments(ns.Name).Create(ctx, f.deploymentObject(j), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("creating the fleet: %w", err)
	}
	_, err = waitRolledOut(ctx, kube, nil)
	return err
}

func (f Fleet) deploymentObject(j int) *appsv1.Deployment {
	labels := map[string]string{"app": f.deployment(j)}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: f.deployment(j), Labels: map[string]string{fleetLabel: fleetValue}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(f.Replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers:                    []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
					TerminationGracePeriodSeconds: ptr.To(int64(0)),
				},
			},
		},
	}
}

// labelPatch is what `kubectl label namespace X istio-injection- istio.io/rev=R --overwrite` sends.
func labelPatch(rev string) []byte {
	return []byte(fmt.Sprintf(`{"metadata":{"labels":{"istio-injection":null,"istio.io/rev":%q}}}`, rev))
}

// restartPatch is what `kubectl rollout restart` sends.
func restartPatch(t time.Time) []byte {
	return []byte(fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`,
		t.Format(time.RFC3339Nano)))
}

// migrateParallel sends the minimal writes for moving the fleet to rev —
// one label patch per namespace, then one restart patch per Deployment —
// with workers requests in flight, and returns the generation each
// Deployment reached ("ns/name" → generation).
func (f Fleet) migrateParallel(ctx context.Context, kube kubernetes.Interface, rev string, workers int) (map[string]int64, error) {
	err := parallel(ctx, f.Namespaces, workers, func(ctx context.Context, i int) error {
		_, err := kube.CoreV1().Namespaces().Patch(ctx, f.namespace(i), types.MergePatchType, labelPatch(rev), metav1.PatchOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("labelling namespaces: %w", err)
	}
	var mu sync.Mutex
	gens := map[string]int64{}
	body := restartPatch(time.Now())
	err = parallel(ctx, f.Workloads(), workers, func(ctx context.Context, k int) error {
		ns, name := f.namespace(k/f.Deployments), f.deployment(k%f.Deployments)
		d, err := kube.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, body, metav1.PatchOptions{})
		if err != nil {
			return err
		}
		mu.Lock()
		gens[ns+"/"+name] = d.Generation
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("restarting Deployments: %w", err)
	}
	return gens, nil
}

// rolledOut: kstatus calls the Deployment Current (a failed rollout stays
// pending until the timeout, as kubectl rollout status would wait).
func rolledOut(d *appsv1.Deployment) bool {
	pending, err := kubeutil.RolloutStatus(d)
	return err == nil && pending == ""
}

// waitRolledOut lists and then watches the fleet's Deployments cluster-wide
// until each has rolled out (as kubectl rollout status judges it) at no less
// than the generation in gens (nil: any generation), or until
// rolloutTimeout has passed. It returns how many list and watch calls it
// made.
func waitRolledOut(ctx context.Context, kube kubernetes.Interface, gens map[string]int64) (calls int, err error) {
	ctx, cancel := context.WithTimeout(ctx, rolloutTimeout)
	defer cancel()
	pending := map[string]bool{}
	defer func() {
		if err != nil && len(pending) > 0 {
			err = fmt.Errorf("%d Deployments not rolled out: %w", len(pending), err)
		}
	}()
	check := func(d *appsv1.Deployment) {
		key := d.Namespace + "/" + d.Name
		if g, ok := gens[key]; (gens == nil || ok) && d.Status.ObservedGeneration >= g && rolledOut(d) {
			delete(pending, key)
		} else if gens == nil || ok {
			pending[key] = true
		}
	}
	for {
		calls++
		list, err := kube.AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: fleetSelector})
		if err != nil {
			return calls, err
		}
		clear(pending)
		for i := range list.Items {
			check(&list.Items[i])
		}
		if len(pending) == 0 {
			return calls, nil
		}
		calls++
		w, err := kube.AppsV1().Deployments("").Watch(ctx, metav1.ListOptions{LabelSelector: fleetSelector,
			ResourceVersion: list.ResourceVersion, AllowWatchBookmarks: true})
		if err != nil {
			return calls, err
		}
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			if d, ok := ev.Object.(*appsv1.Deployment); ok {
				check(d)
			}
			if len(pending) == 0 {
				w.Stop()
				return calls, nil
			}
		}
		w.Stop()
		if err := ctx.Err(); err != nil {
			return calls, context.Cause(ctx)
		}
		// The watch ended (timeout or compaction): list again.
	}
}

// rolloutTimeout bounds every wait for the fleet's rollouts, as revkit's
// RolloutRestart is bounded in the revkit way.
const rolloutTimeout = 30 * time.Minute

// reset moves the fleet back to rev outside of any measurement.
func (f Fleet) reset(ctx context.Context, kube kubernetes.Interface, rev string) error {
	gens, err := f.migrateParallel(ctx, kube, rev, 64)
	if err != nil {
		return err
	}
	if _, err := waitRolledOut(ctx, kube, gens); err != nil {
		return err
	}
	return f.waitPodsOn(ctx, kube, rev, 5*time.Minute)
}

// onRevision checks that every fleet namespace selects rev and every live
// pod of the fleet was injected by rev; it returns what is not.
func (f Fleet) onRevision(ctx context.Context, kube kubernetes.Interface, rev string) ([]string, error) {
	var bad []string
	nss, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: fleetSelector})
	if err != nil {
		return nil, err
	}
	if len(nss.Items) != f.Namespaces {
		bad = append(bad, fmt.Sprintf("%d fleet namespaces, want %d", len(nss.Items), f.Namespaces))
	}
	for _, ns := range nss.Items {
		if ns.Labels["istio.io/rev"] != rev {
			bad = append(bad, fmt.Sprintf("namespace %s: istio.io/rev=%q", ns.Name, ns.Labels["istio.io/rev"]))
		}
	}
	pods, err := kubeutil.ListPods(ctx, kube, "", metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	live := 0
	for i := range pods {
		p := &pods[i]
		if len(p.Namespace) < 6 || p.Namespace[:6] != "bench-" || p.DeletionTimestamp != nil {
			continue
		}
		live++
		if r, _ := testenv.InjectedRevision(p); r != rev {
			bad = append(bad, fmt.Sprintf("pod %s/%s: revision %q", p.Namespace, p.Name, r))
		}
	}
	if want := f.Workloads() * f.Replicas; live != want {
		bad = append(bad, fmt.Sprintf("%d live fleet pods, want %d", live, want))
	}
	return bad, nil
}

// waitPodsOn waits until onRevision finds nothing wrong (old pods being
// deleted may linger a moment after a rollout).
func (f Fleet) waitPodsOn(ctx context.Context, kube kubernetes.Interface, rev string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		bad, err := f.onRevision(ctx, kube, rev)
		if err != nil {
			return err
		}
		if len(bad) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if len(bad) > 5 {
				bad = append(bad[:5], fmt.Sprintf("... %d more", len(bad)-5))
			}
			return fmt.Errorf("fleet not on %s: %v", rev, bad)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
