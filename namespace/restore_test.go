package namespace_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revkittest"
)

// Snapshot then Restore is the identity: whatever a migration did to the
// namespaces' injection labels, Restore puts the recorded ones back, each
// label set or removed, in one patch per namespace that differs.
func TestSnapshotRestore(t *testing.T) {
	kube := cluster().Kube()
	sel := namespace.Selection{Selector: "team=shop"}
	before, err := namespace.Snapshot(ctx, kube, sel, "")
	require.NoError(t, err)
	assert.Equal(t, map[string]namespace.InjectionLabels{
		"cart": {Injection: ptr.To("enabled")},
		"shop": {Rev: ptr.To("1-24-0")},
	}, before)
	assert.Equal(t, "istio-injection=enabled", before["cart"].String())
	assert.Equal(t, "no injection label", namespace.InjectionLabels{}.String())
	assert.Equal(t, "istio-injection=disabled,istio.io/rev=x",
		namespace.InjectionLabels{Injection: ptr.To("disabled"), Rev: ptr.To("x")}.String())

	_, err = namespace.Migrate(ctx, kube, namespace.MigrateOptions{Selection: sel, Target: "prod-canary"})
	require.NoError(t, err)
	kube.ClearActions()

	res, err := namespace.Restore(ctx, kube, namespace.RestoreOptions{Labels: before})
	require.NoError(t, err)
	assert.True(t, res.Changed())
	assert.Equal(t, []string{"patch namespaces cart", "patch namespaces shop"}, revkittest.Writes(kube))
	assert.Equal(t, []string{
		`{"metadata":{"labels":{"istio-injection":"enabled","istio.io/rev":null}}}`,
		`{"metadata":{"labels":{"istio-injection":null,"istio.io/rev":"1-24-0"}}}`,
	}, revkittest.Patches(kube))
	after, err := namespace.Snapshot(ctx, kube, sel, "")
	require.NoError(t, err)
	assert.Equal(t, before, after)

	// Again: nothing to do.
	kube.ClearActions()
	res, err = namespace.Restore(ctx, kube, namespace.RestoreOptions{Labels: before})
	require.NoError(t, err)
	assert.False(t, res.Changed())
	revkittest.NoWrites(t, kube)
}

func TestRestoreRefusalsAndFailures(t *testing.T) {
	kube := cluster().Kube()
	for name, tc := range map[string]struct {
		opts namespace.RestoreOptions
		want error
	}{
		"no namespaces":     {namespace.RestoreOptions{}, revkit.ErrInvalidInput},
		"bad namespace":     {namespace.RestoreOptions{Labels: map[string]namespace.InjectionLabels{"Bad_NS": {}}}, revkit.ErrInvalidInput},
		"bad label value":   {namespace.RestoreOptions{Labels: map[string]namespace.InjectionLabels{"shop": {Rev: ptr.To("a b")}}}, revkit.ErrInvalidInput},
		"bad dry-run mode":  {namespace.RestoreOptions{Common: revkit.Common{DryRun: revkit.DryRun(9)}, Labels: map[string]namespace.InjectionLabels{"shop": {}}}, revkit.ErrInvalidInput},
		"missing namespace": {namespace.RestoreOptions{Labels: map[string]namespace.InjectionLabels{"gone": {}}}, revkit.ErrNotFound},
	} {
		t.Run(name, func(t *testing.T) {
			res, err := namespace.Restore(ctx, kube, tc.opts)
			assert.ErrorIs(t, err, tc.want)
			require.NotNil(t, res)
			assert.False(t, res.Changed())
		})
	}
	revkittest.NoWrites(t, kube)

	_, err := namespace.Snapshot(ctx, kube, namespace.Selection{}, "")
	assert.ErrorIs(t, err, revkit.ErrInvalidInput)
	_, err = namespace.Snapshot(ctx, kube, namespace.Selection{Namespaces: []string{"gone"}}, "")
	assert.ErrorIs(t, err, revkit.ErrNotFound)

	// A failed patch is an *revkit.OpError naming the namespace.
	revkittest.FailAlways(kube, "patch", "namespaces", apierrors.NewInternalError(errors.New("etcd down")))
	_, err = namespace.Restore(ctx, kube, namespace.RestoreOptions{Labels: map[string]namespace.InjectionLabels{"shop": {}}})
	var op *revkit.OpError
	require.ErrorAs(t, err, &op)
	assert.Equal(t, "shop", op.Object.Name)
}
