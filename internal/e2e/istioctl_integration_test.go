//go:build integration

package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/mesh"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
)

// TestIstioctlDifferential is issue #14's differential test: the canary
// guide's steps (two revisions, tag set and move with and without
// overwrite, the default tag over a non-revisioned injector, tag list, tag
// remove, uninstall dry run) run through bin/istioctl on one fresh local
// control plane and through revkit on another, and every object either
// writes is compared field by field. The cases where istioctl is unsafe —
// it removes a tag namespaces still use, says nothing about an
// istio-injection=enabled namespace depending on the default tag, and
// uninstalls a revision a namespace still uses — end with revkit
// refusing (revkit.ErrInUse) where istioctl went ahead.
func TestIstioctlDifferential(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	begin := time.Now()
	ictlEnv := startTwoRevisions(ctx, t)
	rkEnv := startTwoRevisions(ctx, t)
	t.Logf("two control planes with two revisions each in %s", time.Since(begin).Round(time.Millisecond))
	ictl := newIstioctl(t, ictlEnv)
	rk := rkEnv.Client
	a, b := ictlEnv.Client, rkEnv.Client
	cmp := &comparer{a: ictlEnv, b: rkEnv}

	// The same namespaces and a non-revisioned injector (as a cluster
	// installed without revisions has) in both.
	for _, e := range []*testenv.Env{ictlEnv, rkEnv} {
		for name, labels := range map[string]map[string]string{
			"shop":   {"istio.io/rev": "prod-stable"},
			"legacy": {"istio-injection": "enabled"},
		} {
			_, err := e.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
			require.NoError(t, err)
		}
		createLegacyInjector(ctx, t, e.Client)
		markInstalledByIstioctl(ctx, t, e)
	}

	steps := time.Now()
	t.Run("tag set creates the same webhook and Service", func(t *testing.T) {
		ictl.mustRun(ctx, "tag", "set", "prod-stable", "--revision", oldRev)
		_, err := tag.Set(ctx, rk, tag.SetOptions{Tag: "prod-stable", Revision: oldRev})
		require.NoError(t, err)
		ictl.mustRun(ctx, "tag", "set", "prod-canary", "--revision", newRev)
		_, err = tag.Set(ctx, rk, tag.SetOptions{Tag: "prod-canary", Revision: newRev})
		require.NoError(t, err)
		for _, tg := range []string{"prod-stable", "prod-canary"} {
			cmp.tag(ctx, t, tg, nil)
		}
	})

	t.Run("moving a tag without overwrite is refused by both", func(t *testing.T) {
		out, err := ictl.run(ctx, "", "tag", "set", "prod-stable", "--revision", newRev)
		require.Error(t, err, "istioctl: %s", out)
		assert.Contains(t, out, "--overwrite is false")
		_, err = tag.Set(ctx, rk, tag.SetOptions{Tag: "prod-stable", Revision: newRev})
		require.ErrorIs(t, err, revkit.ErrExists)
		cmp.tag(ctx, t, "prod-stable", nil)
		assert.Equal(t, oldRev, tagRevision(ctx, t, a, "prod-stable"))
	})

	t.Run("a tag named like a revision is refused by both", func(t *testing.T) {
		out, err := ictl.run(ctx, "", "tag", "set", newRev, "--revision", oldRev)
		require.Error(t, err, "istioctl: %s", out)
		assert.Contains(t, out, "found existing control plane revision with same name")
		_, err = tag.Set(ctx, rk, tag.SetOptions{Tag: newRev, Revision: oldRev})
		require.ErrorIs(t, err, revkit.ErrExists)
	})

	t.Run("tag set --overwrite moves the tag the same way", func(t *testing.T) {
		ictl.mustRun(ctx, "tag", "set", "prod-stable", "--revision", newRev, "--overwrite")
		_, err := tag.Set(ctx, rk, tag.SetOptions{Tag: "prod-stable", Revision: newRev, Overwrite: true})
		require.NoError(t, err)
		cmp.tag(ctx, t, "prod-stable", nil)
		assert.Equal(t, newRev, tagRevision(ctx, t, a, "prod-stable"))
	})

	t.Run("the default tag: webhook, Service, default validator, deactivated injector", func(t *testing.T) {
		ictl.mustRun(ctx, "tag", "set", "default", "--revision", oldRev)
		_, err := tag.Set(ctx, rk, tag.SetOptions{Tag: "default", Revision: oldRev})
		require.NoError(t, err)
		cmp.tag(ctx, t, "default", nil)
		cmp.validator(ctx, t, nil)
		cmp.legacyInjector(ctx, t)

		// istiod switches the validator to Fail once it serves it; both
		// end up the same.
		waitValidatorFail(ctx, t, a)
		waitValidatorFail(ctx, t, b)
		cmp.validator(ctx, t, nil)
	})

	t.Run("moving the default tag with --overwrite", func(t *testing.T) {
		ictl.mustRun(ctx, "tag", "set", "default", "--revision", newRev, "--overwrite")
		_, err := tag.Set(ctx, rk, tag.SetOptions{Tag: "default", Revision: newRev, Overwrite: true})
		require.NoError(t, err)
		t.Logf("default validator failurePolicy right after the move: istioctl %s, revkit %s",
			validatorFailure(ctx, t, a), validatorFailure(ctx, t, b))
		cmp.tag(ctx, t, "default", nil)
		cmp.validator(ctx, t, map[string]string{
			"webhooks.validation.istio.io.failurePolicy": "istioctl carries Fail over to the new revision; revkit starts " +
				"a validator that moves to another revision at Ignore, as Istio's chart does, until that revision's " +
				"istiod has checked its endpoint and switches it to Fail",
		})
		waitValidatorFail(ctx, t, a)
		waitValidatorFail(ctx, t, b)
		cmp.validator(ctx, t, nil)
		cmp.legacyInjector(ctx, t)
	})

	t.Run("tag list", func(t *testing.T) {
		compareTagLists(ctx, t, ictl, rk)
	})

	t.Run("tag remove of an unused tag", func(t *testing.T) {
		ictl.mustRun(ctx, "tag", "remove", "prod-canary")
		_, err := tag.Remove(ctx, rk, tag.RemoveOptions{Tag: "prod-canary"})
		require.NoError(t, err)
		for _, c := range []kubernetes.Interface{a, b} {
			_, err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mesh.TagWebhookName("prod-canary"), metav1.GetOptions{})
			assert.True(t, apierrors.IsNotFound(err), "webhook gone: %v", err)
			_, err = c.CoreV1().Services("istio-system").Get(ctx, mesh.TagServiceName("prod-canary"), metav1.GetOptions{})
			assert.True(t, apierrors.IsNotFound(err), "Service gone: %v", err)
		}
		compareTagLists(ctx, t, ictl, rk)
	})

	t.Run("uninstall dry run of the unused old revision lists the same objects", func(t *testing.T) {
		out := ictl.mustRun(ctx, "uninstall", "--revision", oldRev, "--dry-run", "-y")
		got := istioctlPruned(out)
		require.NotEmpty(t, got, "istioctl listed nothing: %s", out)
		opts := revision.UninstallOptions{Revision: oldRev}
		opts.DryRun = revkit.DryRunClient
		res, err := revision.Uninstall(ctx, rk, opts)
		require.NoError(t, err)
		var want []string
		for _, c := range res.Changes {
			if c.Action == revkit.ActionDelete {
				want = append(want, c.Object.Kind+"/"+c.Object.Namespace+"/"+c.Object.Name)
			}
		}
		sort.Strings(want)
		onlyIstioctl, onlyRevkit := setDiff(got, want), setDiff(want, got)
		t.Logf("uninstall dry run: istioctl %d objects, revkit %d; only istioctl: %v; only revkit: %v",
			len(got), len(want), onlyIstioctl, onlyRevkit)
		assert.Empty(t, onlyIstioctl, "objects istioctl prunes that revkit keeps")
		assert.Empty(t, onlyRevkit, "objects revkit deletes that istioctl keeps")
	})
	t.Logf("compared steps in %s", time.Since(steps).Round(time.Millisecond))

	// Unsafe cases: from here on the two clusters diverge.
	for _, c := range []kubernetes.Interface{a, b} {
		_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: "pinned", Labels: map[string]string{"istio.io/rev": oldRev}}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}

	t.Run("unsafe: uninstall dry run of a revision a namespace uses", func(t *testing.T) {
		out := ictl.mustRun(ctx, "uninstall", "--revision", oldRev, "--dry-run", "-y")
		t.Logf("istioctl uninstall --dry-run with namespace pinned on %s: exit 0, %d objects listed, output mentions pinned: %v",
			oldRev, len(istioctlPruned(out)), strings.Contains(out, "pinned"))
		assert.Contains(t, istioctlPruned(out), "MutatingWebhookConfiguration//istio-sidecar-injector-"+oldRev)
		opts := revision.UninstallOptions{Revision: oldRev}
		opts.DryRun = revkit.DryRunClient
		_, err := revision.Uninstall(ctx, rk, opts)
		var inUse *revkit.InUseError
		require.ErrorAs(t, err, &inUse)
		assert.Equal(t, []string{"pinned"}, inUse.Usage.Namespaces)
	})

	t.Run("unsafe: tag remove of a tag a namespace uses", func(t *testing.T) {
		// Without -y istioctl asks; with no answer it aborts.
		out, err := ictl.run(ctx, "", "tag", "remove", "prod-stable")
		require.NoError(t, err, out)
		t.Logf("istioctl tag remove prod-stable (no answer): %q", out)
		assert.Contains(t, out, "shop")
		assert.Equal(t, newRev, tagRevision(ctx, t, a, "prod-stable"), "istioctl aborted")
		// With -y it removes the tag shop depends on.
		ictl.mustRun(ctx, "tag", "remove", "prod-stable", "-y")
		_, err = a.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mesh.TagWebhookName("prod-stable"), metav1.GetOptions{})
		assert.True(t, apierrors.IsNotFound(err), "istioctl -y removed the tag shop uses: %v", err)

		res, err := tag.Remove(ctx, rk, tag.RemoveOptions{Tag: "prod-stable"})
		require.ErrorIs(t, err, revkit.ErrInUse)
		var inUse *revkit.InUseError
		require.ErrorAs(t, err, &inUse)
		assert.Equal(t, []string{"shop"}, inUse.Usage.Namespaces)
		assert.Empty(t, res.Changes)
		assert.Equal(t, newRev, tagRevision(ctx, t, b, "prod-stable"), "revkit kept it")
	})

	t.Run("unsafe: tag remove default while an istio-injection=enabled namespace depends on it", func(t *testing.T) {
		// istioctl only counts istio.io/rev=default namespaces: it
		// neither asks nor warns.
		out := ictl.mustRun(ctx, "tag", "remove", "default")
		t.Logf("istioctl tag remove default (no -y): %q", out)
		assert.NotContains(t, out, "legacy")
		_, err := a.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mesh.TagWebhookName("default"), metav1.GetOptions{})
		assert.True(t, apierrors.IsNotFound(err), "istioctl removed the default tag: %v", err)
		_, err = a.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, mesh.DefaultValidatorName, metav1.GetOptions{})
		assert.True(t, apierrors.IsNotFound(err), "and the default validator: %v", err)

		_, err = tag.Remove(ctx, rk, tag.RemoveOptions{Tag: "default"})
		require.ErrorIs(t, err, revkit.ErrInUse)
		var inUse *revkit.InUseError
		require.ErrorAs(t, err, &inUse)
		assert.Equal(t, []string{"legacy"}, inUse.Usage.Namespaces)
		_, err = b.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, mesh.DefaultValidatorName, metav1.GetOptions{})
		assert.NoError(t, err, "revkit kept the default validator")
	})

	t.Run("unsafe: uninstall of a revision a namespace uses", func(t *testing.T) {
		out := ictl.mustRun(ctx, "uninstall", "--revision", oldRev, "-y")
		t.Logf("istioctl uninstall --revision %s -y with namespace pinned on it: exit 0; output: %q", oldRev, truncate(out, 600))
		_, err := a.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-sidecar-injector-"+oldRev, metav1.GetOptions{})
		assert.True(t, apierrors.IsNotFound(err), "istioctl pruned the injector pinned uses: %v", err)

		_, err = revision.Uninstall(ctx, rk, revision.UninstallOptions{Revision: oldRev})
		require.ErrorIs(t, err, revkit.ErrInUse)
		_, err = b.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-sidecar-injector-"+oldRev, metav1.GetOptions{})
		assert.NoError(t, err, "revkit kept it")
	})
	t.Logf("total %s", time.Since(begin).Round(time.Millisecond))
}

