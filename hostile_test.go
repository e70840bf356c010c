package revkit_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
)

// TestHostileInputs feeds every writing operation malformed input and
// checks that each is refused with a typed error and that nothing was
// written.
func TestHostileInputs(t *testing.T) {
	ctx := context.Background()
	long := strings.Repeat("a", 64)
	type call func(context.Context, kubernetes.Interface) error
	cases := []struct {
		name string
		want error
		call call
	}{
		{"revision with dots", revkit.ErrInvalidInput, func(ctx context.Context, k kubernetes.Interface) error {
			_, err := revision.Uninstall(ctx, k, revision.UninstallOptions{Revision: "1.24.0"})
			return err
		}},
		{"uppercase revision", revkit.ErrInvalidInput, func(ctx context.Context, k kubernetes.Interface) error {
			_, err := revision.Uninstall(ctx, k, revision.UninstallOptions{Revision: "Canary"})
			return err
		}},
		{"64-character revision", revkit.ErrInvalidInput, func(ctx context.Context, k kubernetes.Interface) error {
			_, err := revision.Uninstall(ctx, k, revision.UninstallOptions{Revision: long})
			return err
		}},
		{"tag with dots", revkit.ErrInvalidInput, func(ctx context.Context, k kubernetes.Interface) error {
			_, err := tag.Set(ctx, k, tag.SetOptions{Tag: "prod.stable", Revision: "1-24-0"})
			return err
		}},
		{"64-character tag", revkit.ErrInvalidInput, func(ctx context.Context, k kubernetes.Interface) error {
			_, err := tag.Set(ctx, k, tag.SetOptions{Tag: long, Revision: "1-24-0"})
			return err
		}},
		{"tag named like a revision", revkit.ErrExists, func(ctx context.Context, k kubernetes.Interface) error {
			_, err := tag.Set(ctx, k, tag.SetOptions{Tag: "1-25-0", Revision: "1-24-0"})
			return err
		}},
		{"target that is neither revision nor tag", revkit.ErrNotFound, func(ctx context.Context, k kubernetes.Interface) error {
			_, err := namespace.Migrate(ctx, k, namespace.MigrateOptions{Target: "1-99-0",
				Selection: namespace.Selection{Namespaces: []string{"shop"}}})
			return err
		}},
		{"selector matching kube-system", revkit.ErrInvalidInput, func(ctx context.Context, k kubernetes.Interface) error {
			_, err := namespace.Migrate(ctx, k, namespace.MigrateOptions{Target: "1-25-0",
				Selection: namespace.Selection{Selector: "kubernetes.io/metadata.name in (shop,kube-system)"}})
			return err
		}},
		{"selector matching the control-plane namespace", revkit.ErrInvalidInput, func(ctx context.Context, k kubernetes.Interface) error {
			_, err := namespace.RolloutRestart(ctx, k, namespace.RestartOptions{
				Selection: namespace.Selection{Selector: "kubernetes.io/metadata.name=istio-system"}})
			return err
		}},
		{"malformed selector", revkit.ErrInvalidInput, func(ctx context.Context, k kubernetes.Interface) error {
			_, err := namespace.Migrate(ctx, k, namespace.MigrateOptions{Target: "1-25-0",
				Selection: namespace.Selection{Selector: "team in ((shop"}})
			return err
		}},
		{"namespace name with a slash", revkit.ErrInvalidInput, func(ctx context.Context, k kubernetes.Interface) error {
			_, err := namespace.Migrate(ctx, k, namespace.MigrateOptions{Target: "1-25-0",
				Selection: namespace.Selection{Namespaces: []string{"shop/../kube-system"}}})
			return err
		}},
		{"control-plane namespace that is no name", revkit.ErrInvalidInput, func(ctx context.Context, k kubernetes.Interface) error {
			_, err := tag.Remove(ctx, k, tag.RemoveOptions{Tag: "prod", ControlPlaneNamespace: "Istio System"})
			return err
		}},
		{"unknown dry-run mode", revkit.ErrInvalidInput, func(ctx context.Context, k kubernetes.Interface) error {
			_, err := gateway.Move(ctx, k, gateway.MoveOptions{Target: "1-25-0", Common: revkit.Common{DryRun: 42}})
			return err
		}},
		{"gateway mode", revkit.ErrInvalidInput, func(ctx context.Context, k kubernetes.Interface) error {
			_, err := gateway.Move(ctx, k, gateway.MoveOptions{Target: "1-25-0", Mode: "everything"})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kube := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").
				WithTag("prod", "1-24-0").
				WithNamespace("shop", revkittest.Rev("prod"), revkittest.Label("team", "shop")).
				WithNamespace("kube-system").
				WithDeployment("shop", "web", revkittest.OnRevision("1-24-0")).
				Kube()
			kube.ClearActions()
			err := tc.call(ctx, kube)
			require.Error(t, err)
			assert.True(t, errors.Is(err, tc.want), "want %v, got %v", tc.want, err)
			revkittest.NoWrites(t, kube)
		})
	}
}
