package gateway_test

import (
	"context"
	"fmt"

	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/revkittest"
)

// A Gateway API gateway and a waypoint move to the canary by their
// istio.io/rev label; istiod of the canary revision then re-renders their
// Deployments (with Wait, MoveAPI returns once it has and they rolled out).

func ExampleMoveAPI() {
	c := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").
		WithTag("prod-stable", "1-24-0").WithTag("prod-canary", "1-25-0").
		WithAPIGateway("istio-ingress", "web", "prod-stable").
		WithAmbientNamespace("shop").
		WithWaypoint("shop", "waypoint", "prod-stable")
	kube, dyn := c.Kube(), c.Dynamic()
	res, _ := gateway.MoveAPI(context.Background(), kube, dyn, gateway.MoveAPIOptions{Target: "prod-canary"})
	for _, ch := range res.Gateways {
		fmt.Println(ch)
	}
	gws, _ := gateway.ListAPI(context.Background(), kube, dyn, gateway.ListOptions{})
	for _, g := range gws {
		// Until istiod of 1-25-0 re-renders it, the Deployment stays 1-24-0's.
		fmt.Printf("%s/%s (%s): served by %s via %s, Deployment %s rendered by %s\n",
			g.Namespace, g.Name, g.Class, g.Revision, g.Tag, g.Deployment, g.DeploymentRevision)
	}
	// Output:
	// update Gateway/istio-ingress/web (prod-stable → prod-canary)
	// update Gateway/shop/waypoint (prod-stable → prod-canary)
	// istio-ingress/web (istio): served by 1-25-0 via prod-canary, Deployment web-istio rendered by 1-24-0
	// shop/waypoint (istio-waypoint): served by 1-25-0 via prod-canary, Deployment waypoint rendered by 1-24-0
}
