package verify

import (
	"context"
	"errors"
	"reflect"
	"slices"
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
// the permissions in denied (keyed by Permission.String, one name each).
// It records what was asked, a review of a name as a permission with that
// one name.
type authorizer struct {
	denied map[string]bool
	asked  []Permission
}

func (a *authorizer) install(kube *fake.Clientset) {
	kube.PrependReactor("create", "selfsubjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		review := action.(k8stesting.CreateAction).GetObject().(*authv1.SelfSubjectAccessReview).DeepCopy()
		ra := review.Spec.ResourceAttributes
		p := Permission{Verb: ra.Verb, Group: ra.Group, Resource: ra.Resource, Namespace: ra.Namespace}
		if ra.Name != "" {
			p.ResourceNames = []string{ra.Name}
		}
		a.asked = append(a.asked, p)
		review.Status.Allowed = !a.denied[p.String()]
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
	deleteOwn := Permission{Verb: "delete", Group: rbacGroup, Resource: "clusterroles",
		ResourceNames: []string{"istiod-clusterrole-1-24-0", "istiod-clusterrole-1-25-0"}}
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
			name:    "named permissions: one review per name, the denied names reported",
			cluster: canary(),
			server:  v131,
			opts:    PrecheckOptions{Permissions: []Permission{deleteOwn, {Verb: "list", Group: rbacGroup, Resource: "clusterroles"}}},
			denied:  []Permission{{Verb: "delete", Group: rbacGroup, Resource: "clusterroles", ResourceNames: []string{"istiod-clusterrole-1-25-0"}}},
			asked: []Permission{
				{Verb: "delete", Group: rbacGroup, Resource: "clusterroles", ResourceNames: []string{"istiod-clusterrole-1-24-0"}},
				{Verb: "delete", Group: rbacGroup, Resource: "clusterroles", ResourceNames: []string{"istiod-clusterrole-1-25-0"}},
				{Verb: "list", Group: rbacGroup, Resource: "clusterroles"},
			},
			want: PrecheckReport{ServerVersion: "v1.31.2", MinKubernetesVersion: "1.29", VersionOK: true, Revisions: []string{"1-24-0", "1-25-0"},
				Missing: []Permission{{Verb: "delete", Group: rbacGroup, Resource: "clusterroles", ResourceNames: []string{"istiod-clusterrole-1-25-0"}}}},
			errDetail: []string{"permission: cannot delete clusterroles.rbac.authorization.k8s.io named istiod-clusterrole-1-25-0"},
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
			auth := &authorizer{denied: map[string]bool{}}
			for _, p := range tc.denied {
				auth.denied[p.String()] = true
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
	if len(perms) != 36 {
		t.Errorf("%d default permissions, want 36", len(perms))
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
		if !hasPermission(perms, p) {
			t.Errorf("DefaultPermissions lacks %v", p)
		}
	}
	for _, p := range perms {
		if p.Group == "rbac.authorization.k8s.io" {
			t.Errorf("DefaultPermissions grants %v; RBAC objects are the uninstall's and the install's, by name", p)
		}
	}
	for _, got := range DefaultPermissions("mesh") {
		if got.Namespace != "" && got.Namespace != "mesh" {
			t.Errorf("permission %v is not in the control-plane namespace mesh", got)
		}
	}
}

func hasPermission(perms []Permission, p Permission) bool {
	return slices.ContainsFunc(perms, func(q Permission) bool { return reflect.DeepEqual(p, q) })
}

// Every permission on a cluster-scoped RBAC object is limited to the
// revision's own names but list, which Kubernetes cannot limit.
func TestUninstallPermissions(t *testing.T) {
	for _, cp := range []string{"", "mesh"} {
		ns := revkit.ControlPlaneNamespace(cp)
		perms := UninstallPermissions("1-30-0", cp)
		own := []string{"istiod-clusterrole-1-30-0-" + ns, "istiod-gateway-controller-1-30-0-" + ns, "istio-reader-clusterrole-1-30-0-" + ns}
		for _, res := range []string{"clusterroles", "clusterrolebindings"} {
			for _, verb := range []string{"get", "delete"} {
				want := Permission{Verb: verb, Group: "rbac.authorization.k8s.io", Resource: res, ResourceNames: own}
				if !hasPermission(perms, want) {
					t.Errorf("UninstallPermissions(%q) lacks %v", cp, want)
				}
			}
			if !hasPermission(perms, Permission{Verb: "list", Group: "rbac.authorization.k8s.io", Resource: res}) {
				t.Errorf("UninstallPermissions(%q) cannot list %s", cp, res)
			}
		}
		for _, p := range perms {
			if p.Namespace == "" && p.Verb != "list" && len(p.ResourceNames) == 0 {
				t.Errorf("UninstallPermissions(%q) grants %v across the cluster", cp, p)
			}
			if p.Namespace != "" && p.Namespace != ns {
				t.Errorf("UninstallPermissions(%q) grants %v outside %s", cp, p, ns)
			}
			for _, n := range p.ResourceNames {
				if !strings.Contains(n, "1-30-0") {
					t.Errorf("UninstallPermissions(%q): %v names an object of another revision", cp, p)
				}
			}
		}
		for _, verb := range []string{"list", "delete"} {
			if !hasPermission(perms, Permission{Verb: verb, Group: "autoscaling", Resource: "horizontalpodautoscalers", Namespace: ns}) {
				t.Errorf("UninstallPermissions(%q) cannot %s HPAs in %s", cp, verb, ns)
			}
		}
	}
}

// The install names what it creates; only what Kubernetes cannot limit by
// name (listing and creating Helm's release records) is unnamed, and that
// only in the control-plane namespace.
func TestInstallPermissions(t *testing.T) {
	for _, tc := range []struct{ cp, ns, injector string }{
		{"", "istio-system", "istio-sidecar-injector-1-31-0"},
		{"mesh", "mesh", "istio-sidecar-injector-1-31-0-mesh"},
	} {
		perms := InstallPermissions("1-31-0", tc.cp)
		crs := []string{"istiod-clusterrole-1-31-0-" + tc.ns, "istiod-gateway-controller-1-31-0-" + tc.ns, "istio-reader-clusterrole-1-31-0-" + tc.ns}
		for _, want := range []Permission{
			{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "clusterroles", ResourceNames: crs},
			{Verb: "escalate", Group: "rbac.authorization.k8s.io", Resource: "clusterroles", ResourceNames: crs},
			{Verb: "bind", Group: "rbac.authorization.k8s.io", Resource: "clusterroles", ResourceNames: crs},
			{Verb: "patch", Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings", ResourceNames: crs},
			{Verb: "patch", Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations", ResourceNames: []string{tc.injector}},
			{Verb: "patch", Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations", ResourceNames: []string{"istio-validator-1-31-0-" + tc.ns}},
			{Verb: "escalate", Group: "rbac.authorization.k8s.io", Resource: "roles", Namespace: tc.ns, ResourceNames: []string{"istiod-1-31-0"}},
			{Verb: "create", Resource: "serviceaccounts", Namespace: tc.ns, ResourceNames: []string{"istiod-1-31-0"}},
			{Verb: "patch", Resource: "configmaps", Namespace: tc.ns, ResourceNames: []string{"istio-1-31-0", "istio-sidecar-injector-1-31-0", "values-1-31-0"}},
			{Verb: "create", Resource: "secrets", Namespace: tc.ns},
			{Verb: "update", Resource: "secrets", Namespace: tc.ns, ResourceNames: []string{"sh.helm.release.v1.istiod-1-31-0.v1"}},
		} {
			if !hasPermission(perms, want) {
				t.Errorf("InstallPermissions(%q) lacks %v", tc.cp, want)
			}
		}
		for _, p := range perms {
			if len(p.ResourceNames) == 0 && (p.Resource != "secrets" || p.Namespace != tc.ns || (p.Verb != "list" && p.Verb != "create")) {
				t.Errorf("InstallPermissions(%q) grants %v to any name", tc.cp, p)
			}
			if p.Namespace != "" && p.Namespace != tc.ns {
				t.Errorf("InstallPermissions(%q) grants %v outside %s", tc.cp, p, tc.ns)
			}
			for _, n := range p.ResourceNames {
				if !strings.Contains(n, "1-31-0") {
					t.Errorf("InstallPermissions(%q): %v names an object of another revision", tc.cp, p)
				}
			}
		}
	}
}

func TestHelmUninstallPermissions(t *testing.T) {
	for _, p := range HelmUninstallPermissions("") {
		if p.Resource != "secrets" || p.Namespace != "istio-system" {
			t.Errorf("HelmUninstallPermissions grants %v", p)
		}
	}
}

// A resource name that no object can have is refused before any request.
func TestPrecheckRefusesBadResourceNames(t *testing.T) {
	for _, name := range []string{"", "a/b", "..", "x%y"} {
		kube := canary().Kube()
		auth := &authorizer{}
		auth.install(kube)
		_, err := Precheck(context.Background(), kube, PrecheckOptions{Permissions: []Permission{
			{Verb: "get", Resource: "pods"},
			{Verb: "delete", Group: rbacGroup, Resource: "clusterroles", ResourceNames: []string{"ok", name}},
		}})
		var iie *revkit.InvalidInputError
		if !errors.As(err, &iie) || iie.Field != "Permissions[1].ResourceNames[1]" {
			t.Errorf("name %q: err = %v, want an InvalidInputError for Permissions[1].ResourceNames[1]", name, err)
		}
		if len(auth.asked) > 0 {
			t.Errorf("name %q: %d reviews made before refusing", name, len(auth.asked))
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
