package revision

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/revkit/revkit/internal/mesh"
	"github.com/revkit/revkit/revkittest"
)

// benchFleet is 100 namespaces, half on each of two revisions, and n pods
// spread over them, injected by their namespace's revision (every tenth
// without a sidecar).
func benchFleet(n int) (*revkittest.Cluster, []corev1.Pod) {
	c := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").WithTag("prod-stable", "1-24-0")
	revs := []string{"1-24-0", "1-25-0"}
	for i := range 100 {
		c = c.WithNamespace(fmt.Sprintf("ns-%03d", i), revkittest.Rev(revs[i%2]))
	}
	pods := make([]corev1.Pod, n)
	for i := range n {
		rev := revs[(i%100)%2]
		if i%10 == 9 {
			rev = ""
		}
		pods[i] = *revkittest.Pod(fmt.Sprintf("ns-%03d", i%100), fmt.Sprintf("app-%d-%05d", i%7, i), rev,
			map[string]string{"app": fmt.Sprintf("app-%d", i%7)})
	}
	return c, pods
}

// BenchmarkRevisionsFrom10kPods measures building List's answer (revisions
// with their namespaces, tags and pods) from a loaded state of 10,000 pods.
func BenchmarkRevisionsFrom10kPods(b *testing.B) {
	c, pods := benchFleet(10000)
	kube := c.Kube()
	ctx := context.Background()
	model, err := mesh.Load(ctx, kube, "istio-system")
	if err != nil {
		b.Fatal(err)
	}
	nss, err := kube.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	s := &state{model: model, namespaces: nss.Items, pods: pods}
	if revs := s.revisions(); len(revs) != 2 || len(revs[0].Pods)+len(revs[1].Pods) != 9000 {
		b.Fatalf("unexpected answer: %d revisions", len(revs))
	}
	b.ReportAllocs()
	for b.Loop() {
		s.revisions()
	}
}

// BenchmarkList10kPods measures List end to end on a fake clientset holding
// 10,000 pods (the fake's own listing and copying included).
func BenchmarkList10kPods(b *testing.B) {
	c, pods := benchFleet(10000)
	for i := range pods {
		c = c.WithObjects(&pods[i])
	}
	kube := c.Kube()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		revs, err := List(ctx, kube, ListOptions{})
		if err != nil || len(revs) != 2 {
			b.Fatal(err, len(revs))
		}
	}
}
