package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
)

// SyncSource is the sync status of a simulated istiod: the /debug/syncz
// document of one revision, listing the proxies of the running, ready
// pods that carry its sidecar. It satisfies verify.SyncSource, so a
// simulation's proxies can be checked with verify.Proxies and the
// upgrade plans' VerifyProxies steps.
type SyncSource struct {
	sim *Simulation
	rev string
}

// SyncSource returns the sync source of revision rev's istiod.
func (s *Simulation) SyncSource(rev string) *SyncSource { return &SyncSource{sim: s, rev: rev} }

// Revision returns the source's revision.
func (p *SyncSource) Revision() string { return p.rev }

// Syncz returns the document. Every proxy is SYNCED, or STALE after
// StaleProxies; a pod that is not ready (its sidecar crashed, its image
// cannot be pulled) never connected and is not listed. After StopIstiod
// it fails as a request to a stopped istiod does.
func (p *SyncSource) Syncz(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.sim.mu.Lock()
	stopped, stale := p.sim.stopped[p.rev], p.sim.stale[p.rev]
	p.sim.mu.Unlock()
	if stopped {
		return nil, Refused("Get", fmt.Sprintf("http://%s.istio-system:15014/debug/syncz", mesh.IstiodName(p.rev)))
	}
	list, err := p.sim.tracker.List(podsGVR, kindOf(podsGVR), metav1.NamespaceAll)
	if err != nil {
		return nil, err
	}
	version := p.sim.istioVersion(p.rev)
	sent, acked := "sim-2", "sim-2"
	if stale {
		acked = "sim-1"
	}
	entries := []mesh.SyncStatus{}
	pods := list.(*corev1.PodList).Items
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].Namespace != pods[j].Namespace {
			return pods[i].Namespace < pods[j].Namespace
		}
		return pods[i].Name < pods[j].Name
	})
	for i := range pods {
		pod := &pods[i]
		if rev, injected := mesh.PodRevision(pod); !injected || rev != p.rev || !mesh.PodActive(pod) ||
			pod.Status.Phase != corev1.PodRunning || !kubeutil.PodReady(pod) {
			continue
		}
		typ := "sidecar"
		if pod.Annotations["inject.istio.io/templates"] == "gateway" {
			typ = "router"
		}
		entries = append(entries, mesh.SyncStatus{ClusterID: "Kubernetes", Proxy: pod.Name + "." + pod.Namespace, ProxyType: typ,
			ProxyVersion: version, IstioVersion: version,
			ClusterSent: sent, ClusterAcked: acked, ListenerSent: sent, ListenerAcked: acked,
			RouteSent: sent, RouteAcked: acked, EndpointSent: sent, EndpointAcked: acked})
	}
	return json.Marshal(entries)
}
