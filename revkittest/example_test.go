package revkittest_test

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
)

// An embedding program's own plan, tested without a cluster: the kit
// builds the mesh, the test checks the writes and the end state, and a
// fault shows how the plan handles a failing apiserver.
func Example() {
	ctx := context.Background()
	build := func() *revkittest.Cluster {
		return revkittest.NewCluster().
			WithRevision("1-24-0").WithRevision("1-25-0").
			WithTag("prod-stable", "1-24-0").
			WithNamespace("shop", revkittest.Rev("prod-stable")).
			WithDeployment("shop", "cart", revkittest.Replicas(2), revkittest.OnRevision("1-24-0"))
	}
	plan := upgrade.Plan{Name: "my upgrade", Steps: []upgrade.Step{
		upgrade.SetTag(tag.SetOptions{Tag: "prod-canary", Revision: "1-25-0"}),
		upgrade.MigrateNamespace(namespace.MigrateOptions{
			Selection: namespace.Selection{Namespaces: []string{"shop"}}, Target: "prod-canary"}),
		upgrade.Func("business-hours", "only during business hours", func(context.Context, upgrade.Env) (upgrade.Result, error) {
			return upgrade.Result{Outcome: upgrade.Done, Detail: "ok"}, nil
		}),
	}}

	kube := build().Kube()
	kube.ClearActions() // forget the reads of setting up
	if _, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, plan); err != nil {
		fmt.Println(err)
		return
	}
	for _, w := range revkittest.Writes(kube) {
		fmt.Println(w)
	}
	labels, _ := revkittest.NamespaceInjection(ctx, kube)
	fmt.Println("shop:", labels["shop"])

	// The namespace patch fails: the plan stops at that step and the API
	// status survives the wrapping.
	kube = build().Kube()
	revkittest.FailNth(kube, "patch", "namespaces", 1, apierrors.NewServiceUnavailable("etcd leader changed"))
	rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, plan)
	fmt.Println("failed step:", rep.Failed().Name, apierrors.IsServiceUnavailable(err))
	// Output:
	// create mutatingwebhookconfigurations istio-revision-tag-prod-canary
	// create services istio-system/istiod-revision-tag-prod-canary
	// patch namespaces shop
	// shop: istio.io/rev=prod-canary
	// failed step: migrate-namespaces true
}
