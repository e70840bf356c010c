package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
)

// PortForwardSource reads /debug/syncz from one of a revision's istiod pods
// through the apiserver's port-forward, as istioctl does, so that a program
// outside the cluster can see the control plane's view of its proxies.
type PortForwardSource struct {
	// Rev is the revision whose istiod is read.
	Rev string
	// Config and Kube reach the cluster.
	Config *rest.Config
	Kube   kubernetes.Interface
	// ControlPlaneNamespace holds istiod; default istio-system.
	ControlPlaneNamespace string
	// Pod names the istiod pod; empty picks a running, ready pod labelled
	// app=istiod and istio.io/rev=<Rev>.
	Pod string
	// Port is istiod's monitoring port; default 15014.
	Port int
}

// Revision returns s.Rev.
func (s PortForwardSource) Revision() string { return s.Rev }

// Validate checks the source before any request.
func (s PortForwardSource) Validate() error {
	if err := validateTarget("PortForwardSource.Rev", s.Rev); err != nil {
		return err
	}
	if s.Config == nil || s.Kube == nil {
		return &revkit.InvalidInputError{Field: "PortForwardSource", Reason: "Config and Kube are required"}
	}
	if s.Port < 0 || s.Port > 65535 {
		return &revkit.InvalidInputError{Field: "PortForwardSource.Port", Value: strconv.Itoa(s.Port), Reason: "not a port"}
	}
	return validateControlPlaneNamespace(s.ControlPlaneNamespace)
}

// Syncz forwards a local loopback port to the pod, fetches /debug/syncz and
// closes the forward.
func (s PortForwardSource) Syncz(ctx context.Context) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	ns := revkit.ControlPlaneNamespace(s.ControlPlaneNamespace)
	pod := s.Pod
	if pod == "" {
		p, err := IstiodPod(ctx, s.Kube, ns, s.Rev)
		if err != nil {
			return nil, err
		}
		pod = p
	}
	port := s.Port
	if port == 0 {
		port = 15014
	}
	transport, upgrader, err := spdy.RoundTripperFor(s.Config)
	if err != nil {
		return nil, err
	}
	url := s.Kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, url)
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(port)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		return nil, err
	}
	errc := make(chan error, 1)
	go func() { errc <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-errc:
		return nil, fmt.Errorf("port-forward to %s/%s: %w", ns, pod, err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) == 0 {
		return nil, fmt.Errorf("port-forward to %s/%s: no local port: %v", ns, pod, err)
	}
	return HTTPSource{Rev: s.Rev, URL: fmt.Sprintf("http://127.0.0.1:%d", ports[0].Local)}.Syncz(ctx)
}

// ReplicaSources returns one PortForwardSource per running, ready istiod
// pod of a revision — every replica, since each reports only the proxies
// connected to it — or a *revkit.NotFoundError when there is none.
func ReplicaSources(ctx context.Context, kube kubernetes.Interface, cfg *rest.Config, controlPlaneNamespace, rev string) ([]SyncSource, error) {
	ns := revkit.ControlPlaneNamespace(controlPlaneNamespace)
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=istiod,istio.io/rev=" + rev})
	if err != nil {
		return nil, &revkit.OpError{Op: opProxies, Verb: "list", Object: revkit.ObjectRef{Kind: "Pod", Namespace: ns, Name: "app=istiod"}, Err: err}
	}
	var out []SyncSource
	for i := range pods.Items {
		if p := &pods.Items[i]; kubeutil.PodReady(p) && p.DeletionTimestamp == nil {
			out = append(out, PortForwardSource{Rev: rev, Config: cfg, Kube: kube, ControlPlaneNamespace: ns, Pod: p.Name})
		}
	}
	if len(out) == 0 {
		return nil, &revkit.NotFoundError{Kind: "ready istiod pod of revision", Name: rev}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].(PortForwardSource).Pod < out[b].(PortForwardSource).Pod })
	return out, nil
}

