package revision_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
)

func ExampleUninstall() {
	ctx := context.Background()
	kube := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").
		WithNamespace("shop", revkittest.Rev("1-25-0")).
		WithDeployment("shop", "web", revkittest.OnRevision("1-24-0")).
		Kube()

	revs, _ := revision.List(ctx, kube, revision.ListOptions{})
	for _, r := range revs {
		fmt.Printf("%s: namespaces=%v pods=%v\n", r.Name, r.Namespaces, r.Pods)
	}

	// A pod still runs the old sidecar: refused.
	_, err := revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: "1-24-0"})
	var inUse *revkit.InUseError
	if errors.As(err, &inUse) {
		fmt.Println("refused:", inUse)
	}

	// Once the pod is gone (restarted onto 1-25-0), the revision can go.
	_ = kube.CoreV1().Pods("shop").Delete(ctx, "web-0", revkittest.DeleteNow())
	res, err := revision.Uninstall(ctx, kube, revision.UninstallOptions{
		Revision: "1-24-0",
		Common:   revkit.Common{DryRun: revkit.DryRunClient},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("dry run would delete:")
	for _, c := range res.Changes {
		fmt.Println(" ", c.Object)
	}
	// Output:
	// 1-24-0: namespaces=[] pods=[shop/web-0]
	// 1-25-0: namespaces=[shop] pods=[]
	// refused: revision "1-24-0" is in use by 1 pods (shop/web-0)
	// dry run would delete:
	//   MutatingWebhookConfiguration/istio-sidecar-injector-1-24-0
	//   ValidatingWebhookConfiguration/istio-validator-1-24-0-istio-system
	//   Deployment/istio-system/istiod-1-24-0
	//   Service/istio-system/istiod-1-24-0
	//   ConfigMap/istio-system/istio-sidecar-injector-1-24-0
}
