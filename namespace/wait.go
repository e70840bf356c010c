package namespace

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
)

// waitRollouts blocks until every restarted workload has rolled out, the
// timeout passes or ctx ends. It lists and then watches each kind — once
// across the cluster with clusterWide, else once per namespace when there
// are fewer than ten — so a rollout is seen done as soon as its controller
// reports it and the wait costs a few requests whatever the fleet size.
// When watching is forbidden, or the namespaces are many but cannot be
// watched together, it polls each (namespace, kind) with one list every
// PollInterval, workers at a time.
//
// Reads that fail transiently (the apiserver unreachable, restarting or
// overloaded) are retried with a backoff until the timeout: a rollout goes
// on while the apiserver restarts, and so does the wait.
//
// Each workload is judged by kubeutil.RolloutStatus, that is by kstatus. A
// rollout kstatus calls Failed (a Deployment past its progress deadline;
// StatefulSets and DaemonSets never are) ends the wait with a
// *revkit.RolloutFailedError as soon as the wait reads it, on the watch
// path and the polling one alike: waiting for the timeout could not make it
// roll out. A wait that watches namespace by
// namespace reads a namespace only once those before it have rolled out,
// so a failure there is seen then.
func waitRollouts(ctx context.Context, kube kubernetes.Interface, opts RestartOptions, ws []*WorkloadResult, clusterWide bool, workers int) error {
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	w := &waiter{kube: kube, opts: opts, workers: workers, pending: map[string]string{}}
	scopes := []string{metav1.NamespaceAll}
	if !clusterWide {
		scopes = scopes[:0]
		seen := map[string]bool{}
		for _, wr := range ws {
			if !seen[wr.Namespace] {
				seen[wr.Namespace] = true
				scopes = append(scopes, wr.Namespace)
			}
		}
	}
	if len(scopes) < clusterWideFrom {
		err := w.watch(ctx, ws, scopes)
		if !errors.Is(err, errNoWatch) {
			return w.result(err)
		}
	}
	return w.result(w.poll(ctx, ws))
}

// errNoWatch: the list or watch is forbidden; poll instead.
var errNoWatch = errors.New("cannot watch across the cluster")

type waiter struct {
	kube    kubernetes.Interface
	opts    RestartOptions
	workers int

	mu      sync.Mutex
	pending map[string]string // "Kind/ns/name" → reason, for the timeout error
	// lastErr is the transient error of the latest read, nil once a read
	// succeeds again.
	lastErr error
}

