package verify_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/verify"
)

// A canary upgrade half done: shop was moved to the prod tag, which points
// at 1-25-0, but only web has been restarted since.
func ExamplePods() {
	kube := revkittest.NewCluster().
		WithRevision("1-24-0").
		WithRevision("1-25-0").
		WithTag("prod", "1-25-0").
		WithNamespace("shop", revkittest.Rev("prod")).
		WithDeployment("shop", "cart", revkittest.Replicas(2), revkittest.OnRevision("1-24-0")).
		WithDeployment("shop", "web", revkittest.OnRevision("1-25-0")).
		WithDeployment("shop", "backup", revkittest.InjectionDisabled()).
		Kube()

	report, err := verify.Pods(context.Background(), kube, verify.PodsOptions{
		Namespaces: []string{"shop"},
		Target:     "prod",
	})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Printf("target %s is revision %s\n", report.Target, report.Revision)
	for _, ns := range report.Namespaces {
		fmt.Printf("%s: 1-24-0=%d 1-25-0=%d no sidecar=%d (opted out %d)\n",
			ns.Namespace, ns.Revisions["1-24-0"], ns.Revisions["1-25-0"], ns.NoSidecar, ns.OptedOut)
	}
	for _, s := range report.Stragglers {
		fmt.Println("straggler", s)
	}
	fmt.Println("ok:", report.OK(), "failed:", errors.Is(report.Err(), revkit.ErrVerificationFailed))
	// Output:
	// target prod is revision 1-25-0
	// shop: 1-24-0=2 1-25-0=1 no sidecar=1 (opted out 1)
	// straggler shop/cart-0: on revision 1-24-0
	// straggler shop/cart-1: on revision 1-24-0
	// ok: false failed: true
}

// The old revision was removed without moving the default tag first:
// istio-injection=enabled namespaces lose injection and Istio config can no
// longer be validated.
func ExampleWebhooks() {
	ctx := context.Background()
	kube := revkittest.NewCluster().
		WithRevision("1-24-0").
		WithRevision("1-25-0").
		WithTag("default", "1-24-0").
		Kube()
	// A careless uninstall of 1-24-0.
	_ = kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, "istio-sidecar-injector-1-24-0", metav1.DeleteOptions{})
	_ = kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, "istio-validator-1-24-0-istio-system", metav1.DeleteOptions{})
	_ = kube.AppsV1().Deployments("istio-system").Delete(ctx, "istiod-1-24-0", metav1.DeleteOptions{})
	_ = kube.CoreV1().Services("istio-system").Delete(ctx, "istiod-1-24-0", metav1.DeleteOptions{})

	report, err := verify.Webhooks(ctx, kube, verify.WebhooksOptions{})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("revisions:", report.Revisions)
	for _, o := range report.Orphaned {
		fmt.Println(o)
	}
	fmt.Println("webhooks calling a missing Service:", len(report.Dangling))
	fmt.Println("overlap:", errors.Is(report.Err(), revkit.ErrOverlap))
	// Output:
	// revisions: [1-25-0]
	// MutatingWebhookConfiguration istio-revision-tag-default: tag "default" points at revision "1-24-0", which is not installed
	// ValidatingWebhookConfiguration istiod-default-validator: tag "default" points at revision "1-24-0", which is not installed
	// webhooks calling a missing Service: 5
	// overlap: false
}

// Two istiods, one per revision, each serving /debug/syncz on its
// monitoring port (here an httptest server stands in for a port-forward).
func ExampleProxies() {
	serve := func(body string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, body)
		}))
	}
	oldIstiod := serve(`[{"proxy":"gateway-7c9d.istio-ingress","proxy_type":"router",
		"cluster_sent":"a1","cluster_acked":"a1","listener_sent":"b1","listener_acked":"b1"}]`)
	defer oldIstiod.Close()
	newIstiod := serve(`[
		{"proxy":"cart-0.shop","proxy_type":"sidecar",
		 "cluster_sent":"c2","cluster_acked":"c2","listener_sent":"d2","listener_acked":"d2"},
		{"proxy":"web-0.shop","proxy_type":"sidecar",
		 "cluster_sent":"c2","cluster_acked":"c1","listener_sent":"d2","listener_acked":"d2"},
		{"proxy":"ztunnel-x1.istio-system","proxy_type":"ztunnel",
		 "resources":{"type.googleapis.com/istio.workload.Address":{"sent":"w1","acked":"w1"}}}]`)
	defer newIstiod.Close()

	report, err := verify.Proxies(context.Background(), verify.ProxiesOptions{
		Sources: []verify.SyncSource{
			verify.HTTPSource{Rev: "1-24-0", URL: oldIstiod.URL},
			verify.HTTPSource{Rev: "1-25-0", URL: newIstiod.URL},
		},
		Target: "1-25-0",
	})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	for _, r := range report.Revisions {
		fmt.Printf("%s: %d proxies, %d synced, %d stale\n", r.Revision, r.Proxies, r.Synced, r.Stale)
	}
	fmt.Println(report.Err())
	// Output:
	// 1-24-0: 1 proxies, 1 synced, 0 stale
	// 1-25-0: 3 proxies, 2 synced, 1 stale
	// verify.Proxies: verification failed: 2 problems: straggler gateway-7c9d.istio-ingress: on revision 1-24-0; not-synced web-0.shop: CDS STALE
}

func ExampleParseSyncz() {
	proxies, err := verify.ParseSyncz([]byte(`[{"proxy":"cart-0.shop","proxy_type":"sidecar",
		"cluster_sent":"n2","cluster_acked":"n2","listener_sent":"n2","listener_acked":"n2",
		"resources":{"type.googleapis.com/envoy.config.route.v3.RouteConfiguration":
			{"sent":"n2","acked":"n1","lastError":"route: unknown cluster"}}}]`))
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	for _, p := range proxies {
		fmt.Println(p.Pod, p.Namespace, p.State)
		for _, t := range p.Types {
			fmt.Printf("  %s %s\n", t.Type, t.State)
		}
	}
	_, err = verify.ParseSyncz([]byte(`{"not":"a list"}`))
	fmt.Println(errors.Is(err, verify.ErrMalformedSyncz))
	// Output:
	// cart-0 shop ERROR
	//   CDS SYNCED
	//   LDS SYNCED
	//   EDS NOT SENT
	//   RDS ERROR
	//   ECDS NOT SENT
	// true
}
