package tag_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/mesh"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
)

var ctx = context.Background()

func twoRevisions() *revkittest.Cluster {
	return revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0")
}

func TestSet(t *testing.T) {
	tests := []struct {
		name    string
		cluster *revkittest.Cluster
		opts    tag.SetOptions
		wantErr error
		writes  []string
		prev    string
	}{
		{
			name:    "creates a new tag",
			cluster: twoRevisions(),
			opts:    tag.SetOptions{Tag: "prod-stable", Revision: "1-24-0"},
			writes: []string{
				"create mutatingwebhookconfigurations istio-revision-tag-prod-stable",
				"create services istio-system/istiod-revision-tag-prod-stable",
			},
		},
		{
			name:    "same tag and revision again changes nothing",
			cluster: twoRevisions().WithTag("prod-stable", "1-24-0"),
			opts:    tag.SetOptions{Tag: "prod-stable", Revision: "1-24-0"},
			prev:    "1-24-0",
		},
		{
			name:    "moving without overwrite is refused",
			cluster: twoRevisions().WithTag("prod-stable", "1-24-0"),
			opts:    tag.SetOptions{Tag: "prod-stable", Revision: "1-25-0"},
			wantErr: revkit.ErrExists,
		},
		{
			name:    "moving with overwrite updates webhook and service",
			cluster: twoRevisions().WithTag("prod-stable", "1-24-0"),
			opts:    tag.SetOptions{Tag: "prod-stable", Revision: "1-25-0", Overwrite: true},
			prev:    "1-24-0",
			writes: []string{
				"update mutatingwebhookconfigurations istio-revision-tag-prod-stable",
				"update services istio-system/istiod-revision-tag-prod-stable",
			},
		},
		{
			name:    "a tag named like a revision is refused",
			cluster: twoRevisions(),
			opts:    tag.SetOptions{Tag: "1-25-0", Revision: "1-24-0"},
			wantErr: revkit.ErrExists,
		},
		{
			name:    "unknown revision",
			cluster: twoRevisions(),
			opts:    tag.SetOptions{Tag: "prod", Revision: "1-26-0"},
			wantErr: revkit.ErrNotFound,
		},
		{
			name:    "client dry run writes nothing",
			cluster: twoRevisions(),
			opts:    tag.SetOptions{Tag: "prod", Revision: "1-24-0", Common: revkit.Common{DryRun: revkit.DryRunClient}},
		},
		{
			name:    "server dry run sends dryRun=All",
			cluster: twoRevisions(),
			opts:    tag.SetOptions{Tag: "prod", Revision: "1-24-0", Common: revkit.Common{DryRun: revkit.DryRunServer}},
			writes: []string{
				"create mutatingwebhookconfigurations istio-revision-tag-prod (dry-run)",
				"create services istio-system/istiod-revision-tag-prod (dry-run)",
			},
		},
		{
			name: "default tag deactivates the non-revisioned injector and takes validation",
			cluster: revkittest.NewCluster().WithRevision("default").WithRevision("1-25-0").
				WithNamespace("legacy", revkittest.InjectionEnabled()),
			opts: tag.SetOptions{Tag: "default", Revision: "1-25-0"},
			writes: []string{
				"create mutatingwebhookconfigurations istio-revision-tag-default",
				"create services istio-system/istiod-revision-tag-default",
				"update mutatingwebhookconfigurations istio-sidecar-injector",
				"create validatingwebhookconfigurations istiod-default-validator",
			},
		},
		{
			name: "a tag overlapping a hand-made injector is refused",
			cluster: twoRevisions().WithObjects(&admv1.MutatingWebhookConfiguration{
				ObjectMeta: metav1.ObjectMeta{Name: "rogue"},
				Webhooks: []admv1.MutatingWebhook{{
					Name: "rogue.sidecar-injector.istio.io",
					NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
						{Key: "istio.io/rev", Operator: metav1.LabelSelectorOpExists}}},
				}},
			}),
			opts:    tag.SetOptions{Tag: "prod", Revision: "1-24-0"},
			wantErr: revkit.ErrOverlap,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kube := tt.cluster.Kube()
			kube.ClearActions()
			res, err := tag.Set(ctx, kube, tt.opts)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.Empty(t, revkittest.Writes(kube), "refusal must write nothing")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.writes, revkittest.Writes(kube))
			assert.Equal(t, tt.prev, res.Previous)
			assert.Equal(t, len(tt.writes) > 0 || tt.opts.DryRun == revkit.DryRunClient, res.Changed())
		})
	}
}

