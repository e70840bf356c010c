package verify

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revkittest"
)

// canary is a cluster in the middle of an upgrade from 1-24-0 to 1-25-0:
// the prod tag already points at the canary, shop uses it, but cart still
// runs the old sidecar.
func canary() *revkittest.Cluster {
	return revkittest.NewCluster().
		WithRevision("1-24-0").
		WithRevision("1-25-0").
		WithTag("prod", "1-25-0").
		WithNamespace("shop", revkittest.Rev("prod"), revkittest.Label("team", "shop")).
		WithDeployment("shop", "cart", revkittest.Replicas(2), revkittest.OnRevision("1-24-0")).
		WithDeployment("shop", "web", revkittest.OnRevision("1-25-0"))
}

func stragglerStrings(list []Straggler) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.String())
	}
	return out
}

func nsNames(r *PodsReport) []string {
	var out []string
	for _, n := range r.Namespaces {
		out = append(out, n.Namespace)
	}
	return out
}

func podWith(ns, name, rev string, mutate func(*corev1.Pod)) *corev1.Pod {
	p := revkittest.Pod(ns, name, rev, map[string]string{"app": name})
	mutate(p)
	return p
}

func TestPods(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	tests := []struct {
		name    string
		cluster *revkittest.Cluster
		opts    PodsOptions
		// want
		revision   string
		namespaces []string
		stragglers []string
		counts     map[string]NamespacePods // by namespace; Stragglers not compared
	}{
		{
			name:       "target tag resolves; old pods are stragglers",
			cluster:    canary(),
			opts:       PodsOptions{Namespaces: []string{"shop"}, Target: "prod"},
			revision:   "1-25-0",
			namespaces: []string{"shop"},
			stragglers: []string{"shop/cart-0: on revision 1-24-0", "shop/cart-1: on revision 1-24-0"},
			counts: map[string]NamespacePods{"shop": {Injects: []string{"1-25-0"},
				Revisions: map[string]int{"1-24-0": 2, "1-25-0": 1}}},
		},
		{
			name: "all pods on target",
			cluster: revkittest.NewCluster().WithRevision("1-25-0").
				WithNamespace("shop", revkittest.Rev("1-25-0")).
				WithDeployment("shop", "cart", revkittest.Replicas(3), revkittest.OnRevision("1-25-0")),
			opts:       PodsOptions{Namespaces: []string{"shop"}, Target: "1-25-0"},
			revision:   "1-25-0",
			namespaces: []string{"shop"},
			counts: map[string]NamespacePods{"shop": {Injects: []string{"1-25-0"},
				Revisions: map[string]int{"1-25-0": 3}}},
		},
		{
			name: "ambient namespace: its pods without a sidecar are ztunnel's, not stragglers; a pod opting out is",
			cluster: revkittest.NewCluster().WithRevision("1-25-0").
				WithNamespace("shop", revkittest.Rev("1-25-0"), revkittest.Label("istio.io/dataplane-mode", "ambient")).
				WithDeployment("shop", "cart", revkittest.Replicas(2)).
				WithObjects(revkittest.Pod("shop", "legacy", "", map[string]string{"istio.io/dataplane-mode": "none"})),
			opts:       PodsOptions{Namespaces: []string{"shop"}, Target: "1-25-0"},
			revision:   "1-25-0",
			namespaces: []string{"shop"},
			stragglers: []string{"shop/legacy: not injected"},
			counts: map[string]NamespacePods{"shop": {Injects: []string{"1-25-0"}, Revisions: map[string]int{},
				Ambient: 2, AmbientNamespace: true, NoSidecar: 1}},
		},
		{
			name: "a pod enrolled by istio-cni, or asking for ambient itself, in a sidecar namespace",
			cluster: revkittest.NewCluster().WithRevision("1-25-0").
				WithNamespace("shop", revkittest.Rev("1-25-0")).
				WithObjects(ambientPod("shop", "enrolled", nil, map[string]string{"ambient.istio.io/redirection": "enabled"}),
					ambientPod("shop", "asks", map[string]string{"istio.io/dataplane-mode": "ambient"}, nil)).
				WithDeployment("shop", "cart", revkittest.OnRevision("1-25-0")),
			opts:       PodsOptions{Namespaces: []string{"shop"}, Target: "1-25-0"},
			revision:   "1-25-0",
			namespaces: []string{"shop"},
			counts: map[string]NamespacePods{"shop": {Injects: []string{"1-25-0"}, Revisions: map[string]int{"1-25-0": 1},
				Ambient: 2}},
		},
		{
			name: "the mesh includes ambient namespaces",
			cluster: revkittest.NewCluster().WithRevision("1-25-0").
				WithNamespace("amb", revkittest.Label("istio.io/dataplane-mode", "ambient")).
				WithDeployment("amb", "api", revkittest.Replicas(2)).
				WithNamespace("plain").WithDeployment("plain", "web"),
			namespaces: []string{"amb"},
			counts:     map[string]NamespacePods{"amb": {Revisions: map[string]int{}, Ambient: 2, AmbientNamespace: true}},
		},
		{
			name: "pod without sidecar is not injected; opted-out pod is no straggler",
			cluster: revkittest.NewCluster().WithRevision("1-25-0").
				WithNamespace("shop", revkittest.Rev("1-25-0")).
				WithPod("shop", "lone", "").
				WithDeployment("shop", "batch", revkittest.InjectionDisabled()),
			opts:       PodsOptions{Namespaces: []string{"shop"}, Target: "1-25-0"},
			revision:   "1-25-0",
			namespaces: []string{"shop"},
			stragglers: []string{"shop/lone: not injected"},
			counts: map[string]NamespacePods{"shop": {Injects: []string{"1-25-0"},
				Revisions: map[string]int{}, NoSidecar: 2, OptedOut: 1}},
		},
		{
			name: "finished pods ignored, terminating counted apart",
			cluster: revkittest.NewCluster().WithRevision("1-25-0").
				WithNamespace("shop", revkittest.Rev("1-25-0")).
				WithPod("shop", "ok", "1-25-0").
				WithObjects(
					podWith("shop", "done", "1-24-0", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
					podWith("shop", "crashed", "", func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }),
					podWith("shop", "leaving", "1-24-0", func(p *corev1.Pod) {
						p.DeletionTimestamp = &now
						p.Finalizers = []string{"example.com/hold"}
					}),
				),
			opts:       PodsOptions{Namespaces: []string{"shop"}, Target: "1-25-0"},
			revision:   "1-25-0",
			namespaces: []string{"shop"},
			counts: map[string]NamespacePods{"shop": {Injects: []string{"1-25-0"},
				Revisions: map[string]int{"1-25-0": 1}, Terminating: 1}},
		},
		{
			name:       "no target: expect what would inject each pod now",
			cluster:    canary().WithNamespace("plain").WithPod("plain", "tool", ""),
			opts:       PodsOptions{Namespaces: []string{"shop", "plain"}},
			namespaces: []string{"plain", "shop"},
			stragglers: []string{"shop/cart-0: on revision 1-24-0", "shop/cart-1: on revision 1-24-0"},
			counts: map[string]NamespacePods{
				"plain": {Revisions: map[string]int{}, NoSidecar: 1},
				"shop":  {Injects: []string{"1-25-0"}, Revisions: map[string]int{"1-24-0": 2, "1-25-0": 1}},
			},
		},
		{
			name: "no target: a pod label selects its own revision",
			cluster: revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").
				WithNamespace("plain").
				WithObjects(revkittest.Pod("plain", "pinned", "1-24-0", map[string]string{"istio.io/rev": "1-25-0"})),
			opts:       PodsOptions{Namespaces: []string{"plain"}},
			namespaces: []string{"plain"},
			stragglers: []string{"plain/pinned: on revision 1-24-0"},
			counts:     map[string]NamespacePods{"plain": {Revisions: map[string]int{"1-24-0": 1}}},
		},
		{
			name: "no namespaces named: every namespace of the mesh, not kube-system",
			cluster: canary().
				WithNamespace("kube-system").WithPod("kube-system", "coredns", "").
				WithNamespace("leftover").WithPod("leftover", "old", "1-24-0").
				WithNamespace("plain").WithPod("plain", "tool", ""),
			opts:       PodsOptions{Target: "1-25-0"},
			revision:   "1-25-0",
			namespaces: []string{"leftover", "shop"},
			stragglers: []string{"leftover/old: on revision 1-24-0", "shop/cart-0: on revision 1-24-0", "shop/cart-1: on revision 1-24-0"},
			counts: map[string]NamespacePods{
				"leftover": {Revisions: map[string]int{"1-24-0": 1}},
				"shop":     {Injects: []string{"1-25-0"}, Revisions: map[string]int{"1-24-0": 2, "1-25-0": 1}},
			},
		},
		{
			name: "selector and names are merged",
			cluster: canary().
				WithNamespace("blog", revkittest.Rev("1-25-0"), revkittest.Label("team", "shop")).
				WithPod("blog", "post", "1-25-0").
				WithNamespace("other", revkittest.Rev("1-24-0")).
				WithNamespace("extra"),
			opts:       PodsOptions{Selector: "team=shop", Namespaces: []string{"extra", "shop", "extra"}, Target: "1-25-0"},
			revision:   "1-25-0",
			namespaces: []string{"blog", "extra", "shop"},
			stragglers: []string{"shop/cart-0: on revision 1-24-0", "shop/cart-1: on revision 1-24-0"},
			counts: map[string]NamespacePods{
				"blog":  {Injects: []string{"1-25-0"}, Revisions: map[string]int{"1-25-0": 1}},
				"extra": {Revisions: map[string]int{}},
				"shop":  {Injects: []string{"1-25-0"}, Revisions: map[string]int{"1-24-0": 2, "1-25-0": 1}},
			},
		},
		{
			name:    "selector matching nothing",
			cluster: canary(),
			opts:    PodsOptions{Selector: "team=none", Target: "prod"},
			// An empty report: nothing was selected, so nothing lags.
			revision: "1-25-0",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kube := tc.cluster.Kube()
			r, err := Pods(context.Background(), kube, tc.opts)
			if err != nil {
				t.Fatalf("Pods: %v", err)
			}
			if r.Revision != tc.revision || r.Target != tc.opts.Target {
				t.Errorf("Target/Revision = %q/%q, want %q/%q", r.Target, r.Revision, tc.opts.Target, tc.revision)
			}
			if got := nsNames(r); !reflect.DeepEqual(got, tc.namespaces) {
				t.Errorf("namespaces = %v, want %v", got, tc.namespaces)
			}
			if got := stragglerStrings(r.Stragglers); !reflect.DeepEqual(got, tc.stragglers) {
				t.Errorf("stragglers = %q, want %q", got, tc.stragglers)
			}
			for _, n := range r.Namespaces {
				want, ok := tc.counts[n.Namespace]
				if !ok {
					t.Errorf("no expectation for namespace %s", n.Namespace)
					continue
				}
				want.Namespace = n.Namespace
				got := n
				got.Stragglers = nil
				got.Injections = nil // checked by TestPodsInjectionsFollowWebhooks
				if !reflect.DeepEqual(got, want) {
					t.Errorf("namespace %s:\n got %+v\nwant %+v", n.Namespace, got, want)
				}
			}
			if r.OK() != (len(tc.stragglers) == 0) {
				t.Errorf("OK() = %v with %d stragglers", r.OK(), len(tc.stragglers))
			}
			err = r.Err()
			if len(tc.stragglers) == 0 {
				if err != nil {
					t.Errorf("Err() = %v, want nil", err)
				}
			} else {
				var ve *VerificationError
				if !errors.Is(err, revkit.ErrVerificationFailed) || !errors.As(err, &ve) {
					t.Fatalf("Err() = %v, want a VerificationError", err)
				}
				if len(ve.Problems) != len(tc.stragglers) || ve.Problems[0].Kind != ProblemStraggler {
					t.Errorf("problems = %v", ve.Problems)
				}
				if errors.Is(err, revkit.ErrOverlap) {
					t.Errorf("a straggler must not match ErrOverlap")
				}
			}
			for _, a := range kube.Actions() {
				if v := a.GetVerb(); v != "get" && v != "list" {
					t.Errorf("verify wrote: %s %s", v, a.GetResource().Resource)
				}
			}
		})
	}
}

