package verify

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	admv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/mesh"
	"github.com/revkit/revkit/revkittest"
)

// removeRevision deletes what WithRevision created for rev, as a careless
// uninstall would, leaving tags and the default validator behind.
func removeRevision(t *testing.T, kube *fake.Clientset, rev string) {
	t.Helper()
	ctx := context.Background()
	ns := revkit.DefaultControlPlaneNamespace
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, "istio-sidecar-injector-"+rev, metav1.DeleteOptions{}))
	must(kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, "istio-validator-"+rev+"-"+ns, metav1.DeleteOptions{}))
	must(kube.AppsV1().Deployments(ns).Delete(ctx, "istiod-"+rev, metav1.DeleteOptions{}))
	must(kube.CoreV1().Services(ns).Delete(ctx, "istiod-"+rev, metav1.DeleteOptions{}))
}

func validatorCalling(name, service string, labels map[string]string) *admv1.ValidatingWebhookConfiguration {
	cc := admv1.WebhookClientConfig{Service: &admv1.ServiceReference{Namespace: "istio-system", Name: service, Path: ptr.To("/validate")}}
	v := mesh.DefaultValidator("x", cc, nil)
	v.Name = name
	v.Labels = labels
	v.Webhooks[0].Name = "rev.validation.istio.io"
	return v
}

