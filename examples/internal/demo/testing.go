package demo

import (
	"context"
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
	if err := seed(ctx, env, from, stable, to); err != nil {
		t.Fatal(err)
	}
	return env, c
}

// TestFleet starts n local control planes seeded as TestMesh does, and
// returns them by context name with the kubeconfig holding a context for
// each.
func TestFleet(t *testing.T, ctx context.Context, n int, from, stable, to string) (map[string]*testenv.Env, string) {
	t.Helper()
	envs, err := testenv.StartFleet(t, n, testenv.Options{Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	for name, env := range envs {
		if err := seed(ctx, env, from, stable, to); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	kubeconfig, err := testenv.WriteKubeconfig(t.TempDir(), envs)
	if err != nil {
		t.Fatal(err)
	}
	return envs, kubeconfig
}
