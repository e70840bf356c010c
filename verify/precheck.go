package verify

import (
	"context"
	"fmt"
	"slices"
	"strings"

	authv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/api/validation/path"
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
	// ResourceNames, when set, limits the permission to these objects (a
	// rule's resourceNames); Precheck asks once per name.
	//
	// Kubernetes matches names only on requests that name an object: get,
	// update, patch, delete, and the RBAC verbs bind and escalate. A plain
	// create (POST), list, watch or deletecollection names none, so a rule
	// with names never grants them. The exception is a create made by a
	// server-side apply, a PATCH to the object's name, which the apiserver
	// authorizes as "create" of that name; Helm 4, and so revision.Install,
	// creates objects that way, which is what lets InstallPermissions name
	// what it creates.
	ResourceNames []string `json:",omitempty"`
}

// String reads like kubectl auth can-i: "patch deployments.apps in
// istio-system", "delete clusterroles.rbac.authorization.k8s.io named a, b".
func (p Permission) String() string {
	res := p.Resource
	if p.Group != "" {
		res += "." + p.Group
	}
	s := p.Verb + " " + res
	if len(p.ResourceNames) > 0 {
		s += " named " + strings.Join(p.ResourceNames, ", ")
	}
	if p.Namespace != "" {
		s += " in " + p.Namespace
	}
	return s
}

// DefaultPermissions lists what the standard canary plan needs but for
// installing and uninstalling revisions: reading and labelling namespaces,
// restarting workloads and waiting for them, reading pods, managing the
// webhook configurations (revision tags are webhooks), and managing the
// control plane's Services, Deployments and ConfigMaps in
// controlPlaneNamespace ("" means istio-system). A plan that removes the
// old revision adds UninstallPermissions, one that installs the new one
// InstallPermissions. RBAC turns the list into a ClusterRole and a Role.
func DefaultPermissions(controlPlaneNamespace string) []Permission {
	cp := revkit.ControlPlaneNamespace(controlPlaneNamespace)
	var l permList
	l.add("", "namespaces", "", nil, "get", "list", "patch")
	l.add("apps", "deployments", "", nil, "get", "list", "patch")
	l.add("apps", "statefulsets", "", nil, "list", "patch")
	l.add("apps", "daemonsets", "", nil, "list", "patch")
	l.add("", "pods", "", nil, "list")
	crud := []string{"get", "list", "create", "update", "delete"}
	l.add(admissionGroup, "mutatingwebhookconfigurations", "", nil, crud...)
	l.add(admissionGroup, "validatingwebhookconfigurations", "", nil, crud...)
	l.add("", "services", cp, nil, crud...)
	l.add("apps", "deployments", cp, nil, crud...)
	l.add("", "configmaps", cp, nil, crud...)
	return l
}

// UninstallPermissions lists what removing revision rev from
// controlPlaneNamespace ("" means istio-system) with revision.Uninstall
// adds to DefaultPermissions: getting, listing and deleting the revision's
// HorizontalPodAutoscaler, PodDisruptionBudget, ServiceAccount, Role and
// RoleBinding there, and its ClusterRoles and ClusterRoleBindings — delete
// (and get, which Helm uses to check that an object is its release's
// before deleting it) limited to the names Istio's istiod chart gives them
// (ClusterRoleNames), so the grant cannot delete another revision's or
// anyone else's. Listing cannot be limited to names: Uninstall finds the
// objects by label. A cluster-scoped RBAC object labelled with the revision
// under another name (from another chart or installer) makes Uninstall
// fail with Forbidden rather than delete it.
//
// Uninstalling a revision that has a Helm release (UninstallOptions.Helm)
// adds HelmUninstallPermissions.
func UninstallPermissions(rev, controlPlaneNamespace string) []Permission {
	cp := revkit.ControlPlaneNamespace(controlPlaneNamespace)
	var l permList
	l.add("autoscaling", "horizontalpodautoscalers", cp, nil, "get", "list", "delete")
	l.add("policy", "poddisruptionbudgets", cp, nil, "get", "list", "delete")
	l.add("", "serviceaccounts", cp, nil, "get", "list", "delete")
	l.add(rbacGroup, "roles", cp, nil, "get", "list", "delete")
	l.add(rbacGroup, "rolebindings", cp, nil, "get", "list", "delete")
	own := ClusterRoleNames(rev, cp)
	for _, res := range []string{"clusterroles", "clusterrolebindings"} {
		l.add(rbacGroup, res, "", nil, "list")
		l.add(rbacGroup, res, "", own, "get", "delete")
	}
	return l
}

