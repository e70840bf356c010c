package upgrade

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit"
)

// Journal keeps a plan's progress in the cluster, so that running the same
// plan again after a crash resumes after the last completed step instead
// of starting over, and so that two runs cannot change one control plane at
// once.
//
// The progress is a ConfigMap "revkit-plan-<plan name>" in Namespace
// listing the completed steps with a fingerprint of the plan (Fingerprint).
// The lock is one Lease, LockName, in Namespace, shared by every journaled
// plan that works on that control plane: a canary and its rollback exclude
// each other. Execute renews the lease in the background for as long as the
// plan runs, a step's rollout wait included; if it is lost (another run
// took it over, or it could not be renewed before it lapsed) the run's
// context is cancelled at once and the plan fails with a *LeaseLostError.
//
// Execute refuses to resume from a journal whose fingerprint differs — the
// plan's inputs changed mid-way — unless Fresh is set, and refuses to run
// while another holder's lease is live.
type Journal struct {
	// Namespace holds the ConfigMap and the Lease; default istio-system.
	// Use the control plane's namespace, so that every plan working on it
	// shares the lock.
	Namespace string
	// Holder identifies this run in the Lease; default "<hostname>-<pid>".
	Holder string
	// LeaseDuration is how long the lease stays valid without renewal;
	// default 2 minutes, at least 1 second. Execute renews it every third
	// of that.
	LeaseDuration time.Duration
	// Fresh discards a journal of different inputs and starts over.
	Fresh bool
}

// LockName is the Lease that every journaled plan of one control-plane
// namespace holds while it runs.
const LockName = "revkit-upgrade-lock"

// annotationPlan on the Lease names the plan that holds it.
const annotationPlan = "revkit.io/plan"

// ErrLocked: another run holds the plan's lease.
var ErrLocked = errors.New("plan is running elsewhere")

// ErrJournalMismatch: the journal was written by a plan with other inputs.
var ErrJournalMismatch = errors.New("journal belongs to a plan with other inputs")

// LockedError names the run that holds the control plane's lease.
type LockedError struct {
	// Plan is the plan that was refused.
	Plan string
	// Holder is the run holding the lease, and HolderPlan the plan it runs.
	Holder, HolderPlan string
	Until              time.Time
}

func (e *LockedError) Error() string {
	by := e.Holder
	if e.HolderPlan != "" {
		by += fmt.Sprintf(" (plan %q)", e.HolderPlan)
	}
	if e.Until.IsZero() {
		return fmt.Sprintf("plan %q: the control plane is held by %s", e.Plan, by)
	}
	return fmt.Sprintf("plan %q: the control plane is held by %s until %s", e.Plan, by, e.Until.Format(time.RFC3339))
}

func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// ErrLeaseLost: a running plan lost its lease, and with it the right to
// change the control plane.
var ErrLeaseLost = errors.New("plan lost its lease")

// LeaseLostError stops a running plan whose lease was taken over by another
// run or could not be renewed before it lapsed. It matches ErrLeaseLost and,
// when another run holds the lease, ErrLocked.
type LeaseLostError struct {
	Plan string
	// Holder is the run that holds the lease now, if known.
	Holder string
	// Err is the last renewal's error, if the lease lapsed unrenewed.
	Err error
}

func (e *LeaseLostError) Error() string {
	if e.Holder != "" {
		return fmt.Sprintf("plan %q lost its lease to %s", e.Plan, e.Holder)
	}
	return fmt.Sprintf("plan %q lost its lease: not renewed before it lapsed: %v", e.Plan, e.Err)
}

func (e *LeaseLostError) Is(target error) bool {
	return target == ErrLeaseLost || (target == ErrLocked && e.Holder != "")
}

func (e *LeaseLostError) Unwrap() error { return e.Err }

// JournalMismatchError refuses to resume a plan whose steps or options
// changed since its journal was written.
type JournalMismatchError struct {
	Plan               string
	Recorded, Computed string
	// Done lists the steps the journal records as completed.
	Done []string
}

func (e *JournalMismatchError) Error() string {
	return fmt.Sprintf("plan %q changed since its journal was written (%d steps done); "+
		"run it with Journal.Fresh to start over, or restore the original inputs", e.Plan, len(e.Done))
}