// istioctl runs bin/istioctl against one environment's apiserver only: its
// kubeconfig names nothing but the loopback apiserver, HOME is a temporary
// directory, and the process inherits the test's loopback-only network
// namespace.
type istioctl struct {
	t          *testing.T
	bin        string
	kubeconfig string
	home       string
}

func newIstioctl(t *testing.T, env *testenv.Env) *istioctl {
	bin := filepath.Join(env.BinDir, "istioctl")
	_, err := os.Stat(bin)
	require.NoError(t, err, "bin/istioctl is built by make tools")
	return &istioctl{t: t, bin: bin, kubeconfig: env.Kubeconfig, home: t.TempDir()}
}

// run returns stdout and stderr together.
func (c *istioctl) run(ctx context.Context, stdin string, args ...string) (string, error) {
	args = append(args, "--kubeconfig", c.kubeconfig)
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = []string{"HOME=" + c.home, "PATH=/usr/bin:/bin", "KUBECONFIG=" + c.kubeconfig}
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Dir = c.home
	start := time.Now()
	out, err := cmd.CombinedOutput()
	c.t.Logf("istioctl %s (%s)", strings.Join(args[:len(args)-2], " "), time.Since(start).Round(time.Millisecond))
	return string(out), err
}

func (c *istioctl) mustRun(ctx context.Context, args ...string) string {
	c.t.Helper()
	out, err := c.run(ctx, "", args...)
	require.NoError(c.t, err, "istioctl %s: %s", strings.Join(args, " "), out)
	return out
}

