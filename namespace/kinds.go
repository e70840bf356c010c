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
	Deployment: kindOf(&appsv1.Deployment{},
		func(kube kubernetes.Interface, ns string) typedClient[*appsv1.Deployment, *appsv1.DeploymentList] {
			return kube.AppsV1().Deployments(ns)
		},
		func(d *appsv1.Deployment) workload {
			return workload{kind: Deployment, namespace: d.Namespace, name: d.Name, selector: d.Spec.Selector,
				template: d.Spec.Template, paused: d.Spec.Paused}
		}),
	StatefulSet: kindOf(&appsv1.StatefulSet{},
		func(kube kubernetes.Interface, ns string) typedClient[*appsv1.StatefulSet, *appsv1.StatefulSetList] {
			return kube.AppsV1().StatefulSets(ns)
		},
		func(s *appsv1.StatefulSet) workload {
			return workload{kind: StatefulSet, namespace: s.Namespace, name: s.Name, selector: s.Spec.Selector,
				template: s.Spec.Template, onDelete: s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType}
		}),
	DaemonSet: kindOf(&appsv1.DaemonSet{},
		func(kube kubernetes.Interface, ns string) typedClient[*appsv1.DaemonSet, *appsv1.DaemonSetList] {
			return kube.AppsV1().DaemonSets(ns)
		},
		func(d *appsv1.DaemonSet) workload {
			return workload{kind: DaemonSet, namespace: d.Namespace, name: d.Name, selector: d.Spec.Selector,
				template: d.Spec.Template, onDelete: d.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType}
		}),
}

// typedClient is the part of a kind's typed client the package uses.
type typedClient[T, L runtime.Object] interface {
	List(ctx context.Context, opts metav1.ListOptions) (L, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
}

// kindOf builds a kind's entry from its typed client and how to describe
// one object of it.
func kindOf[T, L runtime.Object](empty T, client func(kubernetes.Interface, string) typedClient[T, L], describe func(T) workload) kindAPI {
	return kindAPI{
		empty: empty,
		list: func(ctx context.Context, kube kubernetes.Interface, ns string, lo metav1.ListOptions) (runtime.Object, error) {
			l, err := client(kube, ns).List(ctx, lo)
			if err != nil {
				return nil, err // not a typed nil list in an interface
			}
			return l, nil
		},
		watch: func(ctx context.Context, kube kubernetes.Interface, ns string, lo metav1.ListOptions) (watch.Interface, error) {
			return client(kube, ns).Watch(ctx, lo)
		},
		patch: func(ctx context.Context, kube kubernetes.Interface, ns, name string, body []byte, po metav1.PatchOptions) error {
			_, err := client(kube, ns).Patch(ctx, name, types.MergePatchType, body, po)
			return err
		},
		workload: func(obj runtime.Object) workload { return describe(obj.(T)) },
	}
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
