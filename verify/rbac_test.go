package verify_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/revkit/revkit/verify"
)

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

// Permissions with names become rules with sorted, deduplicated
// resourceNames, one rule per set of names, after the unnamed rule of the
// same resource.
func TestRBACResourceNames(t *testing.T) {
	const g = "rbac.authorization.k8s.io"
	cr, roles := verify.RBAC("x", []verify.Permission{
		{Verb: "delete", Group: g, Resource: "clusterroles", ResourceNames: []string{"b", "a"}},
		{Verb: "list", Group: g, Resource: "clusterroles"},
		{Verb: "get", Group: g, Resource: "clusterroles", ResourceNames: []string{"a", "b", "a"}},
		{Verb: "escalate", Group: g, Resource: "clusterroles", ResourceNames: []string{"c"}},
		{Verb: "update", Resource: "secrets", Namespace: "istio-system", ResourceNames: []string{"s.v1"}},
	})
	assert.Equal(t, []rbacv1.PolicyRule{
		{APIGroups: []string{g}, Resources: []string{"clusterroles"}, Verbs: []string{"list"}},
		{APIGroups: []string{g}, Resources: []string{"clusterroles"}, Verbs: []string{"get", "delete"}, ResourceNames: []string{"a", "b"}},
		{APIGroups: []string{g}, Resources: []string{"clusterroles"}, Verbs: []string{"escalate"}, ResourceNames: []string{"c"}},
	}, cr.Rules)
	require.Len(t, roles, 1)
	assert.Equal(t, []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"update"}, ResourceNames: []string{"s.v1"}},
	}, roles[0].Rules)
}
