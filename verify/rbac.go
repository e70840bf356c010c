package verify

import (
	"slices"
	"sort"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RBAC turns permissions into the least-privilege roles that grant exactly
// them: a ClusterRole for cluster-scoped and all-namespace permissions and,
// when some are limited to one namespace, a Role there (all named name).
// A permission with ResourceNames becomes a rule with those resourceNames.
// The ClusterRole has no rules when every permission is namespaced. Bind
// them to the identity that runs the upgrade.
func RBAC(name string, perms []Permission) (*rbacv1.ClusterRole, []*rbacv1.Role) {
	cluster := &rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/part-of": "revkit"}},
	}
	byNS := map[string][]Permission{}
	for _, p := range perms {
		byNS[p.Namespace] = append(byNS[p.Namespace], p)
	}
	cluster.Rules = rules(byNS[""])
	var roles []*rbacv1.Role
	var nss []string
	for ns := range byNS {
		if ns != "" {
			nss = append(nss, ns)
		}
	}
	sort.Strings(nss)
	for _, ns := range nss {
		roles = append(roles, &rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app.kubernetes.io/part-of": "revkit"}},
			Rules:      rules(byNS[ns]),
		})
	}
	return cluster, roles
}

// rules groups permissions into one rule per group, resource and set of
// resource names (sorted), verbs in a fixed order, rules sorted by group,
// resource and names (a rule without names first).
func rules(perms []Permission) []rbacv1.PolicyRule {
	type key struct{ group, resource, names string }
	verbs := map[key]map[string]bool{}
	names := map[key][]string{}
	for _, p := range perms {
		ns := slices.Clone(p.ResourceNames)
		slices.Sort(ns)
		ns = slices.Compact(ns)
		k := key{p.Group, p.Resource, strings.Join(ns, "\x00")}
		if verbs[k] == nil {
			verbs[k] = map[string]bool{}
			names[k] = ns
		}
		verbs[k][p.Verb] = true
	}
	keys := make([]key, 0, len(verbs))
	for k := range verbs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.group != b.group {
			return a.group < b.group
		}
		if a.resource != b.resource {
			return a.resource < b.resource
		}
		return a.names < b.names
	})
	order := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	var out []rbacv1.PolicyRule
	for _, k := range keys {
		var vs []string
		for _, v := range order {
			if verbs[k][v] {
				vs = append(vs, v)
				delete(verbs[k], v)
			}
		}
		var rest []string
		for v := range verbs[k] {
			rest = append(rest, v)
		}
		sort.Strings(rest)
		rule := rbacv1.PolicyRule{APIGroups: []string{k.group}, Resources: []string{k.resource}, Verbs: append(vs, rest...)}
		if len(names[k]) > 0 {
			rule.ResourceNames = names[k]
		}
		out = append(out, rule)
	}
	return out
}
