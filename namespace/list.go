package namespace

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
)

// listSelected returns the workloads of the selected namespaces by
// namespace, each sorted by kind and name. From clusterWideFrom namespaces
// on it lists each kind once across the cluster (and reports clusterWide);
// if that is forbidden, or for fewer namespaces, it lists per namespace,
// workers at a time.
func listSelected(ctx context.Context, kube kubernetes.Interface, op string, nss []corev1.Namespace, kinds []Kind, sel string, workers int) (byNS map[string][]workload, clusterWide bool, err error) {
	byNS = make(map[string][]workload, len(nss))
	if len(nss) >= clusterWideFrom {
		all, err := listWorkloads(ctx, kube, metav1.NamespaceAll, kinds, sel)
		switch {
		case err == nil:
			selected := make(map[string]bool, len(nss))
			for _, ns := range nss {
				selected[ns.Name] = true
			}
			for _, w := range all {
				if selected[w.namespace] {
					byNS[w.namespace] = append(byNS[w.namespace], w)
				}
			}
			return byNS, true, nil
		case !apierrors.IsForbidden(err):
			return nil, false, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "workloads"}, Err: err}
		}
	}
	lists := make([][]workload, len(nss))
	ran, errs := forEach(ctx, len(nss), workers, func(ctx context.Context, i int) error {
		ws, err := listWorkloads(ctx, kube, nss[i].Name, kinds, sel)
		if err != nil {
			return &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "workloads", Namespace: nss[i].Name}, Err: err}
		}
		lists[i] = ws
		return nil
	})
	if err := firstError(ctx, ran, errs); err != nil {
		return nil, false, err
	}
	for i, ns := range nss {
		byNS[ns.Name] = lists[i]
	}
	return byNS, false, nil
}