var prunedLine = regexp.MustCompile(`Not pruning object .*Kind=(\w+)/(.*)\.([a-z0-9-]*) because of dry run`)

// istioctlPruned parses istioctl uninstall --dry-run's output into sorted
// "Kind/namespace/name".
func istioctlPruned(out string) []string {
	var refs []string
	for _, m := range prunedLine.FindAllStringSubmatch(out, -1) {
		refs = append(refs, m[1]+"/"+m[3]+"/"+m[2])
	}
	sort.Strings(refs)
	return refs
}

func setDiff(a, b []string) []string {
	in := map[string]bool{}
	for _, s := range b {
		in[s] = true
	}
	var out []string
	for _, s := range a {
		if !in[s] {
			out = append(out, s)
		}
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// createLegacyInjector writes a non-revisioned injector like the one a
// cluster installed without revisions has ("istio-sidecar-injector",
// istio.io/rev=default), calling the old revision's istiod.
func createLegacyInjector(ctx context.Context, t *testing.T, kube kubernetes.Interface) {
	t.Helper()
	inj, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-sidecar-injector-"+oldRev, metav1.GetOptions{})
	require.NoError(t, err)
	cc := inj.Webhooks[0].ClientConfig
	legacy := &admv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "istio-sidecar-injector",
			Labels: map[string]string{"app": "sidecar-injector", "istio.io/rev": "default"}},
		Webhooks: mesh.InjectionWebhooks("default", true, cc, nil),
	}
	_, err = kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, legacy, metav1.CreateOptions{})
	require.NoError(t, err)
}

