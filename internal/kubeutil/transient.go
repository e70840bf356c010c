package kubeutil

import (
	"context"
	"errors"
	"io"
	"math"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Transient reports whether err says the apiserver could not answer for
// now — it could not be reached, was restarting or overloaded, or timed
// out — rather than that the request itself was refused. Rollout waits ride
// out such errors until their own deadline; upgrade.Execute runs a failed
// step again on them while Env.TransientRetry allows.
func Transient(err error) bool {
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case apierrors.IsServiceUnavailable(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err),
		apierrors.IsTooManyRequests(err), apierrors.IsInternalError(err), apierrors.IsUnexpectedServerError(err):
		return true
	case utilnet.IsConnectionRefused(err), utilnet.IsConnectionReset(err), utilnet.IsProbableEOF(err),
		utilnet.IsTimeout(err), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	return false
}

// TransientBackoff returns the pauses before each retry after a transient
// error: 250ms doubling up to 4s, each lengthened by up to 10% at random so
// that clients that failed together (an apiserver restart fails them all)
// do not all come back at once. Step gives the next pause; a fresh value
// starts over.
func TransientBackoff() wait.Backoff {
	return wait.Backoff{
		Duration: 250 * time.Millisecond,
		Factor:   2,
		Jitter:   0.1,
		// Steps only counts the pauses before Cap is reached; past it,
		// every Step returns Cap (jittered).
		Steps: math.MaxInt32,
		Cap:   4 * time.Second,
	}
}

// Pause waits for d, or until ctx ends, and then reports ctx's error.
func Pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
