package verify

import (
	"context"
	"errors"
	"testing"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/revkit/revkit"
)

// TestBadInput checks that malformed options are refused with a typed error
// before a single request reaches the cluster.
func TestBadInput(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		call  func(kube *fake.Clientset) error
		field string
	}{
		{"Pods: dotted target", func(k *fake.Clientset) error {
			_, err := Pods(ctx, k, PodsOptions{Namespaces: []string{"shop"}, Target: "1.25.0"})
			return err
		}, "Target"},
		{"Pods: upper-case target", func(k *fake.Clientset) error {
			_, err := Pods(ctx, k, PodsOptions{Target: "Prod"})
			return err
		}, "Target"},
		{"Pods: target too long", func(k *fake.Clientset) error {
			_, err := Pods(ctx, k, PodsOptions{Target: "a234567890123456789012345678901234567890123456789012345678"})
			return err
		}, "Target"},
		{"Pods: empty namespace", func(k *fake.Clientset) error {
			_, err := Pods(ctx, k, PodsOptions{Namespaces: []string{""}})
			return err
		}, "Namespaces"},
		{"Pods: dotted namespace", func(k *fake.Clientset) error {
			_, err := Pods(ctx, k, PodsOptions{Namespaces: []string{"shop", "a.b"}})
			return err
		}, "Namespaces"},
		{"Pods: bad selector", func(k *fake.Clientset) error {
			_, err := Pods(ctx, k, PodsOptions{Selector: "team in (shop"})
			return err
		}, "Selector"},
		{"Pods: bad control-plane namespace", func(k *fake.Clientset) error {
			_, err := Pods(ctx, k, PodsOptions{ControlPlaneNamespace: "Istio_System"})
			return err
		}, "ControlPlaneNamespace"},
		{"Webhooks: bad control-plane namespace", func(k *fake.Clientset) error {
			_, err := Webhooks(ctx, k, WebhooksOptions{ControlPlaneNamespace: "-istio"})
			return err
		}, "ControlPlaneNamespace"},
		{"Precheck: bad minimum version", func(k *fake.Clientset) error {
			_, err := Precheck(ctx, k, PrecheckOptions{MinKubernetesVersion: "latest"})
			return err
		}, "MinKubernetesVersion"},
		{"Precheck: permission without verb", func(k *fake.Clientset) error {
			_, err := Precheck(ctx, k, PrecheckOptions{Permissions: []Permission{{Verb: "get", Resource: "pods"}, {Resource: "pods"}}})
			return err
		}, "Permissions[1]"},
		{"Precheck: permission without resource", func(k *fake.Clientset) error {
			_, err := Precheck(ctx, k, PrecheckOptions{Permissions: []Permission{{Verb: "get"}}})
			return err
		}, "Permissions[0]"},
		{"Precheck: permission in a bad namespace", func(k *fake.Clientset) error {
			_, err := Precheck(ctx, k, PrecheckOptions{Permissions: []Permission{{Verb: "get", Resource: "pods", Namespace: "Shop"}}})
			return err
		}, "Permissions[0].Namespace"},
		{"Precheck: bad control-plane namespace", func(k *fake.Clientset) error {
			_, err := Precheck(ctx, k, PrecheckOptions{ControlPlaneNamespace: "a.b"})
			return err
		}, "ControlPlaneNamespace"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kube := canary().Kube()
			err := tc.call(kube)
			var iie *revkit.InvalidInputError
			if !errors.As(err, &iie) || !errors.Is(err, revkit.ErrInvalidInput) {
				t.Fatalf("err = %v, want an InvalidInputError", err)
			}
			if iie.Field != tc.field {
				t.Errorf("field = %q, want %q (%v)", iie.Field, tc.field, err)
			}
			if acts := kube.Actions(); len(acts) != 0 {
				t.Errorf("%d requests sent before refusing, first %v", len(acts), acts[0])
			}
		})
	}
}

func TestVerificationErrorText(t *testing.T) {
	var problems []Problem
	for i := 0; i < 12; i++ {
		problems = append(problems, Problem{Kind: ProblemStraggler, Object: "ns/p", Detail: "on revision a"})
	}
	err := &VerificationError{Check: "verify.Pods", Problems: problems}
	want := "verify.Pods: verification failed: 12 problems: " +
		"straggler ns/p: on revision a; straggler ns/p: on revision a; straggler ns/p: on revision a; " +
		"straggler ns/p: on revision a; straggler ns/p: on revision a; straggler ns/p: on revision a; " +
		"straggler ns/p: on revision a; straggler ns/p: on revision a; straggler ns/p: on revision a; " +
		"straggler ns/p: on revision a; and 2 more"
	if err.Error() != want {
		t.Errorf("Error():\n got %s\nwant %s", err.Error(), want)
	}
	one := &VerificationError{Check: "verify.Precheck", Problems: []Problem{{Kind: ProblemPermission, Detail: "cannot list pods"}}}
	if got := one.Error(); got != "verify.Precheck: verification failed: 1 problem: permission: cannot list pods" {
		t.Errorf("Error() = %q", got)
	}
	if errors.Is(one, revkit.ErrOverlap) || errors.Is(one, revkit.ErrNotFound) {
		t.Errorf("a permission problem matches an unrelated sentinel")
	}
	if verificationErr("x", nil) != nil {
		t.Errorf("no problems must give a nil error")
	}
}
