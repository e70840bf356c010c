package helm_test

import (
	"context"
	"fmt"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/helm"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
)

// Installing a canary revision beside the one in use, first as a client
// dry run (the chart is rendered and checked against the cluster's
// injectors, nothing is written), then for real. Here the Helm client runs
// on in-memory release storage and a fake cluster; against a real one it
// comes from helm.New(restConfig, "istio-system", nil).
func ExampleClient() {
	ctx := context.Background()
	kube := revkittest.NewCluster().WithRevision("1-25-0").Kube()
	hc := helm.NewFromConfiguration(memConfig())

	opts := revision.InstallOptions{
		Revision: "1-26-0",
		Chart:    revision.ChartSource{Path: "testdata/istiod"},
		Helm:     hc,
		Common:   revkit.Common{DryRun: revkit.DryRunClient},
	}
	res, err := revision.Install(ctx, kube, opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("dry run renders", res.Release, "with injector", res.Injector)
	for _, o := range res.Objects {
		fmt.Println(" ", o)
	}

	opts.DryRun = revkit.DryRunNone
	res, err = revision.Install(ctx, kube, opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("installed %s, version %d\n", res.Release, res.Version)

	// The same revision again, without Upgrade: refused before any write.
	_, err = revision.Install(ctx, kube, opts)
	fmt.Println(err)
	// Output:
	// dry run renders istiod-1-26-0 with injector istio-sidecar-injector-1-26-0
	//   Deployment/istio-system/istiod-1-26-0
	//   MutatingWebhookConfiguration/istio-sidecar-injector-1-26-0
	//   Service/istio-system/istiod-1-26-0
	// installed istiod-1-26-0, version 1
	// revision "1-26-0" already exists: Helm release istiod-1-26-0 exists; set Upgrade to upgrade it
}
