package demo

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/revkit/revkit/internal/testenv"
)

// LocalFleet starts n local control planes (cluster-1 … cluster-n), seeds
// each like the demo (revision from with tag stable, the demo namespaces
// and a gateway), starts revision to beside it, and writes one kubeconfig
// with a context per cluster. stop stops them all and removes the
// kubeconfig.
func LocalFleet(ctx context.Context, n int, from, stable, to string, log io.Writer) (kubeconfig string, stop func(), err error) {
	envs := map[string]*testenv.Env{}
	var stops []func()
	stop = func() {
		for _, s := range stops {
			s()
		}
	}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("cluster-%d", i)
		fmt.Fprintf(log, "starting local control plane %s\n", name)
		env, s, err := testenv.Launch(testenv.Options{Nodes: 1}, prefixWriter{w: log, prefix: "  " + name + " | "})
		if err != nil {
			stop()
			return "", nil, err
		}
		stops = append(stops, s)
		envs[name] = env
		if err := seed(ctx, env, from, stable, to); err != nil {
			stop()
			return "", nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	dir, err := os.MkdirTemp("", "revkit-fleet-")
	if err != nil {
		stop()
		return "", nil, err
	}
	stops = append(stops, func() { os.RemoveAll(dir) })
	kubeconfig, err = testenv.WriteKubeconfig(dir, envs)
	if err != nil {
		stop()
		return "", nil, err
	}
	return kubeconfig, stop, nil
}

// seed gives a local control plane the demo mesh on from and starts to.
func seed(ctx context.Context, env *testenv.Env, from, stable, to string) error {
	c := &Cluster{Kube: env.Client, Config: env.Config, Local: env}
	if err := c.SeedMesh(ctx, from, stable, io.Discard); err != nil {
		return err
	}
	if to == "" {
		return nil
	}
	_, err := env.StartIstiod(ctx, to)
	return err
}
