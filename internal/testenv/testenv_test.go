package testenv_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/revkit/revkit/internal/testenv"
)

// Start must refuse to run in the host's network namespace, where the
// apiserver's webhook calls to 10.x would leave the machine.
func TestStartRefusesHostNetwork(t *testing.T) {
	self, err := testenv.NetNS("self")
	require.NoError(t, err)
	host, err := testenv.HostNetNS()
	require.NoError(t, err)
	if self != host {
		t.Logf("running inside network namespace %s (host %s)", self, host)
		require.NoError(t, testenv.CheckNetworkIsolated())
		return
	}
	env, err := testenv.Start(t, testenv.Options{BinDir: t.TempDir()})
	assert.Nil(t, env)
	var hostErr *testenv.HostNetworkError
	require.True(t, errors.As(err, &hostErr), "got %v", err)
	assert.Equal(t, host, hostErr.Self)
}

func TestInjectedRevision(t *testing.T) {
	for _, tc := range []struct {
		name   string
		annots map[string]string
		rev    string
		ok     bool
	}{
		{"not injected", nil, "", false},
		{"injected", map[string]string{"sidecar.istio.io/status": `{"initContainers":["istio-init"],"containers":["istio-proxy"],"revision":"1-31-0"}`}, "1-31-0", true},
		{"garbage", map[string]string{"sidecar.istio.io/status": `{`}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := podWith(tc.annots)
			rev, ok := testenv.InjectedRevision(pod)
			assert.Equal(t, tc.rev, rev)
			assert.Equal(t, tc.ok, ok)
		})
	}
}

func TestDecodeYAML(t *testing.T) {
	objs, err := testenv.DecodeYAML([]byte("---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n"))
	require.NoError(t, err)
	require.Len(t, objs, 2)
	assert.Equal(t, "ConfigMap", objs[0].GetKind())
	assert.Equal(t, "b", objs[1].GetName())
}
