//go:build integration

package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	rv1 "helm.sh/helm/v4/pkg/release/v1"
	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/helm"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

// docRoles are the roles of docs/rbac.yaml (a test in verify keeps the file
// equal to verify.RBAC of the permission lists): ClusterRoles, and Roles
// with their namespaces, by name.
type docRoles struct {
	cluster map[string]*rbacv1.ClusterRole
	roles   map[string][]*rbacv1.Role
}

func readDocRoles(t *testing.T) docRoles {
	t.Helper()
	data, err := os.ReadFile("../../docs/rbac.yaml")
	require.NoError(t, err)
	d := docRoles{cluster: map[string]*rbacv1.ClusterRole{}, roles: map[string][]*rbacv1.Role{}}
	for _, doc := range bytes.Split(data, []byte("\n---\n"))[1:] {
		var head metav1.TypeMeta
		require.NoError(t, yaml.Unmarshal(doc, &head))
		switch head.Kind {
		case "ClusterRole":
			var cr rbacv1.ClusterRole
			require.NoError(t, yaml.Unmarshal(doc, &cr))
			d.cluster[cr.Name] = &cr
		case "Role":
			var r rbacv1.Role
			require.NoError(t, yaml.Unmarshal(doc, &r))
			d.roles[r.Name] = append(d.roles[r.Name], &r)
		default:
			t.Fatalf("docs/rbac.yaml: unexpected %q", head.Kind)
		}
	}
	return d
}

// bindAs creates the named roles of docs/rbac.yaml as they are, except
// that edit (if set) may change their ClusterRoles first, and the
// ServiceAccount istio-system/<sa> if it does not exist, and binds the
// roles to it; it returns the rest config of a token of the account.
func bindAs(ctx context.Context, t *testing.T, admin kubernetes.Interface, base *rest.Config, sa string, doc docRoles,
	edit func(*rbacv1.ClusterRole), names ...string) *rest.Config {
	t.Helper()
	_, err := admin.CoreV1().ServiceAccounts("istio-system").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err)
	}
	subject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: "istio-system"}}
	for _, name := range names {
		cr, roles := doc.cluster[name], doc.roles[name]
		require.True(t, cr != nil || len(roles) > 0, "docs/rbac.yaml has no role %s", name)
		if cr != nil {
			cr = cr.DeepCopy()
			if edit != nil {
				edit(cr)
			}
			_, err := admin.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{})
			require.NoError(t, err)
			_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name + "-" + sa},
				Subjects: subject, RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name}}, metav1.CreateOptions{})
			require.NoError(t, err)
		}
		for _, r := range roles {
			_, err := admin.RbacV1().Roles(r.Namespace).Create(ctx, r.DeepCopy(), metav1.CreateOptions{})
			require.NoError(t, err)
			_, err = admin.RbacV1().RoleBindings(r.Namespace).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name + "-" + sa},
				Subjects: subject, RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name}}, metav1.CreateOptions{})
			require.NoError(t, err)
		}
	}
	tok, err := admin.CoreV1().ServiceAccounts("istio-system").CreateToken(ctx, sa,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	require.NoError(t, err)
	cfg := rest.AnonymousClientConfig(base)
	cfg.BearerToken = tok.Status.Token
	return cfg
}

// runPastPrecheck runs the plan until its precheck passes (RBAC reaches the
// authorizer within moments of the bindings), for up to 30 seconds, and
// returns the last run.
func runPastPrecheck(run func() (*upgrade.Report, error)) (*upgrade.Report, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		rep, err := run()
		if rep == nil || rep.Failed() == nil || rep.Failed().Name != "precheck" || time.Now().After(deadline) {
			return rep, err
		}
		time.Sleep(time.Second)
	}
}

