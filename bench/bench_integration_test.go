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
