package kubeutil

import (
	"context"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
)

// SelectNamespaces reads the namespaces named and those the label selector
// selects (the union; an empty selector selects none), sorted by name. A
// named namespace that does not exist is a *revkit.NotFoundError; a failed
// read is a *revkit.OpError of op.
func SelectNamespaces(ctx context.Context, kube kubernetes.Interface, op string, names []string, selector string) ([]corev1.Namespace, error) {
	byName := map[string]corev1.Namespace{}
	for _, n := range names {
		if _, seen := byName[n]; seen {
			continue
		}
		ns, err := kube.CoreV1().Namespaces().Get(ctx, n, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, &revkit.NotFoundError{Kind: "namespace", Name: n}
		}
		if err != nil {
			return nil, &revkit.OpError{Op: op, Verb: "get", Object: revkit.ObjectRef{Kind: "Namespace", Name: n}, Err: err}
		}
		byName[n] = *ns
	}
	if selector != "" {
		list, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return nil, &revkit.OpError{Op: op, Verb: "list", Object: revkit.ObjectRef{Kind: "Namespace", Name: selector}, Err: err}
		}
		for _, ns := range list.Items {
			byName[ns.Name] = ns
		}
	}
	out := make([]corev1.Namespace, 0, len(byName))
	for _, ns := range byName {
		out = append(out, ns)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