// TestCanaryAsLeastPrivilegedServiceAccount runs the canary plan (no
// install) as a ServiceAccount bound to exactly the documented roles
// (docs/rbac.yaml: revkit-canary, revkit-uninstall-1-30-0, revkit-journal,
// revkit-gateway-canary), with a journal and RecordState, after showing
// that with one permission less the plan stops at its precheck with a
// typed error naming it, before changing anything.
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

	// The upgrader's identity and its documented roles — the canary
	// plan's, its uninstall's, its journal's and the gateway canaries' —
	// minus "patch namespaces".
	doc := readDocRoles(t)
	full := doc.cluster["revkit-canary"].DeepCopy()
	cfg := bindAs(ctx, t, admin, env.Config, "upgrader", doc, func(cr *rbacv1.ClusterRole) {
		for i, r := range cr.Rules {
			if r.Resources[0] == "namespaces" {
				cr.Rules[i].Verbs = []string{"get", "list"}
			}
		}
	}, "revkit-canary", "revkit-uninstall-"+old, "revkit-journal", "revkit-gateway-canary")
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

	t.Run("the rollbacks run as the account too", func(t *testing.T) {
		_, err := admin.RbacV1().ClusterRoles().Update(ctx, full, metav1.UpdateOptions{})
		require.NoError(t, err)
		// A canary whose gate fails: its on-failure rollback (to the
		// recorded state) runs with the account's rights.
		gated := opts
		gated.KeepOld, gated.RollbackOnFailure = true, true
		gated.Gates = []upgrade.Step{upgrade.Func("traffic-gate", "fails", func(context.Context, upgrade.Env) (upgrade.Result, error) {
			return upgrade.Result{}, revkit.ErrVerificationFailed
		})}
		rep, err := runPastPrecheck(func() (*upgrade.Report, error) {
			plan, err := upgrade.Canary(ctx, sa, gated)
			require.NoError(t, err)
			plan.Name = "gated canary"
			return upgrade.Execute(ctx, upgrade.Env{Kube: sa, Journal: &upgrade.Journal{Holder: "upgrader"}}, plan)
		})
		require.ErrorIs(t, err, revkit.ErrVerificationFailed, "%s", rep)
		require.NotEmpty(t, rep.OnFailure)
		for _, s := range rep.OnFailure {
			assert.NotEqual(t, upgrade.Failed, s.Outcome, "%s: %s", s.Name, s.Detail)
		}
		inj, err := revkittest.NamespaceInjection(ctx, admin)
		require.NoError(t, err)
		assert.Equal(t, "istio.io/rev=prod-stable", inj["shop"], "back as recorded")
		// The standard Rollback plan (keeping the canary revision) with
		// exactly the same roles: its precheck passes and it converges.
		back, err := upgrade.Rollback(ctx, sa, gated)
		require.NoError(t, err)
		rep, err = upgrade.Execute(ctx, upgrade.Env{Kube: sa}, back)
		require.NoError(t, err, "%s", rep)
		gws, err := gateway.List(ctx, admin, gateway.ListOptions{Namespaces: []string{"istio-ingress"}})
		require.NoError(t, err)
		require.Len(t, gws, 1, "no canary gateway left: %+v", gws)
		assert.Equal(t, old, gws[0].Revision)
	})

	t.Run("exactly the documented roles: the whole plan runs", func(t *testing.T) {
		_, err := admin.RbacV1().ClusterRoles().Update(ctx, full, metav1.UpdateOptions{})
		require.NoError(t, err)
		rep, err := runPastPrecheck(run)
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

// TestHelmCanaryAsLeastPrivilegedServiceAccount runs the canary plan that
// installs the new revision with Helm (Istio's istiod chart, Wait set) and
// removes the old one's Helm release, journaled with RecordState, as a
// ServiceAccount bound to documented roles (docs/rbac.yaml). Bound to all
// it needs but the install's, the plan stops at its precheck naming what
// the install lacks, before any change; with revkit-install-1-31-0 and
// revkit-install-wait added (so exactly revkit-canary, those two,
// revkit-uninstall-1-30-0, revkit-helm-uninstall and revkit-journal) the
// whole plan runs. Then it shows what the same account cannot do: delete
// or change a ClusterRole of another revision or of no revision, or create
// a ClusterRole or binding of its own.
func TestHelmCanaryAsLeastPrivilegedServiceAccount(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const old, canary, foreign = "1-30-0", "1-31-0", "1-29-0"
	env, err := testenv.Start(t, testenv.Options{})
	require.NoError(t, err)
	admin := env.Client
	chart := revision.ChartSource{Path: env.ChartDir("istio-discovery")}

	// The old revision, installed by an administrator with Helm.
	adminHelm, err := helm.New(env.Config, "istio-system", nil)
	require.NoError(t, err)
	oldIstiod, err := env.ReserveIstiod(old)
	require.NoError(t, err)
	_, err = revision.Install(ctx, admin, revision.InstallOptions{Revision: old, Chart: chart, Values: oldIstiod.ChartValues(),
		Helm: adminHelm, Wait: true, Timeout: 3 * time.Minute})
	require.NoError(t, err)
	_, err = env.StartInstalledIstiod(ctx, oldIstiod)
	require.NoError(t, err)
	// ClusterRoles that are not the old revision's: another revision's, and
	// someone else's.
	for _, name := range []string{verify.ClusterRoleNames(foreign, "")[0], "team-reader"} {
		_, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	_, err = tag.Set(ctx, admin, tag.SetOptions{Tag: "prod-stable", Revision: old})
	require.NoError(t, err)
	createNamespace(ctx, t, env, "shop", map[string]string{"istio.io/rev": "prod-stable", "team": "shop"})
	createDeployment(ctx, t, admin, "shop", "web", 1)
	waitRolledOut(ctx, t, admin, "shop", "web")

	// First all the documented roles the plan needs but the install's.
	doc := readDocRoles(t)
	cfg := bindAs(ctx, t, admin, env.Config, "upgrader", doc, nil,
		"revkit-canary", "revkit-uninstall-"+old, "revkit-helm-uninstall", "revkit-journal")
	sa, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	saHelm, err := helm.New(cfg, "istio-system", nil)
	require.NoError(t, err)

	newIstiod, err := env.ReserveIstiod(canary)
	require.NoError(t, err)
	opts := upgrade.CanaryOptions{From: old, To: canary, CanaryTag: "prod-canary", StableTag: "prod-stable",
		Namespaces: namespace.Selection{Selector: "team=shop"}, RestartTimeout: 2 * time.Minute, RecordState: true,
		Install: &revision.InstallOptions{Chart: chart, Values: newIstiod.ChartValues(), Helm: saHelm, Wait: true, Timeout: 3 * time.Minute}}
	plan, err := upgrade.Canary(ctx, sa, opts)
	require.NoError(t, err)
	// The chart's Deployment has no real pod here: the test runs the new
	// istiod process once the plan has installed the revision, as a kubelet
	// would.
	i := slices.IndexFunc(plan.Steps, func(s upgrade.Step) bool { return s.Name() == "install-revision "+canary })
	require.GreaterOrEqual(t, i, 0, "the plan installs %s", canary)
	plan.Steps = slices.Insert(plan.Steps, i+1, upgrade.Func("start-istiod "+canary, "run the installed revision's istiod",
		func(ctx context.Context, _ upgrade.Env) (upgrade.Result, error) {
			if _, err := env.StartInstalledIstiod(ctx, newIstiod); err != nil {
				return upgrade.Result{Outcome: upgrade.Failed, Detail: err.Error()}, err
			}
			return upgrade.Result{Outcome: upgrade.Done}, nil
		}))

	run := func() (*upgrade.Report, error) {
		return upgrade.Execute(ctx, upgrade.Env{Kube: sa, Journal: &upgrade.Journal{Holder: "upgrader"}}, plan)
	}

	t.Run("without the install's roles: refused at the precheck", func(t *testing.T) {
		var rep *upgrade.Report
		require.Eventually(t, func() bool { // until the other roles reach the authorizer
			rep, err = run()
			return err != nil && !strings.Contains(err.Error(), "cannot patch namespaces")
		}, 30*time.Second, time.Second)
		assert.Equal(t, "precheck", rep.Failed().Name)
		assert.ErrorIs(t, err, revkit.ErrForbidden)
		var ve *verify.VerificationError
		require.ErrorAs(t, err, &ve)
		var missing []string
		for _, p := range ve.Problems {
			missing = append(missing, p.Detail)
			assert.NotContains(t, p.Detail, old, "the old revision's removal is granted")
		}
		for _, want := range []string{
			"cannot create clusterroles.rbac.authorization.k8s.io named " + strings.Join(verify.ClusterRoleNames(canary, ""), ", "),
			"cannot escalate clusterroles.rbac.authorization.k8s.io named " + strings.Join(verify.ClusterRoleNames(canary, ""), ", "),
			"cannot bind roles.rbac.authorization.k8s.io named istiod-" + canary + " in istio-system",
			"cannot watch deployments.apps in istio-system",
		} {
			assert.Contains(t, missing, want)
		}
		_, err := admin.AppsV1().Deployments("istio-system").Get(ctx, "istiod-"+canary, metav1.GetOptions{})
		assert.True(t, apierrors.IsNotFound(err), "nothing installed: %v", err)
	})

	t.Run("exactly the documented roles: install, migrate, uninstall", func(t *testing.T) {
		bindAs(ctx, t, admin, env.Config, "upgrader", doc, nil, "revkit-install-"+canary, "revkit-install-wait")
		start := time.Now()
		rep, err := runPastPrecheck(run)
		require.NoError(t, err, "%s", rep)
		t.Logf("plan ran as the service account in %s:\n%s", time.Since(start).Round(time.Millisecond), rep)

		inj, err := revkittest.NamespaceInjection(ctx, admin)
		require.NoError(t, err)
		assert.Equal(t, "istio.io/rev=prod-canary", inj["shop"])
		revs, err := verify.Webhooks(ctx, admin, verify.WebhooksOptions{})
		require.NoError(t, err)
		assert.Equal(t, []string{canary}, revs.Revisions)
		_, err = adminHelm.Configuration().Releases.Last(revision.ReleaseName(old))
		assert.Error(t, err, "the old release is gone")
		last, err := adminHelm.Configuration().Releases.Last(revision.ReleaseName(canary))
		require.NoError(t, err)
		assert.Equal(t, "deployed", string(last.(*rv1.Release).Info.Status), "the new release, installed by the service account")
		for _, name := range verify.ClusterRoleNames(old, "") {
			_, err := admin.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{})
			assert.True(t, apierrors.IsNotFound(err), "the old revision's ClusterRole %s is gone: %v", name, err)
			_, err = admin.RbacV1().ClusterRoleBindings().Get(ctx, name, metav1.GetOptions{})
			assert.True(t, apierrors.IsNotFound(err), "the old revision's ClusterRoleBinding %s is gone: %v", name, err)
		}
		for _, name := range verify.ClusterRoleNames(canary, "") {
			_, err := admin.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{})
			assert.NoError(t, err, "the new revision's ClusterRole %s", name)
		}
	})

	t.Run("nothing beyond the revisions' own", func(t *testing.T) {
		// Delete: only the old revision's ClusterRoles and bindings.
		for _, name := range []string{verify.ClusterRoleNames(canary, "")[0], verify.ClusterRoleNames(foreign, "")[0], "team-reader", "cluster-admin"} {
			err := sa.RbacV1().ClusterRoles().Delete(ctx, name, metav1.DeleteOptions{})
			assert.True(t, apierrors.IsForbidden(err), "delete ClusterRole %s: %v", name, err)
			_, err = admin.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{})
			assert.NoError(t, err, "ClusterRole %s is still there", name)
		}
		err := sa.RbacV1().ClusterRoleBindings().Delete(ctx, verify.ClusterRoleNames(canary, "")[0], metav1.DeleteOptions{})
		assert.True(t, apierrors.IsForbidden(err), "delete the new revision's ClusterRoleBinding: %v", err)
		// Create and change: only the new revision's, by name.
		_, err = sa.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "upgrader-extra"}}, metav1.CreateOptions{})
		assert.True(t, apierrors.IsForbidden(err), "create a ClusterRole: %v", err)
		_, err = sa.RbacV1().ClusterRoles().Patch(ctx, "upgrader-extra", types.ApplyPatchType,
			[]byte(`{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"upgrader-extra"}}`),
			metav1.PatchOptions{FieldManager: "upgrader"})
		assert.True(t, apierrors.IsForbidden(err), "apply a ClusterRole of another name: %v", err)
		_, err = sa.RbacV1().ClusterRoles().Patch(ctx, "team-reader", types.MergePatchType, []byte(`{"rules":[]}`), metav1.PatchOptions{})
		assert.True(t, apierrors.IsForbidden(err), "patch someone else's ClusterRole: %v", err)
		_, err = sa.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "upgrader-admin"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "upgrader", Namespace: "istio-system"}},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"}}, metav1.CreateOptions{})
		assert.True(t, apierrors.IsForbidden(err), "bind cluster-admin: %v", err)

		// The precheck of a plan that would remove another revision says so.
		rep, err := verify.Precheck(ctx, sa, verify.PrecheckOptions{Permissions: verify.UninstallPermissions(canary, "")})
		require.NoError(t, err)
		var names []string
		for _, p := range rep.Missing {
			if p.Resource == "clusterroles" && p.Verb == "delete" {
				names = p.ResourceNames
			}
		}
		assert.ElementsMatch(t, verify.ClusterRoleNames(canary, ""), names)
	})
}
