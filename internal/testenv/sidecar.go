package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// xDS type URLs a sidecar subscribes to.
const (
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
)

// SidecarOptions describes the pod a fake sidecar proxy poses as.
type SidecarOptions struct {
	// Pod and Namespace name the pod (required); IP is its pod IP (required
	// for istiod to match the proxy to the pod).
	Pod, Namespace, IP string
	// IstioVersion is reported as the proxy's ISTIO_VERSION; default
	// DefaultProxyVersion.
	IstioVersion string
	// Labels are the pod's labels; ServiceAccount its service account
	// (default "default").
	Labels         map[string]string
	ServiceAccount string
	// Workload is the pod's workload (its Deployment), as Istio's metrics
	// name it (destination_workload); default the pod's name.
	Workload string
}

// DefaultProxyVersion is the ISTIO_VERSION a fake sidecar reports unless told.
const DefaultProxyVersion = "1.31.0"

// Sidecar is a fake Envoy sidecar: an ADS stream to one istiod's plaintext xDS
// port that subscribes like a sidecar (CDS, LDS, then EDS and RDS for what
// they name) and ACKs every response, so that istiod lists it in
// /debug/syncz as SYNCED.
type Sidecar struct {
	// NodeID is the Envoy node ID, "sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local";
	// ProxyID is how istiod names it in /debug/syncz, "<pod>.<ns>".
	NodeID, ProxyID string
	// Revision is the revision of the istiod it is connected to.
	Revision string
	// MetricsAddr serves the pod's Istio request metrics
	// (/stats/prometheus, as Envoy's merged stats on port 15020): the
	// traffic Env.SetTraffic or SetTraffic sets. Env.StartPrometheus
	// scrapes it.
	MetricsAddr string

	telemetry *telemetry
	env       *Env

	conn   *grpc.ClientConn
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	types map[string]*xdsState
	err   error
	ack   chan struct{}
}

type xdsState struct {
	names    []string
	version  string
	nonce    string // last received
	acked    string // last acked
	received int
}