// HelmUninstallPermissions lists what uninstalling a revision's Helm
// release (revision.UninstallOptions.Helm) adds to UninstallPermissions:
// reading, updating and deleting the release's records, Secrets in the
// namespace Helm keeps them in (helm.New's; "" means istio-system).
// Kubernetes cannot limit these to the release's records: their names carry
// the release version (sh.helm.release.v1.<release>.v<version>), unknown
// until the uninstall reads them. The grant therefore reaches every Secret
// of that namespace, istiod's CA among them in istio-system — keep Helm's
// records in a namespace of their own to keep it narrow.
func HelmUninstallPermissions(namespace string) []Permission {
	var l permList
	l.add("", "secrets", revkit.ControlPlaneNamespace(namespace), nil, "get", "list", "update", "delete")
	return l
}

// InstallPermissions lists what installing revision rev into
// controlPlaneNamespace ("" means istio-system) with revision.Install
// (Helm, Istio's istiod chart with its default values) adds to
// DefaultPermissions.
//
// Helm gets each object of the chart (to refuse one that exists) and creates
// it by a server-side apply, a PATCH that the apiserver authorizes as patch
// and create of that object's name, so every grant for them is limited to
// the names the chart gives the revision's objects (istiod-<rev>, the
// ConfigMaps istio-<rev>, istio-sidecar-injector-<rev> and values-<rev>,
// the webhooks, ClusterRoleNames): the installer cannot create or change a
// ClusterRole other than the revision's.
//
// Creating istiod's Role and ClusterRoles, whose rules go beyond the
// installer's, needs escalate on them, and binding them needs bind, both
// limited to the same names. Note what that means: escalate on a named
// role lets its holder write any rule into that role, and bind lets it bind
// the role to anyone, so an identity allowed to install a revision can
// grant itself anything through the revision's ClusterRoles. Treat the
// install grant as cluster-admin in effect: bind it only to the identity
// that upgrades the control plane, and only while it does. The alternative
// Kubernetes offers is to hold every rule of istiod's roles instead of
// escalate.
//
// Helm keeps its release record as a Secret in the control-plane namespace
// (helm.New): listing Secrets there (Helm finds releases by label)
// and creating one cannot be limited to names; updating it, to version 1 of
// the release, can.
//
// InstallOptions.Wait adds InstallWaitPermissions. Values that make the
// chart render more objects (a PodDisruptionBudget with more than one
// replica, gateway classes, a NetworkPolicy, a ValidatingAdmissionPolicy,
// revision tags) and InstallOptions.Base or Upgrade need more than this.
func InstallPermissions(rev, controlPlaneNamespace string) []Permission {
	cp := revkit.ControlPlaneNamespace(controlPlaneNamespace)
	n := installNames(rev, cp)
	var l permList
	apply := []string{"get", "create", "patch"}
	for _, res := range []string{"clusterroles", "clusterrolebindings"} {
		l.add(rbacGroup, res, "", n.ClusterRoles, apply...)
	}
	l.add(rbacGroup, "clusterroles", "", n.ClusterRoles, "bind", "escalate")
	l.add(admissionGroup, "mutatingwebhookconfigurations", "", []string{n.Injector}, "patch")
	l.add(admissionGroup, "validatingwebhookconfigurations", "", []string{n.Validator}, "patch")
	l.add("apps", "deployments", cp, []string{n.Istiod}, "patch")
	l.add("", "services", cp, []string{n.Istiod}, "patch")
	l.add("", "configmaps", cp, n.ConfigMaps, "patch")
	l.add("", "serviceaccounts", cp, []string{n.Istiod}, apply...)
	l.add("autoscaling", "horizontalpodautoscalers", cp, []string{n.Istiod}, apply...)
	l.add(rbacGroup, "roles", cp, []string{n.Istiod}, apply...)
	l.add(rbacGroup, "roles", cp, []string{n.Istiod}, "bind", "escalate")
	l.add(rbacGroup, "rolebindings", cp, []string{n.Istiod}, apply...)
	l.add("", "secrets", cp, nil, "list", "create")
	l.add("", "secrets", cp, []string{n.Release + ".v1"}, "update")
	return l
}