func TestSetBuildsWebhookLikeIstioctl(t *testing.T) {
	kube := twoRevisions().Kube()
	_, err := tag.Set(ctx, kube, tag.SetOptions{Tag: "prod-canary", Revision: "1-25-0"})
	require.NoError(t, err)

	mwc, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-revision-tag-prod-canary", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "prod-canary", mwc.Labels["istio.io/tag"])
	assert.Equal(t, "1-25-0", mwc.Labels["istio.io/rev"])
	assert.Equal(t, "sidecar-injector", mwc.Labels["app"])
	require.Len(t, mwc.Webhooks, 2, "a non-default tag has only the revision webhooks")
	for _, w := range mwc.Webhooks {
		assert.Equal(t, "istiod-1-25-0", w.ClientConfig.Service.Name)
		assert.Equal(t, "/inject", *w.ClientConfig.Service.Path)
		assert.Equal(t, []byte("ca-1-25-0"), w.ClientConfig.CABundle, "caBundle copied from the revision injector")
	}
	assert.Equal(t, "rev.namespace.sidecar-injector.istio.io", mwc.Webhooks[0].Name)
	assert.Contains(t, mwc.Webhooks[0].NamespaceSelector.MatchExpressions,
		metav1.LabelSelectorRequirement{Key: "istio.io/rev", Operator: metav1.LabelSelectorOpIn, Values: []string{"prod-canary"}})

	svc, err := kube.CoreV1().Services("istio-system").Get(ctx, "istiod-revision-tag-prod-canary", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"app": "istiod", "istio.io/rev": "1-25-0"}, svc.Spec.Selector)
	assert.Len(t, svc.Spec.Ports, 4)

	// Running it again is a no-op.
	kube.ClearActions()
	res, err := tag.Set(ctx, kube, tag.SetOptions{Tag: "prod-canary", Revision: "1-25-0"})
	require.NoError(t, err)
	assert.False(t, res.Changed())
	assert.Empty(t, revkittest.Writes(kube))
}

func TestSetDefaultTag(t *testing.T) {
	kube := revkittest.NewCluster().WithRevision("default").WithRevision("1-25-0").Kube()
	_, err := tag.Set(ctx, kube, tag.SetOptions{Tag: "default", Revision: "1-25-0"})
	require.NoError(t, err)

	legacy, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-sidecar-injector", metav1.GetOptions{})
	require.NoError(t, err)
	for _, w := range legacy.Webhooks {
		assert.True(t, mesh.NeverMatches(w.NamespaceSelector), "legacy webhook %s must be deactivated", w.Name)
	}
	mwc, err := kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-revision-tag-default", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Len(t, mwc.Webhooks, 4, "the default tag also serves istio-injection=enabled and inject=true")

	vwc, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "istiod-default-validator", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "1-25-0", vwc.Labels["istio.io/rev"])
	assert.Equal(t, "default", vwc.Labels["istio.io/tag"])
	assert.Equal(t, "istiod-1-25-0", vwc.Webhooks[0].ClientConfig.Service.Name)
	assert.Equal(t, "/validate", *vwc.Webhooks[0].ClientConfig.Service.Path)

	// istio-injection=enabled namespaces now resolve to the new revision.
	tags, err := tag.List(ctx, kube, tag.ListOptions{})
	require.NoError(t, err)
	require.Len(t, tags, 1)
	assert.Equal(t, "1-25-0", tags[0].Revision)
}