// ConnectSidecar connects a fake sidecar for a pod to this istiod and returns
// once it has received and ACKed clusters and listeners.
func (i *Istiod) ConnectSidecar(ctx context.Context, o SidecarOptions) (*Sidecar, error) {
	if o.Pod == "" || o.Namespace == "" || o.IP == "" {
		return nil, errors.New("testenv: ConnectSidecar needs Pod, Namespace and IP")
	}
	if o.IstioVersion == "" {
		o.IstioVersion = DefaultProxyVersion
	}
	if o.ServiceAccount == "" {
		o.ServiceAccount = "default"
	}
	if o.Workload == "" {
		o.Workload = o.Pod
	}
	labels := map[string]any{}
	for k, v := range o.Labels {
		labels[k] = v
	}
	meta, err := structpb.NewStruct(map[string]any{
		"ISTIO_VERSION":     o.IstioVersion,
		"NAME":              o.Pod,
		"NAMESPACE":         o.Namespace,
		"CONFIG_NAMESPACE":  o.Namespace,
		"CLUSTER_ID":        "Kubernetes",
		"MESH_ID":           "cluster.local",
		"INSTANCE_IPS":      o.IP,
		"SERVICE_ACCOUNT":   o.ServiceAccount,
		"LABELS":            labels,
		"INTERCEPTION_MODE": "REDIRECT",
		"WORKLOAD_NAME":     o.Pod,
	})
	if err != nil {
		return nil, err
	}
	s := &Sidecar{
		NodeID:   fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.cluster.local", o.IP, o.Pod, o.Namespace, o.Namespace),
		ProxyID:  o.Pod + "." + o.Namespace,
		Revision: i.Revision,
		done:     make(chan struct{}),
		types:    map[string]*xdsState{},
		ack:      make(chan struct{}, 1),
	}
	node := &corev3.Node{Id: s.NodeID, Cluster: o.Pod + "." + o.Namespace, Metadata: meta, UserAgentName: "envoy"}

	s.conn, err = grpc.NewClient(i.XDSAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("testenv: dialing xDS %s: %w", i.XDSAddr, err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(s.conn).StreamAggregatedResources(sctx)
	if err != nil {
		cancel()
		s.conn.Close()
		return nil, fmt.Errorf("testenv: opening ADS stream to %s: %w", i.XDSAddr, err)
	}
	for _, t := range []string{ClusterType, ListenerType} {
		s.types[t] = &xdsState{}
		if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: t}); err != nil {
			cancel()
			s.conn.Close()
			return nil, fmt.Errorf("testenv: subscribing %s: %w", t, err)
		}
	}
	go s.run(stream)
	if i.env != nil {
		s.env = i.env
		if err := s.serveTelemetry(i.env, o); err != nil {
			s.Close()
			return nil, fmt.Errorf("testenv: serving the metrics of sidecar %s: %w", s.ProxyID, err)
		}
	}
	i.addSidecar(s)
	if err := s.WaitSynced(ctx, ClusterType, ListenerType); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Sidecar) run(stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient) {
	defer close(s.done)
	fail := func(err error) {
		s.mu.Lock()
		if s.err == nil {
			s.err = err
		}
		s.mu.Unlock()
		s.notify()
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
				err = fmt.Errorf("stream closed: %w", err)
			}
			fail(err)
			return
		}
		var follow []*discoveryv3.DiscoveryRequest
		s.mu.Lock()
		st := s.types[resp.TypeUrl]
		if st == nil {
			st = &xdsState{}
			s.types[resp.TypeUrl] = st
		}
		st.version, st.nonce = resp.VersionInfo, resp.Nonce
		st.received++
		ack := &discoveryv3.DiscoveryRequest{TypeUrl: resp.TypeUrl, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce, ResourceNames: st.names}
		// What clusters and listeners name decides the EDS and RDS
		// subscriptions, as in Envoy.
		switch resp.TypeUrl {
		case ClusterType:
			follow = s.resubscribe(EndpointType, edsNames(resp))
		case ListenerType:
			follow = s.resubscribe(RouteType, rdsNames(resp))
		}
		s.mu.Unlock()
		if err := stream.Send(ack); err != nil {
			fail(err)
			return
		}
		s.mu.Lock()
		st.acked = resp.Nonce
		s.mu.Unlock()
		for _, r := range follow {
			if err := stream.Send(r); err != nil {
				fail(err)
				return
			}
		}
		s.notify()
	}
}

// resubscribe returns the request that changes the subscription of typ to
// names, or nothing if it is unchanged. Called with s.mu held.
func (s *Sidecar) resubscribe(typ string, names []string) []*discoveryv3.DiscoveryRequest {
	st := s.types[typ]
	if st == nil {
		if len(names) == 0 {
			return nil
		}
		st = &xdsState{}
		s.types[typ] = st
	} else if strings.Join(st.names, "\x00") == strings.Join(names, "\x00") {
		return nil
	}
	st.names = names
	return []*discoveryv3.DiscoveryRequest{{TypeUrl: typ, VersionInfo: st.version, ResponseNonce: st.nonce, ResourceNames: names}}
}

func (s *Sidecar) notify() {
	select {
	case s.ack <- struct{}{}:
	default:
	}
}

