package upgrade_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/upgrade"
)

// Batches takes the named namespaces and those the selector selects, once
// each, in name order; a named namespace that does not exist is refused.
func TestCanaryBatches(t *testing.T) {
	kube := revkittest.NewCluster().
		WithNamespace("a", revkittest.Label("team", "shop")).WithNamespace("c", revkittest.Label("team", "shop")).
		WithNamespace("b").WithNamespace("d").Kube()
	ctx := context.Background()
	opts := upgrade.CanaryOptions{Namespaces: namespace.Selection{Namespaces: []string{"d", "a", "b"}, Selector: "team=shop"}, BatchSize: 3}
	got, err := opts.Batches(ctx, kube)
	require.NoError(t, err)
	assert.Equal(t, [][]string{{"a", "b", "c"}, {"d"}}, got)

	opts.Namespaces = namespace.Selection{Namespaces: []string{"a", "gone"}}
	_, err = opts.Batches(ctx, kube)
	var nf *revkit.NotFoundError
	require.ErrorAs(t, err, &nf)
	assert.Equal(t, "gone", nf.Name)
}
