package namespace_test

import (
	"context"
	"fmt"
	"time"

	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revkittest"
)

// Move the shop namespaces from the old revision to the canary tag, then
// restart only what still runs the old sidecar.
func ExampleMigrate() {
	ctx := context.Background()
	kube := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").
		WithTag("prod-canary", "1-25-0").
		WithNamespace("shop", revkittest.Label("team", "shop"), revkittest.InjectionEnabled()).
		WithNamespace("cart", revkittest.Label("team", "shop"), revkittest.Rev("1-24-0")).
		WithDeployment("shop", "web", revkittest.OnRevision("1-24-0")).
		WithDeployment("cart", "api", revkittest.OnRevision("1-25-0")).
		Kube()

	sel := namespace.Selection{Selector: "team=shop"}
	mig, err := namespace.Migrate(ctx, kube, namespace.MigrateOptions{Selection: sel, Target: "prod-canary"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, n := range mig.Namespaces {
		fmt.Printf("%s: %s (was %s)\n", n.Name, n.Action, n.Previous)
	}

	res, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{
		Selection: sel, Target: "prod-canary", OnlyStale: true,
		Wait: true, Timeout: time.Minute,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, w := range res.Workloads {
		fmt.Printf("%s/%s: %s (%s)\n", w.Namespace, w.Name, w.Action, w.Reason)
	}
	// Output:
	// cart: update (was istio.io/rev=1-24-0)
	// shop: update (was istio-injection=enabled)
	// cart/api: unchanged (all pods on revision 1-25-0)
	// shop/web: update (pod web-0 is on revision 1-24-0)
}