func tagRevision(ctx context.Context, t *testing.T, kube kubernetes.Interface, tg string) string {
	t.Helper()
	mwc, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mesh.TagWebhookName(tg), metav1.GetOptions{})
	require.NoError(t, err)
	return mwc.Labels["istio.io/rev"]
}

// comparer compares the objects of the istioctl cluster (a) with those of
// the revkit cluster (b).
type comparer struct{ a, b *testenv.Env }

// tag compares a tag's webhook and Service.
func (c *comparer) tag(ctx context.Context, t *testing.T, tg string, allowed map[string]string) {
	t.Helper()
	wa, err := c.a.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mesh.TagWebhookName(tg), metav1.GetOptions{})
	require.NoError(t, err, "istioctl's tag webhook")
	wb, err := c.b.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mesh.TagWebhookName(tg), metav1.GetOptions{})
	require.NoError(t, err, "revkit's tag webhook")
	c.objects(t, "MutatingWebhookConfiguration/"+wa.Name, wa, wb, merge(tagWebhookDiffs, allowed))

	sa, err := c.a.Client.CoreV1().Services("istio-system").Get(ctx, mesh.TagServiceName(tg), metav1.GetOptions{})
	require.NoError(t, err, "istioctl's tag Service")
	sb, err := c.b.Client.CoreV1().Services("istio-system").Get(ctx, mesh.TagServiceName(tg), metav1.GetOptions{})
	require.NoError(t, err, "revkit's tag Service")
	c.objects(t, "Service/"+sa.Name, sa, sb, merge(tagServiceDiffs, allowed))
}

