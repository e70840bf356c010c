//go:build integration

package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The revkit way runs in a child process started from os.Executable(),
// which here is the test binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "-child") {
		childMain(os.Args[1:])
		return
	}
	os.Exit(m.Run())
}

// TestSmoke runs the benchmark on a tiny fleet in one profile: each way
// must leave every namespace and every pod on "new" (runProfile checks that
// after each way and fails otherwise).
func TestSmoke(t *testing.T) {
	f := Fleet{Namespaces: 3, Deployments: 2, Replicas: 1}
	var log strings.Builder
	p := profiles(300, 0)["b"]
	res, err := runProfile(context.Background(), p, options{
		Fleet: f, Ways: []string{"revkit", "kubectl", "floor"}, QPS: 50, Burst: 100, FloorWorkers: 100, Log: &log,
	})
	t.Log(log.String())
	require.NoError(t, err)
	require.Len(t, res.Results, 3)
	for _, r := range res.Results {
		assert.Equal(t, f.Workloads(), r.Restarted, r.Way)
		assert.GreaterOrEqual(t, r.Client["PATCH"], float64(f.MinimalWrites()), r.Way)
		assert.Positive(t, r.APIServer.Total(), r.Way)
	}
	assert.Positive(t, res.way("revkit").RSSBytes)
	t.Log(res.Summary())
}

// TestClustersSmoke runs the fleet mode on two small clusters: each round
// must leave every cluster's namespaces and pods on the round's target
// (runClusters checks that after each round and fails otherwise), and
// every round reports each cluster's time.
func TestClustersSmoke(t *testing.T) {
	var log strings.Builder
	res, err := runClusters(context.Background(), profiles(300, 0)["b"], 2, 2, options{
		Fleet: Fleet{Namespaces: 3, Deployments: 2, Replicas: 1}, QPS: 50, Burst: 100, Log: &log,
	})
	t.Log(log.String())
	require.NoError(t, err)
	require.Len(t, res.Rounds, 2)
	assert.Equal(t, "sequential", res.Rounds[0].Way)
	assert.Equal(t, "one-wave", res.Rounds[1].Way)
	for _, r := range res.Rounds {
		assert.Len(t, r.PerCluster, 2)
		assert.Positive(t, r.slowest())
		assert.GreaterOrEqual(t, r.Seconds, r.slowest(), "a fleet run lasts at least as long as its slowest cluster")
	}
	seq := res.Rounds[0]
	assert.GreaterOrEqual(t, seq.Seconds, seq.PerCluster["cluster-1"]+seq.PerCluster["cluster-2"], "sequential: one after the other")
	t.Log(res.Summary())
}
