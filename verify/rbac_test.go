package verify_test

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/revkit/revkit/verify"
)

var update = flag.Bool("update", false, "rewrite docs/rbac.yaml")

// docs/rbac.yaml is RBAC(DefaultPermissions) as shipped; the test keeps the
// two in step (go test ./verify -run TestRBACDoc -update rewrites it).
func TestRBACDoc(t *testing.T) {
	cr, roles := verify.RBAC("revkit-upgrader", append(verify.DefaultPermissions(""), verify.JournalPermissions("")...))
	var buf bytes.Buffer
	buf.WriteString("# The least-privilege roles of revkit's canary plan (all but a Helm install)\n" +
		"# run with a journal and RecordState, generated from verify.DefaultPermissions\n" +
		"# and verify.JournalPermissions by verify.RBAC; bind both to the identity that\n" +
		"# runs the upgrade. Regenerate: go test ./verify -run TestRBACDoc -update\n")
	for _, o := range append([]any{cr}, anySlice(roles)...) {
		b, err := yaml.Marshal(o)
		require.NoError(t, err)
		buf.WriteString("---\n")
		buf.Write(b)
	}
	const path = "../docs/rbac.yaml"
	if *update {
		require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	}
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, buf.String(), string(got), "docs/rbac.yaml is stale: go test ./verify -run TestRBACDoc -update")
}

func anySlice[T any](in []T) []any {
	out := make([]any, len(in))
	for i := range in {
		out[i] = in[i]
	}
	return out
}

func TestRBACRules(t *testing.T) {
	cr, roles := verify.RBAC("x", []verify.Permission{
		{Verb: "patch", Resource: "namespaces"}, {Verb: "get", Resource: "namespaces"},
		{Verb: "delete", Group: "apps", Resource: "deployments", Namespace: "istio-system"},
		{Verb: "escalate", Group: "rbac.authorization.k8s.io", Resource: "clusterroles"},
	})
	require.Len(t, cr.Rules, 2)
	assert.Equal(t, []string{"get", "patch"}, cr.Rules[0].Verbs)
	assert.Equal(t, []string{"escalate"}, cr.Rules[1].Verbs)
	require.Len(t, roles, 1)
	assert.Equal(t, "istio-system", roles[0].Namespace)
	assert.Equal(t, []string{"apps"}, roles[0].Rules[0].APIGroups)
}
