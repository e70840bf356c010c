package kubeutil

import (
	"context"
	"errors"
	"io"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilnet "k8s.io/apimachinery/pkg/util/net"
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

// Backoff is the pause before retrying after a transient error: it starts
// at Min and doubles up to Max. The zero value pauses 250ms, then up to 4s.
type Backoff struct {
	Min, Max time.Duration
	next     time.Duration
}

// Step returns the next delay and doubles the one after it, up to Max.
func (b *Backoff) Step() time.Duration {
	if b.next == 0 {
		b.next = b.Min
		if b.next <= 0 {
			b.next = 250 * time.Millisecond
		}
	}
	d := b.next
	maxDelay := b.Max
	if maxDelay <= 0 {
		maxDelay = 4 * time.Second
	}
	b.next = min(2*b.next, maxDelay)
	return d
}

// Wait pauses for the next delay (Step), or until ctx ends, and then
// reports ctx's error.
func (b *Backoff) Wait(ctx context.Context) error { return Pause(ctx, b.Step()) }

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

// Reset makes the next Wait pause Min again, after a success.
func (b *Backoff) Reset() { b.next = 0 }
