//go:build integration

package e2e_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/verify"
)

// TestKitMatchesRealCluster sets up the same mesh twice — with revkittest on
// a fake clientset and for real with istiod — and checks that revision.List
// and verify.Webhooks see the same thing in both.
func TestKitMatchesRealCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const a, b = "1-30-0", "1-31-0"

	env, err := testenv.Start(t, testenv.Options{})
	require.NoError(t, err)
	for _, rev := range []string{a, b} {
		_, err := env.StartIstiod(ctx, rev)
		require.NoError(t, err)
	}
	_, err = tag.Set(ctx, env.Client, tag.SetOptions{Tag: "prod", Revision: a})
	require.NoError(t, err)
	createNamespace(ctx, t, env, "shop", map[string]string{"istio.io/rev": "prod"})
	createNamespace(ctx, t, env, "cart", map[string]string{"istio.io/rev": b})
	createNamespace(ctx, t, env, "plain", nil)
	createDeployment(ctx, t, env.Client, "shop", "web", 2)
	createDeployment(ctx, t, env.Client, "cart", "api", 1)
	waitRolledOut(ctx, t, env.Client, "shop", "web")
	waitRolledOut(ctx, t, env.Client, "cart", "api")

	kit := revkittest.NewCluster().WithRevision(a).WithRevision(b).WithTag("prod", a).
		WithNamespace("shop", revkittest.Rev("prod")).
		WithNamespace("cart", revkittest.Rev(b)).
		WithNamespace("plain").
		WithDeployment("shop", "web", revkittest.Replicas(2), revkittest.OnRevision(a)).
		WithDeployment("cart", "api", revkittest.OnRevision(b)).
		Kube()

	real, fake := summarize(ctx, t, env.Client), summarize(ctx, t, kit)
	assert.Equal(t, real, fake)
	t.Logf("both clusters: %+v", real)
}

type revSummary struct {
	Name, Injector string
	Tags           []string
	Namespaces     []string
	Pods           int
}

type meshSummary struct {
	Revisions   []revSummary
	WebhooksOK  bool
	Overlaps    int
	Tags        []tag.Tag
	PodsByRevNS map[string]map[string]int
}

func summarize(ctx context.Context, t *testing.T, kube kubernetes.Interface) meshSummary {
	t.Helper()
	revs, err := revision.List(ctx, kube, revision.ListOptions{})
	require.NoError(t, err)
	var s meshSummary
	for _, r := range revs {
		s.Revisions = append(s.Revisions, revSummary{Name: r.Name, Injector: r.Injector, Tags: r.Tags,
			Namespaces: r.Namespaces, Pods: len(r.Pods)})
	}
	wh, err := verify.Webhooks(ctx, kube, verify.WebhooksOptions{})
	require.NoError(t, err)
	s.WebhooksOK, s.Overlaps = wh.OK(), len(wh.Overlaps)
	s.Tags, err = tag.List(ctx, kube, tag.ListOptions{})
	require.NoError(t, err)
	pods, err := verify.Pods(ctx, kube, verify.PodsOptions{Namespaces: []string{"shop", "cart"}})
	require.NoError(t, err)
	s.PodsByRevNS = map[string]map[string]int{}
	for _, n := range pods.Namespaces {
		s.PodsByRevNS[n.Namespace] = n.Revisions
	}
	return s
}
