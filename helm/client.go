package helm

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

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revision"
)

// Client installs, upgrades and uninstalls Istio's charts as Helm releases
// with the Helm SDK. It implements revision.Installer: set it as the Helm
// field of revision's and upgrade's options.
type Client struct {
	cfg *action.Configuration
}

var _ revision.Installer = (*Client)(nil)

// New returns a Client that reaches the cluster at cfg and keeps release
// records as Secrets in the control-plane namespace ns (Helm's default
// storage). logger receives Helm's logs; nil discards them.
func New(cfg *rest.Config, ns string, logger *slog.Logger) (*Client, error) {
	if cfg == nil {
		return nil, fmt.Errorf("helm.New: nil rest config")
	}
	handler := slog.DiscardHandler
	if logger != nil {
		handler = logger.Handler()
	}
	hc := action.NewConfiguration(action.ConfigurationSetLogger(handler))
	if err := hc.Init(&restGetter{cfg: cfg, ns: ns}, ns, "secret"); err != nil {
		return nil, fmt.Errorf("helm.New: %w", err)
	}
	return &Client{cfg: hc}, nil
}

// NewFromConfiguration returns a Client that runs with a Helm action
// configuration of the caller's: its kube client, release storage and
// registry client (e.g. in-memory storage in tests). cfg must not be nil.
func NewFromConfiguration(cfg *action.Configuration) *Client { return &Client{cfg: cfg} }

// usable refuses a nil Client (say, from a helm.New whose error was
// dropped) with the error a missing installer gets, rather than a panic.
func (c *Client) usable() error {
	if c == nil || c.cfg == nil {
		return &revkit.InvalidInputError{Field: "Helm", Reason: "a nil helm.Client: use helm.New"}
	}
	return nil
}

// Configuration is the Helm action configuration c runs with, for Helm
// calls of the caller's own (helm status, history).
func (c *Client) Configuration() *action.Configuration { return c.cfg }

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