func (e *JournalMismatchError) Is(target error) bool {
	return target == ErrJournalMismatch || target == revkit.ErrInvalidInput
}

const (
	journalPrefix   = "revkit-plan-"
	keyPlan         = "plan"
	keyFingerprint  = "fingerprint"
	keyStarted      = "started"
	keyDone         = "done"
	keyCompleted    = "completed"
	keyRolledBack   = "rolledBack"
	keyUndone       = "undone"
	journalOperator = "upgrade.Journal"
)

// JournalName is the name of a plan's ConfigMap and Lease.
func JournalName(plan string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(plan) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.Trim(b.String(), "-")
	sum := sha256.Sum256([]byte(plan))
	suffix := hex.EncodeToString(sum[:4])
	if max := 63 - len(journalPrefix) - len(suffix) - 1; len(name) > max {
		name = strings.Trim(name[:max], "-")
	}
	if name == "" {
		return journalPrefix + suffix
	}
	return journalPrefix + name + "-" + suffix
}

// journal is an open journal: the lease is held, and renewed in the
// background until release.
type journal struct {
	cfg      Journal
	kube     kubernetes.Interface
	plan     string
	name     string
	holder   string
	started  time.Time
	done     map[string]bool
	order    []string
	complete bool

	// stop ends the renewal; stopped is closed when it has ended.
	stop, stopped chan struct{}
	mu            sync.Mutex
	lost          error
	// onLost is called once when the lease is lost: Execute cancels the
	// run's context with it.
	onLost func(error)
}

// open takes the lease and reads (or starts) the plan's journal. onLost is
// called once if the lease is lost while the plan runs.
func (j Journal) open(ctx context.Context, kube kubernetes.Interface, p Plan, onLost func(error)) (*journal, error) {
	if p.Name == "" {
		return nil, &revkit.InvalidInputError{Field: "Plan.Name", Reason: "a journaled plan needs a name"}
	}
	if err := revkit.ValidateNamespace("Journal.Namespace", j.Namespace); err != nil {
		return nil, err
	}
	if j.LeaseDuration != 0 && j.LeaseDuration < time.Second {
		return nil, &revkit.InvalidInputError{Field: "Journal.LeaseDuration", Value: j.LeaseDuration.String(),
			Reason: "must be at least 1s (a Lease counts whole seconds)"}
	}
	o := &journal{cfg: j, kube: kube, plan: p.Name, name: JournalName(p.Name), done: map[string]bool{}, onLost: onLost}
	o.cfg.Namespace = revkit.ControlPlaneNamespace(j.Namespace)
	if o.cfg.LeaseDuration <= 0 {
		o.cfg.LeaseDuration = 2 * time.Minute
	}
	o.holder = j.Holder
	if o.holder == "" {
		host, _ := os.Hostname()
		o.holder = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if err := o.acquire(ctx); err != nil {
		return nil, err
	}
	if err := o.load(ctx, Fingerprint(p)); err != nil {
		o.release(context.WithoutCancel(ctx))
		return nil, err
	}
	return o, nil
}

func (o *journal) ref(kind string) revkit.ObjectRef {
	name := o.name
	if kind == "Lease" {
		name = LockName
	}
	return revkit.ObjectRef{Kind: kind, Namespace: o.cfg.Namespace, Name: name}
}

func (o *journal) fail(verb, kind string, err error) error {
	return &revkit.OpError{Op: journalOperator, Verb: verb, Object: o.ref(kind), Err: err}
}

func (o *journal) locked(l *coordv1.Lease, until time.Time) *LockedError {
	e := &LockedError{Plan: o.plan, Holder: "another run", Until: until}
	if l != nil {
		if h := ptr.Deref(l.Spec.HolderIdentity, ""); h != "" {
			e.Holder = h
		}
		e.HolderPlan = l.Annotations[annotationPlan]
	}
	return e
}

// acquire takes the control plane's lease, or reports who holds it.
func (o *journal) acquire(ctx context.Context) error {
	leases := o.kube.CoordinationV1().Leases(o.cfg.Namespace)
	now := metav1.NewMicroTime(time.Now())
	secs := int32(o.cfg.LeaseDuration / time.Second)
	l, err := leases.Get(ctx, LockName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: LockName, Namespace: o.cfg.Namespace,
				Labels:      map[string]string{"app.kubernetes.io/managed-by": "revkit"},
				Annotations: map[string]string{annotationPlan: o.plan}},
			Spec: coordv1.LeaseSpec{HolderIdentity: &o.holder, LeaseDurationSeconds: &secs,
				AcquireTime: &now, RenewTime: &now},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			cur, _ := leases.Get(ctx, LockName, metav1.GetOptions{})
			return o.locked(cur, now.Add(o.cfg.LeaseDuration))
		}
		if err != nil {
			return o.fail("create", "Lease", err)
		}
		o.start()
		return nil
	}
	if err != nil {
		return o.fail("get", "Lease", err)
	}
	holder := ptr.Deref(l.Spec.HolderIdentity, "")
	if holder != "" && holder != o.holder && l.Spec.RenewTime != nil {
		until := l.Spec.RenewTime.Add(time.Duration(ptr.Deref(l.Spec.LeaseDurationSeconds, 0)) * time.Second)
		if time.Now().Before(until) {
			return o.locked(l, until)
		}
	}
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[annotationPlan] = o.plan
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.AcquireTime, l.Spec.RenewTime = &o.holder, &secs, &now, &now
	if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsConflict(err) {
			cur, _ := leases.Get(ctx, LockName, metav1.GetOptions{})
			return o.locked(cur, now.Add(o.cfg.LeaseDuration))
		}
		return o.fail("update", "Lease", err)
	}
	o.start()
	return nil
}

