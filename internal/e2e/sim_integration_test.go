//go:build integration

package e2e_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
)

// simClasses is a cluster's mesh, object class by object class (see
// revkittest.MeshState), and revision.List's view of it: each revision
// with its tags, namespaces and number of pods.
type simClasses struct {
	revkittest.MeshState
	Revisions []revSummary
}

func readClasses(ctx context.Context, t *testing.T, kube kubernetes.Interface, nss []string) simClasses {
	t.Helper()
	st, err := revkittest.ReadMesh(ctx, kube, nss...)
	require.NoError(t, err)
	c := simClasses{MeshState: st}
	revs, err := revision.List(ctx, kube, revision.ListOptions{})
	require.NoError(t, err)
	for _, r := range revs {
		c.Revisions = append(c.Revisions, revSummary{Name: r.Name, Injector: r.Injector, Tags: r.Tags, Namespaces: r.Namespaces, Pods: len(r.Pods)})
	}
	return c
}

func outcomes(rep *upgrade.Report) []string {
	var out []string
	for _, s := range rep.Steps {
		out = append(out, s.Name+": "+string(s.Outcome))
	}
	return out
}

// TestSimMatchesRealCluster runs the standard canary plan — canary tag,
// two batches migrated, restarted and verified, the stable tag promoted,
// the webhooks checked and the old revision uninstalled — on revkittest's
// simulated cluster and on the local control plane with two istiod
// revisions, and compares the two, object class by object class, before
// and after: namespace labels, tags, webhook configurations, which
// revision injects each namespace, pods per revision, and revision.List.
func TestSimMatchesRealCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	nss := []string{"sim-a", "sim-b"}
	opts := upgrade.CanaryOptions{From: oldRev, To: newRev, CanaryTag: "prod-canary", StableTag: "prod-stable",
		Namespaces: namespace.Selection{Selector: "simtest=true"}, BatchSize: 1, RestartTimeout: 2 * time.Minute}

	env := startTwoRevisions(ctx, t)
	real := env.Client
	_, err := tag.Set(ctx, real, tag.SetOptions{Tag: "prod-stable", Revision: oldRev})
	require.NoError(t, err)
	for _, ns := range nss {
		createNamespace(ctx, t, env, ns, map[string]string{"istio.io/rev": "prod-stable", "simtest": "true"})
		createDeployment(ctx, t, real, ns, "web", 2)
	}
	for _, ns := range nss {
		waitRolledOut(ctx, t, real, ns, "web")
	}

	kit := revkittest.NewCluster().WithRevision(oldRev).WithRevision(newRev).WithTag("prod-stable", oldRev)
	for _, ns := range nss {
		kit = kit.WithNamespace(ns, revkittest.Rev("prod-stable"), revkittest.Label("simtest", "true")).
			WithDeployment(ns, "web", revkittest.Replicas(2), revkittest.OnRevision(oldRev))
	}
	sim := kit.Simulate(revkittest.SimOptions{})

	before := readClasses(ctx, t, real, nss)
	require.Equal(t, before, readClasses(ctx, t, sim.Kube(), nss), "the two clusters start alike")

	run := func(kube kubernetes.Interface) (*upgrade.Report, time.Duration) {
		p, err := upgrade.Canary(ctx, kube, opts)
		require.NoError(t, err)
		start := time.Now()
		rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, p)
		require.NoError(t, err, "%s", rep)
		return rep, time.Since(start)
	}
	realRep, realTook := run(real)
	simRep, simTook := run(sim.Kube())
	t.Logf("canary plan: real control plane %v, simulated cluster %v", realTook, simTook)
	t.Logf("real:\n%s\nsimulated:\n%s", realRep, simRep)
	assert.Equal(t, outcomes(realRep), outcomes(simRep), "the same steps, with the same outcomes")

	for _, ns := range nss {
		waitNoTerminating(ctx, t, real, ns)
	}
	got, want := readClasses(ctx, t, sim.Kube(), nss), readClasses(ctx, t, real, nss)
	assert.Equal(t, want.Labels, got.Labels, "namespace labels")
	assert.Equal(t, want.Tags, got.Tags, "tags")
	assert.Equal(t, want.Mutating, got.Mutating, "mutating webhook configurations")
	assert.Equal(t, want.Validating, got.Validating, "validating webhook configurations")
	assert.Equal(t, want.Injects, got.Injects, "revision injecting each namespace")
	assert.Equal(t, want.Pods, got.Pods, "pods per revision")
	assert.Equal(t, want.Revisions, got.Revisions, "revision.List")
	assert.Equal(t, map[string]int{newRev: 2}, want.Pods[nss[0]], "the real plan did move the pods")
	t.Logf("both clusters after the canary: %+v", want)
}
