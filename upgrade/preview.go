package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	k8stesting "k8s.io/client-go/testing"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/mesh"
	"github.com/revkit/revkit/internal/sim"
)

// PreviewOptions configures Preview.
type PreviewOptions struct {
	// Common's OnEvent and Logger receive the preview's events; its DryRun
	// is ignored: a preview never writes to the cluster.
	revkit.Common
	// ControlPlaneNamespace holds the webhooks' revisions, to tell which
	// revision would inject a restarted workload's pods; default
	// istio-system.
	ControlPlaneNamespace string
	// ServerDryRun sends each write the operations make to the copy to the
	// cluster too, as a server-side dry run (dryRun=All), so that the
	// apiserver's validation, admission webhooks and authorization judge
	// it: a write the cluster refuses fails the preview with the cluster's
	// error, as the real run would fail. A write that depends on an
	// earlier step (the cluster answers NotFound, AlreadyExists or Conflict
	// because the object was created, deleted or changed in the copy only)
	// cannot be judged alone and is counted apart. Each step's detail says
	// how many writes the cluster accepted. The objects an install renders
	// are not sent (Helm's own server dry run does that: InstallOptions
	// with DryRunServer).
	ServerDryRun bool
}

// Preview is a dry run of a whole plan whose steps see each other's
// effects. A plain dry run (Env.Common.DryRun) sends every step to the
// cluster as it is, so a step that depends on an earlier one fails: the
// standard canary plan creates a tag, then moves namespaces to it, and its
// dry run stops at the move because the tag does not exist. Preview instead
// reads the objects the plan's operations work on from the cluster once —
// namespaces, webhook configurations, workloads and pods, and the
// control-plane objects labelled with a revision — into an in-memory copy,
// and runs the plan against that copy, so each step's writes are there for
// the next one. The cluster is only read; the Kubernetes version and
// permission checks (Precheck) are answered by the cluster itself.
//
// In a preview:
//   - the operations' writes go to the copy and are reported as changes,
//     object by object (Report.Changes lists them all);
//   - an install (InstallRevision) renders its chart with Helm's client-side
//     dry run, and the rendered objects are added to the copy, so later
//     steps find the new revision's injector;
//   - an uninstall deletes from the copy by label, never through Helm;
//   - the copy runs on a simulation of the controllers and the injector
//     (the one revkittest.Simulate offers): when a step changes a
//     workload's pod template (a restart, a gateway moved), new pods replace
//     its pods in the copy, carrying the sidecar the webhooks in the copy
//     would now inject;
//   - rollout waits end at once and the checks of live pods and proxies
//     (VerifyPods, VerifyProxies) and pauses are skipped — pods do not move
//     in the copy — while VerifyWebhooks does check the copy's webhooks as
//     the plan leaves them;
//   - custom steps (Func and the like) get the copy as Env.Kube and a client
//     dry-run mode in Env.Common, as in a plain dry run.
//
// The report's DryRun is revkit.DryRunClient. Preview returns the report
// and the error Execute would, and an *revkit.OpError if reading the
// cluster fails.
func Preview(ctx context.Context, kube kubernetes.Interface, plan Plan, opts PreviewOptions) (*Report, error) {
	if kube == nil {
		err := &revkit.InvalidInputError{Field: "kube", Reason: "a preview reads the cluster"}
		return unrun(Env{}, plan, err), err
	}
	if err := revkit.ValidateNamespace("ControlPlaneNamespace", opts.ControlPlaneNamespace); err != nil {
		return unrun(Env{}, plan, err), err
	}
	copyKube, err := inMemoryCopy(ctx, kube)
	if err != nil {
		return unrun(Env{}, plan, err), err
	}
	state := &previewState{controlPlane: revkit.ControlPlaneNamespace(opts.ControlPlaneNamespace)}
	if opts.ServerDryRun {
		state.server = &serverDryRun{ctx: ctx, kube: kube}
		state.server.install(copyKube)
	}
	// The copy's controllers and injector: a workload whose pod template a
	// step changes gets new pods, injected as the copy's webhooks say, so
	// that later steps see them (an uninstall that refuses a revision still
	// in use). Its writes bypass the server dry run: they are the cluster's
	// own, nothing to ask it about.
	if _, err := sim.New(copyKube, sim.Options{}); err != nil {
		err = &revkit.OpError{Op: "upgrade.Preview", Verb: "simulate", Object: revkit.ObjectRef{Kind: "Pod"}, Err: err}
		return unrun(Env{}, plan, err), err
	}
	c := opts.Common
	c.DryRun = revkit.DryRunClient
	return Execute(ctx, Env{Kube: copyKube, Common: c, preview: state}, plan)
}

