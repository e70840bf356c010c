package kubeutil

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
)

// WaitDeployments polls the Deployments every interval until each has
// rolled out (RolloutStatus), one has failed (its *revkit.RolloutFailedError
// ends the wait at once), or timeout passes: then the error wraps
// context.DeadlineExceeded and names each pending Deployment with why. A
// read that fails transiently is retried at the next poll; op names the
// operation in errors.
func WaitDeployments(ctx context.Context, kube kubernetes.Interface, op string, refs []revkit.ObjectRef, timeout, interval time.Duration) error {
	return WaitAll(ctx, op, "rollout not complete", refs, timeout, interval, func(ctx context.Context, ref revkit.ObjectRef) (string, error) {
		d, err := kube.AppsV1().Deployments(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return "cannot read it", &revkit.OpError{Op: op, Verb: "get", Object: ref, Err: err}
		}
		return RolloutStatus(d)
	})
}

// WaitAll polls check for every object in refs until none is pending, and
// returns nil then. check says why an object is still pending ("" when it
// is done); an error it returns ends the wait, unless it is transient (the
// apiserver cannot answer for now: connection refused, 429, 5xx), which
// keeps the object pending with that reason until the next poll. At the
// timeout or when ctx ends, the error names op, what ("rollout not
// complete") and every pending object with its reason, and wraps the
// context's error.
func WaitAll(ctx context.Context, op, what string, refs []revkit.ObjectRef, timeout, interval time.Duration,
	check func(context.Context, revkit.ObjectRef) (string, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pending := map[revkit.ObjectRef]string{}
	for _, r := range refs {
		pending[r] = "not checked yet"
	}
	for len(pending) > 0 {
		for ref := range pending {
			why, err := check(ctx, ref)
			switch {
			case err != nil && ctx.Err() != nil:
			case err != nil && Transient(err):
				var oe *revkit.OpError
				if errors.As(err, &oe) {
					err = oe.Err // the reason names the object already
				}
				pending[ref] = why + ": " + err.Error()
			case err != nil:
				return err
			case why != "":
				pending[ref] = why
			default:
				delete(pending, ref)
			}
			if ctx.Err() != nil {
				break
			}
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			var list []string
			for ref, why := range pending {
				list = append(list, ref.String()+": "+why)
			}
			sort.Strings(list)
			return fmt.Errorf("%s: %s (%s): %w", op, what, strings.Join(list, "; "), ctx.Err())
		case <-time.After(interval):
		}
	}
	return nil
}