func edsNames(resp *discoveryv3.DiscoveryResponse) []string {
	var names []string
	for _, r := range resp.Resources {
		var c clusterv3.Cluster
		if err := r.UnmarshalTo(&c); err != nil {
			continue
		}
		if c.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		name := c.GetEdsClusterConfig().GetServiceName()
		if name == "" {
			name = c.GetName()
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func rdsNames(resp *discoveryv3.DiscoveryResponse) []string {
	seen := map[string]bool{}
	for _, r := range resp.Resources {
		var l listenerv3.Listener
		if err := r.UnmarshalTo(&l); err != nil {
			continue
		}
		chains := append([]*listenerv3.FilterChain{l.GetDefaultFilterChain()}, l.GetFilterChains()...)
		for _, fc := range chains {
			for _, f := range fc.GetFilters() {
				tc := f.GetTypedConfig()
				if tc == nil {
					continue
				}
				var hcm hcmv3.HttpConnectionManager
				if err := tc.UnmarshalTo(&hcm); err != nil {
					continue
				}
				if n := hcm.GetRds().GetRouteConfigName(); n != "" {
					seen[n] = true
				}
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// WaitSynced waits until each of the given types (default: every type the
// sidecar subscribed to) has received a response and ACKed the latest one.
func (s *Sidecar) WaitSynced(ctx context.Context, types ...string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		s.mu.Lock()
		err := s.err
		want := types
		if len(want) == 0 {
			for t := range s.types {
				want = append(want, t)
			}
		}
		var pending []string
		for _, t := range want {
			st := s.types[t]
			if st == nil || st.received == 0 || st.acked != st.nonce {
				pending = append(pending, t[strings.LastIndexByte(t, '.')+1:])
			}
		}
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("testenv: sidecar %s: %w", s.ProxyID, err)
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testenv: sidecar %s not synced (%s pending): %w", s.ProxyID, strings.Join(pending, ", "), ctx.Err())
		case <-s.ack:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Err returns why the stream ended, if it did.
func (s *Sidecar) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the stream; istiod then drops the proxy from /debug/syncz, and
// Prometheus stops scraping its metrics.
func (s *Sidecar) Close() error {
	if s.env != nil {
		s.env.removeTarget(s)
	}
	s.telemetry.close()
	s.cancel()
	err := s.conn.Close()
	<-s.done
	return err
}

func (i *Istiod) addSidecar(s *Sidecar) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.sidecars = append(i.sidecars, s)
}

// closeSidecars closes every sidecar connected to this istiod.
func (i *Istiod) closeSidecars() {
	i.mu.Lock()
	ss := i.sidecars
	i.sidecars = nil
	i.mu.Unlock()
	for _, s := range ss {
		_ = s.Close()
	}
}

// ConnectPodSidecars connects a fake sidecar for every running, injected pod
// in namespace matching selector, each to the istiod of the revision that
// injected it, the way real sidecars would connect: spread over its
// replicas (StartReplica) in turn, and reporting the Istio version of the
// pod's proxy image (ProxyVersion) as ISTIO_VERSION. Pods injected by a
// revision without a running istiod in this environment are an error.
func (e *Env) ConnectPodSidecars(ctx context.Context, namespace, selector string) ([]*Sidecar, error) {
	pods, err := e.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	var out []*Sidecar
	connected := map[string]int{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
			continue
		}
		rev, ok := InjectedRevision(&p)
		if !ok {
			continue
		}
		is := e.Istiod(rev)
		if is == nil || is.Process.Exited() {
			return out, fmt.Errorf("testenv: pod %s/%s was injected by %q, which has no running istiod", p.Namespace, p.Name, rev)
		}
		// Pods spread over the revision's replicas, as a Service balances
		// their connections; each reports the version of its proxy image,
		// as Envoy reports the version it was built from.
		replicas := is.Replicas()
		is = replicas[connected[rev]%len(replicas)]
		connected[rev]++
		version, _ := ProxyVersion(&p)
		sa := p.Spec.ServiceAccountName
		owner := ""
		for _, r := range p.OwnerReferences {
			if r.Controller != nil && *r.Controller {
				owner = r.Name
			}
		}
		s, err := is.ConnectSidecar(ctx, SidecarOptions{Pod: p.Name, Namespace: p.Namespace, IP: p.Status.PodIP, Labels: p.Labels,
			ServiceAccount: sa, IstioVersion: version, Workload: workloadOf(p.Name, owner, p.Labels["pod-template-hash"])})
		if err != nil {
			return out, err
		}
		out = append(out, s)
	}
	return out, nil
}