func (c *comparer) validator(ctx context.Context, t *testing.T, allowed map[string]string) {
	t.Helper()
	va, err := c.a.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, mesh.DefaultValidatorName, metav1.GetOptions{})
	require.NoError(t, err, "istioctl's default validator")
	vb, err := c.b.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, mesh.DefaultValidatorName, metav1.GetOptions{})
	require.NoError(t, err, "revkit's default validator")
	c.objects(t, "ValidatingWebhookConfiguration/"+va.Name, va, vb, merge(validatorDiffs, allowed))
}

func (c *comparer) legacyInjector(ctx context.Context, t *testing.T) {
	t.Helper()
	la, err := c.a.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-sidecar-injector", metav1.GetOptions{})
	require.NoError(t, err)
	lb, err := c.b.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-sidecar-injector", metav1.GetOptions{})
	require.NoError(t, err)
	for _, w := range la.Webhooks {
		assert.Equal(t, mesh.NeverMatchSelector(), w.NamespaceSelector, "istioctl deactivated %s", w.Name)
	}
	c.objects(t, "MutatingWebhookConfiguration/istio-sidecar-injector", la, lb, nil)
}

// objects compares two objects with each cluster's istiod addresses
// replaced by the revision they belong to.
func (c *comparer) objects(t *testing.T, what string, istioctlObj, revkitObj any, allowed map[string]string) {
	t.Helper()
	compareObjects(t, what, flatObject(t, istioctlObj, istiodAddrs(c.a)), flatObject(t, revkitObj, istiodAddrs(c.b)), allowed)
}

// istiodAddrs replaces the loopback addresses of an environment's istiods
// (each environment has its own ports) by the revision's name.
func istiodAddrs(env *testenv.Env) *strings.Replacer {
	var pairs []string
	for _, rev := range []string{oldRev, newRev} {
		if is := env.Istiod(rev); is != nil {
			pairs = append(pairs, is.WebhookAddr, "<istiod "+rev+">")
		}
	}
	return strings.NewReplacer(pairs...)
}