// InstallWaitPermissions lists what revision.Install with Wait adds to
// InstallPermissions: Helm watches the release's objects until they are
// ready, listing and watching each kind of the istiod chart — in
// controlPlaneNamespace ("" means istio-system) for the namespaced ones,
// across the cluster for ClusterRoles, ClusterRoleBindings and webhook
// configurations — and its Deployment's ReplicaSets. Kubernetes cannot
// limit a list or watch without a name field selector to names, and Helm
// uses none.
func InstallWaitPermissions(controlPlaneNamespace string) []Permission {
	cp := revkit.ControlPlaneNamespace(controlPlaneNamespace)
	var l permList
	for _, r := range []struct{ group, resource string }{{rbacGroup, "clusterroles"}, {rbacGroup, "clusterrolebindings"},
		{admissionGroup, "mutatingwebhookconfigurations"}, {admissionGroup, "validatingwebhookconfigurations"}} {
		l.add(r.group, r.resource, "", nil, "list", "watch")
	}
	for _, r := range []struct{ group, resource string }{{"apps", "deployments"}, {"", "services"}, {"", "configmaps"},
		{"", "serviceaccounts"}, {"autoscaling", "horizontalpodautoscalers"}, {rbacGroup, "roles"}, {rbacGroup, "rolebindings"}} {
		l.add(r.group, r.resource, cp, nil, "list", "watch")
	}
	// A Deployment is ready when its ReplicaSets' pods are (pods: list in
	// DefaultPermissions).
	l.add("apps", "replicasets", cp, nil, "list")
	return l
}

// chartNames are the names Istio's istiod chart (istio-discovery) gives a
// revision's objects with its default values.
type chartNames struct {
	// Istiod names the Deployment, Service, ServiceAccount,
	// HorizontalPodAutoscaler, Role and RoleBinding: istiod-<rev>.
	Istiod string
	// ConfigMaps: istio-<rev>, istio-sidecar-injector-<rev>, values-<rev>.
	ConfigMaps []string
	// ClusterRoles names the ClusterRoles and their ClusterRoleBindings
	// (ClusterRoleNames).
	ClusterRoles []string
	// Injector is the MutatingWebhookConfiguration,
	// istio-sidecar-injector-<rev> (with -<namespace> outside istio-system);
	// Validator the ValidatingWebhookConfiguration,
	// istio-validator-<rev>-<namespace>.
	Injector, Validator string
	// Release is the prefix of the Helm release's records,
	// sh.helm.release.v1.istiod-<rev>; ".v<version>" ends each.
	Release string
}

// installNames returns the names the istiod chart gives revision rev's
// objects in controlPlaneNamespace ("" means istio-system).
func installNames(rev, controlPlaneNamespace string) chartNames {
	cp := revkit.ControlPlaneNamespace(controlPlaneNamespace)
	injector := "istio-sidecar-injector-" + rev
	if cp != "istio-system" { // the chart's own test
		injector += "-" + cp
	}
	return chartNames{
		Istiod:       "istiod-" + rev,
		ConfigMaps:   []string{"istio-" + rev, "istio-sidecar-injector-" + rev, "values-" + rev},
		ClusterRoles: ClusterRoleNames(rev, cp),
		Injector:     injector,
		Validator:    "istio-validator-" + rev + "-" + cp,
		Release:      "sh.helm.release.v1.istiod-" + rev,
	}
}

// ClusterRoleNames are the names of revision rev's ClusterRoles, and of
// the ClusterRoleBindings that bind them, as the istiod chart installs
// them into controlPlaneNamespace ("" means istio-system):
// istiod-clusterrole-<rev>-<ns>, istiod-gateway-controller-<rev>-<ns> and
// istio-reader-clusterrole-<rev>-<ns>.
func ClusterRoleNames(rev, controlPlaneNamespace string) []string {
	return mesh.ClusterRoleNames(rev, revkit.ControlPlaneNamespace(controlPlaneNamespace))
}

const (
	rbacGroup      = "rbac.authorization.k8s.io"
	admissionGroup = "admissionregistration.k8s.io"
)

