package revkit_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/revkit/revkit/ambient"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
)

// Every write operation returns a result even when it refuses its input,
// so a caller can always report what it did (here: nothing).
func TestOperationsReturnAResultOnError(t *testing.T) {
	ctx := context.Background()
	kube := revkittest.NewCluster().WithRevision("1-24-0").WithNamespace("shop", revkittest.Rev("1-24-0")).Kube()
	shop := namespace.Selection{Namespaces: []string{"shop"}}
	for name, call := range map[string]func() (bool, error){
		"tag.Set": func() (bool, error) {
			r, err := tag.Set(ctx, kube, tag.SetOptions{Tag: "x", Revision: "9-9-9"})
			return r != nil && !r.Changed(), err
		},
		"gateway.Move": func() (bool, error) {
			r, err := gateway.Move(ctx, kube, gateway.MoveOptions{Target: "9-9-9"})
			return r != nil && !r.Changed(), err
		},
		"gateway.MoveAPI": func() (bool, error) {
			r, err := gateway.MoveAPI(ctx, kube, revkittest.NewCluster().Dynamic(), gateway.MoveAPIOptions{Target: "9-9-9"})
			return r != nil && !r.Changed(), err
		},
		"ambient.Roll": func() (bool, error) {
			r, err := ambient.Roll(ctx, kube, ambient.RollOptions{Component: "waypoint"})
			return r != nil && len(r.ObjectChanges()) == 0, err
		},
		"ambient.Upgrade": func() (bool, error) {
			r, err := ambient.Upgrade(ctx, kube, ambient.UpgradeOptions{Component: ambient.Ztunnel})
			return r != nil && len(r.ObjectChanges()) == 0, err
		},
		"tag.Remove": func() (bool, error) {
			r, err := tag.Remove(ctx, kube, tag.RemoveOptions{Tag: "Bad_Tag"})
			return r != nil && !r.Changed(), err
		},
		"namespace.Migrate": func() (bool, error) {
			r, err := namespace.Migrate(ctx, kube, namespace.MigrateOptions{Selection: shop, Target: "9-9-9"})
			return r != nil && !r.Changed(), err
		},
		"namespace.RolloutRestart": func() (bool, error) {
			r, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{Selection: shop, Target: "9-9-9"})
			return r != nil && !r.Changed(), err
		},
		"namespace.Restore": func() (bool, error) {
			r, err := namespace.Restore(ctx, kube, namespace.RestoreOptions{})
			return r != nil && !r.Changed(), err
		},
		"revision.Uninstall": func() (bool, error) {
			r, err := revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: "1-24-0"})
			return r != nil && !r.Changed(), err
		},
		"revision.Install": func() (bool, error) {
			r, err := revision.Install(ctx, kube, revision.InstallOptions{Revision: "1.25.0"})
			return r != nil && len(r.Objects) == 0, err
		},
	} {
		t.Run(name, func(t *testing.T) {
			ok, err := call()
			assert.Error(t, err)
			assert.True(t, ok, "want a non-nil result that changed nothing")
			var typed interface{ Is(error) bool }
			assert.ErrorAs(t, err, &typed, "a typed error: %v", err)
		})
	}
	revkittest.NoWrites(t, kube)
}
