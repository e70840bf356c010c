//go:build integration

package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/revkit/revkit/ambient"
	"github.com/revkit/revkit/examples/internal/demo"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/revision"
)

// The example against a cluster given by --kubeconfig: an ambient mesh of
// the old version installed by Helm, the new revision installed beside it.
// It upgrades istio-cni and ztunnel (node by node, with drain) to the new
// version's charts, hands the waypoint to the new istiod by the stable tag,
// then rolls all of it back and uninstalls the new revision.
func TestAmbientUpgradeExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	from, to := testenv.OldIstio, testenv.NewIstio
	env, _ := demo.TestAmbientMesh(t, ctx, from, to, "prod-stable")

	args := []string{"--kubeconfig", env.Kubeconfig, "--from", from.Revision, "--to", to.Revision,
		"--cni-chart", env.VersionChartDir(to, "istio-cni"), "--ztunnel-chart", env.VersionChartDir(to, "ztunnel"),
		"--from-cni-chart", env.VersionChartDir(from, "istio-cni"), "--from-ztunnel-chart", env.VersionChartDir(from, "ztunnel"),
		"--agent-tag", to.Name, "--from-agent-tag", from.Name, "--then-rollback"}
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	t.Log(out.String())
	require.Equal(t, 0, code, errOut.String())
	assert.Regexp(t, `upgrade-istio-cni `+to.Revision+`\s+done\s+\S+\s+istio-cni `+from.Name+` → `+to.Name, out.String())
	assert.Regexp(t, `upgrade-ztunnel `+to.Revision+`\s+done\s+\S+\s+ztunnel `+from.Name+` → `+to.Name+`, 3 of 3 nodes replaced`, out.String())
	assert.Contains(t, out.String(), "waypoint shop/waypoint: label prod-stable, served by "+to.Revision+", rendered by "+to.Revision)
	assert.Regexp(t, `upgrade-ztunnel `+from.Revision+`\s+done\s+\S+\s+ztunnel `+to.Name+` → `+from.Name+`, 3 of 3 nodes replaced`, out.String())
	assert.Contains(t, out.String(), "waypoint shop/waypoint: label prod-stable, served by "+from.Revision+", rendered by "+from.Revision)

	st, err := ambient.Read(ctx, env.Client, ambient.ReadOptions{})
	require.NoError(t, err)
	for _, a := range st.Agents {
		assert.Equal(t, from.Name, a.Version, "%s back on the old version", a.Component)
		assert.Empty(t, a.Pending(), a.Component)
	}
	revs, err := revision.List(ctx, env.Client, revision.ListOptions{})
	require.NoError(t, err)
	require.Len(t, revs, 1)
	assert.Equal(t, from.Revision, revs[0].Name)

	// A wrong order is refused before any write: the agents of the new
	// version against the old control plane.
	out.Reset()
	errOut.Reset()
	code = run([]string{"--kubeconfig", env.Kubeconfig, "--from", "prod-x", "--to", from.Revision,
		"--ztunnel-chart", env.VersionChartDir(to, "ztunnel"), "--agent-tag", to.Name, "--canary-tag", "", "--stable-tag", ""}, &out, &errOut)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut.String(), "ztunnel is newer than its control plane")
	st, err = ambient.Read(ctx, env.Client, ambient.ReadOptions{})
	require.NoError(t, err)
	z := st.Agent(ambient.Ztunnel)
	require.Len(t, z, 1)
	assert.Equal(t, from.Name, z[0].Version, "nothing written")
	assert.Empty(t, z[0].Pending())
}
