package revision_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
)

var ctx = context.Background()

func base() *revkittest.Cluster {
	return revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0")
}

func TestList(t *testing.T) {
	finished := revkittest.Pod("shop", "job-1", "1-24-0", nil)
	finished.Status.Phase = corev1.PodSucceeded
	kube := base().
		WithTag("prod-stable", "1-24-0").
		WithNamespace("shop", revkittest.Rev("prod-stable")).
		WithNamespace("cart", revkittest.Rev("1-25-0")).
		WithNamespace("plain").
		WithDeployment("shop", "web", revkittest.Replicas(2), revkittest.OnRevision("1-24-0")).
		WithDeployment("cart", "api", revkittest.OnRevision("1-25-0")).
		WithPod("plain", "loose", "1-24-0").
		WithObjects(finished).
		Kube()

	revs, err := revision.List(ctx, kube, revision.ListOptions{})
	require.NoError(t, err)
	assert.Equal(t, []revision.Revision{
		{
			Name: "1-24-0", Injector: "istio-sidecar-injector-1-24-0", Deployments: []string{"istiod-1-24-0"},
			Tags: []string{"prod-stable"}, Namespaces: []string{"shop"},
			Pods: []string{"plain/loose", "shop/web-0", "shop/web-1"},
		},
		{
			Name: "1-25-0", Injector: "istio-sidecar-injector-1-25-0", Deployments: []string{"istiod-1-25-0"},
			Namespaces: []string{"cart"}, Pods: []string{"cart/api-0"},
		},
	}, revs)
	assert.True(t, revs[0].InUse())

	usage, err := revision.InUse(ctx, kube, "1-25-0", revision.ListOptions{})
	require.NoError(t, err)
	assert.Equal(t, []string{"cart"}, usage.Namespaces)

	_, err = revision.InUse(ctx, kube, "1-26-0", revision.ListOptions{})
	assert.ErrorIs(t, err, revkit.ErrNotFound)
	_, err = revision.InUse(ctx, kube, "1.26.0", revision.ListOptions{})
	assert.ErrorIs(t, err, revkit.ErrInvalidInput)
}

func TestListDefaultTagAndLegacyNamespaces(t *testing.T) {
	kube := base().WithTag("default", "1-25-0").
		WithNamespace("legacy", revkittest.InjectionEnabled()).
		Kube()
	revs, err := revision.List(ctx, kube, revision.ListOptions{})
	require.NoError(t, err)
	require.Len(t, revs, 2)
	assert.Empty(t, revs[0].Namespaces)
	assert.Equal(t, []string{"legacy"}, revs[1].Namespaces, "istio-injection=enabled follows the default tag")
	assert.Equal(t, []string{"default"}, revs[1].Tags)
}

func TestListErrors(t *testing.T) {
	for _, res := range []string{"mutatingwebhookconfigurations", "namespaces", "pods"} {
		kube := base().Kube()
		revkittest.FailAlways(kube, "list", res, apierrors.NewInternalError(errors.New("boom")))
		_, err := revision.List(ctx, kube, revision.ListOptions{})
		require.Error(t, err, res)
		var opErr *revkit.OpError
		assert.ErrorAs(t, err, &opErr)
		assert.True(t, apierrors.IsInternalError(err))
	}
}

var oldRevisionObjects = []string{
	"delete mutatingwebhookconfigurations istio-sidecar-injector-1-24-0",
	"delete validatingwebhookconfigurations istio-validator-1-24-0-istio-system",
	"delete deployments istio-system/istiod-1-24-0",
	"delete services istio-system/istiod-1-24-0",
	"delete configmaps istio-system/istio-sidecar-injector-1-24-0",
}

func dryRunOf(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = s + " (dry-run)"
	}
	return out
}

