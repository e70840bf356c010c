package verify

import (
	"context"
	"fmt"
	"strings"

	authv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/mesh"
)

const opPrecheck = "verify.Precheck"

// DefaultMinKubernetesVersion is the oldest Kubernetes Precheck accepts
// when PrecheckOptions.MinKubernetesVersion is empty.
const DefaultMinKubernetesVersion = "1.29"

// Permission is one access the canary workflow needs.
type Permission struct {
	Verb string
	// Group is the API group, "" for the core group.
	Group    string
	Resource string
	// Namespace is "" for cluster-scoped resources and for namespaced ones
	// across all namespaces.
	Namespace string
}

// String reads like kubectl auth can-i: "patch deployments.apps in istio-system".
func (p Permission) String() string {
	res := p.Resource
	if p.Group != "" {
		res += "." + p.Group
	}
	if p.Namespace != "" {
		return p.Verb + " " + res + " in " + p.Namespace
	}
	return p.Verb + " " + res
}

// DefaultPermissions lists what the standard canary plan needs (all but a
// Helm install, which needs whatever the chart creates): reading and
// labelling namespaces, restarting workloads and waiting for them, reading
// pods, managing the webhook configurations, managing the control plane's
// Services, Deployments and ConfigMaps in controlPlaneNamespace ("" means
// istio-system), and deleting the rest of a revision's objects on
// uninstall. RBAC turns the list into a ClusterRole and a Role.
func DefaultPermissions(controlPlaneNamespace string) []Permission {
	cp := revkit.ControlPlaneNamespace(controlPlaneNamespace)
	var out []Permission
	add := func(group, resource, ns string, verbs ...string) {
		for _, v := range verbs {
			out = append(out, Permission{Verb: v, Group: group, Resource: resource, Namespace: ns})
		}
	}
	add("", "namespaces", "", "get", "list", "patch")
	add("apps", "deployments", "", "get", "list", "patch")
	add("apps", "statefulsets", "", "list", "patch")
	add("apps", "daemonsets", "", "list", "patch")
	add("", "pods", "", "list")
	crud := []string{"get", "list", "create", "update", "delete"}
	add("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", crud...)
	add("admissionregistration.k8s.io", "validatingwebhookconfigurations", "", crud...)
	add("", "services", cp, crud...)
	add("apps", "deployments", cp, crud...)
	add("", "configmaps", cp, crud...)
	// What revision.Uninstall deletes besides the above.
	add("autoscaling", "horizontalpodautoscalers", cp, "list", "delete")
	add("policy", "poddisruptionbudgets", cp, "list", "delete")
	add("", "serviceaccounts", cp, "list", "delete")
	add("rbac.authorization.k8s.io", "roles", cp, "list", "delete")
	add("rbac.authorization.k8s.io", "rolebindings", cp, "list", "delete")
	add("rbac.authorization.k8s.io", "clusterroles", "", "list", "delete")
	add("rbac.authorization.k8s.io", "clusterrolebindings", "", "list", "delete")
	return out
}

// JournalPermissions lists what a plan's journal (upgrade.Journal) needs in
// the namespace that holds it ("" means istio-system): its ConfigMaps (the
// progress and any recorded state) and the Lease every journaled plan of a
// control plane holds while it runs.
func JournalPermissions(namespace string) []Permission {
	ns := revkit.ControlPlaneNamespace(namespace)
	var out []Permission
	for _, v := range []string{"get", "create", "update"} {
		out = append(out, Permission{Verb: v, Resource: "configmaps", Namespace: ns})
	}
	for _, v := range []string{"get", "create", "update", "delete"} {
		out = append(out, Permission{Verb: v, Group: "coordination.k8s.io", Resource: "leases", Namespace: ns})
	}
	return out
}

// GatewayCanaryPermissions lists what moving gateways as canaries adds
// (upgrade.CanaryOptions.Gateways "canary"; gateway.Move with Mode Canary,
// gateway.RemoveCanaries): creating, updating and deleting Deployments in
// the gateways' namespaces — across the cluster when namespaces is empty, so
// name them to keep the grant narrow.
func GatewayCanaryPermissions(namespaces []string) []Permission {
	if len(namespaces) == 0 {
		namespaces = []string{""}
	}
	var out []Permission
	for _, ns := range namespaces {
		for _, v := range []string{"create", "update", "delete"} {
			out = append(out, Permission{Verb: v, Group: "apps", Resource: "deployments", Namespace: ns})
		}
	}
	return out
}

// PrecheckOptions configures Precheck; the zero value checks Kubernetes
// 1.29 or later, DefaultPermissions and a control plane in istio-system.
type PrecheckOptions struct {
	// MinKubernetesVersion is the oldest acceptable server version, e.g.
	// "1.29"; empty means DefaultMinKubernetesVersion.
	MinKubernetesVersion string
	// Permissions to check; empty means DefaultPermissions.
	Permissions []Permission
	// ControlPlaneNamespace is where istiod runs; empty means istio-system.
	ControlPlaneNamespace string
}

