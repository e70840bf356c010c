package verify

import (
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/revkit/revkit/internal/mesh"
)

// SyncState is istioctl proxy-status's word for how far a proxy has taken
// up the configuration istiod sent it.
type SyncState string

const (
	// StateSynced: the proxy acknowledged the last configuration sent.
	StateSynced SyncState = "SYNCED"
	// StateStale: the proxy has not acknowledged the last configuration
	// sent, possibly never any.
	StateStale SyncState = "STALE"
	// StateNotSent: istiod has sent nothing of this type (the proxy did not
	// ask for it).
	StateNotSent SyncState = "NOT SENT"
	// StateError: the proxy rejected the configuration (a NACK).
	StateError SyncState = "ERROR"
	// StateIgnored: the proxy type does not use this xDS type, e.g. Envoy
	// types for ztunnel.
	StateIgnored SyncState = "IGNORED"
)

// xDS type URLs that istiod's syncz reports.
const (
	TypeURLCluster         = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	TypeURLListener        = "type.googleapis.com/envoy.config.listener.v3.Listener"
	TypeURLRoute           = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	TypeURLEndpoint        = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	TypeURLExtensionConfig = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
	TypeURLSecret          = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
	TypeURLAddress         = "type.googleapis.com/istio.workload.Address"
	TypeURLAuthorization   = "type.googleapis.com/istio.security.Authorization"
	TypeURLNameTable       = "type.googleapis.com/istio.networking.nds.v1.NameTable"
)

// ProxyTypeZtunnel is the proxy_type of ambient's node proxy, which uses
// none of Envoy's xDS types.
const ProxyTypeZtunnel = "ztunnel"

// envoyTypes are the types every proxy status lists, in istioctl's column
// order.
var envoyTypes = [...]struct{ short, url string }{
	{"CDS", TypeURLCluster},
	{"LDS", TypeURLListener},
	{"EDS", TypeURLEndpoint},
	{"RDS", TypeURLRoute},
	{"ECDS", TypeURLExtensionConfig},
}

// ShortTypeName returns istioctl's abbreviation of an xDS type URL ("CDS",
// "WDS", …), or the last part of the URL for types it has none for.
func ShortTypeName(typeURL string) string {
	switch typeURL {
	case TypeURLCluster:
		return "CDS"
	case TypeURLListener:
		return "LDS"
	case TypeURLRoute:
		return "RDS"
	case TypeURLEndpoint:
		return "EDS"
	case TypeURLExtensionConfig:
		return "ECDS"
	case TypeURLSecret:
		return "SDS"
	case TypeURLAddress:
		return "WDS"
	case TypeURLAuthorization:
		return "WADS"
	case TypeURLNameTable:
		return "NDS"
	}
	if i := strings.LastIndexByte(typeURL, '/'); i >= 0 {
		return typeURL[i+1:]
	}
	return typeURL
}

// TypeStatus is the state of one xDS type for one proxy.
type TypeStatus struct {
	// Type is the short name: CDS, LDS, EDS, RDS, ECDS, WDS, …
	Type    string
	TypeURL string
	// Sent and Acked are the nonces istiod sent and the proxy acknowledged.
	Sent  string
	Acked string
	// SentTime is when istiod last sent this type, when reported.
	SentTime time.Time
	// LastError is the proxy's last rejection message, when reported.
	LastError string
	State     SyncState
}

// ProxyStatus is one proxy as istiod's syncz reports it.
type ProxyStatus struct {
	// ID is the proxy ID, "<pod>.<namespace>".
	ID        string
	Pod       string
	Namespace string
	ClusterID string
	// ProxyType is "sidecar", "router", "waypoint", "ztunnel", …
	ProxyType    string
	ProxyVersion string
	IstioVersion string
	// Revision is the revision of the istiod that reported the proxy; Proxies
	// sets it, ParseSyncz leaves it empty.
	Revision string
	// Types lists CDS, LDS, EDS, RDS and ECDS, then any other type the
	// resources map names, by type URL.
	Types []TypeStatus
	// State sums Types up: ERROR or STALE if any type is, else SYNCED if
	// any type is, else NOT SENT, or IGNORED when the proxy uses no type
	// reported.
	State SyncState
}

// TypeState returns the state of one type by short name or URL, and false
// when the proxy status does not list it.
func (p *ProxyStatus) TypeState(typ string) (SyncState, bool) {
	for _, t := range p.Types {
		if t.Type == typ || t.TypeURL == typ {
			return t.State, true
		}
	}
	return "", false
}

// Synced reports whether the proxy is SYNCED overall.
func (p *ProxyStatus) Synced() bool { return p.State == StateSynced }

