package tag_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
)

// Who depends on a tag is decided by the webhooks the apiserver calls, not
// by the istio.io/rev label alone (issue #14).
func TestRemoveFollowsWebhooks(t *testing.T) {
	tests := []struct {
		name    string
		cluster *revkittest.Cluster
		opts    tag.RemoveOptions
		usage   revkit.Usage // refused with these users when not empty
		writes  []string
	}{
		{
			name: "a both-labels namespace depends on the default tag",
			cluster: twoRevisions().WithTag("default", "1-25-0").
				WithNamespace("both", revkittest.InjectionEnabled(), revkittest.Rev("1-24-0")),
			opts:  tag.RemoveOptions{Tag: "default"},
			usage: revkit.Usage{Namespaces: []string{"both"}},
		},
		{
			name: "a both-labels namespace does not depend on the tag of its istio.io/rev label",
			cluster: twoRevisions().WithTag("default", "1-25-0").WithTag("prod", "1-24-0").
				WithNamespace("both", revkittest.InjectionEnabled(), revkittest.Rev("prod")),
			opts: tag.RemoveOptions{Tag: "prod"},
			writes: []string{
				"delete mutatingwebhookconfigurations istio-revision-tag-prod",
				"delete services istio-system/istiod-revision-tag-prod",
			},
		},
		{
			name: "istio-injection=disabled blocks istio.io/rev",
			cluster: twoRevisions().WithTag("prod", "1-24-0").
				WithNamespace("off", revkittest.Label("istio-injection", "disabled"), revkittest.Rev("prod")),
			opts: tag.RemoveOptions{Tag: "prod"},
			writes: []string{
				"delete mutatingwebhookconfigurations istio-revision-tag-prod",
				"delete services istio-system/istiod-revision-tag-prod",
			},
		},
		{
			name: "a pod labelled with the tag in an unlabelled namespace depends on it",
			cluster: twoRevisions().WithTag("prod", "1-24-0").WithNamespace("plain").
				WithObjects(revkittest.Pod("plain", "web-0", "1-24-0", map[string]string{"istio.io/rev": "prod"}),
					revkittest.Pod("plain", "other", "", map[string]string{"app": "other"})),
			opts:  tag.RemoveOptions{Tag: "prod"},
			usage: revkit.Usage{Pods: []string{"plain/web-0"}},
		},
		{
			name: "a sidecar.istio.io/inject=true pod depends on the default tag",
			cluster: twoRevisions().WithTag("default", "1-25-0").WithNamespace("plain").
				WithObjects(revkittest.Pod("plain", "web-0", "1-25-0", map[string]string{"sidecar.istio.io/inject": "true"})),
			opts:  tag.RemoveOptions{Tag: "default"},
			usage: revkit.Usage{Pods: []string{"plain/web-0"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kube := tt.cluster.Kube()
			kube.ClearActions()
			res, err := tag.Remove(ctx, kube, tt.opts)
			require.NotNil(t, res)
			if tt.usage.InUse() {
				require.ErrorIs(t, err, revkit.ErrInUse)
				var inUse *revkit.InUseError
				require.ErrorAs(t, err, &inUse)
				assert.Equal(t, tt.usage, inUse.Usage)
				assert.Empty(t, revkittest.Writes(kube), "refused before any write")

				// Force removes it and reports the users.
				kube.ClearActions()
				opts := tt.opts
				opts.Force = true
				res, err = tag.Remove(ctx, kube, opts)
				require.NoError(t, err)
				assert.Equal(t, tt.usage.Namespaces, res.Namespaces)
				assert.Equal(t, tt.usage.Pods, res.Pods)
				_, err = kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-revision-tag-"+tt.opts.Tag, metav1.GetOptions{})
				assert.Error(t, err, "forced removal deleted the tag")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.writes, revkittest.Writes(kube))
			assert.Empty(t, res.Namespaces)
			assert.Empty(t, res.Pods)
		})
	}
}

func TestListFollowsWebhooks(t *testing.T) {
	kube := twoRevisions().WithTag("default", "1-25-0").WithTag("prod", "1-24-0").
		WithNamespace("both", revkittest.InjectionEnabled(), revkittest.Rev("prod")).
		WithNamespace("shop", revkittest.Rev("prod")).
		WithNamespace("off", revkittest.Label("istio-injection", "disabled"), revkittest.Rev("prod")).
		Kube()
	tags, err := tag.List(ctx, kube, tag.ListOptions{})
	require.NoError(t, err)
	require.Len(t, tags, 2)
	assert.Equal(t, "default", tags[0].Name)
	assert.Equal(t, []string{"both"}, tags[0].Namespaces, "istio-injection=enabled wins")
	assert.Equal(t, "prod", tags[1].Name)
	assert.Equal(t, []string{"shop"}, tags[1].Namespaces)
}
