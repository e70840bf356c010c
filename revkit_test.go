package revkit_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/revkit/revkit"
)

func TestValidateNames(t *testing.T) {
	good := []string{"1-24-0", "canary", "default", "a", strings.Repeat("a", revkit.MaxRevisionLength)}
	for _, n := range good {
		assert.NoError(t, revkit.ValidateRevision(n), n)
	}
	bad := map[string]string{
		"":       "must not be empty",
		"1.24.0": `must not contain "."`,
		"Canary": "lowercase",
		"-x":     "alphanumeric",
		"x_y":    "alphanumeric",
		strings.Repeat("a", revkit.MaxRevisionLength+1): "at most 56 characters",
	}
	for n, why := range bad {
		err := revkit.ValidateRevision(n)
		var inv *revkit.InvalidInputError
		require.ErrorAs(t, err, &inv, n)
		assert.ErrorIs(t, err, revkit.ErrInvalidInput)
		assert.Contains(t, err.Error(), why, n)
		assert.Equal(t, "revision", inv.Field)
	}
	assert.NoError(t, revkit.ValidateTag(strings.Repeat("t", revkit.MaxTagLength)))
	assert.ErrorIs(t, revkit.ValidateTag(strings.Repeat("t", revkit.MaxTagLength+1)), revkit.ErrInvalidInput)
	assert.Equal(t, 43, revkit.MaxTagLength, "istiod-revision-tag-<tag> must stay a 63-character DNS label")
}

func TestDryRun(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    revkit.DryRun
		sends   bool
		persist bool
		api     []string
	}{
		{"", revkit.DryRunNone, true, true, nil},
		{"none", revkit.DryRunNone, true, true, nil},
		{"client", revkit.DryRunClient, false, false, nil},
		{"server", revkit.DryRunServer, true, false, []string{"All"}},
	} {
		d, err := revkit.ParseDryRun(c.in)
		require.NoError(t, err)
		assert.Equal(t, c.want, d)
		assert.Equal(t, c.sends, d.SendsRequests())
		assert.Equal(t, c.persist, d.Persists())
		assert.Equal(t, c.api, d.APIValue())
		assert.NoError(t, d.Validate())
	}
	_, err := revkit.ParseDryRun("yes")
	assert.ErrorIs(t, err, revkit.ErrInvalidInput)
	assert.ErrorIs(t, revkit.DryRun(5).Validate(), revkit.ErrInvalidInput)
	assert.Equal(t, "DryRun(5)", revkit.DryRun(5).String())
}

func TestErrors(t *testing.T) {
	api := apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "shop", errors.New("rbac"))
	err := fmt.Errorf("outer: %w", &revkit.OpError{Op: "namespace.Migrate", Verb: "patch",
		Object: revkit.ObjectRef{Kind: "Namespace", Name: "shop"}, Err: api})
	assert.True(t, apierrors.IsForbidden(err), "API status survives wrapping")
	assert.Contains(t, err.Error(), "namespace.Migrate: patch Namespace/shop: ")

	inUse := &revkit.InUseError{Kind: "revision", Name: "1-24-0", Usage: revkit.Usage{
		Namespaces: []string{"a", "b", "c", "d", "e", "f"}, Pods: []string{"a/p"}}}
	assert.ErrorIs(t, inUse, revkit.ErrInUse)
	assert.Equal(t, `revision "1-24-0" is in use by 6 namespaces (a, b, c, d, e, …), 1 pods (a/p)`, inUse.Error())
	assert.Equal(t, "no users", revkit.Usage{}.String())

	assert.ErrorIs(t, &revkit.NotFoundError{Kind: "tag", Name: "x"}, revkit.ErrNotFound)
	assert.ErrorIs(t, &revkit.ExistsError{Kind: "tag", Name: "x", Detail: "d"}, revkit.ErrExists)
	assert.Equal(t, `tag "x" already exists: d`, (&revkit.ExistsError{Kind: "tag", Name: "x", Detail: "d"}).Error())
	assert.NotErrorIs(t, &revkit.NotFoundError{}, revkit.ErrInUse)

	failed := &revkit.RolloutFailedError{Kind: "Deployment", Namespace: "shop", Name: "web",
		Condition: "Progressing", Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "web-1" has timed out progressing.`}
	assert.ErrorIs(t, fmt.Errorf("wait: %w", failed), revkit.ErrRolloutFailed)
	assert.NotErrorIs(t, failed, revkit.ErrVerificationFailed)
	assert.Equal(t, `rollout of Deployment/shop/web failed: Progressing condition: ProgressDeadlineExceeded: ReplicaSet "web-1" has timed out progressing.`, failed.Error())

	ov := revkit.Overlap{First: "istio-sidecar-injector", FirstWebhook: "rev.namespace.sidecar-injector.istio.io",
		Second: "istio-revision-tag-prod", SecondWebhook: "rev.object.sidecar-injector.istio.io",
		NamespaceLabels: map[string]string{"istio.io/rev": "prod"}, PodLabels: map[string]string{}}
	assert.Equal(t, "istio-sidecar-injector and istio-revision-tag-prod both inject a pod labelled map[] in a namespace labelled map[istio.io/rev:prod]", ov.String())
	ovErr := &revkit.OverlapError{Subject: `tag "prod"`, Overlap: ov}
	assert.ErrorIs(t, fmt.Errorf("set: %w", ovErr), revkit.ErrOverlap)
	assert.NotErrorIs(t, ovErr, revkit.ErrInUse)
	assert.Equal(t, "istio-revision-tag-prod", ovErr.Second, "the overlap's fields read through the error")
	assert.Equal(t, `tag "prod": webhook istio-sidecar-injector/rev.namespace.sidecar-injector.istio.io would overlap with istio-revision-tag-prod/rev.object.sidecar-injector.istio.io (e.g. namespace labels map[istio.io/rev:prod], pod labels map[])`, ovErr.Error())
}

func TestEmit(t *testing.T) {
	var got []revkit.Event
	var logs strings.Builder
	c := revkit.Common{
		DryRun:  revkit.DryRunServer,
		OnEvent: func(e revkit.Event) { got = append(got, e) },
		Logger:  slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	c.Emit(context.Background(), revkit.Event{Operation: "tag.Set", Action: revkit.ActionCreate,
		Object: revkit.ObjectRef{Kind: "Service", Namespace: "istio-system", Name: "x"}, Message: "create"})
	require.Len(t, got, 1)
	assert.Equal(t, revkit.DryRunServer, got[0].DryRun)
	assert.False(t, got[0].Time.IsZero())
	assert.Contains(t, logs.String(), "object=Service/istio-system/x")
	assert.Contains(t, logs.String(), "dryRun=server")

	// The zero value reports nowhere and does not panic.
	revkit.Common{}.Emit(context.Background(), revkit.Event{})
	assert.True(t, revkit.AnyChanged([]revkit.Change{{Action: revkit.ActionUnchanged}, {Action: revkit.ActionDelete}}))
	assert.False(t, revkit.AnyChanged([]revkit.Change{{Action: revkit.ActionSkip}}))
	assert.Equal(t, "skip Deployment/a/b (paused)", revkit.Change{Object: revkit.ObjectRef{Kind: "Deployment", Namespace: "a", Name: "b"}, Action: revkit.ActionSkip, Reason: "paused"}.String())
}