// start begins renewing the lease every third of its duration.
func (o *journal) start() {
	o.stop, o.stopped = make(chan struct{}), make(chan struct{})
	go o.renewLoop()
}

// renewLoop renews the lease until stop is closed: every third of its
// duration, and after a failed renewal (the apiserver restarting, say) again
// every tenth, until a renewal gets through or the lease lapses. When the
// lease is taken over, or lapses because no renewal got through before it
// expired, the loop records the loss (and calls onLost) and ends.
func (o *journal) renewLoop() {
	defer close(o.stopped)
	every, retry := o.cfg.LeaseDuration/3, max(o.cfg.LeaseDuration/10, 100*time.Millisecond)
	t := time.NewTimer(every)
	defer t.Stop()
	renewed := time.Now()
	for {
		select {
		case <-o.stop:
			return
		case <-t.C:
		}
		// A renewal may take no longer than what is left of the lease.
		left := time.Until(renewed.Add(o.cfg.LeaseDuration))
		ctx, cancel := context.WithTimeout(context.Background(), max(left, retry))
		err := o.renew(ctx)
		cancel()
		var locked *LockedError
		switch {
		case err == nil:
			renewed = time.Now()
			t.Reset(every)
		case errors.As(err, &locked):
			o.setLost(&LeaseLostError{Plan: o.plan, Holder: locked.Holder})
			return
		case !time.Now().Before(renewed.Add(o.cfg.LeaseDuration)):
			// The lease has lapsed: another run may take it from now on.
			o.setLost(&LeaseLostError{Plan: o.plan, Err: err})
			return
		default:
			// Try again, at the latest just as the lease lapses.
			t.Reset(max(min(retry, time.Until(renewed.Add(o.cfg.LeaseDuration))), time.Millisecond))
		}
	}
}

func (o *journal) setLost(err error) {
	o.mu.Lock()
	o.lost = err
	o.mu.Unlock()
	if o.onLost != nil {
		o.onLost(err)
	}
}

// lostErr is the *LeaseLostError once the lease is lost, else nil.
func (o *journal) lostErr() error {
	if o == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lost
}

// renew extends the lease if this run still holds it. The update carries
// the version just read, so a takeover in between fails it with a conflict
// (and the next renewal sees the new holder).
func (o *journal) renew(ctx context.Context) error {
	leases := o.kube.CoordinationV1().Leases(o.cfg.Namespace)
	l, err := leases.Get(ctx, LockName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return &LockedError{Plan: o.plan, Holder: "nobody (the lease was deleted)"}
	case err != nil:
		return o.fail("get", "Lease", err)
	case ptr.Deref(l.Spec.HolderIdentity, "") != o.holder:
		return o.locked(l, time.Time{})
	}
	now := metav1.NewMicroTime(time.Now())
	l.Spec.RenewTime = &now
	if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		return o.fail("update", "Lease", err)
	}
	return nil
}

