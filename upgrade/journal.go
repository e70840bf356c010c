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
// of starting over, and so that two runs of one plan cannot overlap.
//
// It is a ConfigMap "revkit-plan-<plan name>" in Namespace listing the
// completed steps with a fingerprint of the plan (its steps and their
// options), and a Lease of the same name held while the plan runs.
// Execute refuses to resume from a journal whose fingerprint differs — the
// plan's inputs changed mid-way — unless Fresh is set, and refuses to run
// while another holder's lease is live.
type Journal struct {
	// Namespace holds the ConfigMap and the Lease; default istio-system.
	Namespace string
	// Holder identifies this run in the Lease; default "<hostname>-<pid>".
	Holder string
	// LeaseDuration is how long the lease stays valid without renewal (it
	// is renewed before every step); default 2 minutes.
	LeaseDuration time.Duration
	// Fresh discards a journal of different inputs and starts over.
	Fresh bool
}

// ErrLocked: another run holds the plan's lease.
var ErrLocked = errors.New("plan is running elsewhere")

// ErrJournalMismatch: the journal was written by a plan with other inputs.
var ErrJournalMismatch = errors.New("journal belongs to a plan with other inputs")

// LockedError names the run that holds a plan's lease.
type LockedError struct {
	Plan, Holder string
	Until        time.Time
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("plan %q is held by %s until %s", e.Plan, e.Holder, e.Until.Format(time.RFC3339))
}

func (e *LockedError) Is(target error) bool { return target == ErrLocked }

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

// journal is an open journal: the lease is held.
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
}

func (j Journal) open(ctx context.Context, kube kubernetes.Interface, p Plan) (*journal, error) {
	if p.Name == "" {
		return nil, &revkit.InvalidInputError{Field: "Plan.Name", Reason: "a journaled plan needs a name"}
	}
	if err := revkit.ValidateNamespace("Journal.Namespace", j.Namespace); err != nil {
		return nil, err
	}
	o := &journal{cfg: j, kube: kube, plan: p.Name, name: JournalName(p.Name), done: map[string]bool{}}
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
	return revkit.ObjectRef{Kind: kind, Namespace: o.cfg.Namespace, Name: o.name}
}

func (o *journal) fail(verb, kind string, err error) error {
	return &revkit.OpError{Op: journalOperator, Verb: verb, Object: o.ref(kind), Err: err}
}

// acquire takes the plan's lease, or reports who holds it.
func (o *journal) acquire(ctx context.Context) error {
	leases := o.kube.CoordinationV1().Leases(o.cfg.Namespace)
	now := metav1.NewMicroTime(time.Now())
	secs := int32(o.cfg.LeaseDuration / time.Second)
	l, err := leases.Get(ctx, o.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: o.name, Namespace: o.cfg.Namespace},
			Spec: coordv1.LeaseSpec{HolderIdentity: &o.holder, LeaseDurationSeconds: &secs,
				AcquireTime: &now, RenewTime: &now},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return &LockedError{Plan: o.plan, Holder: "another run", Until: now.Add(o.cfg.LeaseDuration)}
		}
		if err != nil {
			return o.fail("create", "Lease", err)
		}
		return nil
	}
	if err != nil {
		return o.fail("get", "Lease", err)
	}
	holder := ptr.Deref(l.Spec.HolderIdentity, "")
	if holder != "" && holder != o.holder && l.Spec.RenewTime != nil {
		until := l.Spec.RenewTime.Add(time.Duration(ptr.Deref(l.Spec.LeaseDurationSeconds, 0)) * time.Second)
		if time.Now().Before(until) {
			return &LockedError{Plan: o.plan, Holder: holder, Until: until}
		}
	}
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.AcquireTime, l.Spec.RenewTime = &o.holder, &secs, &now, &now
	if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsConflict(err) {
			return &LockedError{Plan: o.plan, Holder: "another run", Until: now.Add(o.cfg.LeaseDuration)}
		}
		return o.fail("update", "Lease", err)
	}
	return nil
}

// renew extends the lease; losing it stops the plan.
func (o *journal) renew(ctx context.Context) error {
	leases := o.kube.CoordinationV1().Leases(o.cfg.Namespace)
	l, err := leases.Get(ctx, o.name, metav1.GetOptions{})
	if err != nil {
		return o.fail("get", "Lease", err)
	}
	if h := ptr.Deref(l.Spec.HolderIdentity, ""); h != o.holder {
		return &LockedError{Plan: o.plan, Holder: h}
	}
	now := metav1.NewMicroTime(time.Now())
	l.Spec.RenewTime = &now
	if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		return o.fail("update", "Lease", err)
	}
	return nil
}

// release gives the lease up; a failure only delays the next run until the
// lease expires.
func (o *journal) release(ctx context.Context) {
	leases := o.kube.CoordinationV1().Leases(o.cfg.Namespace)
	l, err := leases.Get(ctx, o.name, metav1.GetOptions{})
	if err != nil || ptr.Deref(l.Spec.HolderIdentity, "") != o.holder {
		return
	}
	_ = leases.Delete(ctx, o.name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &l.ResourceVersion}})
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

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return slices.DeleteFunc(strings.Split(s, "\n"), func(x string) bool { return x == "" })
}