// Changes lists what the plan's steps changed (or in a dry run or preview,
// would change), object by object, in the order the steps ran; changes of
// the on-failure steps come last. Objects left alone are not listed.
func (r *Report) Changes() []revkit.Change {
	var out []revkit.Change
	for _, list := range [][]StepReport{r.Steps, r.OnFailure} {
		for _, s := range list {
			for _, c := range s.Changes {
				if c.Action.Changed() {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// inMemoryCopy reads what the operations work on into a fake clientset,
// whose server version and access reviews are the cluster's.
func inMemoryCopy(ctx context.Context, kube kubernetes.Interface) (*fake.Clientset, error) {
	objs, err := readSeed(ctx, kube)
	if err != nil {
		return nil, err
	}
	c := fake.NewClientset(objs...)
	if v, err := kube.Discovery().ServerVersion(); err == nil {
		if fd, ok := c.Discovery().(*fakediscovery.FakeDiscovery); ok {
			fd.FakedServerVersion = v
		}
	}
	// Access reviews change nothing: ask the cluster.
	c.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		review, ok := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		if !ok {
			return false, nil, nil
		}
		out, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		return true, out, err
	})
	return c, nil
}

// revLabelled selects the control-plane objects of a revision or tag.
var revLabelled = metav1.ListOptions{LabelSelector: mesh.LabelRev}

// readSeed lists, page by page, every object the library's operations read.
func readSeed(ctx context.Context, kube kubernetes.Interface) ([]runtime.Object, error) {
	type lister struct {
		kind string
		opts metav1.ListOptions
		list func(metav1.ListOptions) (runtime.Object, error)
	}
	all := metav1.ListOptions{}
	revkitOwned := metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=revkit"}
	cv1, apps, adm, rbac := kube.CoreV1(), kube.AppsV1(), kube.AdmissionregistrationV1(), kube.RbacV1()
	listers := []lister{
		{"Namespace", all, func(o metav1.ListOptions) (runtime.Object, error) { return cv1.Namespaces().List(ctx, o) }},
		{"MutatingWebhookConfiguration", all, func(o metav1.ListOptions) (runtime.Object, error) {
			return adm.MutatingWebhookConfigurations().List(ctx, o)
		}},
		{"ValidatingWebhookConfiguration", all, func(o metav1.ListOptions) (runtime.Object, error) {
			return adm.ValidatingWebhookConfigurations().List(ctx, o)
		}},
		{"Deployment", all, func(o metav1.ListOptions) (runtime.Object, error) { return apps.Deployments("").List(ctx, o) }},
		{"StatefulSet", all, func(o metav1.ListOptions) (runtime.Object, error) { return apps.StatefulSets("").List(ctx, o) }},
		{"DaemonSet", all, func(o metav1.ListOptions) (runtime.Object, error) { return apps.DaemonSets("").List(ctx, o) }},
		{"Pod", all, func(o metav1.ListOptions) (runtime.Object, error) { return cv1.Pods("").List(ctx, o) }},
		// Every Service: webhooks call them by name, and a check of the
		// webhooks looks for those that are missing.
		{"Service", all, func(o metav1.ListOptions) (runtime.Object, error) { return cv1.Services("").List(ctx, o) }},
		{"ConfigMap", revLabelled, func(o metav1.ListOptions) (runtime.Object, error) { return cv1.ConfigMaps("").List(ctx, o) }},
		{"ConfigMap", revkitOwned, func(o metav1.ListOptions) (runtime.Object, error) { return cv1.ConfigMaps("").List(ctx, o) }},
		{"ServiceAccount", revLabelled, func(o metav1.ListOptions) (runtime.Object, error) { return cv1.ServiceAccounts("").List(ctx, o) }},
		{"Role", revLabelled, func(o metav1.ListOptions) (runtime.Object, error) { return rbac.Roles("").List(ctx, o) }},
		{"RoleBinding", revLabelled, func(o metav1.ListOptions) (runtime.Object, error) { return rbac.RoleBindings("").List(ctx, o) }},
		{"ClusterRole", revLabelled, func(o metav1.ListOptions) (runtime.Object, error) { return rbac.ClusterRoles().List(ctx, o) }},
		{"ClusterRoleBinding", revLabelled, func(o metav1.ListOptions) (runtime.Object, error) {
			return rbac.ClusterRoleBindings().List(ctx, o)
		}},
		{"HorizontalPodAutoscaler", revLabelled, func(o metav1.ListOptions) (runtime.Object, error) {
			return kube.AutoscalingV2().HorizontalPodAutoscalers("").List(ctx, o)
		}},
		{"PodDisruptionBudget", revLabelled, func(o metav1.ListOptions) (runtime.Object, error) {
			return kube.PolicyV1().PodDisruptionBudgets("").List(ctx, o)
		}},
	}
	var out []runtime.Object
	seen := map[string]bool{}
	for _, l := range listers {
		o := l.opts
		o.Limit = 500
		for {
			list, err := l.list(o)
			if err == nil {
				err = addItems(list, l.kind, seen, &out)
			}
			if err != nil {
				return nil, &revkit.OpError{Op: "upgrade.Preview", Verb: "list", Object: revkit.ObjectRef{Kind: l.kind}, Err: err}
			}
			next := ""
			if li, ok := list.(metav1.ListInterface); ok {
				next = li.GetContinue()
			}
			if next == "" {
				break
			}
			o.Continue = next
		}
	}
	return out, nil
}

// addItems appends the items of a list to out, once each: two selectors of
// one kind may return the same object.
func addItems(list runtime.Object, kind string, seen map[string]bool, out *[]runtime.Object) error {
	items, err := apimeta.ExtractList(list)
	if err != nil {
		return err
	}
	for _, obj := range items {
		m, err := meta(obj)
		if err != nil {
			return err
		}
		key := kind + "/" + m.GetNamespace() + "/" + m.GetName()
		if kind == "Pod" {
			// The copy has no ReplicaSets: the simulation adopts the pods
			// of its workloads by their selectors.
			m.SetOwnerReferences(withoutWorkloadOwners(m.GetOwnerReferences()))
		}
		if !seen[key] {
			seen[key] = true
			*out = append(*out, obj)
		}
	}
	return nil
}

// withoutWorkloadOwners drops the owner references of a pod's workload
// controllers (ReplicaSet, StatefulSet, DaemonSet).
func withoutWorkloadOwners(refs []metav1.OwnerReference) []metav1.OwnerReference {
	var out []metav1.OwnerReference
	for _, r := range refs {
		switch r.Kind {
		case "ReplicaSet", "StatefulSet", "DaemonSet":
			continue
		}
		out = append(out, r)
	}
	return out
}

func meta(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("upgrade.Preview: %T has no object metadata", obj)
	}
	return m, nil
}

// addRendered creates the objects of a rendered manifest in the preview's
// copy: those of kinds the client knows (Deployments, Services, webhooks,
// ...); others (CRDs, custom resources) are reported skipped.
func addRendered(ctx context.Context, kube kubernetes.Interface, manifest, ns string) ([]revkit.Change, error) {
	tracker, ok := kube.(interface {
		Tracker() k8stesting.ObjectTracker
	})
	if !ok {
		return nil, errors.New("upgrade.Preview: the in-memory copy has no object tracker")
	}
	var changes []revkit.Change
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	for {
		var raw runtime.RawExtension
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return changes, nil
			}
			return changes, fmt.Errorf("upgrade.Preview: read rendered manifest: %w", err)
		}
		if len(strings.TrimSpace(string(raw.Raw))) == 0 || string(raw.Raw) == "null" {
			continue
		}
		obj, gvk, err := scheme.Codecs.UniversalDeserializer().Decode(raw.Raw, nil, nil)
		if err != nil {
			if runtime.IsNotRegisteredError(err) && gvk != nil {
				changes = append(changes, revkit.Change{Object: revkit.ObjectRef{Kind: gvk.Kind}, Action: revkit.ActionSkip,
					Reason: "preview: kind not known to the in-memory copy"})
				continue
			}
			return changes, fmt.Errorf("upgrade.Preview: decode rendered object: %w", err)
		}
		m, err := meta(obj)
		if err != nil {
			return changes, err
		}
		if clusterScoped[gvk.Kind] {
			m.SetNamespace("")
		} else if m.GetNamespace() == "" {
			m.SetNamespace(ns)
		}
		ref := revkit.ObjectRef{Kind: gvk.Kind, Namespace: m.GetNamespace(), Name: m.GetName()}
		gvr, _ := apimeta.UnsafeGuessKindToResource(*gvk)
		if _, err := tracker.Tracker().Get(gvr, m.GetNamespace(), m.GetName()); err == nil {
			if err := tracker.Tracker().Update(gvr, obj, m.GetNamespace()); err != nil {
				return changes, err
			}
			changes = append(changes, revkit.Change{Object: ref, Action: revkit.ActionUpdate, Reason: "rendered"})
			continue
		}
		if err := tracker.Tracker().Create(gvr, obj, m.GetNamespace()); err != nil {
			return changes, err
		}
		changes = append(changes, revkit.Change{Object: ref, Action: revkit.ActionCreate, Reason: "rendered"})
	}
}

// clusterScoped are the cluster-scoped kinds a control-plane chart renders;
// every other kind it renders is namespaced.
var clusterScoped = map[string]bool{"MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true,
	"ClusterRole": true, "ClusterRoleBinding": true, "Namespace": true, "CustomResourceDefinition": true}

// previewState is what Preview's steps share: where the copy's webhooks
// are.
type previewState struct {
	controlPlane string
	// server, when set, checks the copy's writes with the cluster.
	server *serverDryRun
}

// serverSummary is the server dry run's line for the step that ran, or "".
func (p *previewState) serverSummary() string {
	if p.server == nil {
		return ""
	}
	return p.server.summary()
}
