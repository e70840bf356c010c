package tag_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
)

// Point prod-stable at the old revision and prod-canary at the new one, then
// promote: move prod-stable to the new revision.
func ExampleSet() {
	ctx := context.Background()
	kube := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").
		WithNamespace("shop", revkittest.Rev("prod-stable")).Kube()

	for _, t := range []tag.SetOptions{
		{Tag: "prod-stable", Revision: "1-24-0"},
		{Tag: "prod-canary", Revision: "1-25-0"},
	} {
		if _, err := tag.Set(ctx, kube, t); err != nil {
			fmt.Println(err)
			return
		}
	}

	_, err := tag.Set(ctx, kube, tag.SetOptions{Tag: "prod-stable", Revision: "1-25-0"})
	fmt.Println("without overwrite:", errors.Is(err, revkit.ErrExists))

	res, err := tag.Set(ctx, kube, tag.SetOptions{Tag: "prod-stable", Revision: "1-25-0", Overwrite: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("moved %s from %s to %s\n", res.Tag, res.Previous, res.Revision)
	for _, c := range res.Changes {
		fmt.Println(" ", c)
	}

	tags, _ := tag.List(ctx, kube, tag.ListOptions{})
	for _, t := range tags {
		fmt.Println(t.Name, t.Revision, t.Namespaces)
	}
	// Output:
	// without overwrite: true
	// moved prod-stable from 1-24-0 to 1-25-0
	//   update MutatingWebhookConfiguration/istio-revision-tag-prod-stable
	//   update Service/istio-system/istiod-revision-tag-prod-stable
	// prod-canary 1-25-0 []
	// prod-stable 1-25-0 [shop]
}
