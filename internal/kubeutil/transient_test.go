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

func TestBackoff(t *testing.T) {
	b := kubeutil.Backoff{Min: time.Millisecond, Max: 4 * time.Millisecond}
	var steps []time.Duration
	for range 5 {
		steps = append(steps, b.Step())
	}
	ms := time.Millisecond
	assert.Equal(t, []time.Duration{ms, 2 * ms, 4 * ms, 4 * ms, 4 * ms}, steps, "doubling, capped at Max")
	b.Reset()
	assert.Equal(t, ms, b.Step(), "Reset starts over")

	var zero kubeutil.Backoff
	assert.Equal(t, []time.Duration{250 * ms, 500 * ms, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second},
		[]time.Duration{zero.Step(), zero.Step(), zero.Step(), zero.Step(), zero.Step(), zero.Step()})

	start := time.Now()
	assert.NoError(t, (&kubeutil.Backoff{Min: 2 * ms}).Wait(context.Background()))
	assert.GreaterOrEqual(t, time.Since(start), 2*ms, "Wait pauses for the delay")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow := kubeutil.Backoff{Min: time.Hour}
	assert.ErrorIs(t, slow.Wait(ctx), context.Canceled, "a done context ends the pause")
}