func TestWebhooks(t *testing.T) {
	svc := func(name string) revkit.ObjectRef {
		return revkit.ObjectRef{Kind: "Service", Namespace: "istio-system", Name: name}
	}
	rogue := &admv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "rogue-injector"},
		Webhooks: []admv1.MutatingWebhook{{
			Name:              "rogue.sidecar-injector.istio.io",
			ClientConfig:      admv1.WebhookClientConfig{URL: ptr.To("https://injector.example.com/inject")},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"istio-injection": "enabled"}},
		}},
	}
	urlValidator := &admv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "remote-validator"},
		Webhooks: []admv1.ValidatingWebhook{{Name: "rev.validation.istio.io",
			ClientConfig: admv1.WebhookClientConfig{URL: ptr.To("https://istiod.example.com/validate")}}},
	}
	tests := []struct {
		name    string
		cluster *revkittest.Cluster
		remove  []string // revisions removed after building
		want    WebhooksReport
		errIs   []error
	}{
		{
			name:    "healthy canary with tags",
			cluster: canary().WithTag("default", "1-24-0"),
			want: WebhooksReport{
				Revisions: []string{"1-24-0", "1-25-0"},
				Injectors: []string{"istio-revision-tag-default", "istio-revision-tag-prod", "istio-sidecar-injector-1-24-0", "istio-sidecar-injector-1-25-0"},
			},
		},
		{
			name:    "overlap: a second injector for istio-injection=enabled",
			cluster: revkittest.NewCluster().WithRevision("default").WithObjects(rogue, urlValidator),
			want: WebhooksReport{
				Revisions: []string{"default"},
				Injectors: []string{"istio-sidecar-injector", "rogue-injector"},
				Overlaps: []Overlap{{
					First: "istio-sidecar-injector", Second: "rogue-injector",
					FirstWebhook: "namespace.sidecar-injector.istio.io", SecondWebhook: "rogue.sidecar-injector.istio.io",
					NamespaceLabels: map[string]string{"istio-injection": "enabled"}, PodLabels: map[string]string{},
				}},
			},
			errIs: []error{revkit.ErrOverlap, revkit.ErrVerificationFailed},
		},
		{
			name:    "a deactivated legacy injector does not overlap",
			cluster: revkittest.NewCluster().WithRevision("default").WithRevision("1-25-0").WithTag("default", "1-25-0"),
			want: WebhooksReport{
				Revisions: []string{"1-25-0", "default"},
				Injectors: []string{"istio-revision-tag-default", "istio-sidecar-injector", "istio-sidecar-injector-1-25-0"},
			},
		},
		{
			name: "validator left pointing at a removed revision (istio#28880)",
			cluster: revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").WithTag("default", "1-24-0").
				WithNamespace("shop", revkittest.InjectionEnabled()),
			remove: []string{"1-24-0"},
			want: WebhooksReport{
				Revisions: []string{"1-25-0"},
				Injectors: []string{"istio-revision-tag-default", "istio-sidecar-injector-1-25-0"},
				Dangling: []DanglingService{
					{Kind: KindMutating, Configuration: "istio-revision-tag-default", Webhook: "rev.namespace.sidecar-injector.istio.io", Service: svc("istiod-1-24-0")},
					{Kind: KindMutating, Configuration: "istio-revision-tag-default", Webhook: "rev.object.sidecar-injector.istio.io", Service: svc("istiod-1-24-0")},
					{Kind: KindMutating, Configuration: "istio-revision-tag-default", Webhook: "namespace.sidecar-injector.istio.io", Service: svc("istiod-1-24-0")},
					{Kind: KindMutating, Configuration: "istio-revision-tag-default", Webhook: "object.sidecar-injector.istio.io", Service: svc("istiod-1-24-0")},
					{Kind: KindValidating, Configuration: "istiod-default-validator", Webhook: "validation.istio.io", Service: svc("istiod-1-24-0")},
				},
				Orphaned: []OrphanedWebhook{
					{Kind: KindMutating, Name: "istio-revision-tag-default", Revision: "1-24-0", Tag: "default"},
					{Kind: KindValidating, Name: "istiod-default-validator", Revision: "1-24-0", Tag: "default"},
				},
			},
			errIs: []error{revkit.ErrVerificationFailed},
		},
		{
			name: "validator revision taken from its service name; URL validators skipped",
			cluster: revkittest.NewCluster().WithRevision("1-25-0").
				WithObjects(validatorCalling("old-validator", "istiod-1-23-0", nil), urlValidator),
			want: WebhooksReport{
				Revisions: []string{"1-25-0"},
				Injectors: []string{"istio-sidecar-injector-1-25-0"},
				Dangling: []DanglingService{
					{Kind: KindValidating, Configuration: "old-validator", Webhook: "rev.validation.istio.io", Service: svc("istiod-1-23-0")},
				},
				Orphaned: []OrphanedWebhook{{Kind: KindValidating, Name: "old-validator", Revision: "1-23-0"}},
			},
			errIs: []error{revkit.ErrVerificationFailed},
		},
		{
			name: "service gone, revision still installed",
			cluster: revkittest.NewCluster().WithRevision("1-25-0").
				WithObjects(validatorCalling("typo-validator", "istiod-1-25-O", map[string]string{"istio.io/rev": "1-25-0"})),
			want: WebhooksReport{
				Revisions: []string{"1-25-0"},
				Injectors: []string{"istio-sidecar-injector-1-25-0"},
				Dangling: []DanglingService{
					{Kind: KindValidating, Configuration: "typo-validator", Webhook: "rev.validation.istio.io", Service: svc("istiod-1-25-O")},
				},
			},
			errIs: []error{revkit.ErrVerificationFailed},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kube := tc.cluster.Kube()
			for _, rev := range tc.remove {
				removeRevision(t, kube, rev)
			}
			kube.ClearActions()
			r, err := Webhooks(context.Background(), kube, WebhooksOptions{})
			if err != nil {
				t.Fatalf("Webhooks: %v", err)
			}
			if !reflect.DeepEqual(*r, tc.want) {
				t.Errorf("report:\n got %+v\nwant %+v", *r, tc.want)
			}
			if r.OK() != (len(tc.errIs) == 0) {
				t.Errorf("OK() = %v", r.OK())
			}
			err = r.Err()
			if len(tc.errIs) == 0 && err != nil {
				t.Errorf("Err() = %v", err)
			}
			for _, target := range tc.errIs {
				if !errors.Is(err, target) {
					t.Errorf("Err() = %v, want it to match %v", err, target)
				}
			}
			var oe *revkit.OverlapError
			if len(tc.errIs) > 0 && !slicesContain(tc.errIs, revkit.ErrOverlap) && (errors.Is(err, revkit.ErrOverlap) || errors.As(err, &oe)) {
				t.Errorf("Err() = %v matches ErrOverlap without an overlap", err)
			}
			if len(tc.want.Overlaps) > 0 {
				first := tc.want.Overlaps[0]
				if !errors.As(err, &oe) || oe.First != first.First || oe.SecondWebhook != first.SecondWebhook ||
					!reflect.DeepEqual(oe.NamespaceLabels, first.NamespaceLabels) {
					t.Errorf("errors.As OverlapError = %+v, want the first overlap %+v", oe, first)
				}
			}
			// Each Service is looked up once, however many webhooks call it.
			seen := map[string]int{}
			for _, a := range kube.Actions() {
				if a.GetVerb() != "get" && a.GetVerb() != "list" {
					t.Errorf("verify wrote: %v", a)
				}
				if a.GetVerb() == "get" && a.GetResource().Resource == "services" {
					name := a.(interface{ GetName() string }).GetName()
					if seen[name]++; seen[name] > 1 {
						t.Errorf("service %s looked up twice", name)
					}
				}
			}
		})
	}
}

