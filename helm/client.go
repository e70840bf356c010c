package revision

import (
	"fmt"
	"log/slog"

	"helm.sh/helm/v4/pkg/action"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// NewHelm returns the Helm action configuration Install and Uninstall use
// to reach the cluster at cfg, keeping release records as Secrets in the
// control-plane namespace ns (Helm's default storage). logger may be nil.
func NewHelm(cfg *rest.Config, ns string, logger *slog.Logger) (*action.Configuration, error) {
	if cfg == nil {
		return nil, fmt.Errorf("revision.NewHelm: nil rest config")
	}
	var opts []action.ConfigurationOption
	if logger != nil {
		opts = append(opts, action.ConfigurationSetLogger(logger.Handler()))
	} else {
		opts = append(opts, action.ConfigurationSetLogger(slog.DiscardHandler))
	}
	hc := action.NewConfiguration(opts...)
	if err := hc.Init(&restGetter{cfg: cfg, ns: ns}, ns, "secret"); err != nil {
		return nil, fmt.Errorf("revision.NewHelm: %w", err)
	}
	return hc, nil
}

// restGetter hands Helm clients for a rest.Config, where Helm expects the
// kubeconfig-file based getter of its CLI.
type restGetter struct {
	cfg *rest.Config
	ns  string
}

var _ genericclioptions.RESTClientGetter = (*restGetter)(nil)

func (g *restGetter) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(g.cfg), nil }

func (g *restGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(rest.CopyConfig(g.cfg))
	if err != nil {
		return nil, err
	}
	return memory.NewMemCacheClient(dc), nil
}

func (g *restGetter) ToRESTMapper() (meta.RESTMapper, error) {
	dc, err := g.ToDiscoveryClient()
	if err != nil {
		return nil, err
	}
	m := restmapper.NewDeferredDiscoveryRESTMapper(dc)
	return restmapper.NewShortcutExpander(m, dc, nil), nil
}

// ToRawKubeConfigLoader describes the rest.Config as a kubeconfig, which is
// how Helm's factory finds the namespace and builds its clients.
func (g *restGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	c := g.cfg
	kc := clientcmdapi.NewConfig()
	kc.Clusters["revkit"] = &clientcmdapi.Cluster{
		Server: c.Host, CertificateAuthority: c.CAFile, CertificateAuthorityData: c.CAData,
		InsecureSkipTLSVerify: c.Insecure, TLSServerName: c.ServerName,
	}
	kc.AuthInfos["revkit"] = &clientcmdapi.AuthInfo{
		Token: c.BearerToken, TokenFile: c.BearerTokenFile,
		ClientCertificate: c.CertFile, ClientCertificateData: c.CertData,
		ClientKey: c.KeyFile, ClientKeyData: c.KeyData,
		Username: c.Username, Password: c.Password, Impersonate: c.Impersonate.UserName,
	}
	kc.Contexts["revkit"] = &clientcmdapi.Context{Cluster: "revkit", AuthInfo: "revkit", Namespace: g.ns}
	kc.CurrentContext = "revkit"
	return clientcmd.NewDefaultClientConfig(*kc, &clientcmd.ConfigOverrides{})
}
