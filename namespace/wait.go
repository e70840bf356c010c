package namespace

import (
	"cmp"
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
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/klog/v2"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
)

// waitRollouts blocks until every restarted workload has rolled out, the
// timeout passes or ctx ends. It watches each kind with client-go's
// watchtools.UntilWithSync (an informer that lists, watches and lists again
// when a watch ends) — once
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
		for _, kind := range allKinds {
			if members := byKind[kind]; len(members) > 0 {
				if err := w.watchKind(ctx, ns, kind, members); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// watchKind waits for the members of kind in ns ("" for all namespaces)
// with client-go's watchtools.UntilWithSync: an informer lists, watches,
// and lists again whenever the watch ends or its resource version expires,
// backing off while the apiserver cannot answer. The list and watch go
// through listWatch, which records each failure for the WaitError and
// ends the wait on one that retrying cannot fix.
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
	api, ok := kindAPIs[kind]
	if !ok {
		return errUnknownKind(kind)
	}
	// The informer logs its retries through the context's logger; the
	// library does not print, and reports them in WaitError.LastError.
	wctx, stop := context.WithCancelCause(klog.NewContext(ctx, klog.Logger{}))
	defer stop(nil)
	// observe notes a member's progress, and reports whether every member
	// has rolled out. Objects that are not members (a cluster-wide watch
	// sees every workload the selector matches) are skipped before their
	// status is computed.
	observe := func(ev watch.Event) (bool, error) {
		if ev.Type != watch.Added && ev.Type != watch.Modified {
			return false, nil
		}
		m, err := meta.Accessor(ev.Object)
		if err != nil {
			return false, nil
		}
		wr := members[m.GetNamespace()+"/"+m.GetName()]
		if wr == nil || wr.RolledOut {
			return left == 0, nil
		}
		pending, err := kubeutil.RolloutStatus(ev.Object)
		if err != nil {
			return false, err
		}
		w.note(wr, pending)
		if wr.RolledOut {
			left--
		}
		return left == 0, nil
	}
	lw := w.listWatch(ns, kind, api, stop)
	_, err := watchtools.UntilWithSync(wctx, cache.ToListWatcherWithWatchListSemantics(lw, w.kube), api.empty, nil, observe)
	if cause := context.Cause(wctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return cause // a failure listWatch ended the wait on
	}
	var failed *revkit.RolloutFailedError
	switch {
	case errors.As(err, &failed):
		return err
	case left == 0:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return err
	}
	return nil
}

// listWatch lists and watches kind in ns for an informer. A read that
// fails transiently is recorded (w.read) and tried again here with
// kubeutil.TransientBackoff, so that the wait notices the apiserver back
// within seconds (the informer's own backoff grows to a minute); a
// forbidden one ends the wait with errNoWatch, to poll instead; any other
// ends it with an *revkit.OpError, through stop.
func (w *waiter) listWatch(ns string, kind Kind, api kindAPI, stop context.CancelCauseFunc) *cache.ListWatch {
	sel := w.opts.WorkloadSelector
	read := func(ctx context.Context, verb string, call func() error) error {
		var err error
		called := false
		_ = wait.ExponentialBackoffWithContext(ctx, kubeutil.TransientBackoff(), func(context.Context) (bool, error) {
			called = true
			err = call()
			return !w.read(err), nil
		})
		if !called {
			// ctx ended first: the backoff did not call at all, and a nil
			// error would promise the informer a result.
			return cmp.Or(ctx.Err(), context.Canceled)
		}
		switch {
		case err == nil:
		case apierrors.IsForbidden(err):
			stop(errNoWatch)
		case apierrors.IsResourceExpired(err) || apierrors.IsGone(err):
			// The informer lists again.
		case ctx.Err() != nil:
			return ctx.Err()
		case !kubeutil.Transient(err):
			stop(&revkit.OpError{Op: "namespace.RolloutRestart", Verb: verb, Object: revkit.ObjectRef{Kind: string(kind), Namespace: ns}, Err: err})
		}
		return err
	}
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, lo metav1.ListOptions) (l runtime.Object, err error) {
			lo.LabelSelector = sel
			// "0" would let the apiserver answer from its cache, which may
			// not have the restart patch yet: the rollout would look done.
			if lo.ResourceVersion == "0" {
				lo.ResourceVersion = ""
			}
			err = read(ctx, "list", func() (err error) {
				l, err = api.list(ctx, w.kube, ns, lo)
				return err
			})
			return l, err
		},
		WatchFuncWithContext: func(ctx context.Context, lo metav1.ListOptions) (wi watch.Interface, err error) {
			lo.LabelSelector = sel
			err = read(ctx, "watch", func() (err error) {
				wi, err = api.watch(ctx, w.kube, ns, lo)
				return err
			})
			return wi, err
		},
	}
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
			objs, err := listKind(ctx, w.kube, g.ns, g.kind, "")
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
