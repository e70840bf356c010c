package namespace

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/revkit/revkit/internal/kubeutil"
)

// DefaultConcurrency is how many requests Migrate and RolloutRestart keep
// in flight when their Concurrency option is zero and at least ten
// namespaces are selected; for fewer they send one request at a time, in
// order, so that their writes come in a fixed order. The client's own rate
// limiter (rest.Config QPS and Burst) still applies: concurrency only keeps
// the round trips of a slow or busy apiserver from adding up.
const DefaultConcurrency = 16

// clusterWideFrom is kubeutil.ClusterWideFrom: from that many selected
// namespaces on, RolloutRestart lists and watches each kind once across the
// cluster, and falls back to per-namespace calls without the permission.
const clusterWideFrom = kubeutil.ClusterWideFrom

// concurrency is the number of requests in flight for an option value and
// a selection of namespaces.
func concurrency(opt, namespaces int) int {
	switch {
	case opt > 0:
		return opt
	case namespaces < clusterWideFrom:
		return 1
	}
	return DefaultConcurrency
}

// forEach calls fn for 0..n-1 with at most workers calls running. After a
// call fails, or ctx ends, no new call starts. It reports which indexes ran
// and the error of each.
func forEach(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) (ran []bool, errs []error) {
	ran = make([]bool, n)
	errs = make([]error, n)
	var (
		next    atomic.Int64
		stopped atomic.Bool
		wg      sync.WaitGroup
	)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || stopped.Load() || ctx.Err() != nil {
					return
				}
				ran[i] = true
				if errs[i] = fn(ctx, i); errs[i] != nil {
					stopped.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	return ran, errs
}

// firstError returns the error with the lowest index; if there is none but
// some index did not run, ctx's error.
func firstError(ctx context.Context, ran []bool, errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	for _, r := range ran {
		if !r {
			return ctx.Err()
		}
	}
	return nil
}