// release stops the renewal and gives the lease up; a failure only delays
// the next run until the lease expires.
func (o *journal) release(ctx context.Context) {
	if o.stop != nil {
		close(o.stop)
		<-o.stopped
		o.stop = nil
	}
	if o.lostErr() != nil {
		return
	}
	leases := o.kube.CoordinationV1().Leases(o.cfg.Namespace)
	l, err := leases.Get(ctx, LockName, metav1.GetOptions{})
	if err != nil || ptr.Deref(l.Spec.HolderIdentity, "") != o.holder {
		return
	}
	_ = leases.Delete(ctx, LockName, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &l.ResourceVersion}})
}

// load reads the journal, or starts one.
func (o *journal) load(ctx context.Context, fingerprint string) error {
	cms := o.kube.CoreV1().ConfigMaps(o.cfg.Namespace)
	cm, err := cms.Get(ctx, o.name, metav1.GetOptions{})
	fresh := func() *corev1.ConfigMap {
		o.started = time.Now().UTC().Truncate(time.Second)
		return &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: o.name, Namespace: o.cfg.Namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "revkit"}},
			Data: map[string]string{keyPlan: o.plan, keyFingerprint: fingerprint, keyStarted: o.started.Format(time.RFC3339)},
		}
	}
	switch {
	case apierrors.IsNotFound(err):
		if _, err := cms.Create(ctx, fresh(), metav1.CreateOptions{}); err != nil {
			return o.fail("create", "ConfigMap", err)
		}
		return nil
	case err != nil:
		return o.fail("get", "ConfigMap", err)
	}
	done := splitLines(cm.Data[keyDone])
	if cm.Data[keyFingerprint] != fingerprint {
		if !o.cfg.Fresh {
			return &JournalMismatchError{Plan: o.plan, Recorded: cm.Data[keyFingerprint], Computed: fingerprint, Done: done}
		}
		next := fresh()
		next.ResourceVersion = cm.ResourceVersion
		if _, err := cms.Update(ctx, next, metav1.UpdateOptions{}); err != nil {
			return o.fail("update", "ConfigMap", err)
		}
		return nil
	}
	o.started, err = time.Parse(time.RFC3339, cm.Data[keyStarted])
	if err != nil {
		o.started = cm.CreationTimestamp.UTC()
	}
	for _, s := range done {
		o.done[s] = true
	}
	o.order, o.complete = done, cm.Data[keyCompleted] != ""
	return nil
}

// mark records a completed step (and, with complete, the whole plan).
func (o *journal) mark(ctx context.Context, step string, complete bool) error {
	if step != "" && !o.done[step] {
		o.done[step] = true
		o.order = append(o.order, step)
	}
	cms := o.kube.CoreV1().ConfigMaps(o.cfg.Namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, o.name, metav1.GetOptions{})
		if err != nil {
			return o.fail("get", "ConfigMap", err)
		}
		cm.Data[keyDone] = strings.Join(o.order, "\n")
		if complete {
			cm.Data[keyCompleted] = time.Now().UTC().Format(time.RFC3339)
		}
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsConflict(err) {
				return err
			}
			return o.fail("update", "ConfigMap", err)
		}
		return nil
	})
	if err == nil && complete {
		o.complete = true
	}
	return err
}

// undone records that the plan's on-failure steps ran after the steps done
// so far: those move to "undone", and "done" is emptied, so that a rerun
// runs them again.
func (o *journal) undone(ctx context.Context) error {
	cms := o.kube.CoreV1().ConfigMaps(o.cfg.Namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, o.name, metav1.GetOptions{})
		if err != nil {
			return o.fail("get", "ConfigMap", err)
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[keyUndone] = strings.Join(o.order, "\n")
		cm.Data[keyRolledBack] = time.Now().UTC().Format(time.RFC3339)
		delete(cm.Data, keyDone)
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			if apierrors.IsConflict(err) {
				return err
			}
			return o.fail("update", "ConfigMap", err)
		}
		o.done, o.order = map[string]bool{}, nil
		return nil
	})
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return slices.DeleteFunc(strings.Split(s, "\n"), func(x string) bool { return x == "" })
}