func TestPodsActiveCount(t *testing.T) {
	n := NamespacePods{Revisions: map[string]int{"a": 2, "b": 3}, NoSidecar: 4, Ambient: 5}
	if got := n.Active(); got != 14 {
		t.Errorf("Active() = %d, want 14", got)
	}
}

// ambientPod is a running pod without a sidecar, with labels and
// annotations.
func ambientPod(ns, name string, labels, annotations map[string]string) *corev1.Pod {
	p := revkittest.Pod(ns, name, "", labels)
	p.Annotations = annotations
	return p
}

func TestPodsNotFound(t *testing.T) {
	tests := []struct {
		name string
		opts PodsOptions
		want revkit.NotFoundError
		// listedPods says whether any pod was listed before the error.
	}{
		{"unknown target", PodsOptions{Namespaces: []string{"shop"}, Target: "nope"}, revkit.NotFoundError{Kind: "revision or tag", Name: "nope"}},
		{"missing namespace", PodsOptions{Namespaces: []string{"shop", "gone"}, Target: "prod"}, revkit.NotFoundError{Kind: "namespace", Name: "gone"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kube := canary().Kube()
			_, err := Pods(context.Background(), kube, tc.opts)
			var nf *revkit.NotFoundError
			if !errors.As(err, &nf) || *nf != tc.want || !errors.Is(err, revkit.ErrNotFound) {
				t.Fatalf("err = %v, want %+v", err, tc.want)
			}
			for _, a := range kube.Actions() {
				if a.GetResource().Resource == "pods" {
					t.Errorf("pods were listed before the error: %v", a)
				}
			}
		})
	}
}

