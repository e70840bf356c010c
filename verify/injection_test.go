package verify

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/revkit/revkit/revkittest"
)

// A namespace labelled both istio-injection=enabled and istio.io/rev is
// injected by the default tag's webhook; the reports say so and flag it
// (Istio's IST0123) without failing (issue #14).
func TestInjectionConflicts(t *testing.T) {
	ctx := context.Background()
	kube := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").WithTag("default", "1-25-0").
		WithNamespace("both", revkittest.InjectionEnabled(), revkittest.Rev("1-24-0")).
		WithNamespace("shop", revkittest.Rev("1-24-0")).
		WithPod("both", "web-0", "1-25-0").
		Kube()
	want := []Injection{{Configuration: "istio-revision-tag-default", Webhook: "namespace.sidecar-injector.istio.io", Revision: "1-25-0", Tag: "default"}}

	wh, err := Webhooks(ctx, kube, WebhooksOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(wh.Conflicts) != 1 {
		t.Fatalf("conflicts = %+v, want one for namespace both", wh.Conflicts)
	}
	c := wh.Conflicts[0]
	if c.Namespace != "both" || c.Rev != "1-24-0" || c.Injection != "enabled" || !reflect.DeepEqual(c.Injections, want) {
		t.Errorf("conflict = %+v", c)
	}
	if s := c.String(); !strings.Contains(s, "IST0123") || !strings.Contains(s, "istio-revision-tag-default") {
		t.Errorf("String() = %q", s)
	}
	if !wh.OK() {
		t.Errorf("a label conflict is a warning, as in Istio's analyzer: %v", wh.Err())
	}

	pods, err := Pods(ctx, kube, PodsOptions{Namespaces: []string{"both", "shop"}})
	if err != nil {
		t.Fatal(err)
	}
	both, shop := pods.Namespaces[0], pods.Namespaces[1]
	if !reflect.DeepEqual(both.Injects, []string{"1-25-0"}) || !reflect.DeepEqual(both.Injections, want) || both.Conflict == nil {
		t.Errorf("both = %+v", both)
	}
	if !pods.OK() {
		t.Errorf("the pod runs what the apiserver injects: %v", pods.Err())
	}
	if shop.Conflict != nil || !reflect.DeepEqual(shop.Injects, []string{"1-24-0"}) || len(shop.Injections) != 1 ||
		shop.Injections[0].Webhook != "rev.namespace.sidecar-injector.istio.io" {
		t.Errorf("shop = %+v", shop)
	}
}

// Namespaces labelled for injection that no webhook serves are reported:
// their new pods start without a sidecar.
func TestUninjectedNamespaces(t *testing.T) {
	ctx := context.Background()
	kube := revkittest.NewCluster().WithRevision("1-24-0").
		WithNamespace("legacy", revkittest.InjectionEnabled()).                         // no default tag or injector
		WithNamespace("both", revkittest.InjectionEnabled(), revkittest.Rev("1-24-0")). // istio-injection wins
		WithNamespace("gone", revkittest.Rev("1-23-0")).                                // revision removed
		WithNamespace("shop", revkittest.Rev("1-24-0")).
		WithNamespace("off", revkittest.Label("istio-injection", "disabled")).
		Kube()
	wh, err := Webhooks(ctx, kube, WebhooksOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []UninjectedNamespace{
		{Namespace: "both", Label: "istio-injection=enabled"},
		{Namespace: "gone", Label: "istio.io/rev=1-23-0"},
		{Namespace: "legacy", Label: "istio-injection=enabled"},
	}
	if !reflect.DeepEqual(wh.Uninjected, want) {
		t.Errorf("uninjected = %+v, want %+v", wh.Uninjected, want)
	}
	if !strings.Contains(want[0].String(), "no sidecar") {
		t.Errorf("String() = %q", want[0].String())
	}
}