// markInstalledByIstioctl labels every object of the revisions' charts as
// istioctl install labels what it installs (istio.io/rev,
// operator.istio.io/component, install.operator.istio.io/owning-resource-namespace),
// so that istioctl uninstall --revision selects them; the testenv applies
// the chart as Helm does, without those labels, and istioctl would find
// nothing to prune.
func markInstalledByIstioctl(ctx context.Context, t *testing.T, env *testenv.Env) {
	t.Helper()
	for _, rev := range []string{oldRev, newRev} {
		args := []string{"label", "--overwrite", "-n", "istio-system"}
		for _, o := range env.Istiod(rev).Objects {
			kind := o.Kind
			if o.Group != "" {
				kind += "." + o.Group
			}
			args = append(args, kind+"/"+o.Name)
		}
		args = append(args, "istio.io/rev="+rev, "operator.istio.io/component=Pilot",
			"install.operator.istio.io/owning-resource-namespace=istio-system")
		out, err := env.Kubectl(ctx, args...).CombinedOutput()
		require.NoError(t, err, "kubectl %v: %s", args, out)
	}
}

func validatorFailure(ctx context.Context, t *testing.T, kube kubernetes.Interface) string {
	t.Helper()
	v, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, mesh.DefaultValidatorName, metav1.GetOptions{})
	require.NoError(t, err)
	if fp := v.Webhooks[0].FailurePolicy; fp != nil {
		return string(*fp)
	}
	return "<unset>"
}

