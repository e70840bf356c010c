//go:build integration

package e2e_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

// TestCanaryAsLeastPrivilegedServiceAccount runs the canary plan as a
// ServiceAccount bound to exactly the shipped roles (verify.RBAC of
// verify.DefaultPermissions and verify.JournalPermissions), with a journal
// and RecordState, after showing that with one permission less
// the plan stops at its precheck with a typed error naming it, before
// changing anything.
func TestCanaryAsLeastPrivilegedServiceAccount(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const old, canary = "1-30-0", "1-31-0"
	env, err := testenv.Start(t, testenv.Options{})
	require.NoError(t, err)
	admin := env.Client
	for _, rev := range []string{old, canary} {
		_, err := env.StartIstiod(ctx, rev)
		require.NoError(t, err)
	}
	_, err = tag.Set(ctx, admin, tag.SetOptions{Tag: "prod-stable", Revision: old})
	require.NoError(t, err)
	createNamespace(ctx, t, env, "shop", map[string]string{"istio.io/rev": "prod-stable", "team": "shop"})
	createDeployment(ctx, t, admin, "shop", "web", 1)
	// An ingress gateway on the old revision, moved as a canary.
	createNamespace(ctx, t, env, "istio-ingress", nil)
	gwLabels := map[string]string{"istio": "ingressgateway", "sidecar.istio.io/inject": "true", "istio.io/rev": old}
	_, err = admin.AppsV1().Deployments("istio-ingress").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "ingressgateway", Labels: gwLabels},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"istio": "ingressgateway"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: gwLabels, Annotations: map[string]string{"inject.istio.io/templates": "gateway"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "istio-proxy", Image: "auto"}}},
			}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	waitRolledOut(ctx, t, admin, "shop", "web")
	waitRolledOut(ctx, t, admin, "istio-ingress", "ingressgateway")

	// The upgrader's identity and its roles — the canary plan's, its
	// journal's and the gateway canaries' — minus "patch namespaces".
	perms := slices.Concat(verify.DefaultPermissions(""), verify.JournalPermissions(""),
		verify.GatewayCanaryPermissions([]string{"istio-ingress"}))
	cr, roles := verify.RBAC("revkit-upgrader", perms)
	full := cr.DeepCopy()
	for i, r := range cr.Rules {
		if r.Resources[0] == "namespaces" {
			cr.Rules[i].Verbs = []string{"get", "list"}
		}
	}
	_, err = admin.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{})
	require.NoError(t, err)
	for _, r := range roles {
		_, err = admin.RbacV1().Roles(r.Namespace).Create(ctx, r, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	_, err = admin.CoreV1().ServiceAccounts("istio-system").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "upgrader"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	subject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "upgrader", Namespace: "istio-system"}}
	_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "revkit-upgrader"},
		Subjects: subject, RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "revkit-upgrader"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	for _, r := range roles {
		_, err = admin.RbacV1().RoleBindings(r.Namespace).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "revkit-upgrader"},
			Subjects: subject, RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "revkit-upgrader"}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	tok, err := admin.CoreV1().ServiceAccounts("istio-system").CreateToken(ctx, "upgrader",
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	require.NoError(t, err)
	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = tok.Status.Token
	sa, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)

	opts := upgrade.CanaryOptions{From: old, To: canary, CanaryTag: "prod-canary", StableTag: "prod-stable",
		Namespaces: namespace.Selection{Selector: "team=shop"}, RestartTimeout: 2 * time.Minute, RecordState: true,
		Gateways: gateway.Canary, GatewayNamespaces: []string{"istio-ingress"}}
	run := func() (*upgrade.Report, error) {
		plan, err := upgrade.Canary(ctx, sa, opts)
		require.NoError(t, err)
		return upgrade.Execute(ctx, upgrade.Env{Kube: sa, Journal: &upgrade.Journal{Holder: "upgrader"}}, plan)
	}

	t.Run("one permission missing: refused before any change", func(t *testing.T) {
		var rep *upgrade.Report
		require.Eventually(t, func() bool { // RBAC reaches the authorizer within moments
			rep, err = run()
			return err != nil
		}, 30*time.Second, time.Second)
		assert.Equal(t, "precheck", rep.Failed().Name)
		var forbidden *revkit.ForbiddenError
		require.ErrorAs(t, err, &forbidden)
		assert.Equal(t, "patch", forbidden.Verb)
		assert.Equal(t, "namespaces", forbidden.Resource)
		assert.True(t, errors.Is(err, revkit.ErrForbidden))
		inj, err := revkittest.NamespaceInjection(ctx, admin)
		require.NoError(t, err)
		assert.Equal(t, "istio.io/rev=prod-stable", inj["shop"], "nothing changed")
		tags, err := tag.List(ctx, admin, tag.ListOptions{})
		require.NoError(t, err)
		assert.Len(t, tags, 1, "no canary tag was created")
	})

	t.Run("exactly the shipped roles: the whole plan runs", func(t *testing.T) {
		_, err := admin.RbacV1().ClusterRoles().Update(ctx, full, metav1.UpdateOptions{})
		require.NoError(t, err)
		var rep *upgrade.Report
		require.Eventually(t, func() bool {
			rep, err = run()
			return rep != nil && (rep.Failed() == nil || rep.Failed().Name != "precheck")
		}, 30*time.Second, time.Second)
		require.NoError(t, err, "%s", rep)
		inj, err := revkittest.NamespaceInjection(ctx, admin)
		require.NoError(t, err)
		assert.Equal(t, "istio.io/rev=prod-canary", inj["shop"])
		revs, err := verify.Webhooks(ctx, admin, verify.WebhooksOptions{})
		require.NoError(t, err)
		assert.Equal(t, []string{canary}, revs.Revisions, "the old revision was uninstalled by the service account")
		gws, err := gateway.List(ctx, admin, gateway.ListOptions{Namespaces: []string{"istio-ingress"}})
		require.NoError(t, err)
		require.Len(t, gws, 1, "the canary gateway was removed after promotion: %+v", gws)
		assert.Equal(t, canary, gws[0].Revision)
	})
}