func TestUninstall(t *testing.T) {
	gateway := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{
		Name: "istio-ingressgateway", Namespace: "istio-system",
		Labels: map[string]string{"istio.io/rev": "1-24-0", "istio": "ingressgateway"},
	}}
	tests := []struct {
		name      string
		cluster   *revkittest.Cluster
		opts      revision.UninstallOptions
		wantErr   error
		writes    []string
		found     bool
		skipped   int
		wantUsage func(*testing.T, revkit.Usage)
	}{
		{
			name:    "unused revision goes, injector first",
			cluster: base(),
			opts:    revision.UninstallOptions{Revision: "1-24-0"},
			writes:  oldRevisionObjects,
			found:   true,
		},
		{
			name:    "refused while a namespace uses it",
			cluster: base().WithNamespace("shop", revkittest.Rev("1-24-0")),
			opts:    revision.UninstallOptions{Revision: "1-24-0"},
			wantErr: revkit.ErrInUse,
			wantUsage: func(t *testing.T, u revkit.Usage) {
				assert.Equal(t, []string{"shop"}, u.Namespaces)
			},
		},
		{
			name:    "refused while a tag points at it",
			cluster: base().WithTag("prod", "1-24-0"),
			opts:    revision.UninstallOptions{Revision: "1-24-0"},
			wantErr: revkit.ErrInUse,
			wantUsage: func(t *testing.T, u revkit.Usage) {
				assert.Equal(t, []string{"prod"}, u.Tags)
			},
		},
		{
			name:    "refused while pods run its sidecar",
			cluster: base().WithPod("shop", "web", "1-24-0"),
			opts:    revision.UninstallOptions{Revision: "1-24-0"},
			wantErr: revkit.ErrInUse,
			wantUsage: func(t *testing.T, u revkit.Usage) {
				assert.Equal(t, []string{"shop/web"}, u.Pods)
			},
		},
		{
			name:    "forced: namespaces and pods are overridden, other revisions' tags survive",
			cluster: base().WithTag("prod", "1-25-0").WithNamespace("shop", revkittest.Rev("1-24-0")).WithPod("shop", "web", "1-24-0"),
			opts:    revision.UninstallOptions{Revision: "1-24-0", Force: true},
			writes:  oldRevisionObjects,
			found:   true,
		},
		{
			name:    "force does not override a tag pointing at it",
			cluster: base().WithTag("prod", "1-24-0"),
			opts:    revision.UninstallOptions{Revision: "1-24-0", Force: true},
			wantErr: revkit.ErrInUse,
			wantUsage: func(t *testing.T, u revkit.Usage) {
				assert.Equal(t, []string{"prod"}, u.Tags)
			},
		},
		{
			name:    "gateways labelled with the revision are kept",
			cluster: base().WithObjects(gateway),
			opts:    revision.UninstallOptions{Revision: "1-24-0"},
			writes:  oldRevisionObjects,
			found:   true,
			skipped: 1,
		},
		{
			name:    "absent revision is a no-op",
			cluster: base(),
			opts:    revision.UninstallOptions{Revision: "1-23-0"},
		},
		{
			name:    "client dry run lists but writes nothing",
			cluster: base(),
			opts:    revision.UninstallOptions{Revision: "1-24-0", Common: revkit.Common{DryRun: revkit.DryRunClient}},
			found:   true,
		},
		{
			name:    "server dry run",
			cluster: base(),
			opts:    revision.UninstallOptions{Revision: "1-24-0", Common: revkit.Common{DryRun: revkit.DryRunServer}},
			writes:  dryRunOf(oldRevisionObjects),
			found:   true,
		},
		{
			name:    "invalid name",
			cluster: base(),
			opts:    revision.UninstallOptions{Revision: "1.24.0"},
			wantErr: revkit.ErrInvalidInput,
		},
		{
			name:    "empty options",
			cluster: base(),
			opts:    revision.UninstallOptions{},
			wantErr: revkit.ErrInvalidInput,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kube := tt.cluster.Kube()
			kube.ClearActions()
			res, err := revision.Uninstall(ctx, kube, tt.opts)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.Empty(t, revkittest.Writes(kube))
				if tt.wantUsage != nil {
					var inUse *revkit.InUseError
					require.ErrorAs(t, err, &inUse)
					tt.wantUsage(t, inUse.Usage)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.writes, revkittest.Writes(kube))
			assert.Equal(t, tt.found, res.Found)
			skipped := 0
			for _, c := range res.Changes {
				if c.Action == revkit.ActionSkip {
					skipped++
				}
			}
			assert.Equal(t, tt.skipped, skipped)
			if tt.opts.DryRun == revkit.DryRunClient {
				assert.Len(t, res.Changes, len(oldRevisionObjects))
			}
		})
	}
}

func TestUninstallLeavesOtherRevisionAndIsIdempotent(t *testing.T) {
	kube := base().WithTag("prod", "1-25-0").Kube()
	res, err := revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: "1-24-0"})
	require.NoError(t, err)
	assert.True(t, res.Changed())

	revs, err := revision.List(ctx, kube, revision.ListOptions{})
	require.NoError(t, err)
	require.Len(t, revs, 1)
	assert.Equal(t, "1-25-0", revs[0].Name)
	assert.Equal(t, []string{"prod"}, revs[0].Tags)
	_, err = kube.CoreV1().Services("istio-system").Get(ctx, "istiod-revision-tag-prod", metav1.GetOptions{})
	require.NoError(t, err)

	kube.ClearActions()
	res, err = revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: "1-24-0"})
	require.NoError(t, err)
	assert.False(t, res.Found)
	assert.False(t, res.Changed())
	assert.Empty(t, revkittest.Writes(kube))
}

func TestUninstallErrors(t *testing.T) {
	kube := base().Kube()
	revkittest.FailAlways(kube, "delete", "deployments", apierrors.NewForbidden(
		appsv1.Resource("deployments"), "istiod-1-24-0", errors.New("denied")))
	res, err := revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: "1-24-0"})
	require.Error(t, err)
	assert.True(t, apierrors.IsForbidden(err))
	assert.Contains(t, err.Error(), "revision.Uninstall: delete Deployment/istio-system/istiod-1-24-0")
	assert.Len(t, res.Changes, 2, "webhooks went first")

	for _, r := range []string{"validatingwebhookconfigurations", "deployments", "horizontalpodautoscalers",
		"poddisruptionbudgets", "services", "configmaps", "serviceaccounts", "roles", "rolebindings",
		"clusterroles", "clusterrolebindings"} {
		kube := base().Kube()
		// The first list of each kind (from the usage check) goes through;
		// fail the collection's.
		calls := 0
		kube.PrependReactor("list", r, func(k8stesting.Action) (bool, runtime.Object, error) {
			calls++
			if r == "validatingwebhookconfigurations" && calls == 1 {
				return false, nil, nil
			}
			return true, nil, apierrors.NewInternalError(errors.New("boom"))
		})
		_, err := revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: "1-24-0"})
		require.Error(t, err, r)
		assert.True(t, apierrors.IsInternalError(err), r)
		assert.Empty(t, revkittest.Writes(kube), "nothing deleted when listing %s fails", r)
	}
}