// failOn makes every verb on resource fail with err.
func failOn(kube *fake.Clientset, verb, resource string, err error) {
	kube.PrependReactor(verb, resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, err
	})
}

func TestPodsAPIErrors(t *testing.T) {
	gr := schema.GroupResource{Resource: "pods"}
	forbidden := apierrors.NewForbidden(gr, "", errors.New("no"))
	internal := apierrors.NewInternalError(errors.New("boom"))
	tests := []struct {
		name           string
		opts           PodsOptions
		verb, resource string
		err            error
		is             func(error) bool
		mention        string
	}{
		{"list pods 500", PodsOptions{Namespaces: []string{"shop"}}, "list", "pods", internal, apierrors.IsInternalError, "verify.Pods: list Pod/shop/"},
		{"list all pods 403", PodsOptions{}, "list", "pods", forbidden, apierrors.IsForbidden, "list Pod/"},
		{"get namespace 403", PodsOptions{Namespaces: []string{"shop"}}, "get", "namespaces", forbidden, apierrors.IsForbidden, "get Namespace/shop"},
		{"list namespaces by selector 500", PodsOptions{Selector: "team"}, "list", "namespaces", internal, apierrors.IsInternalError, "list Namespace/"},
		{"list namespaces of the mesh 403", PodsOptions{}, "list", "namespaces", forbidden, apierrors.IsForbidden, "list Namespace/"},
		{"load injectors 403", PodsOptions{Target: "prod"}, "list", "mutatingwebhookconfigurations", forbidden, apierrors.IsForbidden, "read the control plane in istio-system"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kube := canary().Kube()
			failOn(kube, tc.verb, tc.resource, tc.err)
			_, err := Pods(context.Background(), kube, tc.opts)
			if err == nil || !tc.is(err) {
				t.Fatalf("err = %v, want the API status kept", err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("err = %q, want it to say %q", err, tc.mention)
			}
		})
	}
}

