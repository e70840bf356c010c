//go:build integration

package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

// meshState is what a rollback must put back: each namespace's injection
// labels, each tag's revision, which revisions would inject a new pod of
// each namespace, and how many active pods run each revision.
type meshState struct {
	Labels  map[string]map[string]string
	Tags    map[string]string
	Injects map[string][]string
	Pods    map[string]map[string]int
}

func readMeshState(ctx context.Context, t *testing.T, kube kubernetes.Interface, nss []string) meshState {
	t.Helper()
	st := meshState{Labels: map[string]map[string]string{}, Tags: map[string]string{},
		Injects: map[string][]string{}, Pods: map[string]map[string]int{}}
	for _, n := range nss {
		ns, err := kube.CoreV1().Namespaces().Get(ctx, n, metav1.GetOptions{})
		require.NoError(t, err)
		st.Labels[n] = map[string]string{}
		for _, k := range []string{"istio-injection", "istio.io/rev"} {
			if v, ok := ns.Labels[k]; ok {
				st.Labels[n][k] = v
			}
		}
	}
	tags, err := tag.List(ctx, kube, tag.ListOptions{})
	require.NoError(t, err)
	for _, tg := range tags {
		st.Tags[tg.Name] = tg.Revision
	}
	rep, err := verify.Pods(ctx, kube, verify.PodsOptions{Namespaces: nss})
	require.NoError(t, err)
	for _, n := range rep.Namespaces {
		st.Injects[n.Namespace] = n.Injects
		st.Pods[n.Namespace] = n.Revisions
	}
	return st
}