// permList builds a permission list: one Permission per verb.
type permList []Permission

func (l *permList) add(group, resource, ns string, names []string, verbs ...string) {
	for _, v := range verbs {
		*l = append(*l, Permission{Verb: v, Group: group, Resource: resource, Namespace: ns, ResourceNames: slices.Clone(names)})
	}
}

// JournalPermissions lists what a plan's journal (upgrade.Journal) needs in
// the namespace that holds it ("" means istio-system): its ConfigMaps (the
// progress and any recorded state) and the Lease every journaled plan of a
// control plane holds while it runs.
func JournalPermissions(namespace string) []Permission {
	ns := revkit.ControlPlaneNamespace(namespace)
	var l permList
	l.add("", "configmaps", ns, nil, "get", "create", "update")
	l.add("coordination.k8s.io", "leases", ns, nil, "get", "create", "update", "delete")
	return l
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
	var l permList
	for _, ns := range namespaces {
		l.add("apps", "deployments", ns, nil, "create", "update", "delete")
	}
	return l
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
	// Skew, when set, also checks versions against Istio's support policy
	// (CheckSkew): the server's Kubernetes version against the Istio
	// version being installed, and the upgrade's jump. Its Kubernetes is
	// filled from the server.
	Skew *SkewOptions
}

// PrecheckReport is the result of Precheck.
type PrecheckReport struct {
	// ServerVersion is the server's git version, e.g. "v1.31.2".
	ServerVersion        string
	MinKubernetesVersion string
	// VersionOK reports whether ServerVersion is at least
	// MinKubernetesVersion.
	VersionOK bool
	// Checked is the number of access reviews made (one per permission,
	// or per resource name of one that has names); Missing lists what is
	// denied, a permission with names narrowed to the denied ones.
	Checked int
	Missing []Permission
	// Revisions are the control-plane revisions installed now.
	Revisions []string
	// Skew is the version-skew check's report when PrecheckOptions.Skew
	// was set.
	Skew *SkewReport
}

// OK reports whether the server is recent enough and every permission is
// granted.
func (r *PrecheckReport) OK() bool {
	return r.VersionOK && len(r.Missing) == 0 && (r.Skew == nil || r.Skew.OK())
}

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
	if r.Skew != nil {
		problems = append(problems, r.Skew.Problems...)
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
	if o.Skew != nil {
		if err := o.Skew.Validate(); err != nil {
			return nil, err
		}
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
		for j, name := range p.ResourceNames {
			if reasons := path.IsValidPathSegmentName(name); name == "" || len(reasons) > 0 {
				if name == "" {
					reasons = []string{"must not be empty"}
				}
				return nil, &revkit.InvalidInputError{Field: fmt.Sprintf("Permissions[%d].ResourceNames[%d]", i, j), Value: name,
					Reason: strings.Join(reasons, "; ")}
			}
		}
	}
	return minVer, validateControlPlaneNamespace(o.ControlPlaneNamespace)
}

// Precheck checks that the cluster is ready for a canary upgrade: the
// server version, the caller's permissions (one SelfSubjectAccessReview
// each, or each of its ResourceNames) and the revisions installed now.
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
	if opts.Skew != nil {
		so := *opts.Skew
		so.Kubernetes = info.GitVersion
		if report.Skew, err = CheckSkew(ctx, kube, so); err != nil {
			return nil, err
		}
	}

	perms := opts.Permissions
	if len(perms) == 0 {
		perms = DefaultPermissions(opts.ControlPlaneNamespace)
	}
	for _, p := range perms {
		missing, checked, err := check(ctx, kube, p)
		if err != nil {
			return nil, err
		}
		report.Checked += checked
		if missing != nil {
			report.Missing = append(report.Missing, *missing)
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

// check asks whether p is granted, once per resource name if it has any,
// and returns what is denied (p narrowed to the denied names) and the
// number of reviews made.
func check(ctx context.Context, kube kubernetes.Interface, p Permission) (*Permission, int, error) {
	if len(p.ResourceNames) == 0 {
		allowed, err := canI(ctx, kube, p, "")
		if err != nil || allowed {
			return nil, 1, err
		}
		return &p, 1, nil
	}
	var denied []string
	for _, name := range p.ResourceNames {
		allowed, err := canI(ctx, kube, p, name)
		if err != nil {
			return nil, 0, err
		}
		if !allowed {
			denied = append(denied, name)
		}
	}
	asked := len(p.ResourceNames)
	if len(denied) == 0 {
		return nil, asked, nil
	}
	p.ResourceNames = denied
	return &p, asked, nil
}

func canI(ctx context.Context, kube kubernetes.Interface, p Permission, name string) (bool, error) {
	review := &authv1.SelfSubjectAccessReview{
		Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
			Verb: p.Verb, Group: p.Group, Resource: p.Resource, Namespace: p.Namespace, Name: name,
		}},
	}
	res, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
	if err != nil {
		asked := p
		if name != "" {
			asked.ResourceNames = []string{name}
		}
		return false, &revkit.OpError{Op: opPrecheck, Verb: "create",
			Object: revkit.ObjectRef{Kind: "SelfSubjectAccessReview", Name: asked.String()}, Err: err}
	}
	return res.Status.Allowed, nil
}