// ParseSyncz parses the JSON istiod serves at /debug/syncz: an array of
// proxy statuses. It derives each proxy's state per xDS type and overall.
// Input that is not such an array returns a *SynczError (matching
// ErrMalformedSyncz); "null" is an empty list.
func ParseSyncz(data []byte) ([]ProxyStatus, error) {
	var raw []mesh.SyncStatus
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, newSynczError(data, err)
	}
	out := make([]ProxyStatus, len(raw))
	// One backing array for the types of every proxy keeps a large
	// document to a handful of allocations.
	backing := make([]TypeStatus, 0, len(raw)*len(envoyTypes))
	for i := range raw {
		start := len(backing)
		backing = appendTypes(backing, &raw[i])
		out[i] = newProxyStatus(&raw[i], backing[start:len(backing):len(backing)])
	}
	return out, nil
}

// newSynczError says where encoding/json stopped.
func newSynczError(data []byte, err error) *SynczError {
	se := &SynczError{Offset: int64(len(data)), Err: err}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		se.Offset = syntax.Offset
	case errors.As(err, &typ):
		se.Offset = typ.Offset
	}
	return se
}

func newProxyStatus(r *mesh.SyncStatus, types []TypeStatus) ProxyStatus {
	id := r.Proxy
	p := ProxyStatus{
		ID: id, Pod: id, ClusterID: r.ClusterID, ProxyType: r.ProxyType,
		ProxyVersion: r.ProxyVersion, IstioVersion: r.IstioVersion, Types: types,
	}
	// Namespaces cannot contain dots, pod names can: split at the last.
	if i := strings.LastIndexByte(id, '.'); i >= 0 {
		p.Pod, p.Namespace = id[:i], id[i+1:]
	}
	p.State = overallState(types)
	return p
}

// appendTypes appends the five Envoy types, then any other type of the
// resources map sorted by URL.
func appendTypes(dst []TypeStatus, r *mesh.SyncStatus) []TypeStatus {
	flat := [len(envoyTypes)][2]string{
		{r.ClusterSent, r.ClusterAcked},
		{r.ListenerSent, r.ListenerAcked},
		{r.EndpointSent, r.EndpointAcked},
		{r.RouteSent, r.RouteAcked},
		{r.ExtensionConfigSent, r.ExtensionConfigAcked},
	}
	ignoreEnvoy := r.ProxyType == ProxyTypeZtunnel
	for i, et := range envoyTypes {
		t := TypeStatus{Type: et.short, TypeURL: et.url, Sent: flat[i][0], Acked: flat[i][1]}
		if res, ok := r.Resources[et.url]; ok {
			mergeResource(&t, &res)
		}
		if ignoreEnvoy {
			t.State = StateIgnored
		} else {
			t.State = typeState(&t)
		}
		dst = append(dst, t)
	}
	start := len(dst)
	for url, res := range r.Resources {
		if isEnvoyType(url) {
			continue
		}
		t := TypeStatus{Type: ShortTypeName(url), TypeURL: url}
		mergeResource(&t, &res)
		t.State = typeState(&t)
		dst = append(dst, t)
	}
	if extra := dst[start:]; len(extra) > 1 {
		sort.Slice(extra, func(a, b int) bool { return extra[a].TypeURL < extra[b].TypeURL })
	}
	return dst
}

func isEnvoyType(url string) bool {
	for _, et := range envoyTypes {
		if et.url == url {
			return true
		}
	}
	return false
}

// mergeResource lets the resources map, where present, fill in what the
// flat fields leave out.
func mergeResource(t *TypeStatus, res *mesh.SyncResource) {
	if res.Sent != "" || res.Acked != "" {
		t.Sent, t.Acked = res.Sent, res.Acked
	}
	t.LastError = res.LastError
	if res.SentTime != "" {
		if ts, err := time.Parse(time.RFC3339Nano, res.SentTime); err == nil {
			t.SentTime = ts
		}
	}
}

// typeState applies istioctl's rules to one type.
func typeState(t *TypeStatus) SyncState {
	switch {
	case t.LastError != "":
		return StateError
	case t.Sent == "":
		return StateNotSent
	case t.Sent == t.Acked:
		return StateSynced
	default:
		return StateStale
	}
}

func overallState(types []TypeStatus) SyncState {
	var synced, notSent, stale bool
	for _, t := range types {
		switch t.State {
		case StateError:
			return StateError
		case StateStale:
			stale = true
		case StateSynced:
			synced = true
		case StateNotSent:
			notSent = true
		}
	}
	switch {
	case stale:
		return StateStale
	case synced:
		return StateSynced
	case notSent:
		return StateNotSent
	}
	return StateIgnored
}
