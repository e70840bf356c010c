package fleet

import (
	"fmt"
	"sort"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/revkit/revkit"
)

// FromKubeconfig makes a Cluster of each named context of a kubeconfig
// file (all its contexts, in name order, when none is named). A context
// that does not exist is a *revkit.InvalidInputError.
func FromKubeconfig(path string, contexts ...string) ([]Cluster, error) {
	raw, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, &revkit.InvalidInputError{Field: "kubeconfig", Value: path, Reason: err.Error()}
	}
	if len(contexts) == 0 {
		for name := range raw.Contexts {
			contexts = append(contexts, name)
		}
		sort.Strings(contexts)
	}
	var out []Cluster
	for _, name := range contexts {
		if _, ok := raw.Contexts[name]; !ok {
			return nil, &revkit.InvalidInputError{Field: "context", Value: name, Reason: "not in " + path}
		}
		cfg, err := clientcmd.NewNonInteractiveClientConfig(*raw, name, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("fleet: context %s: %w", name, err)
		}
		kube, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("fleet: context %s: %w", name, err)
		}
		out = append(out, Cluster{Name: name, Kube: kube, Config: cfg})
	}
	return out, nil
}