func waitValidatorFail(ctx context.Context, t *testing.T, kube kubernetes.Interface) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, mesh.DefaultValidatorName, metav1.GetOptions{})
		require.NoError(t, err)
		if fp := v.Webhooks[0].FailurePolicy; fp != nil && *fp == admv1.Fail {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("istiod did not switch %s to failurePolicy Fail within 30s", mesh.DefaultValidatorName)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// compareTagLists compares istioctl tag list -o json with tag.List.
func compareTagLists(ctx context.Context, t *testing.T, ictl *istioctl, rk kubernetes.Interface) {
	t.Helper()
	out := ictl.mustRun(ctx, "tag", "list", "-o", "json")
	var rows []struct {
		Tag        string   `json:"tag"`
		Revision   string   `json:"revision"`
		Namespaces []string `json:"namespaces"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rows), out)
	got := map[string]string{}
	for _, r := range rows {
		if r.Tag == "" {
			// istioctl lists an untagged revision as a row without a
			// tag; revision.List is revkit's view of revisions.
			continue
		}
		sort.Strings(r.Namespaces)
		got[r.Tag] = fmt.Sprintf("%s %v", r.Revision, r.Namespaces)
	}
	tags, err := tag.List(ctx, rk, tag.ListOptions{})
	require.NoError(t, err)
	want := map[string]string{}
	for _, tg := range tags {
		ns := tg.Namespaces
		if tg.Name == revkit.DefaultTag {
			// Deliberate: revkit counts the namespaces the default tag
			// injects from its selectors, istio-injection=enabled ones
			// included; istioctl counts only istio.io/rev=default.
			assert.Contains(t, ns, "legacy", "revkit lists the istio-injection=enabled namespace under the default tag")
			ns = slicesWithout(ns, "legacy")
		}
		want[tg.Name] = fmt.Sprintf("%s %v", tg.Revision, ns)
	}
	t.Logf("tag list: istioctl %v, revkit %v", got, want)
	assert.Equal(t, got, want)
}

func slicesWithout(s []string, drop string) []string {
	var out []string
	for _, v := range s {
		if v != drop {
			out = append(out, v)
		}
	}
	return out
}

// The differences between what istioctl and revkit write that are on
// purpose, by object kind. Each key is a path of the flattened object (see
// flatten), each value says why. Any other difference fails the test.
var (
	// None: revkit writes a tag's webhook as istioctl does.
	tagWebhookDiffs = map[string]string{}
	// istioctl renders the tag's Service from its built-in chart as a Helm
	// release named "istio" and keeps the chart's bookkeeping labels;
	// revkit labels it with what identifies it (istio.io/rev, istio.io/tag,
	// app, istio) and claims no Helm release, chart or version it does
	// not come from (app.kubernetes.io/managed-by=Helm would be false).
	tagServiceDiffs = labelDiffs("istioctl's built-in chart render (release \"istio\") labels the Service; "+
		"revkit does not claim a Helm release or chart", chartBookkeepingLabels...)
	// istioctl labels the default validator with its chart's bookkeeping
	// labels overlaid with those of the revision's injector (release and
	// app.kubernetes.io/instance of the revision's Helm release); revkit
	// labels it with what identifies it (app, istio, istio.io/rev,
	// istio.io/tag) and does not copy Helm release labels onto an object
	// that release does not own.
	validatorDiffs = labelDiffs("istioctl copies chart and Helm release labels onto the validator; "+
		"revkit does not claim a Helm release or chart", chartBookkeepingLabels...)
	chartBookkeepingLabels = []string{
		"app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "app.kubernetes.io/name",
		"app.kubernetes.io/part-of", "app.kubernetes.io/version", "helm.sh/chart", "release",
	}
)

func labelDiffs(reason string, keys ...string) map[string]string {
	out := map[string]string{}
	for _, k := range keys {
		out["metadata.labels."+k] = reason
	}
	return out
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// compareObjects fails on every path whose value differs between two
// flattened objects (flatObject) unless allowed lists it.
func compareObjects(t *testing.T, what string, fa, fb map[string]string, allowed map[string]string) {
	t.Helper()
	keys := map[string]bool{}
	for k := range fa {
		keys[k] = true
	}
	for k := range fb {
		keys[k] = true
	}
	var paths []string
	for k := range keys {
		if fa[k] != fb[k] {
			paths = append(paths, k)
		}
	}
	sort.Strings(paths)
	var ok []string
	for _, p := range paths {
		va, vb := valueOr(fa, p), valueOr(fb, p)
		if _, allow := allowed[p]; allow {
			ok = append(ok, fmt.Sprintf("%s (istioctl %s, revkit %s)", p, va, vb))
			continue
		}
		t.Errorf("%s: %s differs: istioctl %s, revkit %s", what, p, va, vb)
	}
	t.Logf("%s: %d fields compared, %d allowed differences: %s", what, len(keys), len(ok), strings.Join(ok, "; "))
}

func valueOr(m map[string]string, k string) string {
	if v, ok := m[k]; ok {
		return v
	}
	return "<absent>"
}

// flatObject flattens an object after dropping what the apiserver assigns
// (uid, resourceVersion, timestamps, managedFields, a Service's cluster
// IPs), reducing a caBundle to whether it is set, and replacing istiod
// addresses with addrs.
func flatObject(t *testing.T, obj any, addrs *strings.Replacer) map[string]string {
	t.Helper()
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	require.NoError(t, err)
	delete(u, "status")
	delete(u, "kind")
	delete(u, "apiVersion")
	if meta, ok := u["metadata"].(map[string]any); ok {
		for _, k := range []string{"uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"} {
			delete(meta, k)
		}
	}
	if spec, ok := u["spec"].(map[string]any); ok {
		delete(spec, "clusterIP")
		delete(spec, "clusterIPs")
	}
	out := map[string]string{}
	flatten("", u, out)
	for k, v := range out {
		out[k] = addrs.Replace(v)
	}
	return out
}

// flatten writes every leaf of v under a dotted path. List elements that
// are objects with a name are keyed by it (webhooks, ports), others by
// index; lists of scalars are one JSON value.
func flatten(prefix string, v any, out map[string]string) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			out[prefix] = "{}"
		}
		for k, val := range x {
			if k == "caBundle" {
				out[join(k)] = fmt.Sprintf("<set: %v>", val != nil && val != "")
				continue
			}
			flatten(join(k), val, out)
		}
	case []any:
		scalars := true
		for _, e := range x {
			if _, ok := e.(map[string]any); ok {
				scalars = false
			}
		}
		if scalars {
			b, _ := json.Marshal(x)
			out[prefix] = string(b)
			return
		}
		for i, e := range x {
			key := fmt.Sprint(i)
			if m, ok := e.(map[string]any); ok {
				if n, ok := m["name"].(string); ok && n != "" {
					key = n
				}
			}
			flatten(join(key), e, out)
		}
	default:
		b, _ := json.Marshal(x)
		out[prefix] = string(b)
	}
}