func TestSetMovesDefaultValidatorAndKeepsFailurePolicyOnSameRevision(t *testing.T) {
	kube := twoRevisions().WithTag("default", "1-24-0").Kube()
	// Same revision: istiod's Fail policy survives, nothing changes.
	res, err := tag.Set(ctx, kube, tag.SetOptions{Tag: "default", Revision: "1-24-0"})
	require.NoError(t, err)
	assert.False(t, res.Changed(), "%v", res.Changes)

	_, err = tag.Set(ctx, kube, tag.SetOptions{Tag: "default", Revision: "1-25-0", Overwrite: true})
	require.NoError(t, err)
	vwc, err := kube.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "istiod-default-validator", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "1-25-0", vwc.Labels["istio.io/rev"])
	assert.Equal(t, "istiod-1-25-0", vwc.Webhooks[0].ClientConfig.Service.Name)
	assert.Equal(t, admv1.Ignore, *vwc.Webhooks[0].FailurePolicy, "a new revision starts fail-open until its istiod is ready")
}

func TestSetInvalidInput(t *testing.T) {
	long := strings.Repeat("a", revkit.MaxTagLength+1)
	cases := []tag.SetOptions{
		{},
		{Tag: "prod"},
		{Revision: "1-24-0"},
		{Tag: "Prod", Revision: "1-24-0"},
		{Tag: "prod.stable", Revision: "1-24-0"},
		{Tag: long, Revision: "1-24-0"},
		{Tag: "prod", Revision: "1.24.0"},
		{Tag: "prod", Revision: "-bad"},
		{Tag: "prod", Revision: "1-24-0", Common: revkit.Common{DryRun: revkit.DryRun(7)}},
	}
	for _, opts := range cases {
		kube := twoRevisions().Kube()
		kube.ClearActions()
		_, err := tag.Set(ctx, kube, opts)
		var inv *revkit.InvalidInputError
		require.ErrorAs(t, err, &inv, "%+v", opts)
		assert.ErrorIs(t, err, revkit.ErrInvalidInput)
		assert.Empty(t, kube.Actions(), "no request before validation passes: %+v", opts)
	}
}

