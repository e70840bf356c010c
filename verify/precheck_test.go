package verify

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	authv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revkittest"
)

// authorizer answers SelfSubjectAccessReviews: everything is allowed but
// the permissions in denied. It records what was asked.
type authorizer struct {
	denied map[Permission]bool
	asked  []Permission
}

func (a *authorizer) install(kube *fake.Clientset) {
	kube.PrependReactor("create", "selfsubjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		review := action.(k8stesting.CreateAction).GetObject().(*authv1.SelfSubjectAccessReview).DeepCopy()
		ra := review.Spec.ResourceAttributes
		p := Permission{Verb: ra.Verb, Group: ra.Group, Resource: ra.Resource, Namespace: ra.Namespace}
		a.asked = append(a.asked, p)
		review.Status.Allowed = !a.denied[p]
		if !review.Status.Allowed {
			review.Status.Reason = "RBAC: no rule"
		}
		return true, review, nil
	})
}

func setServerVersion(kube *fake.Clientset, info *version.Info) {
	kube.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = info
}

func TestPrecheck(t *testing.T) {
	v131 := &version.Info{Major: "1", Minor: "31", GitVersion: "v1.31.2"}
	patchNS := Permission{Verb: "patch", Resource: "namespaces"}
	deleteMWC := Permission{Verb: "delete", Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"}
	custom := []Permission{{Verb: "get", Resource: "pods", Namespace: "shop"}, {Verb: "list", Group: "apps", Resource: "deployments"}}
	tests := []struct {
		name      string
		cluster   *revkittest.Cluster
		server    *version.Info
		opts      PrecheckOptions
		denied    []Permission
		want      PrecheckReport // Checked is filled from the permissions asked
		asked     []Permission   // nil: DefaultPermissions of the options' namespace
		errDetail []string
	}{
		{
			name:    "ready",
			cluster: canary(),
			server:  v131,
			want:    PrecheckReport{ServerVersion: "v1.31.2", MinKubernetesVersion: "1.29", VersionOK: true, Revisions: []string{"1-24-0", "1-25-0"}},
		},
		{
			name:      "server too old",
			cluster:   revkittest.NewCluster(),
			server:    &version.Info{Major: "1", Minor: "27", GitVersion: "v1.27.3"},
			want:      PrecheckReport{ServerVersion: "v1.27.3", MinKubernetesVersion: "1.29"},
			errDetail: []string{"version kubernetes: server version v1.27.3 is older than 1.29"},
		},
		{
			name:    "missing permissions",
			cluster: canary(),
			server:  v131,
			denied:  []Permission{patchNS, deleteMWC},
			want: PrecheckReport{ServerVersion: "v1.31.2", MinKubernetesVersion: "1.29", VersionOK: true,
				Missing: []Permission{patchNS, deleteMWC}, Revisions: []string{"1-24-0", "1-25-0"}},
			errDetail: []string{"permission: cannot patch namespaces", "permission: cannot delete mutatingwebhookconfigurations.admissionregistration.k8s.io"},
		},
		{
			name:      "vendor suffix, higher minimum",
			cluster:   revkittest.NewCluster(),
			server:    &version.Info{Major: "1", Minor: "31+", GitVersion: "v1.31.2-gke.1000"},
			opts:      PrecheckOptions{MinKubernetesVersion: "v1.32"},
			want:      PrecheckReport{ServerVersion: "v1.31.2-gke.1000", MinKubernetesVersion: "1.32"},
			errDetail: []string{"version kubernetes: server version v1.31.2-gke.1000 is older than 1.32"},
		},
		{
			name:    "version from major and minor when the git version is odd",
			cluster: revkittest.NewCluster(),
			server:  &version.Info{Major: "1", Minor: "30+", GitVersion: "custom-build"},
			want:    PrecheckReport{ServerVersion: "custom-build", MinKubernetesVersion: "1.29", VersionOK: true},
		},
		{
			name:      "no usable version at all",
			cluster:   revkittest.NewCluster(),
			server:    &version.Info{GitVersion: "unknown"},
			want:      PrecheckReport{ServerVersion: "unknown", MinKubernetesVersion: "1.29"},
			errDetail: []string{"version kubernetes: server version unknown is older than 1.29"},
		},
		{
			name:    "caller's permissions",
			cluster: canary(),
			server:  v131,
			opts:    PrecheckOptions{Permissions: custom},
			denied:  custom[:1],
			asked:   custom,
			want: PrecheckReport{ServerVersion: "v1.31.2", MinKubernetesVersion: "1.29", VersionOK: true,
				Missing: custom[:1], Revisions: []string{"1-24-0", "1-25-0"}},
			errDetail: []string{"permission: cannot get pods in shop"},
		},
		{
			name:    "other control-plane namespace",
			cluster: revkittest.NewCluster().WithControlPlaneNamespace("mesh").WithRevision("1-25-0"),
			server:  v131,
			opts:    PrecheckOptions{ControlPlaneNamespace: "mesh"},
			want:    PrecheckReport{ServerVersion: "v1.31.2", MinKubernetesVersion: "1.29", VersionOK: true, Revisions: []string{"1-25-0"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kube := tc.cluster.Kube()
			setServerVersion(kube, tc.server)
			auth := &authorizer{denied: map[Permission]bool{}}
			for _, p := range tc.denied {
				auth.denied[p] = true
			}
			auth.install(kube)
			r, err := Precheck(context.Background(), kube, tc.opts)
			if err != nil {
				t.Fatalf("Precheck: %v", err)
			}
			asked := tc.asked
			if asked == nil {
				asked = DefaultPermissions(tc.opts.ControlPlaneNamespace)
			}
			if !reflect.DeepEqual(auth.asked, asked) {
				t.Errorf("asked:\n got %v\nwant %v", auth.asked, asked)
			}
			tc.want.Checked = len(asked)
			if !reflect.DeepEqual(*r, tc.want) {
				t.Errorf("report:\n got %+v\nwant %+v", *r, tc.want)
			}
			if r.OK() != (len(tc.errDetail) == 0) {
				t.Errorf("OK() = %v", r.OK())
			}
			err = r.Err()
			var ve *VerificationError
			if len(tc.errDetail) == 0 {
				if err != nil {
					t.Errorf("Err() = %v", err)
				}
				return
			}
			if !errors.As(err, &ve) || !errors.Is(err, revkit.ErrVerificationFailed) {
				t.Fatalf("Err() = %v", err)
			}
			var got []string
			for _, p := range ve.Problems {
				got = append(got, p.String())
			}
			if !reflect.DeepEqual(got, tc.errDetail) {
				t.Errorf("problems:\n got %q\nwant %q", got, tc.errDetail)
			}
		})
	}
}

func TestDefaultPermissions(t *testing.T) {
	perms := DefaultPermissions("")
	if len(perms) != 50 {
		t.Errorf("%d default permissions, want 50", len(perms))
	}
	has := func(p Permission) bool {
		for _, q := range perms {
			if q == p {
				return true
			}
		}
		return false
	}
	for _, p := range []Permission{
		{Verb: "patch", Resource: "namespaces"},
		{Verb: "patch", Group: "apps", Resource: "daemonsets"},
		{Verb: "list", Resource: "pods"},
		{Verb: "create", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations"},
		{Verb: "delete", Resource: "services", Namespace: "istio-system"},
		{Verb: "update", Resource: "configmaps", Namespace: "istio-system"},
		{Verb: "create", Group: "apps", Resource: "deployments", Namespace: "istio-system"},
	} {
		if !has(p) {
			t.Errorf("DefaultPermissions lacks %v", p)
		}
	}
	for _, got := range DefaultPermissions("mesh") {
		if got.Namespace != "" && got.Namespace != "mesh" {
			t.Errorf("permission %v is not in the control-plane namespace mesh", got)
		}
	}
}

func TestPrecheckAPIErrors(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "selfsubjectaccessreviews"}, "", errors.New("no"))
	internal := apierrors.NewInternalError(errors.New("boom"))
	tests := []struct {
		name           string
		verb, resource string
		err            error
		is             func(error) bool
		mention        string
	}{
		{"server version 403", "get", "version", forbidden, apierrors.IsForbidden, "verify.Precheck: get server version"},
		{"access review 500", "create", "selfsubjectaccessreviews", internal, apierrors.IsInternalError, "verify.Precheck: create SelfSubjectAccessReview/get namespaces"},
		{"injectors 403", "list", "mutatingwebhookconfigurations", forbidden, apierrors.IsForbidden, "verify.Precheck: read the control plane in istio-system"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kube := canary().Kube()
			(&authorizer{}).install(kube)
			failOn(kube, tc.verb, tc.resource, tc.err)
			_, err := Precheck(context.Background(), kube, PrecheckOptions{})
			if err == nil || !tc.is(err) {
				t.Fatalf("err = %v, want the API status kept", err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("err = %q, want it to say %q", err, tc.mention)
			}
		})
	}
}
