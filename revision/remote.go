package revision

import (
	"encoding/base64"
	"net/url"

	"github.com/revkit/revkit"
)

// RemoteOptions describe a revision's objects on a remote cluster of a
// primary-remote mesh: no istiod runs there; the remote's injector (and
// validator) webhooks call the primary's istiod of the revision.
type RemoteOptions struct {
	// RemotePilotAddress is where the remote reaches the primary's istiod,
	// usually the primary's east-west gateway: an IP, or a host name.
	// Istio's chart then makes the Service istiod-<revision> in the remote
	// (with an EndpointSlice for an IP, ExternalName for a name), which the
	// webhooks call.
	RemotePilotAddress string
	// InjectionURL, instead, is the primary istiod's injection endpoint as
	// the remote's apiserver calls it, e.g.
	// https://<address>:15017/inject/cluster/<cluster>/net/<network>;
	// ValidationURL the validation one (optional). CABundle (PEM) is then
	// the CA of the primary's istiod, which signs the certificate it serves.
	InjectionURL, ValidationURL string
	CABundle                    []byte
	// ClusterName and Network name the remote in the mesh
	// (global.multiCluster.clusterName, global.network); optional.
	ClusterName, Network string
}

// RemoteValues are the istio-discovery chart values that install a
// revision's remote-side objects with the chart's remote profile, for
// InstallOptions.Values on the remote cluster. Installed so, a revision
// lists, tags, migrates and uninstalls on the remote like any other (its
// Helm release is istiod-<revision> there too), and the remote's new pods
// are injected by the primary's istiod of that revision. Upgrade a remote
// after its primary: the revision's istiod must run on the primary before
// the remote's webhooks call it, and stay until no remote uses it (see
// fleet's Cluster.Primary).
func RemoteValues(o RemoteOptions) (map[string]any, error) {
	if (o.RemotePilotAddress == "") == (o.InjectionURL == "") {
		return nil, &revkit.InvalidInputError{Field: "RemotePilotAddress", Reason: "set either RemotePilotAddress or InjectionURL"}
	}
	for field, s := range map[string]string{"InjectionURL": o.InjectionURL, "ValidationURL": o.ValidationURL} {
		if s == "" {
			continue
		}
		if u, err := url.Parse(s); err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, &revkit.InvalidInputError{Field: field, Value: s, Reason: "must be an https:// URL"}
		}
	}
	if o.InjectionURL != "" && len(o.CABundle) == 0 {
		return nil, &revkit.InvalidInputError{Field: "CABundle", Reason: "webhooks called by URL need the CA of the primary's istiod"}
	}
	remote := map[string]any{}
	base := map[string]any{}
	global := map[string]any{}
	if o.RemotePilotAddress != "" {
		global["remotePilotAddress"] = o.RemotePilotAddress
	}
	if o.InjectionURL != "" {
		ca := base64.StdEncoding.EncodeToString(o.CABundle)
		remote["injectionURL"], remote["injectionCABundle"] = o.InjectionURL, ca
		if o.ValidationURL != "" {
			base["validationURL"], base["validationCABundle"] = o.ValidationURL, ca
		}
	}
	if o.ClusterName != "" {
		global["multiCluster"] = map[string]any{"clusterName": o.ClusterName}
	}
	if o.Network != "" {
		global["network"] = o.Network
	}
	v := map[string]any{"profile": "remote"}
	for k, m := range map[string]map[string]any{"istiodRemote": remote, "base": base, "global": global} {
		if len(m) > 0 {
			v[k] = m
		}
	}
	return v, nil
}
