//go:build integration

package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit/examples/internal/demo"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
)

// snapshot is what a dry run must leave as it was.
type snapshot struct {
	NamespaceLabels map[string]map[string]string
	Tags            []tag.Tag
	Revisions       []revision.Revision
	// Deployments maps namespace/name to the pod template's annotations
	// and labels, and the generation: a restart or gateway move changes
	// them, a canary gateway adds an entry.
	Deployments map[string]deployment
	// Webhooks and Services map names to resourceVersions.
	Webhooks map[string]string
	Services map[string]string
	Pods     []string
}

type deployment struct {
	Generation  int64
	Annotations map[string]string
	Labels      map[string]string
}

func take(t *testing.T, ctx context.Context, kube kubernetes.Interface) snapshot {
	t.Helper()
	s := snapshot{NamespaceLabels: map[string]map[string]string{}, Deployments: map[string]deployment{},
		Webhooks: map[string]string{}, Services: map[string]string{}}
	nss, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, n := range nss.Items {
		s.NamespaceLabels[n.Name] = n.Labels
	}
	s.Tags, err = tag.List(ctx, kube, tag.ListOptions{})
	require.NoError(t, err)
	s.Revisions, err = revision.List(ctx, kube, revision.ListOptions{})
	require.NoError(t, err)
	deps, err := kube.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, d := range deps.Items {
		s.Deployments[d.Namespace+"/"+d.Name] = deployment{d.Generation, d.Spec.Template.Annotations, d.Spec.Template.Labels}
	}
	mws, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, w := range mws.Items {
		s.Webhooks["mutating/"+w.Name] = w.ResourceVersion
	}
	vws, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, w := range vws.Items {
		s.Webhooks["validating/"+w.Name] = w.ResourceVersion
	}
	svcs, err := kube.CoreV1().Services("istio-system").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, v := range svcs.Items {
		s.Services[v.Name] = v.ResourceVersion
	}
	pods, err := kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, p := range pods.Items {
		s.Pods = append(s.Pods, p.Namespace+"/"+p.Name)
	}
	return s
}

// The example against a cluster given by --kubeconfig, where both
// revisions are installed: server and client dry runs change nothing, and
// a plan that needs a tag it would only create fails, changing nothing
// either.
func TestDryRunExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	env, _ := demo.TestMesh(t, ctx, "1-30-0", "prod-stable", "1-31-0")
	before := take(t, ctx, env.Client)
	require.Len(t, before.Revisions, 2)
	require.Len(t, before.Tags, 1)

	for _, mode := range []string{"server", "client"} {
		t.Run(mode, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run([]string{"--kubeconfig", env.Kubeconfig, "--mode", mode, "--gateways", "canary"}, &out, &errOut)
			t.Log(out.String())
			require.Equal(t, 0, code, errOut.String())
			assert.Equal(t, before, take(t, ctx, env.Client), "a %s dry run changed the cluster", mode)

			// The plan, then the dry-run report with each step's result.
			o := out.String()
			assert.Regexp(t, `plan:\nPlan "canary 1-30-0 → 1-31-0":\n  1\. precheck`, o)
			assert.Regexp(t, `\d+\. migrate-namespaces 1/2\s+label namespaces blog, search istio\.io/rev=1-31-0`, o)
			assert.Contains(t, o, `Plan "canary 1-30-0 → 1-31-0" (dry run: `+mode+`):`)
			assert.Regexp(t, `migrate-namespaces 1/2\s+done\s+\S+\s+→ 1-31-0: update 2 \(dry run: `+mode+`\)`, o)
			assert.Regexp(t, `restart-workloads 2/2\s+done\s+\S+\s+update 2 \(dry run: `+mode+`\)`, o)
			assert.Regexp(t, `verify-pods 1/2\s+skipped\s+\S+\s+dry run`, o)
			assert.Regexp(t, `move-gateways 1-31-0\s+done\s+\S+\s+create 1 \(dry run: `+mode+`\)`, o)
			assert.Regexp(t, `set-tag prod-stable→1-31-0\s+done\s+\S+\s+prod-stable → 1-31-0 \(was 1-30-0\): update 2`, o)
			assert.NotContains(t, o, "uninstall-revision", "--keep-old by default")
			assert.Regexp(t, `restart-workloads 1/2\s+update Deployment/blog/web`, o)
			assert.Contains(t, o, "nothing was changed (dry run: "+mode+")")
		})
	}

	// The documented limit: a canary tag the plan would create does not
	// exist for the migration after it. The plan stops there, named, and
	// still nothing changed.
	var out, errOut bytes.Buffer
	code := run([]string{"--kubeconfig", env.Kubeconfig, "--canary-tag", "prod-canary"}, &out, &errOut)
	t.Log(out.String())
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut.String(), `step "migrate-namespaces 1/2" failed: revision or tag "prod-canary" not found`)
	assert.Regexp(t, `set-tag prod-canary→1-31-0\s+done\s+\S+\s+prod-canary → 1-31-0: create 2 \(dry run: server\)`, out.String())
	assert.Regexp(t, `restart-workloads 1/2\s+not-run`, out.String())
	assert.Equal(t, before, take(t, ctx, env.Client))

	// --help exits 0 and names the flags; a mode that writes is refused.
	out.Reset()
	errOut.Reset()
	assert.Equal(t, 0, run([]string{"--help"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "-mode")
	errOut.Reset()
	assert.Equal(t, 2, run([]string{"--mode", "none"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "would change the cluster")
}