// TestPodsPaging serves the pods of shop in two pages and checks that both
// are counted and that pages are asked for with a limit.
func TestPodsPaging(t *testing.T) {
	kube := revkittest.NewCluster().WithRevision("1-25-0").
		WithNamespace("shop", revkittest.Rev("1-25-0")).Kube()
	var limits []int64
	kube.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		opts := a.(k8stesting.ListActionImpl).ListOptions
		limits = append(limits, opts.Limit)
		switch opts.Continue {
		case "":
			return true, &corev1.PodList{
				ListMeta: metav1.ListMeta{Continue: "page-2"},
				Items:    []corev1.Pod{*revkittest.Pod("shop", "a", "1-25-0", nil)},
			}, nil
		case "page-2":
			return true, &corev1.PodList{Items: []corev1.Pod{*revkittest.Pod("shop", "b", "1-24-0", nil)}}, nil
		}
		return true, nil, errors.New("unexpected continue token " + opts.Continue)
	})
	r, err := Pods(context.Background(), kube, PodsOptions{Namespaces: []string{"shop"}, Target: "1-25-0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(limits) != 2 || limits[0] == 0 {
		t.Errorf("list calls with limits %v, want two pages with a limit", limits)
	}
	if got := stragglerStrings(r.Stragglers); !reflect.DeepEqual(got, []string{"shop/b: on revision 1-24-0"}) {
		t.Errorf("stragglers = %v", got)
	}
	if got := r.Namespaces[0].Revisions; !reflect.DeepEqual(got, map[string]int{"1-24-0": 1, "1-25-0": 1}) {
		t.Errorf("revisions = %v", got)
	}
}