// PrecheckReport is the result of Precheck.
type PrecheckReport struct {
	// ServerVersion is the server's git version, e.g. "v1.31.2".
	ServerVersion        string
	MinKubernetesVersion string
	// VersionOK reports whether ServerVersion is at least
	// MinKubernetesVersion.
	VersionOK bool
	// Checked is the number of permissions checked, Missing those denied.
	Checked int
	Missing []Permission
	// Revisions are the control-plane revisions installed now.
	Revisions []string
}

// OK reports whether the server is recent enough and every permission is
// granted.
func (r *PrecheckReport) OK() bool { return r.VersionOK && len(r.Missing) == 0 }

// Err returns a *VerificationError listing what is wrong, or nil when OK.
func (r *PrecheckReport) Err() error {
	var problems []Problem
	if !r.VersionOK {
		problems = append(problems, Problem{Kind: ProblemVersion, Object: "kubernetes",
			Detail: fmt.Sprintf("server version %s is older than %s", r.ServerVersion, r.MinKubernetesVersion)})
	}
	var causes []error
	for _, p := range r.Missing {
		problems = append(problems, Problem{Kind: ProblemPermission, Detail: "cannot " + p.String()})
		causes = append(causes, &revkit.ForbiddenError{Verb: p.Verb, Group: p.Group, Resource: p.Resource, Namespace: p.Namespace})
	}
	return verificationErr(opPrecheck, problems, causes...)
}

func (o *PrecheckOptions) validate() (*version.Version, error) {
	minText := o.MinKubernetesVersion
	if minText == "" {
		minText = DefaultMinKubernetesVersion
	}
	minVer, err := version.ParseGeneric(minText)
	if err != nil {
		return nil, &revkit.InvalidInputError{Field: "MinKubernetesVersion", Value: minText, Reason: err.Error()}
	}
	for i, p := range o.Permissions {
		if p.Verb == "" || p.Resource == "" {
			return nil, &revkit.InvalidInputError{Field: fmt.Sprintf("Permissions[%d]", i), Value: p.String(),
				Reason: "verb and resource must be set"}
		}
		if p.Namespace != "" {
			if err := validateNamespaceName(fmt.Sprintf("Permissions[%d].Namespace", i), p.Namespace); err != nil {
				return nil, err
			}
		}
	}
	return minVer, validateControlPlaneNamespace(o.ControlPlaneNamespace)
}

// Precheck checks that the cluster is ready for a canary upgrade: the
// server version, the caller's permissions (one SelfSubjectAccessReview
// each) and the revisions installed now.
//
// Bad options return a *revkit.InvalidInputError before any request; failed
// API calls are wrapped with what was being done and keep their status.
// Findings are not an error: check OK or Err.
func Precheck(ctx context.Context, kube kubernetes.Interface, opts PrecheckOptions) (*PrecheckReport, error) {
	minVer, err := opts.validate()
	if err != nil {
		return nil, err
	}
	report := &PrecheckReport{MinKubernetesVersion: minVer.String()}

	info, err := discovery.ToServerVersionInterfaceWithContext(kube.Discovery()).ServerVersionWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: get server version: %w", opPrecheck, err)
	}
	report.ServerVersion = info.GitVersion
	if v, ok := serverVersion(info.GitVersion, info.Major, info.Minor); ok {
		report.VersionOK = v.AtLeast(minVer)
	}

	perms := opts.Permissions
	if len(perms) == 0 {
		perms = DefaultPermissions(opts.ControlPlaneNamespace)
	}
	for _, p := range perms {
		allowed, err := canI(ctx, kube, p)
		if err != nil {
			return nil, err
		}
		report.Checked++
		if !allowed {
			report.Missing = append(report.Missing, p)
		}
	}

	cpNS := revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace)
	model, err := mesh.Load(ctx, kube, cpNS)
	if err != nil {
		return nil, fmt.Errorf("%s: read the control plane in %s: %w", opPrecheck, cpNS, err)
	}
	if revs := model.Revisions(); len(revs) > 0 {
		report.Revisions = revs
	}
	return report, nil
}

// serverVersion reads the git version, or failing that the major and minor
// fields, which some distributions fill with a trailing "+".
func serverVersion(git, major, minor string) (*version.Version, bool) {
	if v, err := version.ParseGeneric(git); err == nil {
		return v, true
	}
	minor = strings.TrimRight(minor, "+")
	if v, err := version.ParseGeneric(major + "." + minor); err == nil {
		return v, true
	}
	return nil, false
}

func canI(ctx context.Context, kube kubernetes.Interface, p Permission) (bool, error) {
	review := &authv1.SelfSubjectAccessReview{
		Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
			Verb: p.Verb, Group: p.Group, Resource: p.Resource, Namespace: p.Namespace,
		}},
	}
	res, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
	if err != nil {
		return false, &revkit.OpError{Op: opPrecheck, Verb: "create",
			Object: revkit.ObjectRef{Kind: "SelfSubjectAccessReview", Name: p.String()}, Err: err}
	}
	return res.Status.Allowed, nil
}