func slicesContain(list []error, e error) bool {
	for _, x := range list {
		if x == e {
			return true
		}
	}
	return false
}

func TestWebhooksErrText(t *testing.T) {
	r := &WebhooksReport{
		Overlaps: []Overlap{{First: "a", Second: "b", NamespaceLabels: map[string]string{"istio-injection": "enabled"}}},
		Dangling: []DanglingService{{Kind: KindMutating, Configuration: "c", Webhook: "w", Service: revkit.ObjectRef{Kind: "Service", Namespace: "istio-system", Name: "istiod-x"}}},
		Orphaned: []OrphanedWebhook{{Kind: KindMutating, Name: "istio-revision-tag-prod", Revision: "1-24-0", Tag: "prod"}},
	}
	want := `verify.Webhooks: verification failed: 3 problems: ` +
		`overlap a+b: a and b both inject a pod labelled map[] in a namespace labelled map[istio-injection:enabled]; ` +
		`dangling-service c: webhook w calls missing Service/istio-system/istiod-x; ` +
		`missing-revision istio-revision-tag-prod: MutatingWebhookConfiguration istio-revision-tag-prod: tag "prod" points at revision "1-24-0", which is not installed`
	if got := r.Err().Error(); got != want {
		t.Errorf("Err():\n got %s\nwant %s", got, want)
	}
	if got := r.Dangling[0].String(); got != "MutatingWebhookConfiguration c webhook w calls missing Service/istio-system/istiod-x" {
		t.Errorf("DanglingService.String() = %q", got)
	}
	if got := (OrphanedWebhook{Kind: KindValidating, Name: "v", Revision: "r"}).String(); got != `ValidatingWebhookConfiguration v: revision "r" is not installed` {
		t.Errorf("OrphanedWebhook.String() = %q", got)
	}
}

func TestWebhooksAPIErrors(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "services"}, "istiod-1-25-0", errors.New("no"))
	internal := apierrors.NewInternalError(errors.New("etcd down"))
	tests := []struct {
		name           string
		verb, resource string
		err            error
		is             func(error) bool
		mention        string
	}{
		{"get service 403", "get", "services", forbidden, apierrors.IsForbidden, "verify.Webhooks: get Service/istio-system/istiod-1-25-0"},
		{"list validators 500", "list", "validatingwebhookconfigurations", internal, apierrors.IsInternalError, "verify.Webhooks: read the control plane in istio-system"},
		{"list deployments 403", "list", "deployments", forbidden, apierrors.IsForbidden, "list istiod Deployments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kube := canary().Kube()
			failOn(kube, tc.verb, tc.resource, tc.err)
			_, err := Webhooks(context.Background(), kube, WebhooksOptions{})
			if err == nil || !tc.is(err) {
				t.Fatalf("err = %v, want the API status kept", err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("err = %q, want it to say %q", err, tc.mention)
			}
		})
	}
}

func TestWebhooksOtherControlPlaneNamespace(t *testing.T) {
	kube := revkittest.NewCluster().WithControlPlaneNamespace("mesh").WithRevision("1-25-0").Kube()
	r, err := Webhooks(context.Background(), kube, WebhooksOptions{ControlPlaneNamespace: "mesh"})
	if err != nil || !r.OK() || !reflect.DeepEqual(r.Revisions, []string{"1-25-0"}) {
		t.Fatalf("Webhooks = %+v, %v", r, err)
	}
}
