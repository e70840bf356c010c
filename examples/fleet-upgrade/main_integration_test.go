//go:build integration

package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/revkit/revkit/examples/internal/demo"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/verify"
)

// The example against a kubeconfig of two clusters, in two waves, from
// the older Istio version to the newer one; then again, when every
// cluster's journal says it is done; and with a wave naming a context the
// kubeconfig lacks, which is refused before anything is written.
func TestFleetUpgradeExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	from, to := testenv.OldIstio.Revision, testenv.NewIstio.Revision
	// Two clusters keep it short; internal/e2e's TestFleetInWaves runs a
	// wave of two clusters at once.
	envs, kubeconfig := demo.TestFleet(t, ctx, 2, from, "prod-stable", to)

	var out, errOut bytes.Buffer
	args := []string{"--kubeconfig", kubeconfig, "--from", from, "--to", to,
		"--wave", "canary=cluster-1", "--wave", "prod=cluster-2", "--max-parallel", "2"}
	code := run(args, &out, &errOut)
	t.Log(out.String())
	require.Equal(t, 0, code, errOut.String())
	assert.Contains(t, out.String(), "upgrading 2 clusters from "+from+" to "+to+" in 2 wave(s): canary=cluster-1 prod=cluster-2")
	assert.Regexp(t, `canary\s+cluster-1\s+done`, out.String())
	assert.Regexp(t, `prod\s+cluster-2\s+done`, out.String())
	assert.Contains(t, out.String(), "gate webhooks after wave canary: done")
	assert.Contains(t, out.String(), "[cluster-2]   uninstall-revision "+from+": done", "events name their cluster")
	for name, env := range envs {
		pods, err := verify.Pods(ctx, env.Client, verify.PodsOptions{Selector: "demo=true", Target: to})
		require.NoError(t, err)
		assert.NoError(t, pods.Err(), "%s: every demo pod on %s", name, to)
	}

	out.Reset()
	errOut.Reset()
	require.Equal(t, 0, run(args, &out, &errOut), errOut.String())
	assert.Regexp(t, `cluster-2\s+unchanged`, out.String(), "the journal says done")

	out.Reset()
	errOut.Reset()
	before, err := revkittest.Restarted(ctx, envs["cluster-1"].Client)
	require.NoError(t, err)
	assert.Equal(t, 1, run([]string{"--kubeconfig", kubeconfig, "--from", to, "--to", from, "--wave", "a=cluster-1", "--wave", "b=cluster-9"}, &out, &errOut))
	assert.Contains(t, errOut.String(), `"cluster-9"`)
	after, err := revkittest.Restarted(ctx, envs["cluster-1"].Client)
	require.NoError(t, err)
	assert.Equal(t, before, after, "nothing restarted")
}