// IstiodPod returns the name of a running, ready istiod pod of a revision
// in ns, preferring the oldest (the most likely to have every proxy
// connected), or a *revkit.NotFoundError.
func IstiodPod(ctx context.Context, kube kubernetes.Interface, ns, rev string) (string, error) {
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=istiod,istio.io/rev=" + rev})
	if err != nil {
		return "", &revkit.OpError{Op: opProxies, Verb: "list", Object: revkit.ObjectRef{Kind: "Pod", Namespace: ns, Name: "app=istiod"}, Err: err}
	}
	var ok []corev1.Pod
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil && kubeutil.PodReady(&p) {
			ok = append(ok, p)
		}
	}
	if len(ok) == 0 {
		return "", &revkit.NotFoundError{Kind: "running istiod pod of revision", Name: rev}
	}
	sort.Slice(ok, func(i, j int) bool {
		return ok[i].CreationTimestamp.Before(&ok[j].CreationTimestamp) ||
			ok[i].CreationTimestamp.Equal(&ok[j].CreationTimestamp) && ok[i].Name < ok[j].Name
	})
	return ok[0].Name, nil
}

// RevisionSource reads /debug/syncz from every ready istiod replica of a
// revision, found when it is read (so it can be set up before the revision
// is installed, and follows scaling), through port-forwards, and returns
// their documents as one: each replica reports only the proxies connected
// to it.
type RevisionSource struct {
	Rev    string
	Config *rest.Config
	Kube   kubernetes.Interface
	// ControlPlaneNamespace holds istiod; default istio-system. Port is the
	// monitoring port; default 15014.
	ControlPlaneNamespace string
	Port                  int
}

// Revision returns s.Rev.
func (s RevisionSource) Revision() string { return s.Rev }

// Validate checks the source before any request.
func (s RevisionSource) Validate() error {
	return PortForwardSource{Rev: s.Rev, Config: s.Config, Kube: s.Kube, ControlPlaneNamespace: s.ControlPlaneNamespace, Port: s.Port}.Validate()
}

// Syncz reads every replica and merges their documents.
func (s RevisionSource) Syncz(ctx context.Context) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	sources, err := ReplicaSources(ctx, s.Kube, s.Config, s.ControlPlaneNamespace, s.Rev)
	if err != nil {
		return nil, err
	}
	docs := make([][]byte, len(sources))
	names := make([]string, len(sources))
	for i, src := range sources {
		pf := src.(PortForwardSource)
		pf.Port = s.Port
		doc, err := pf.Syncz(ctx)
		if err != nil {
			return nil, fmt.Errorf("istiod replica %s: %w", pf.Pod, err)
		}
		docs[i], names[i] = doc, pf.Pod
	}
	return mergeSyncz(docs, names)
}

// mergeSyncz joins the arrays of several replicas' documents into one. Each
// is checked to be a JSON array (or null) and its elements are copied as
// they are: decoding and re-encoding them would cost more than parsing the
// result. One document is returned unchanged; ParseSyncz checks it.
func mergeSyncz(docs [][]byte, replicas []string) ([]byte, error) {
	if len(docs) == 1 {
		return docs[0], nil
	}
	size := 2
	for _, doc := range docs {
		size += len(doc) + 1
	}
	out := make([]byte, 1, size)
	out[0] = '['
	for i, doc := range docs {
		doc = bytes.TrimSpace(doc)
		if !json.Valid(doc) || (doc[0] != '[' && string(doc) != "null") {
			return nil, fmt.Errorf("istiod replica %s: not a syncz document (want a JSON array)", replicas[i])
		}
		if doc[0] != '[' {
			continue
		}
		if body := bytes.TrimSpace(doc[1 : len(doc)-1]); len(body) > 0 {
			if len(out) > 1 {
				out = append(out, ',')
			}
			out = append(out, body...)
		}
	}
	return append(out, ']'), nil
}
