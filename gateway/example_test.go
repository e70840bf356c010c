package gateway_test

import (
	"context"
	"fmt"

	"github.com/revkit/revkit"
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

// A gateway installed with Istio's gateway chart moves through its own
// release: the helm upgrade sets the chart's revision value, so the next
// helm upgrade of the release keeps it. Here a stand-in for helm.Client
// only prints what it is asked.

func ExampleUpgradeRelease() {
	c := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").WithTag("prod-canary", "1-25-0").
		WithHelmGateway("istio-ingress", "istio-ingressgateway", "1-24-0", revkittest.HelmRelease{Name: "istio-ingressgateway"})
	res, err := gateway.UpgradeRelease(context.Background(), c.Kube(), gateway.ReleaseOptions{
		Namespace: "istio-ingress", Release: "istio-ingressgateway", Target: "prod-canary",
		Releaser: printingHelm{}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("resolved to", res.Revision)
	for _, ch := range res.Changes {
		fmt.Println(ch)
	}
	// Output:
	// helm upgrade istio-ingressgateway (client dry run) --set revision=prod-canary
	// helm upgrade istio-ingressgateway --set revision=prod-canary
	// resolved to 1-25-0
	// update HelmRelease/istio-ingress/istio-ingressgateway (gateway istio-ingressgateway: revision 1-24-0 → prod-canary)
}

// printingHelm renders the gateway's Deployment with the revision asked for
// and prints each call.
type printingHelm struct{}

func (printingHelm) UpgradeRelease(_ context.Context, o revkit.ReleaseOptions) (*revkit.ReleaseResult, error) {
	dry := ""
	if o.DryRun == revkit.DryRunClient {
		dry = " (client dry run)"
	}
	fmt.Printf("helm upgrade %s%s --set revision=%s\n", o.Release, dry, o.Values["revision"])
	return &revkit.ReleaseResult{Manifest: fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: istio-ingressgateway
spec:
  template:
    metadata:
      labels:
        istio.io/rev: %q
`, o.Values["revision"])}, nil
}
