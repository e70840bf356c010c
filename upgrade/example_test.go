package upgrade_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
)

// A plan is printed for review, then executed: here it points a new tag at
// the canary revision, moves a namespace to it and passes a custom health
// gate. The gate fails, so the plan stops there and the on-failure step
// moves the namespace back.
func ExampleExecute() {
	kube := revkittest.NewCluster().
		WithRevision("1-24-0").
		WithRevision("1-25-0").
		WithNamespace("shop", revkittest.Rev("1-24-0")).
		Kube()

	shop := namespace.Selection{Namespaces: []string{"shop"}}
	plan := upgrade.Plan{
		Name: "canary 1-25-0",
		Steps: []upgrade.Step{
			upgrade.SetTag(tag.SetOptions{Tag: "prod-canary", Revision: "1-25-0"}),
			upgrade.MigrateNamespace(namespace.MigrateOptions{Selection: shop, Target: "prod-canary"}),
			upgrade.Func("error-rate", "the shop's error rate stays below 1%",
				func(ctx context.Context, env upgrade.Env) (upgrade.Result, error) {
					return upgrade.Result{Detail: "error rate 4.2%"},
						fmt.Errorf("error rate 4.2%% above 1%%: %w", revkit.ErrVerificationFailed)
				}),
			upgrade.SetTag(tag.SetOptions{Tag: "prod-stable", Revision: "1-25-0"}),
		},
		OnFailure: []upgrade.Step{
			upgrade.Named("shop-back-to-1-24-0",
				upgrade.MigrateNamespace(namespace.MigrateOptions{Selection: shop, Target: "1-24-0"})),
		},
	}
	fmt.Print(plan)

	report, err := upgrade.Execute(context.Background(), upgrade.Env{Kube: kube}, plan)
	for _, s := range append(report.Steps, report.OnFailure...) {
		fmt.Println(strings.TrimSpace(fmt.Sprintf("%-28s %-9s %s", s.Name, s.Outcome, s.Detail)))
	}
	fmt.Println("failed gate:", errors.Is(err, revkit.ErrVerificationFailed), "at", report.Failed().Name)
	// Output:
	// Plan "canary 1-25-0":
	//   1. set-tag prod-canary→1-25-0   point tag prod-canary at revision 1-25-0
	//   2. migrate-namespaces           label namespace shop istio.io/rev=prod-canary, removing istio-injection
	//   3. error-rate                   the shop's error rate stays below 1%
	//   4. set-tag prod-stable→1-25-0   point tag prod-stable at revision 1-25-0
	// On failure:
	//   1. shop-back-to-1-24-0          label namespace shop istio.io/rev=1-24-0, removing istio-injection
	// set-tag prod-canary→1-25-0   done      prod-canary → 1-25-0: create 2
	// migrate-namespaces           done      → prod-canary (1-25-0): update 1
	// error-rate                   failed    error rate 4.2%
	// set-tag prod-stable→1-25-0   not-run
	// shop-back-to-1-24-0          done      → 1-24-0: update 1
	// failed gate: true at error-rate
}

// With TransientRetry, a step that fails because the apiserver cannot
// answer for a moment runs again instead of stopping the plan. Here the
// first namespace patch gets a 503, as it would while the apiserver
// restarts; the migration runs again a quarter of a second later.
func ExampleEnv_transientRetry() {
	kube := revkittest.NewCluster().
		WithRevision("1-25-0").
		WithNamespace("shop", revkittest.Label("istio-injection", "enabled")).
		Kube()
	revkittest.FailNth(kube, "patch", "namespaces", 1, apierrors.NewServiceUnavailable("apiserver is shutting down"))

	plan := upgrade.Plan{Name: "move shop", Steps: []upgrade.Step{
		upgrade.MigrateNamespace(namespace.MigrateOptions{
			Selection: namespace.Selection{Namespaces: []string{"shop"}}, Target: "1-25-0"}),
	}}
	env := upgrade.Env{Kube: kube, TransientRetry: time.Minute, Common: revkit.Common{
		OnEvent: func(e revkit.Event) {
			if e.Action == upgrade.ActionRetry {
				fmt.Println("retry:", e.Step)
			}
		}}}
	report, err := upgrade.Execute(context.Background(), env, plan)
	s := report.Steps[0]
	fmt.Println(s.Name, s.Outcome, s.Attempts, "runs, error:", err)
	// Output:
	// retry: migrate-namespaces
	// migrate-namespaces done 2 runs, error: <nil>
}

// Preview runs a whole plan against an in-memory copy of the cluster, so a
// step sees what the steps before it would have done: here the namespace
// moves to a tag that only the first step creates, which a plain dry run
// cannot get past. The cluster itself is only read.
func ExamplePreview() {
	kube := revkittest.NewCluster().
		WithRevision("1-24-0").
		WithRevision("1-25-0").
		WithNamespace("shop", revkittest.Rev("1-24-0")).
		WithDeployment("shop", "cart", revkittest.OnRevision("1-24-0")).
		Kube()
	shop := namespace.Selection{Namespaces: []string{"shop"}}
	plan := upgrade.Plan{Name: "canary 1-25-0", Steps: []upgrade.Step{
		upgrade.SetTag(tag.SetOptions{Tag: "prod-canary", Revision: "1-25-0"}),
		upgrade.MigrateNamespace(namespace.MigrateOptions{Selection: shop, Target: "prod-canary"}),
		upgrade.RolloutRestart(namespace.RestartOptions{Selection: shop, Target: "prod-canary", OnlyStale: true, Wait: true}),
	}}
	ctx := context.Background()

	_, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube, Common: revkit.Common{DryRun: revkit.DryRunClient}}, plan)
	fmt.Println("plain dry run:", err)

	report, err := upgrade.Preview(ctx, kube, plan, upgrade.PreviewOptions{})
	fmt.Println("preview error:", err)
	for _, c := range report.Changes() {
		fmt.Println(c.Action, c.Object)
	}
	ns, _ := kube.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
	fmt.Println("shop is still on", ns.Labels["istio.io/rev"])
	// Output:
	// plain dry run: step "migrate-namespaces" failed: revision or tag "prod-canary" not found
	// preview error: <nil>
	// create MutatingWebhookConfiguration/istio-revision-tag-prod-canary
	// create Service/istio-system/istiod-revision-tag-prod-canary
	// update Namespace/shop
	// update Deployment/shop/cart
	// shop is still on 1-24-0
}
