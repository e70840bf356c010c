package kubeutil

import (
	"context"
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
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pending := map[revkit.ObjectRef]string{}
	for _, r := range refs {
		pending[r] = "not checked yet"
	}
	for len(pending) > 0 {
		for ref := range pending {
			d, err := kube.AppsV1().Deployments(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				if Transient(err) {
					// The apiserver cannot answer for now; ask again next
					// round.
					pending[ref] = "cannot read it: " + err.Error()
					continue
				}
				return &revkit.OpError{Op: op, Verb: "get", Object: ref, Err: err}
			}
			why, err := RolloutStatus(d)
			if err != nil {
				return err
			}
			if why != "" {
				pending[ref] = why
			} else {
				delete(pending, ref)
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
			return fmt.Errorf("%s: rollout not complete (%s): %w", op, strings.Join(list, "; "), ctx.Err())
		case <-time.After(interval):
		}
	}
	return nil
}
