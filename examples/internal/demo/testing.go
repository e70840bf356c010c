package demo

import (
	"context"
	"io"
	"testing"

	"github.com/revkit/revkit/internal/testenv"
)

// TestMesh starts a local control plane for an example's integration test,
// seeds it like the demo (revision from, tag stable, the demo namespaces
// and a gateway) and, when to is set, starts that revision too. The
// example then runs against it with --kubeconfig, as on a real cluster.
func TestMesh(t *testing.T, ctx context.Context, from, stable, to string) (*testenv.Env, *Cluster) {
	t.Helper()
	env, err := testenv.Start(t, testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Kube: env.Client, Config: env.Config, Local: env}
	if err := c.SeedMesh(ctx, from, stable, io.Discard); err != nil {
		t.Fatal(err)
	}
	if to != "" {
		if _, err := env.StartIstiod(ctx, to); err != nil {
			t.Fatal(err)
		}
	}
	return env, c
}