// AgentUpgradePermissions lists what ambient.Upgrade of a node agent
// (istio-cni, ztunnel) in controlPlaneNamespace ("" means istio-system) adds
// to DefaultPermissions: reading the DaemonSet, its ControllerRevisions and
// the istiod Deployments, Helm's release records, the upgrade of the
// release's objects (a server-side apply: patch), and for a node-by-node
// roll deleting the agent's pods, cordoning nodes (patch) and, with drain,
// evicting pods anywhere.
func AgentUpgradePermissions(controlPlaneNamespace string, nodeByNode, drain bool) []Permission {
	cp := revkit.ControlPlaneNamespace(controlPlaneNamespace)
	var l permList
	l.add("apps", "daemonsets", cp, nil, "list", "get", "patch")
	l.add("apps", "controllerrevisions", cp, nil, "list")
	l.add("apps", "deployments", cp, nil, "list")
	l.add("", "secrets", cp, nil, "list", "get", "create", "update")
	for _, r := range []struct{ group, resource string }{{"", "serviceaccounts"}, {"", "configmaps"},
		{rbacGroup, "clusterroles"}, {rbacGroup, "clusterrolebindings"}} {
		ns := cp
		if r.group == rbacGroup {
			ns = ""
		}
		l.add(r.group, r.resource, ns, nil, "get", "patch")
	}
	if nodeByNode {
		l.add("", "pods", cp, nil, "delete")
		l.add("", "nodes", "", nil, "get", "patch")
	}
	if drain {
		l.add("", "pods", "", nil, "list")
		l.add("", "pods/eviction", "", nil, "create")
		l.add("", "namespaces", "", nil, "get")
	}
	return l
}

// GatewayReleasePermissions lists what moving a gateway installed by Helm
// through its own release in namespace (gateway.UpgradeRelease, and with
// canary the canary release's install and uninstall) adds to
// DefaultPermissions: Helm's release records, a server-side apply of the
// chart's objects, and reading the gateway, its Services and its pods.
func GatewayReleasePermissions(namespace string, canary bool) []Permission {
	var l permList
	l.add("", "secrets", namespace, nil, "list", "get", "create", "update")
	l.add("apps", "deployments", namespace, nil, "list", "get", "patch")
	l.add("apps", "replicasets", namespace, nil, "list")
	l.add("", "pods", namespace, nil, "list")
	l.add("", "services", namespace, nil, "list", "get", "patch")
	for _, r := range []struct{ group, resource string }{{"", "serviceaccounts"}, {rbacGroup, "roles"}, {rbacGroup, "rolebindings"},
		{"autoscaling", "horizontalpodautoscalers"}, {"policy", "poddisruptionbudgets"}} {
		l.add(r.group, r.resource, namespace, nil, "get", "patch")
	}
	if canary {
		l.add("", "secrets", namespace, nil, "delete")
		for _, r := range []struct{ group, resource string }{{"apps", "deployments"}, {"", "serviceaccounts"}, {rbacGroup, "roles"},
			{rbacGroup, "rolebindings"}, {"autoscaling", "horizontalpodautoscalers"}, {"policy", "poddisruptionbudgets"}} {
			l.add(r.group, r.resource, namespace, nil, "create", "delete")
		}
	}
	return l
}
