package revision_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revision"
)

func TestRemoteValues(t *testing.T) {
	v, err := revision.RemoteValues(revision.RemoteOptions{InjectionURL: "https://10.0.0.9:15017/inject/cluster/east/net/n1",
		ValidationURL: "https://10.0.0.9:15017/validate", CABundle: []byte("PEM"), ClusterName: "east", Network: "n1"})
	require.NoError(t, err)
	assert.Equal(t, map[string]any{
		"profile":      "remote",
		"istiodRemote": map[string]any{"injectionURL": "https://10.0.0.9:15017/inject/cluster/east/net/n1", "injectionCABundle": "UEVN"},
		"base":         map[string]any{"validationURL": "https://10.0.0.9:15017/validate", "validationCABundle": "UEVN"},
		"global":       map[string]any{"multiCluster": map[string]any{"clusterName": "east"}, "network": "n1"},
	}, v)

	v, err = revision.RemoteValues(revision.RemoteOptions{RemotePilotAddress: "10.0.0.9"})
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"profile": "remote", "global": map[string]any{"remotePilotAddress": "10.0.0.9"}}, v)

	for name, o := range map[string]revision.RemoteOptions{
		"neither":          {},
		"both":             {RemotePilotAddress: "10.0.0.9", InjectionURL: "https://x/inject", CABundle: []byte("c")},
		"plain http":       {InjectionURL: "http://x/inject", CABundle: []byte("c")},
		"no CA for a URL":  {InjectionURL: "https://x/inject"},
		"bad validate URL": {InjectionURL: "https://x/inject", ValidationURL: "x", CABundle: []byte("c")},
	} {
		_, err := revision.RemoteValues(o)
		assert.ErrorIs(t, err, revkit.ErrInvalidInput, name)
	}
}
