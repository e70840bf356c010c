package namespace

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// kindAPI is what the package does with one kind of workload: the one place
// that knows each kind's client and fields.
type kindAPI struct {
	// empty is the kind's object, for an informer's type.
	empty runtime.Object
	list  func(ctx context.Context, kube kubernetes.Interface, ns string, lo metav1.ListOptions) (runtime.Object, error)
	watch func(ctx context.Context, kube kubernetes.Interface, ns string, lo metav1.ListOptions) (watch.Interface, error)
	patch func(ctx context.Context, kube kubernetes.Interface, ns, name string, body []byte, po metav1.PatchOptions) error
	// workload describes one item of the kind's list.
	workload func(obj runtime.Object) workload
}

// allKinds is every kind, in the order the package handles them.
var allKinds = []Kind{Deployment, StatefulSet, DaemonSet}

var kindAPIs = map[Kind]kindAPI{
	Deployment: {
		empty: &appsv1.Deployment{},
		list: func(ctx context.Context, kube kubernetes.Interface, ns string, lo metav1.ListOptions) (runtime.Object, error) {
			return kube.AppsV1().Deployments(ns).List(ctx, lo)
		},
		watch: func(ctx context.Context, kube kubernetes.Interface, ns string, lo metav1.ListOptions) (watch.Interface, error) {
			return kube.AppsV1().Deployments(ns).Watch(ctx, lo)
		},
		patch: func(ctx context.Context, kube kubernetes.Interface, ns, name string, body []byte, po metav1.PatchOptions) error {
			_, err := kube.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, body, po)
			return err
		},
		workload: func(obj runtime.Object) workload {
			d := obj.(*appsv1.Deployment)
			return workload{kind: Deployment, namespace: d.Namespace, name: d.Name, selector: d.Spec.Selector,
				template: d.Spec.Template, paused: d.Spec.Paused}
		},
	},
	StatefulSet: {
		empty: &appsv1.StatefulSet{},
		list: func(ctx context.Context, kube kubernetes.Interface, ns string, lo metav1.ListOptions) (runtime.Object, error) {
			return kube.AppsV1().StatefulSets(ns).List(ctx, lo)
		},
		watch: func(ctx context.Context, kube kubernetes.Interface, ns string, lo metav1.ListOptions) (watch.Interface, error) {
			return kube.AppsV1().StatefulSets(ns).Watch(ctx, lo)
		},
		patch: func(ctx context.Context, kube kubernetes.Interface, ns, name string, body []byte, po metav1.PatchOptions) error {
			_, err := kube.AppsV1().StatefulSets(ns).Patch(ctx, name, types.MergePatchType, body, po)
			return err
		},
		workload: func(obj runtime.Object) workload {
			s := obj.(*appsv1.StatefulSet)
			return workload{kind: StatefulSet, namespace: s.Namespace, name: s.Name, selector: s.Spec.Selector,
				template: s.Spec.Template, onDelete: s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType}
		},
	},
	DaemonSet: {
		empty: &appsv1.DaemonSet{},
		list: func(ctx context.Context, kube kubernetes.Interface, ns string, lo metav1.ListOptions) (runtime.Object, error) {
			return kube.AppsV1().DaemonSets(ns).List(ctx, lo)
		},
		watch: func(ctx context.Context, kube kubernetes.Interface, ns string, lo metav1.ListOptions) (watch.Interface, error) {
			return kube.AppsV1().DaemonSets(ns).Watch(ctx, lo)
		},
		patch: func(ctx context.Context, kube kubernetes.Interface, ns, name string, body []byte, po metav1.PatchOptions) error {
			_, err := kube.AppsV1().DaemonSets(ns).Patch(ctx, name, types.MergePatchType, body, po)
			return err
		},
		workload: func(obj runtime.Object) workload {
			d := obj.(*appsv1.DaemonSet)
			return workload{kind: DaemonSet, namespace: d.Namespace, name: d.Name, selector: d.Spec.Selector,
				template: d.Spec.Template, onDelete: d.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType}
		},
	},
}

// listKind lists the workloads of kind in ns ("" for all namespaces).
func listKind(ctx context.Context, kube kubernetes.Interface, ns string, kind Kind, sel string) ([]runtime.Object, error) {
	api, ok := kindAPIs[kind]
	if !ok {
		return nil, errUnknownKind(kind)
	}
	l, err := api.list(ctx, kube, ns, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	return meta.ExtractList(l)
}

type errUnknownKind Kind

func (e errUnknownKind) Error() string { return "unknown kind " + string(e) }
