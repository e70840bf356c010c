package verify_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/verify"
)

// Each Validate refuses what its call would refuse, with a typed error
// naming the field, and accepts the zero or minimal options.
func TestValidate(t *testing.T) {
	src := verify.StaticSource{Rev: "1-30-0", JSON: []byte(`[{"proxy":"web-1.shop","istio_version":"1.29.2"}]`)}
	for _, tc := range []struct {
		name  string
		check func() error
		field string // "" when valid
	}{
		{"pods: zero", (&verify.PodsOptions{}).Validate, ""},
		{"pods: bad selector", (&verify.PodsOptions{Selector: "a=(b"}).Validate, "Selector"},
		{"pods: bad namespace", (&verify.PodsOptions{Namespaces: []string{"Shop"}}).Validate, "Namespaces"},
		{"proxies: a source", (&verify.ProxiesOptions{Sources: []verify.SyncSource{src}}).Validate, ""},
		{"proxies: no source", (&verify.ProxiesOptions{}).Validate, "Sources"},
		{"proxies: nil source", (&verify.ProxiesOptions{Sources: []verify.SyncSource{nil}}).Validate, "Sources[0]"},
		{"webhooks: zero", (&verify.WebhooksOptions{}).Validate, ""},
		{"webhooks: bad namespace", (&verify.WebhooksOptions{ControlPlaneNamespace: "Istio System"}).Validate, "ControlPlaneNamespace"},
		{"proxy skew: no source", (&verify.ProxySkewOptions{Skew: verify.SkewOptions{Istio: "1.30.0", Kubernetes: "v1.33.0"}}).Validate, "Sources"},
		{"proxy skew: no Istio version", (&verify.ProxySkewOptions{Sources: []verify.SyncSource{src}}).Validate, "Istio"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.check()
			if tc.field == "" {
				assert.NoError(t, err)
				return
			}
			var inv *revkit.InvalidInputError
			require.ErrorAs(t, err, &inv)
			assert.Equal(t, tc.field, inv.Field)
		})
	}
	assert.Equal(t, "1-30-0", verify.RevisionSource{Rev: "1-30-0"}.Revision())
}

// ProxySkew reads the sources and checks the proxies they report.
func TestProxySkew(t *testing.T) {
	ctx := context.Background()
	far := verify.StaticSource{Rev: "1-30-0", JSON: []byte(`[{"proxy":"web-1.shop","istio_version":"1.28.0"},{"proxy":"web-2.shop","istio_version":"1.30.0"}]`)}
	rep, err := verify.ProxySkew(ctx, nil, verify.ProxySkewOptions{
		Skew: verify.SkewOptions{Istio: "1.30.0", Kubernetes: "v1.33.0"}, Sources: []verify.SyncSource{far}})
	require.NoError(t, err)
	require.Len(t, rep.Problems, 1)
	assert.Equal(t, "web-1.shop", rep.Problems[0].Object)

	_, err = verify.ProxySkew(ctx, nil, verify.ProxySkewOptions{Skew: verify.SkewOptions{Istio: "1.30.0", Kubernetes: "v1.33.0"},
		Sources: []verify.SyncSource{verify.StaticSource{Rev: "1-30-0", JSON: []byte(`{}`)}}})
	assert.ErrorIs(t, err, verify.ErrMalformedSyncz)
}
