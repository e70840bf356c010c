package kubeutil_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/revkit/revkit/internal/kubeutil"
)

func TestTransient(t *testing.T) {
	dial := func(errno syscall.Errno) error {
		return &url.Error{Op: "Get", URL: "https://127.0.0.1:6443/api", Err: &net.OpError{Op: "dial", Net: "tcp",
			Err: os.NewSyscallError("connect", errno)}}
	}
	gr := schema.GroupResource{Resource: "deployments"}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"connection refused", dial(syscall.ECONNREFUSED), true},
		{"connection reset", dial(syscall.ECONNRESET), true},
		{"EOF mid-response", &url.Error{Op: "Get", URL: "https://x/api", Err: io.ErrUnexpectedEOF}, true},
		{"503", apierrors.NewServiceUnavailable("shutting down"), true},
		{"500", apierrors.NewInternalError(errors.New("etcd")), true},
		{"504", apierrors.NewTimeoutError("slow", 1), true},
		{"429", apierrors.NewTooManyRequests("slow down", 1), true},
		{"wrapped 503", fmt.Errorf("list: %w", apierrors.NewServiceUnavailable("x")), true},
		{"403", apierrors.NewForbidden(gr, "x", errors.New("no")), false},
		{"404", apierrors.NewNotFound(gr, "x"), false},
		{"400", apierrors.NewBadRequest("bad selector"), false},
		{"409", apierrors.NewConflict(gr, "x", errors.New("stale")), false},
		{"context cancelled", context.Canceled, false},
		{"deadline", fmt.Errorf("get: %w", context.DeadlineExceeded), false},
		{"plain error", errors.New("connection refused"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, kubeutil.Transient(tc.err))
		})
	}
}

func TestTransientBackoff(t *testing.T) {
	ms := time.Millisecond
	b := kubeutil.TransientBackoff()
	want := []time.Duration{250 * ms, 500 * ms, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}
	jittered := false
	for i, base := range want {
		got := b.Step()
		// Jitter lengthens each pause by up to 10%, never shortens it.
		assert.GreaterOrEqual(t, got, base, "step %d", i)
		assert.LessOrEqual(t, got, base+base/10, "step %d", i)
		jittered = jittered || got != base
	}
	assert.True(t, jittered, "no pause was jittered")
	assert.Equal(t, 250*ms, kubeutil.TransientBackoff().Duration, "a fresh backoff starts over")
}

func TestPause(t *testing.T) {
	ms := time.Millisecond
	start := time.Now()
	assert.NoError(t, kubeutil.Pause(context.Background(), 2*ms))
	assert.GreaterOrEqual(t, time.Since(start), 2*ms, "Pause waits for the delay")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, kubeutil.Pause(ctx, time.Hour), context.Canceled, "a done context ends the pause")
}