// read records how the latest read went, and reports whether its error is
// transient, to be retried.
func (w *waiter) read(err error) bool {
	if err != nil && !kubeutil.Transient(err) {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastErr = err
	return err != nil
}

func (w *waiter) result(err error) error {
	if err == nil {
		return nil
	}
	var (
		op     *revkit.OpError
		failed *revkit.RolloutFailedError
	)
	if errors.As(err, &op) || errors.As(err, &failed) {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	list := make([]string, 0, len(w.pending))
	for k, v := range w.pending {
		list = append(list, k+": "+v)
	}
	sort.Strings(list)
	return &WaitError{Pending: list, Err: err, LastError: w.lastErr}
}

func (w *waiter) note(wr *WorkloadResult, reason string) {
	key := fmt.Sprintf("%s/%s/%s", wr.Kind, wr.Namespace, wr.Name)
	w.mu.Lock()
	defer w.mu.Unlock()
	if reason == "" {
		wr.RolledOut = true
		delete(w.pending, key)
		return
	}
	w.pending[key] = reason
}

// watch waits scope by scope and kind by kind: everything rolls out at
// once, so waiting for one only after another costs nothing.
func (w *waiter) watch(ctx context.Context, ws []*WorkloadResult, scopes []string) error {
	byKind := map[Kind]map[string]*WorkloadResult{}
	for _, wr := range ws {
		if byKind[wr.Kind] == nil {
			byKind[wr.Kind] = map[string]*WorkloadResult{}
		}
		byKind[wr.Kind][wr.Namespace+"/"+wr.Name] = wr
		w.note(wr, "not seen yet")
	}
	for _, ns := range scopes {
		for _, kind := range []Kind{Deployment, StatefulSet, DaemonSet} {
			if members := byKind[kind]; len(members) > 0 {
				if err := w.watchKind(ctx, ns, kind, members); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// watchKind waits for the members of kind in ns ("" for all namespaces).
func (w *waiter) watchKind(ctx context.Context, ns string, kind Kind, members map[string]*WorkloadResult) error {
	left := 0
	for _, wr := range members {
		if !wr.RolledOut && (ns == metav1.NamespaceAll || wr.Namespace == ns) {
			left++
		}
	}
	if left == 0 {
		return nil
	}
	// observe notes a member's progress, and returns its failure. Objects
	// that are not members (a cluster-wide watch sees every workload the
	// selector matches) are skipped before their status is computed.
	observe := func(obj runtime.Object) error {
		m, err := meta.Accessor(obj)
		if err != nil {
			return nil
		}
		wr := members[m.GetNamespace()+"/"+m.GetName()]
		if wr == nil || wr.RolledOut {
			return nil
		}
		pending, err := kubeutil.RolloutStatus(obj)
		if err != nil {
			return err
		}
		w.note(wr, pending)
		if wr.RolledOut {
			left--
		}
		return nil
	}
	backoff := kubeutil.TransientBackoff()
	for {
		list, rv, err := listKind(ctx, w.kube, ns, kind, w.opts.WorkloadSelector)
		if err != nil {
			if apierrors.IsForbidden(err) {
				return errNoWatch
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if w.read(err) {
				if err := kubeutil.Pause(ctx, backoff.Step()); err != nil {
					return err
				}
				continue
			}
			return &revkit.OpError{Op: "namespace.RolloutRestart", Verb: "list", Object: revkit.ObjectRef{Kind: string(kind), Namespace: ns}, Err: err}
		}
		w.read(nil)
		for _, obj := range list {
			if err := observe(obj); err != nil {
				return err
			}
		}
		if left == 0 {
			return nil
		}
		wi, err := watchKind(ctx, w.kube, ns, kind, w.opts.WorkloadSelector, rv)
		if err != nil {
			if apierrors.IsForbidden(err) {
				return errNoWatch
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if w.read(err) {
				if err := kubeutil.Pause(ctx, backoff.Step()); err != nil {
					return err
				}
				continue
			}
			return &revkit.OpError{Op: "namespace.RolloutRestart", Verb: "watch", Object: revkit.ObjectRef{Kind: string(kind), Namespace: ns}, Err: err}
		}
		backoff = kubeutil.TransientBackoff()
		var failed error
		done := func() bool {
			defer wi.Stop()
			for {
				select {
				case <-ctx.Done():
					return true
				case ev, ok := <-wi.ResultChan():
					if !ok || ev.Type == watch.Error {
						return false // expired or closed: list again
					}
					if ev.Type == watch.Added || ev.Type == watch.Modified {
						if failed = observe(ev.Object); failed != nil || left == 0 {
							return true
						}
					}
				}
			}
		}()
		if failed != nil {
			return failed
		}
		if done {
			if left == 0 {
				return nil
			}
			return ctx.Err()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

func listKind(ctx context.Context, kube kubernetes.Interface, ns string, kind Kind, sel string) ([]runtime.Object, string, error) {
	lo := metav1.ListOptions{LabelSelector: sel}
	var out []runtime.Object
	switch kind {
	case Deployment:
		l, err := kube.AppsV1().Deployments(ns).List(ctx, lo)
		if err != nil {
			return nil, "", err
		}
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
		return out, l.ResourceVersion, nil
	case StatefulSet:
		l, err := kube.AppsV1().StatefulSets(ns).List(ctx, lo)
		if err != nil {
			return nil, "", err
		}
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
		return out, l.ResourceVersion, nil
	case DaemonSet:
		l, err := kube.AppsV1().DaemonSets(ns).List(ctx, lo)
		if err != nil {
			return nil, "", err
		}
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
		return out, l.ResourceVersion, nil
	}
	return nil, "", errors.New("unknown kind " + string(kind))
}

func watchKind(ctx context.Context, kube kubernetes.Interface, ns string, kind Kind, sel, rv string) (watch.Interface, error) {
	lo := metav1.ListOptions{LabelSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true}
	switch kind {
	case Deployment:
		return kube.AppsV1().Deployments(ns).Watch(ctx, lo)
	case StatefulSet:
		return kube.AppsV1().StatefulSets(ns).Watch(ctx, lo)
	case DaemonSet:
		return kube.AppsV1().DaemonSets(ns).Watch(ctx, lo)
	}
	return nil, errors.New("unknown kind " + string(kind))
}

// poll lists each (namespace, kind) that still has a pending workload,
// Concurrency at a time, every PollInterval.
func (w *waiter) poll(ctx context.Context, ws []*WorkloadResult) error {
	interval := w.opts.PollInterval
	if interval == 0 {
		interval = 2 * time.Second
	}
	type group struct {
		ns   string
		kind Kind
	}
	for {
		groups := map[group][]*WorkloadResult{}
		var keys []group
		for _, wr := range ws {
			if !wr.RolledOut {
				g := group{wr.Namespace, wr.Kind}
				if groups[g] == nil {
					keys = append(keys, g)
				}
				groups[g] = append(groups[g], wr)
			}
		}
		if len(keys) == 0 {
			return nil
		}
		ran, errs := forEach(ctx, len(keys), w.workers, func(ctx context.Context, i int) error {
			g := keys[i]
			objs, _, err := listKind(ctx, w.kube, g.ns, g.kind, "")
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if w.read(err) {
					return nil // still pending; read again next round
				}
				return &revkit.OpError{Op: "namespace.RolloutRestart", Verb: "list",
					Object: revkit.ObjectRef{Kind: string(g.kind), Namespace: g.ns}, Err: err}
			}
			w.read(nil)
			byName := make(map[string]runtime.Object, len(objs))
			for _, obj := range objs {
				if m, err := meta.Accessor(obj); err == nil {
					byName[m.GetName()] = obj
				}
			}
			for _, wr := range groups[g] {
				obj, ok := byName[wr.Name]
				if !ok {
					w.note(wr, "not found")
					continue
				}
				pending, err := kubeutil.RolloutStatus(obj)
				if err != nil {
					return err
				}
				w.note(wr, pending)
			}
			return nil
		})
		if err := firstError(ctx, ran, errs); err != nil {
			return err
		}
		w.mu.Lock()
		left := len(w.pending)
		w.mu.Unlock()
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