// TestPodsClusterWide selects twelve namespaces of a cluster that has one
// more: their pods are read with one list across the cluster, or, when that
// is forbidden, with one list per selected namespace, and the counts are
// the same either way.
func TestPodsClusterWide(t *testing.T) {
	fleet := func() *revkittest.Cluster {
		c := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").
			WithNamespace("elsewhere", revkittest.Rev("1-24-0")).
			WithDeployment("elsewhere", "app", revkittest.OnRevision("1-24-0"))
		for i := range 12 {
			ns := fmt.Sprintf("team-%02d", i)
			c.WithNamespace(ns, revkittest.Rev("1-25-0"), revkittest.Label("fleet", "yes")).
				WithDeployment(ns, "app", revkittest.Replicas(2), revkittest.OnRevision("1-25-0"))
		}
		return c.WithDeployment("team-03", "old", revkittest.OnRevision("1-24-0"))
	}
	forbidAll := func(kube *fake.Clientset) {
		kube.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.GetNamespace() == "" {
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New("namespaced role only"))
			}
			return false, nil, nil
		})
	}
	tests := []struct {
		name      string
		setup     func(*fake.Clientset)
		wantLists []string // namespaces of the pod lists, "" for the cluster
	}{
		{"one list across the cluster", func(*fake.Clientset) {}, []string{""}},
		{"per namespace when forbidden", forbidAll, append([]string{""}, fleetNames(12)...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kube := fleet().Kube()
			tc.setup(kube)
			r, err := Pods(context.Background(), kube, PodsOptions{Selector: "fleet=yes", Target: "1-25-0"})
			if err != nil {
				t.Fatal(err)
			}
			var lists []string
			for _, a := range kube.Actions() {
				if a.GetVerb() == "list" && a.GetResource().Resource == "pods" {
					lists = append(lists, a.GetNamespace())
				}
			}
			if !reflect.DeepEqual(lists, tc.wantLists) {
				t.Errorf("pod lists in %q, want %q", lists, tc.wantLists)
			}
			if len(r.Namespaces) != 12 {
				t.Fatalf("namespaces = %d, want the 12 selected", len(r.Namespaces))
			}
			for _, n := range r.Namespaces {
				want := map[string]int{"1-25-0": 2}
				if n.Namespace == "team-03" {
					want["1-24-0"] = 1
				}
				if !reflect.DeepEqual(n.Revisions, want) {
					t.Errorf("%s revisions = %v, want %v", n.Namespace, n.Revisions, want)
				}
			}
			if got := stragglerStrings(r.Stragglers); len(got) != 1 || !strings.HasPrefix(got[0], "team-03/old-") {
				t.Errorf("stragglers = %v, want only team-03's old pod", got)
			}
		})
	}
}

func fleetNames(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("team-%02d", i))
	}
	return out
}
