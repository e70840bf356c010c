package mesh

// SyncStatus is one proxy of istiod's /debug/syncz (its SyncStatus type, as
// JSON): what verify reads and the simulator serves.
type SyncStatus struct {
	ClusterID            string `json:"cluster_id"`
	Proxy                string `json:"proxy"`
	ProxyType            string `json:"proxy_type"`
	ProxyVersion         string `json:"proxy_version"`
	IstioVersion         string `json:"istio_version"`
	ClusterSent          string `json:"cluster_sent"`
	ClusterAcked         string `json:"cluster_acked"`
	ListenerSent         string `json:"listener_sent"`
	ListenerAcked        string `json:"listener_acked"`
	RouteSent            string `json:"route_sent"`
	RouteAcked           string `json:"route_acked"`
	EndpointSent         string `json:"endpoint_sent"`
	EndpointAcked        string `json:"endpoint_acked"`
	ExtensionConfigSent  string `json:"extensionconfig_sent,omitempty"`
	ExtensionConfigAcked string `json:"extensionconfig_acked,omitempty"`
	// Resources is keyed by type URL.
	Resources map[string]SyncResource `json:"resources,omitempty"`
}

// SyncResource is one value of SyncStatus.Resources.
type SyncResource struct {
	Sent  string `json:"sent"`
	Acked string `json:"acked"`
	// SentTime is kept as text: a timestamp istiod formats oddly should
	// not make the whole document unreadable.
	SentTime  string `json:"sentTime"`
	LastError string `json:"lastError"`
}