// TestSafetyMachinery runs, on one real control plane with two istiod
// revisions: a canary whose gate fails and whose automatic rollback must
// leave the mesh exactly as before the plan (namespace labels, tags, pods'
// revisions), and a second runner started while the first one's step
// outlasts the lease, which must be refused until the first ends.
func TestSafetyMachinery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	env := startTwoRevisions(ctx, t)
	kube := env.Client

	t.Run("a failed gate rolls back to the recorded state", func(t *testing.T) {
		for _, tg := range []string{revkit.DefaultTag, "prod-stable"} {
			_, err := tag.Set(ctx, kube, tag.SetOptions{Tag: tg, Revision: oldRev})
			require.NoError(t, err)
		}
		// One namespace on the default injection label, one on the stable tag.
		nss := []string{"sa-enabled", "sa-tagged"}
		createNamespace(ctx, t, env, nss[0], map[string]string{"istio-injection": "enabled", "safety": "true"})
		createNamespace(ctx, t, env, nss[1], map[string]string{"istio.io/rev": "prod-stable", "safety": "true"})
		for _, ns := range nss {
			createDeployment(ctx, t, kube, ns, "web", 1)
		}
		for _, ns := range nss {
			waitRolledOut(ctx, t, kube, ns, "web")
		}
		before := readMeshState(ctx, t, kube, nss)
		for _, ns := range nss {
			require.Equal(t, map[string]int{oldRev: 1}, before.Pods[ns], "pods of %s start on %s", ns, oldRev)
			require.Equal(t, []string{oldRev}, before.Injects[ns])
		}
		require.NotContains(t, before.Tags, "prod-canary")

		gateRan := false
		failingGate := upgrade.Func("traffic-gate", "fails: the canary regressed", func(context.Context, upgrade.Env) (upgrade.Result, error) {
			gateRan = true
			return upgrade.Result{}, revkit.ErrVerificationFailed
		})
		opts := upgrade.CanaryOptions{From: oldRev, To: newRev, CanaryTag: "prod-canary", StableTag: "prod-stable",
			Namespaces: namespace.Selection{Selector: "safety=true"}, Gates: []upgrade.Step{failingGate},
			RecordState: true, RollbackOnFailure: true, KeepOld: true, RestartTimeout: 2 * time.Minute}
		plan, err := upgrade.Canary(ctx, kube, opts)
		require.NoError(t, err)
		rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube, Journal: &upgrade.Journal{Holder: "safety-test"}}, plan)
		t.Logf("report:\n%s", rep)
		require.ErrorIs(t, err, revkit.ErrVerificationFailed)
		require.True(t, gateRan, "the gate ran after the batch moved")
		for _, s := range rep.Steps {
			if s.Name == "verify-pods 1/1" {
				assert.Equal(t, upgrade.Done, s.Outcome, "the batch did move to %s before the gate", newRev)
			}
		}
		require.NotEmpty(t, rep.OnFailure)
		for _, s := range rep.OnFailure {
			assert.NotEqual(t, upgrade.Failed, s.Outcome, "%s: %s", s.Name, s.Detail)
		}
		for _, ns := range nss {
			waitNoTerminating(ctx, t, kube, ns)
		}
		after := readMeshState(ctx, t, kube, nss)
		assert.Equal(t, before, after, "the mesh is exactly as before the plan")
	})

	t.Run("the canary plan previews to the end, and a real run changes what it listed", func(t *testing.T) {
		nss := []string{"pv-a", "pv-b"}
		for _, ns := range nss {
			createNamespace(ctx, t, env, ns, map[string]string{"istio.io/rev": "prod-stable", "preview": "true"})
			createDeployment(ctx, t, kube, ns, "web", 1)
		}
		for _, ns := range nss {
			waitRolledOut(ctx, t, kube, ns, "web")
		}
		plan, err := upgrade.Canary(ctx, kube, upgrade.CanaryOptions{From: oldRev, To: newRev, CanaryTag: "pv-canary",
			StableTag: "prod-stable", Namespaces: namespace.Selection{Selector: "preview=true"}, BatchSize: 1,
			KeepOld: true, RestartTimeout: 2 * time.Minute})
		require.NoError(t, err)

		_, err = upgrade.Execute(ctx, upgrade.Env{Kube: kube, Common: revkit.Common{DryRun: revkit.DryRunServer}}, plan)
		require.ErrorIs(t, err, revkit.ErrNotFound, "a plain dry run stops where a step needs an earlier one's tag")

		before := readMeshState(ctx, t, kube, nss)
		preview, err := upgrade.Preview(ctx, kube, plan, upgrade.PreviewOptions{ServerDryRun: true})
		t.Logf("preview:\n%s", preview)
		require.NoError(t, err)
		assert.Equal(t, before, readMeshState(ctx, t, kube, nss), "the preview changed nothing")
		accepted := map[string]bool{}
		for _, s := range preview.Steps {
			if strings.Contains(s.Detail, "server dry run: ") && !strings.Contains(s.Detail, "server dry run: 0 accepted") {
				accepted[s.Name] = true
			}
		}
		for _, step := range []string{"set-tag pv-canary→" + newRev, "migrate-namespaces 1/2", "restart-workloads 1/2"} {
			assert.True(t, accepted[step], "the cluster judged and accepted the writes of %s", step)
		}

		// A policy the cluster enforces at admission — here a
		// ValidatingAdmissionPolicy that freezes a namespace's labels —
		// fails the server-checked preview where the real run would fail;
		// the preview of the copy alone cannot know it.
		freeze(ctx, t, kube, "pv-b")
		_, err = upgrade.Preview(ctx, kube, plan, upgrade.PreviewOptions{})
		require.NoError(t, err, "the copy alone knows nothing of admission")
		var refused *upgrade.Report
		require.Eventually(t, func() bool {
			// The policy takes effect once the apiserver has loaded it.
			refused, err = upgrade.Preview(ctx, kube, plan, upgrade.PreviewOptions{ServerDryRun: true})
			return err != nil
		}, 30*time.Second, 500*time.Millisecond, "the server-checked preview fails on the frozen namespace")
		require.True(t, apierrors.IsInvalid(err) || strings.Contains(err.Error(), "frozen"), "the cluster refused: %v", err)
		assert.Equal(t, "migrate-namespaces 2/2", refused.Failed().Name)
		unfreeze(ctx, t, kube)
		require.Eventually(t, func() bool {
			_, err = upgrade.Preview(ctx, kube, plan, upgrade.PreviewOptions{ServerDryRun: true})
			return err == nil
		}, 30*time.Second, 500*time.Millisecond, "with the policy gone the preview passes again: %v", err)

		rep, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, plan)
		t.Logf("real run:\n%s", rep)
		require.NoError(t, err)
		assert.Equal(t, changedObjects(rep.Changes()), changedObjects(preview.Changes()),
			"the preview listed what the real run changed")
		assert.NotEmpty(t, preview.Changes())
	})

	t.Run("a saved plan applies, and is refused once a namespace changed in between", func(t *testing.T) {
		save := func(ns string) *upgrade.SavedPlan {
			createNamespace(ctx, t, env, ns, map[string]string{"istio.io/rev": oldRev})
			createDeployment(ctx, t, kube, ns, "web", 1)
			waitRolledOut(ctx, t, kube, ns, "web")
			sel := namespace.Selection{Namespaces: []string{ns}}
			plan := upgrade.Plan{Name: "move " + ns, Steps: []upgrade.Step{
				upgrade.MigrateNamespace(namespace.MigrateOptions{Selection: sel, Target: newRev}),
				upgrade.RolloutRestart(namespace.RestartOptions{Selection: sel, Target: newRev, OnlyStale: true, Wait: true}),
				upgrade.VerifyPods(verify.PodsOptions{Namespaces: []string{ns}, Target: newRev}),
			}}
			sp, err := upgrade.Save(ctx, kube, plan)
			require.NoError(t, err)
			b, err := json.Marshal(sp) // written for review, read back later
			require.NoError(t, err)
			var back upgrade.SavedPlan
			require.NoError(t, json.Unmarshal(b, &back))
			return &back
		}
		applies, drifts := save("sv-a"), save("sv-b")

		_, err := kube.CoreV1().Namespaces().Patch(ctx, "sv-b", types.MergePatchType,
			[]byte(`{"metadata":{"labels":{"istio.io/rev":"prod-stable"}}}`), metav1.PatchOptions{})
		require.NoError(t, err)
		before := readMeshState(ctx, t, kube, []string{"sv-b"})
		rep, err := upgrade.Apply(ctx, upgrade.Env{Kube: kube}, drifts, upgrade.LoadOptions{})
		var drift *upgrade.DriftError
		require.ErrorAs(t, err, &drift)
		assert.Equal(t, []string{"namespace sv-b: istio.io/rev=" + oldRev + " → istio.io/rev=prod-stable"}, drift.Changes)
		assert.Equal(t, upgrade.NotRun, rep.Steps[0].Outcome)
		assert.Equal(t, before, readMeshState(ctx, t, kube, []string{"sv-b"}), "nothing changed")

		rep, err = upgrade.Apply(ctx, upgrade.Env{Kube: kube}, applies, upgrade.LoadOptions{})
		t.Logf("applied:\n%s", rep)
		require.NoError(t, err)
		after := readMeshState(ctx, t, kube, []string{"sv-a"})
		assert.Equal(t, map[string]int{newRev: 1}, after.Pods["sv-a"])
	})

	t.Run("a second runner is refused while a step outlasts the lease", func(t *testing.T) {
		const lease = 2 * time.Second
		started, done := make(chan struct{}), make(chan error, 1)
		long := upgrade.Plan{Name: "long wait", Steps: []upgrade.Step{upgrade.Func("wait", "a rollout wait 3 leases long",
			func(ctx context.Context, _ upgrade.Env) (upgrade.Result, error) {
				close(started)
				select {
				case <-time.After(3 * lease):
					return upgrade.Result{Outcome: upgrade.Done}, nil
				case <-ctx.Done():
					return upgrade.Result{}, ctx.Err()
				}
			})}}
		go func() {
			_, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube, Journal: &upgrade.Journal{Holder: "first", LeaseDuration: lease}}, long)
			done <- err
		}()
		<-started
		time.Sleep(2 * lease) // past the lease the step started with

		rollback := upgrade.Plan{Name: "rollback", Steps: []upgrade.Step{upgrade.VerifyWebhooks(verify.WebhooksOptions{})}}
		second := upgrade.Env{Kube: kube, Journal: &upgrade.Journal{Holder: "second", LeaseDuration: lease}}
		_, err := upgrade.Execute(ctx, second, rollback)
		var locked *upgrade.LockedError
		require.ErrorAs(t, err, &locked, "refused while the first run's step goes on")
		assert.Equal(t, "first", locked.Holder)
		assert.Equal(t, "long wait", locked.HolderPlan)

		require.NoError(t, <-done, "the first run kept its lease to the end")
		_, err = upgrade.Execute(ctx, second, rollback)
		require.NoError(t, err, "runs once the first one ended")
		_, err = kube.CoordinationV1().Leases("istio-system").Get(ctx, upgrade.LockName, metav1.GetOptions{})
		assert.Error(t, err, "the lease is released")
	})
}