func TestSetAPIErrors(t *testing.T) {
	gr := schema.GroupResource{Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"}

	t.Run("conflict on update is retried", func(t *testing.T) {
		kube := twoRevisions().WithTag("prod", "1-24-0").Kube()
		revkittest.FailNth(kube, "update", "mutatingwebhookconfigurations", 1, apierrors.NewConflict(gr, "istio-revision-tag-prod", errors.New("changed")))
		kube.ClearActions()
		res, err := tag.Set(ctx, kube, tag.SetOptions{Tag: "prod", Revision: "1-25-0", Overwrite: true})
		require.NoError(t, err)
		assert.True(t, res.Changed())
		updates := 0
		for _, w := range revkittest.Writes(kube) {
			if strings.HasPrefix(w, "update mutatingwebhookconfigurations") {
				updates++
			}
		}
		assert.Equal(t, 2, updates, "one failed update, one retried")
	})

	for name, apiErr := range map[string]error{
		"internal error": apierrors.NewInternalError(errors.New("etcd down")),
		"forbidden":      apierrors.NewForbidden(gr, "istio-revision-tag-prod", errors.New("no RBAC")),
	} {
		t.Run(name+" is surfaced with context", func(t *testing.T) {
			kube := twoRevisions().Kube()
			revkittest.FailAlways(kube, "create", "mutatingwebhookconfigurations", apiErr)
			_, err := tag.Set(ctx, kube, tag.SetOptions{Tag: "prod", Revision: "1-24-0"})
			require.Error(t, err)
			var opErr *revkit.OpError
			require.ErrorAs(t, err, &opErr)
			assert.Equal(t, "create", opErr.Verb)
			assert.Contains(t, err.Error(), "tag.Set: create MutatingWebhookConfiguration/istio-revision-tag-prod")
			assert.Equal(t, apierrors.ReasonForError(apiErr), apierrors.ReasonForError(err), "API status kept")
		})
	}

	t.Run("list failure", func(t *testing.T) {
		kube := twoRevisions().Kube()
		revkittest.FailAlways(kube, "list", "mutatingwebhookconfigurations", apierrors.NewInternalError(errors.New("boom")))
		_, err := tag.Set(ctx, kube, tag.SetOptions{Tag: "prod", Revision: "1-24-0"})
		require.Error(t, err)
		assert.True(t, apierrors.IsInternalError(err))
	})
}

func TestRemove(t *testing.T) {
	tests := []struct {
		name    string
		cluster *revkittest.Cluster
		opts    tag.RemoveOptions
		wantErr error
		writes  []string
		users   []string
	}{
		{
			name:    "removes an unused tag",
			cluster: twoRevisions().WithTag("prod", "1-24-0"),
			opts:    tag.RemoveOptions{Tag: "prod"},
			writes: []string{
				"delete mutatingwebhookconfigurations istio-revision-tag-prod",
				"delete services istio-system/istiod-revision-tag-prod",
			},
		},
		{
			name:    "refuses while namespaces use it",
			cluster: twoRevisions().WithTag("prod", "1-24-0").WithNamespace("shop", revkittest.Rev("prod")),
			opts:    tag.RemoveOptions{Tag: "prod"},
			wantErr: revkit.ErrInUse,
		},
		{
			name:    "force removes it and names the users",
			cluster: twoRevisions().WithTag("prod", "1-24-0").WithNamespace("shop", revkittest.Rev("prod")),
			opts:    tag.RemoveOptions{Tag: "prod", Force: true},
			users:   []string{"shop"},
			writes: []string{
				"delete mutatingwebhookconfigurations istio-revision-tag-prod",
				"delete services istio-system/istiod-revision-tag-prod",
			},
		},
		{
			name:    "default tag is used by istio-injection=enabled namespaces",
			cluster: twoRevisions().WithTag("default", "1-24-0").WithNamespace("legacy", revkittest.InjectionEnabled()),
			opts:    tag.RemoveOptions{Tag: "default"},
			wantErr: revkit.ErrInUse,
		},
		{
			name:    "default tag removal takes its validator",
			cluster: twoRevisions().WithTag("default", "1-24-0"),
			opts:    tag.RemoveOptions{Tag: "default"},
			writes: []string{
				"delete mutatingwebhookconfigurations istio-revision-tag-default",
				"delete services istio-system/istiod-revision-tag-default",
				"delete validatingwebhookconfigurations istiod-default-validator",
			},
		},
		{
			name:    "absent tag is not an error",
			cluster: twoRevisions(),
			opts:    tag.RemoveOptions{Tag: "prod"},
		},
		{
			name:    "dry run writes nothing",
			cluster: twoRevisions().WithTag("prod", "1-24-0"),
			opts:    tag.RemoveOptions{Tag: "prod", Common: revkit.Common{DryRun: revkit.DryRunClient}},
		},
		{
			name:    "bad name",
			cluster: twoRevisions(),
			opts:    tag.RemoveOptions{Tag: "Prod"},
			wantErr: revkit.ErrInvalidInput,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kube := tt.cluster.Kube()
			kube.ClearActions()
			res, err := tag.Remove(ctx, kube, tt.opts)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.Empty(t, revkittest.Writes(kube))
				if errors.Is(err, revkit.ErrInUse) {
					var inUse *revkit.InUseError
					require.ErrorAs(t, err, &inUse)
					assert.NotEmpty(t, inUse.Usage.Namespaces)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.writes, revkittest.Writes(kube))
			assert.Equal(t, tt.users, res.Namespaces)
			if tt.opts.DryRun == revkit.DryRunClient {
				assert.True(t, res.Changed(), "dry run still reports what would go")
			}
		})
	}
}

