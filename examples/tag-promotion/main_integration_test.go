//go:build integration

package main

import (
	"bytes"
	"context"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/revkit/revkit/examples/internal/demo"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/verify"
)

// The example against a cluster given by --kubeconfig, where both
// revisions are installed and the demo namespaces use tag prod-stable.
func TestTagPromotionExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	env, _ := demo.TestMesh(t, ctx, "1-30-0", "prod-stable", "1-31-0")

	var out, errOut bytes.Buffer
	code := run([]string{"--kubeconfig", env.Kubeconfig, "--tag", "prod-stable", "--to", "1-31-0"}, &out, &errOut)
	t.Log(out.String())
	require.Equal(t, 0, code, errOut.String())

	// No namespace was relabelled: they follow the tag.
	inj, err := revkittest.NamespaceInjection(ctx, env.Client)
	require.NoError(t, err)
	var want []string
	for ns, apps := range demo.Apps {
		assert.Equal(t, "istio.io/rev=prod-stable", inj[ns], ns)
		for _, app := range apps {
			want = append(want, "Deployment/"+ns+"/"+app)
		}
	}
	sort.Strings(want)
	tags, err := tag.List(ctx, env.Client, tag.ListOptions{})
	require.NoError(t, err)
	require.Len(t, tags, 1)
	assert.Equal(t, "prod-stable", tags[0].Name)
	assert.Equal(t, "1-31-0", tags[0].Revision, "the tag moved")
	assert.Equal(t, []string{"blog", "search", "shop"}, tags[0].Namespaces)

	pods, err := verify.Pods(ctx, env.Client, verify.PodsOptions{Selector: "demo=true", Target: "1-31-0"})
	require.NoError(t, err)
	assert.NoError(t, pods.Err(), "every demo pod runs 1-31-0")
	for _, n := range pods.Namespaces {
		assert.Equal(t, map[string]int{"1-31-0": 2 * len(demo.Apps[n.Namespace])}, n.Revisions, n.Namespace)
	}
	// Exactly the demo workloads were restarted: the gateway, pinned to
	// 1-30-0 by name, was left alone.
	restarted, err := revkittest.Restarted(ctx, env.Client)
	require.NoError(t, err)
	assert.Equal(t, want, restarted)
	assert.Contains(t, out.String(), "before the promotion:")
	assert.Regexp(t, `set-tag prod-stable→1-31-0\s+done\s+\S+\s+prod-stable → 1-31-0 \(was 1-30-0\)`, out.String())
	assert.Regexp(t, `restart-workloads\s+done\s+\S+\s+update 4`, out.String())
	assert.Contains(t, out.String(), "after the promotion:")

	// Running it again changes nothing.
	out.Reset()
	errOut.Reset()
	require.Equal(t, 0, run([]string{"--kubeconfig", env.Kubeconfig}, &out, &errOut), errOut.String())
	assert.Regexp(t, `set-tag prod-stable→1-31-0\s+unchanged`, out.String())
	assert.Regexp(t, `restart-workloads\s+unchanged`, out.String())

	// --help exits 0 and names the flags.
	out.Reset()
	errOut.Reset()
	assert.Equal(t, 0, run([]string{"--help"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "-tag")
	// A failing step is named and the exit status is non-zero: no such
	// revision.
	out.Reset()
	errOut.Reset()
	assert.Equal(t, 1, run([]string{"--kubeconfig", env.Kubeconfig, "--to", "1-99-0"}, &out, &errOut))
	assert.Contains(t, errOut.String(), `step "set-tag prod-stable→1-99-0" failed`)
}