// changedObjects renders changes as sorted "action Kind ns/name" lines.
// freeze makes the apiserver refuse, at admission, any change to a
// namespace's labels (a ValidatingAdmissionPolicy and its binding).
func freeze(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns string) {
	t.Helper()
	deny := admissionv1.Deny
	_, err := kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "freeze-labels"},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{Operations: []admissionv1.OperationType{admissionv1.Update},
					Rule: admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"namespaces"}}},
			}}},
			Validations: []admissionv1.Validation{{Expression: "object.metadata.labels == oldObject.metadata.labels",
				Message: "namespace is frozen"}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = kube.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "freeze-labels"},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "freeze-labels",
			ValidationActions: []admissionv1.ValidationAction{deny},
			MatchResources: &admissionv1.MatchResources{ObjectSelector: &metav1.LabelSelector{}, NamespaceSelector: &metav1.LabelSelector{},
				ResourceRules: []admissionv1.NamedRuleWithOperations{{ResourceNames: []string{ns},
					RuleWithOperations: admissionv1.RuleWithOperations{Operations: []admissionv1.OperationType{admissionv1.Update},
						Rule: admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"namespaces"}}}}}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

func unfreeze(ctx context.Context, t *testing.T, kube kubernetes.Interface) {
	t.Helper()
	require.NoError(t, kube.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, "freeze-labels", metav1.DeleteOptions{}))
	require.NoError(t, kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(ctx, "freeze-labels", metav1.DeleteOptions{}))
}

func changedObjects(changes []revkit.Change) []string {
	var out []string
	for _, c := range changes {
		out = append(out, fmt.Sprintf("%s %s %s/%s", c.Action, c.Object.Kind, c.Object.Namespace, c.Object.Name))
	}
	sort.Strings(out)
	return out
}