func TestRemoveDeleteFailure(t *testing.T) {
	kube := twoRevisions().WithTag("prod", "1-24-0").Kube()
	revkittest.FailAlways(kube, "delete", "services", apierrors.NewInternalError(errors.New("boom")))
	res, err := tag.Remove(ctx, kube, tag.RemoveOptions{Tag: "prod"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "delete Service/istio-system/istiod-revision-tag-prod")
	require.NotNil(t, res)
	assert.Len(t, res.Changes, 1, "the webhook went before the failure")
}

func TestList(t *testing.T) {
	kube := twoRevisions().
		WithTag("prod-stable", "1-24-0").WithTag("prod-canary", "1-25-0").
		WithNamespace("a", revkittest.Rev("prod-stable")).
		WithNamespace("b", revkittest.Rev("prod-stable")).
		WithNamespace("c", revkittest.Rev("prod-canary")).
		WithNamespace("d", revkittest.Rev("1-24-0")).
		Kube()
	tags, err := tag.List(ctx, kube, tag.ListOptions{})
	require.NoError(t, err)
	assert.Equal(t, []tag.Tag{
		{Name: "prod-canary", Revision: "1-25-0", Webhook: "istio-revision-tag-prod-canary", Namespaces: []string{"c"}},
		{Name: "prod-stable", Revision: "1-24-0", Webhook: "istio-revision-tag-prod-stable", Namespaces: []string{"a", "b"}},
	}, tags)

	fk := fake.NewClientset()
	revkittest.FailAlways(fk, "list", "namespaces", apierrors.NewInternalError(errors.New("boom")))
	_, err = tag.List(ctx, fk, tag.ListOptions{})
	require.Error(t, err)
}

func TestSetEmitsEvents(t *testing.T) {
	kube := twoRevisions().Kube()
	var events []revkit.Event
	_, err := tag.Set(ctx, kube, tag.SetOptions{Tag: "prod", Revision: "1-24-0",
		Common: revkit.Common{OnEvent: func(e revkit.Event) { events = append(events, e) }}})
	require.NoError(t, err)
	require.Len(t, events, 2)
	assert.Equal(t, "tag.Set", events[0].Operation)
	assert.Equal(t, revkit.ActionCreate, events[0].Action)
	assert.Equal(t, "istio-revision-tag-prod", events[0].Object.Name)
}

var _ = ptr.To[int]

// A Set that fails part-way reports what it wrote before the failure, so
// that a caller (or a plan's rollback) can undo it.
func TestSetFailurePartWayKeepsChanges(t *testing.T) {
	kube := twoRevisions().Kube()
	boom := apierrors.NewInternalError(errors.New("etcd is gone"))
	kube.PrependReactor("create", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, boom
	})
	res, err := tag.Set(ctx, kube, tag.SetOptions{Tag: "prod-stable", Revision: "1-24-0"})
	require.Error(t, err)
	require.NotNil(t, res, "a failed Set still returns its result")
	var got []string
	for _, c := range res.Changes {
		got = append(got, string(c.Action)+" "+c.Object.Kind+" "+c.Object.Name)
	}
	require.Equal(t, []string{"create MutatingWebhookConfiguration istio-revision-tag-prod-stable"}, got,
		"the webhook created before the Service failed is in the result")
	var op *revkit.OpError
	require.ErrorAs(t, err, &op)
	assert.Equal(t, "Service", op.Object.Kind)
	assert.True(t, res.Changed(), "the result says the cluster changed")
	assert.Equal(t, "1-24-0", res.Revision)
}

// Refusals return a result too (with nothing changed), never nil.
func TestSetAndRemoveNeverReturnNil(t *testing.T) {
	kube := twoRevisions().WithTag("prod-stable", "1-24-0").WithNamespace("shop", revkittest.Rev("prod-stable")).Kube()
	for name, call := range map[string]func() (any, bool, error){
		"invalid tag": func() (any, bool, error) {
			r, err := tag.Set(ctx, kube, tag.SetOptions{Tag: "Bad_Tag", Revision: "1-24-0"})
			return r, r != nil && !r.Changed(), err
		},
		"unknown revision": func() (any, bool, error) {
			r, err := tag.Set(ctx, kube, tag.SetOptions{Tag: "x", Revision: "9-9-9"})
			return r, r != nil && !r.Changed(), err
		},
		"move without overwrite": func() (any, bool, error) {
			r, err := tag.Set(ctx, kube, tag.SetOptions{Tag: "prod-stable", Revision: "1-25-0"})
			return r, r != nil && !r.Changed() && r.Previous == "1-24-0", err
		},
		"remove in use": func() (any, bool, error) {
			r, err := tag.Remove(ctx, kube, tag.RemoveOptions{Tag: "prod-stable"})
			return r, r != nil && !r.Changed() && r.Revision == "1-24-0", err
		},
		"remove invalid": func() (any, bool, error) {
			r, err := tag.Remove(ctx, kube, tag.RemoveOptions{Tag: "Bad_Tag"})
			return r, r != nil && !r.Changed(), err
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, ok, err := call()
			require.Error(t, err)
			assert.True(t, ok, "want a non-nil result that changed nothing")
		})
	}
	assert.Empty(t, revkittest.Writes(kube))
}
