package revkittest_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
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

// An embedding program's own canary, run end to end on a simulated
// cluster: it records the state, points a canary tag at the new revision,
// then moves one namespace per batch, restarts it and gates the batch on
// its proxies being SYNCED to the new istiod; on failure it puts the
// recorded state back and restarts onto the old revision. The simulation
// plays the controllers and the injector, so restarted pods really come
// back with the new sidecar. In the second run the canary's proxies never
// sync: the first batch's gate fails and the rollback undoes the batch.
func ExampleCluster_Simulate() {
	ctx := context.Background()
	namespaces := []string{"blog", "shop"}
	all := namespace.Selection{Namespaces: namespaces}
	plan := func(sim *revkittest.Simulation) upgrade.Plan {
		p := upgrade.Plan{Name: "my canary", Steps: []upgrade.Step{
			upgrade.RecordState(upgrade.RecordStateOptions{Name: "my canary", Namespaces: all, Tags: []string{"prod-canary"}}),
			upgrade.SetTag(tag.SetOptions{Tag: "prod-canary", Revision: "1-25-0"}),
		}}
		for i, ns := range namespaces {
			batch, n := namespace.Selection{Namespaces: []string{ns}}, fmt.Sprintf(" %d/%d", i+1, len(namespaces))
			p.Steps = append(p.Steps,
				upgrade.Named("migrate"+n, upgrade.MigrateNamespace(namespace.MigrateOptions{Selection: batch, Target: "prod-canary"})),
				upgrade.Named("restart"+n, upgrade.RolloutRestart(namespace.RestartOptions{Selection: batch, Target: "prod-canary",
					OnlyStale: true, Wait: true, Timeout: time.Minute})),
				upgrade.Named("proxies-synced"+n, upgrade.VerifyProxies(verify.ProxiesOptions{
					Sources: []verify.SyncSource{sim.SyncSource("1-25-0")}, Target: "1-25-0", Namespaces: []string{ns}})),
			)
		}
		p.Steps = append(p.Steps, upgrade.SetTag(tag.SetOptions{Tag: "prod-stable", Revision: "1-25-0", Overwrite: true}))
		p.OnFailure = []upgrade.Step{
			upgrade.RestoreState(upgrade.RestoreStateOptions{Name: "my canary"}),
			upgrade.Named("restart-back", upgrade.RolloutRestart(namespace.RestartOptions{Selection: all, Target: "1-24-0",
				OnlyStale: true, Wait: true, Timeout: time.Minute})),
		}
		return p
	}
	for _, proxiesSync := range []bool{true, false} {
		sim := revkittest.NewCluster().
			WithRevision("1-24-0").WithRevision("1-25-0").
			WithTag("prod-stable", "1-24-0").
			WithNamespace("blog", revkittest.Rev("prod-stable")).
			WithNamespace("shop", revkittest.Rev("prod-stable")).
			WithDeployment("blog", "web", revkittest.Replicas(2), revkittest.OnRevision("1-24-0")).
			WithDeployment("shop", "cart", revkittest.Replicas(3), revkittest.OnRevision("1-24-0")).
			Simulate(revkittest.SimOptions{})
		if !proxiesSync {
			sim.StaleProxies("1-25-0")
		}
		rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: sim.Kube()}, plan(sim))
		for _, s := range append(rep.Steps, rep.OnFailure...) {
			fmt.Printf("%-18s %s\n", s.Name, s.Outcome)
		}
		fmt.Println("gate failed:", errors.Is(err, revkit.ErrVerificationFailed))
		labels, _ := revkittest.NamespaceInjection(ctx, sim.Kube())
		for _, ns := range namespaces {
			pods, _ := sim.Kube().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			var revs []string
			for _, p := range pods.Items {
				revs = append(revs, p.Annotations["istio.io/rev"])
			}
			sort.Strings(revs)
			fmt.Println(ns, labels[ns], revs)
		}
		fmt.Println()
	}
	// Output:
	// record-state       done
	// set-tag prod-canary→1-25-0 done
	// migrate 1/2        done
	// restart 1/2        done
	// proxies-synced 1/2 done
	// migrate 2/2        done
	// restart 2/2        done
	// proxies-synced 2/2 done
	// set-tag prod-stable→1-25-0 done
	// gate failed: false
	// blog istio.io/rev=prod-canary [1-25-0 1-25-0]
	// shop istio.io/rev=prod-canary [1-25-0 1-25-0 1-25-0]
	//
	// record-state       done
	// set-tag prod-canary→1-25-0 done
	// migrate 1/2        done
	// restart 1/2        done
	// proxies-synced 1/2 failed
	// migrate 2/2        not-run
	// restart 2/2        not-run
	// proxies-synced 2/2 not-run
	// set-tag prod-stable→1-25-0 not-run
	// restore-state      done
	// restart-back       done
	// gate failed: true
	// blog istio.io/rev=prod-stable [1-24-0 1-24-0]
	// shop istio.io/rev=prod-stable [1-24-0 1-24-0 1-24-0]
}
