package testenv

import (
	"fmt"
	"path/filepath"
	"sort"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// StartFleet starts n control planes side by side in the one network
// namespace — each its own etcd, kube-apiserver, controllers, scheduler
// and KWOK on its own loopback ports — named cluster-1 … cluster-n. Each
// stops in t.Cleanup like a single Start.
func StartFleet(t testing.TB, n int, opts Options) (map[string]*Env, error) {
	t.Helper()
	envs := map[string]*Env{}
	for i := 1; i <= n; i++ {
		e, err := Start(t, opts)
		if err != nil {
			return nil, fmt.Errorf("testenv: cluster-%d: %w", i, err)
		}
		envs[fmt.Sprintf("cluster-%d", i)] = e
	}
	return envs, nil
}

// WriteKubeconfig writes one kubeconfig file holding a context per
// environment, named as in envs (and its cluster and user alike), and
// returns its path: what a fleet tool is given on a real fleet.
func WriteKubeconfig(dir string, envs map[string]*Env) (string, error) {
	out := clientcmdapi.NewConfig()
	names := make([]string, 0, len(envs))
	for name := range envs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		one, err := clientcmd.LoadFromFile(envs[name].Kubeconfig)
		if err != nil {
			return "", err
		}
		ctx, ok := one.Contexts[one.CurrentContext]
		if !ok {
			return "", fmt.Errorf("testenv: %s has no current context", envs[name].Kubeconfig)
		}
		out.Clusters[name] = one.Clusters[ctx.Cluster]
		out.AuthInfos[name] = one.AuthInfos[ctx.AuthInfo]
		out.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: ctx.Namespace}
	}
	if len(names) > 0 {
		out.CurrentContext = names[0]
	}
	path := filepath.Join(dir, "fleet.kubeconfig")
	return path, clientcmd.WriteToFile(*out, path)
}
