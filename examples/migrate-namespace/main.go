package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/verify"
)

func main() {
	ctx := context.Background()
	cfg, err := clientcmd.BuildConfigFromFlags("", clientcmd.RecommendedHomeFile)
	if err != nil {
		log.Fatal(err)
	}
	kube := kubernetes.NewForConfigOrDie(cfg)

	shop := namespace.Selection{Namespaces: []string{"shop"}}
	if _, err := namespace.Migrate(ctx, kube, namespace.MigrateOptions{
		Selection: shop, Target: "prod-canary",
	}); err != nil {
		log.Fatal(err)
	}
	if _, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{
		Selection: shop, Target: "prod-canary", OnlyStale: true,
		Wait: true, Timeout: 5 * time.Minute,
	}); err != nil {
		log.Fatal(err)
	}
	report, err := verify.Pods(ctx, kube, verify.PodsOptions{
		Namespaces: []string{"shop"}, Target: "prod-canary",
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := report.Err(); err != nil {
		log.Fatal(err) // names every pod not on the canary revision
	}
	fmt.Println("shop is on prod-canary")
}
