//go:build integration

package testenv_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit/internal/testenv"
)

const (
	oldRev = "1-30-0"
	newRev = "1-31-0"
)

// TestControlPlane starts one environment with two istiod revisions and checks
// it the way the library's tests will use it.
func TestControlPlane(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	env, err := testenv.Start(t, testenv.Options{})
	require.NoError(t, err)

	t.Run("apiserver reports v1.36", func(t *testing.T) {
		v, err := env.Client.Discovery().ServerVersion()
		require.NoError(t, err)
		t.Logf("server version %s (%s)", v.GitVersion, v.Platform)
		assert.Equal(t, "1", v.Major)
		assert.Equal(t, "36", v.Minor)
		assert.True(t, strings.HasPrefix(v.GitVersion, "v1.36."), "gitVersion %q", v.GitVersion)
	})

	t.Run("kubectl v1.36 talks to it", func(t *testing.T) {
		out, err := env.Kubectl(ctx, "version", "-o", "json").CombinedOutput()
		require.NoError(t, err, "%s", out)
		var v struct {
			Client struct{ GitVersion string } `json:"clientVersion"`
			Server struct{ GitVersion string } `json:"serverVersion"`
		}
		require.NoError(t, json.Unmarshal(out, &v), "%s", out)
		assert.True(t, strings.HasPrefix(v.Client.GitVersion, "v1.36."), "kubectl %s", v.Client.GitVersion)
		assert.Equal(t, "v1.36.3", v.Server.GitVersion)
	})

	t.Run("apiserver runs outside the host network namespace", func(t *testing.T) {
		api := env.Process("kube-apiserver")
		require.NotNil(t, api)
		apiNS, err := testenv.NetNS(fmt.Sprint(api.Pid()))
		require.NoError(t, err)
		hostNS, err := testenv.HostNetNS()
		require.NoError(t, err)
		selfNS, err := testenv.NetNS("self")
		require.NoError(t, err)
		t.Logf("apiserver pid %d in %s; host %s", api.Pid(), apiNS, hostNS)
		assert.NotEqual(t, hostNS, apiNS)
		assert.Equal(t, selfNS, apiNS, "the apiserver shares the test's loopback-only namespace")
		// The service range is unreachable: a webhook call to a ClusterIP
		// fails here instead of leaving the machine.
		_, err = net.DialTimeout("tcp", "10.0.0.1:443", 2*time.Second)
		require.Error(t, err)
		assert.True(t, errors.Is(err, syscall.ENETUNREACH), "dial 10.0.0.1: %v", err)
	})

	var revs [2]*testenv.Istiod
	t.Run("two istiod revisions side by side", func(t *testing.T) {
		for i, rev := range []string{oldRev, newRev} {
			revs[i], err = env.StartIstiod(ctx, rev)
			require.NoError(t, err, "revision %s", rev)
		}
		for _, is := range revs {
			mwc, err := env.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, is.InjectorWebhook, metav1.GetOptions{})
			require.NoError(t, err)
			assert.Equal(t, is.Revision, mwc.Labels["istio.io/rev"])
			for _, w := range mwc.Webhooks {
				require.NotNil(t, w.ClientConfig.URL, "webhook %s", w.Name)
				assert.Equal(t, "https://"+is.WebhookAddr+"/inject", *w.ClientConfig.URL)
				assert.NotEmpty(t, w.ClientConfig.CABundle)
			}
			_, err = env.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, is.ValidatorWebhook, metav1.GetOptions{})
			assert.NoError(t, err)
			body := httpGet(t, is.SynczURL())
			t.Logf("%s: /debug/syncz answers %d bytes", is.Revision, len(body))
			for _, name := range []string{"istio-" + is.Revision, "istio-sidecar-injector-" + is.Revision} {
				_, err := env.Client.CoreV1().ConfigMaps(testenv.IstioNamespace).Get(ctx, name, metav1.GetOptions{})
				assert.NoError(t, err, "ConfigMap %s", name)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("revision validator rejects invalid config", func(t *testing.T) {
		vs := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "networking.istio.io/v1",
			"kind":       "VirtualService",
			"metadata": map[string]any{
				"name": "invalid", "namespace": "default",
				"labels": map[string]any{"istio.io/rev": newRev},
			},
			// The CRD schema cannot tell that the regex does not compile;
			// istiod's webhook can.
			"spec": map[string]any{"hosts": []any{"web"}, "http": []any{map[string]any{
				"match": []any{map[string]any{"uri": map[string]any{"regex": "(["}}},
				"route": []any{map[string]any{"destination": map[string]any{"host": "web"}}},
			}}},
		}}
		gvr := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
		_, err := env.Dynamic.Resource(gvr).Namespace("default").Create(ctx, vs, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		require.Error(t, err)
		t.Logf("rejected: %v", err)
		assert.Contains(t, err.Error(), "rev.validation.istio.io")
	})

	t.Run("namespace moves to the other revision on rollout restart", func(t *testing.T) {
		const ns = "app"
		_, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: ns, Labels: map[string]string{"istio.io/rev": oldRev},
		}}, metav1.CreateOptions{})
		require.NoError(t, err)
		require.NoError(t, env.WaitForServiceAccount(ctx, ns, "default"))

		replicas := int32(2)
		dep := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.invalid/web:1"}}},
				},
			},
		}
		start := time.Now()
		_, err = env.Client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{})
		require.NoError(t, err)
		waitRolledOut(ctx, t, env.Client, ns, "web")
		t.Logf("deployment available in %s", time.Since(start).Round(time.Millisecond))
		assertPodsRevision(ctx, t, env.Client, ns, "app=web", oldRev, 2)

		start = time.Now()
		patch := fmt.Sprintf(`{"metadata":{"labels":{"istio.io/rev":%q}}}`, newRev)
		_, err = env.Client.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		require.NoError(t, err)
		restart := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`,
			time.Now().Format(time.RFC3339))
		_, err = env.Client.AppsV1().Deployments(ns).Patch(ctx, "web", types.StrategicMergePatchType, []byte(restart), metav1.PatchOptions{})
		require.NoError(t, err)
		waitRolledOut(ctx, t, env.Client, ns, "web")
		t.Logf("rollout restart done in %s", time.Since(start).Round(time.Millisecond))
		assertPodsRevision(ctx, t, env.Client, ns, "app=web", newRev, 2)
	})

	t.Run("fake sidecars show up as SYNCED in the injecting revision's syncz", func(t *testing.T) {
		sidecars, err := env.ConnectPodSidecars(ctx, "app", "app=web")
		require.NoError(t, err)
		require.Len(t, sidecars, 2)
		want := map[string]bool{}
		for _, s := range sidecars {
			assert.Equal(t, newRev, s.Revision)
			require.NoError(t, s.WaitSynced(ctx))
			want[s.ProxyID] = true
		}
		// istiod records an ACK a moment after it arrives.
		var status []syncStatus
		deadline := time.Now().Add(30 * time.Second)
		for {
			status = syncz(t, revs[1])
			if allSynced(status, want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		for _, st := range status {
			t.Logf("%s syncz: %s type=%s version=%s CDS %s/%s LDS %s/%s EDS %s/%s RDS %s/%s", newRev, st.Proxy, st.ProxyType, st.IstioVersion,
				st.ClusterSent, st.ClusterAcked, st.ListenerSent, st.ListenerAcked, st.EndpointSent, st.EndpointAcked, st.RouteSent, st.RouteAcked)
		}
		assert.True(t, allSynced(status, want), "all of %v SYNCED in %s's syncz", want, newRev)
		assert.Empty(t, syncz(t, revs[0]), "%s has no proxies", oldRev)

		for _, s := range sidecars {
			require.NoError(t, s.Close())
		}
		require.Eventually(t, func() bool { return len(syncz(t, revs[1])) == 0 }, 30*time.Second, 200*time.Millisecond,
			"closed sidecars leave %s's syncz", newRev)
	})

	t.Run("a stopped revision's injector fails closed", func(t *testing.T) {
		require.NoError(t, env.StopIstiod(oldRev))
		assert.True(t, revs[0].Process.Exited())
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "orphan", Labels: map[string]string{"istio.io/rev": oldRev}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/app:1"}}},
		}
		_, err := env.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		require.Error(t, err)
		t.Logf("rejected: %v", err)
		assert.Contains(t, err.Error(), "failed calling webhook")
		// The other revision is unaffected.
		pod.Labels["istio.io/rev"] = newRev
		got, err := env.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		require.NoError(t, err)
		rev, _ := testenv.InjectedRevision(got)
		assert.Equal(t, newRev, rev)
	})
}

type syncStatus struct {
	Proxy         string `json:"proxy"`
	ProxyType     string `json:"proxy_type"`
	IstioVersion  string `json:"istio_version"`
	ClusterSent   string `json:"cluster_sent"`
	ClusterAcked  string `json:"cluster_acked"`
	ListenerSent  string `json:"listener_sent"`
	ListenerAcked string `json:"listener_acked"`
	RouteSent     string `json:"route_sent"`
	RouteAcked    string `json:"route_acked"`
	EndpointSent  string `json:"endpoint_sent"`
	EndpointAcked string `json:"endpoint_acked"`
}

func syncz(t *testing.T, is *testenv.Istiod) []syncStatus {
	t.Helper()
	var out []syncStatus
	require.NoError(t, json.Unmarshal(httpGet(t, is.SynczURL()), &out))
	return out
}

// allSynced reports whether every wanted proxy is listed with clusters and
// listeners sent and acked at the same nonce, and likewise endpoints and
// routes where sent.
func allSynced(status []syncStatus, want map[string]bool) bool {
	seen := 0
	for _, st := range status {
		if !want[st.Proxy] {
			continue
		}
		seen++
		if st.ClusterSent == "" || st.ClusterSent != st.ClusterAcked || st.ListenerSent == "" || st.ListenerSent != st.ListenerAcked ||
			st.EndpointSent != st.EndpointAcked || st.RouteSent != st.RouteAcked {
			return false
		}
	}
	return seen == len(want)
}

// TestCleanup proves that the environment leaves nothing behind: every
// process is gone and the temporary directory removed once the test that
// started it ends.
func TestCleanup(t *testing.T) {
	var pids []int
	var dir string
	t.Run("env", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		env, err := testenv.Start(t, testenv.Options{Nodes: 1})
		require.NoError(t, err)
		_, err = env.StartIstiod(ctx, newRev)
		require.NoError(t, err)
		dir = env.Dir
		names := map[string]bool{}
		for _, p := range env.Processes() {
			require.True(t, testenv.ProcessAlive(p.Pid()), "%s is running", p.Name)
			pids = append(pids, p.Pid())
			names[p.Name] = true
		}
		for _, n := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "istiod-" + newRev} {
			assert.True(t, names[n], "started %s", n)
		}
		// Stop is also what t.Cleanup does; calling it early must be harmless.
		require.NoError(t, env.Stop())
		require.NoError(t, env.Stop())
	})
	require.NotEmpty(t, pids)
	for _, pid := range pids {
		assert.False(t, testenv.ProcessAlive(pid), "pid %d still alive", pid)
	}
	_, err := os.Stat(dir)
	assert.True(t, os.IsNotExist(err), "temp dir %s removed: %v", dir, err)
}

func httpGet(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", url, b)
	return b
}

// waitRolledOut waits like `kubectl rollout status`.
func waitRolledOut(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var last string
	for {
		d, err := c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		want := *d.Spec.Replicas
		s := d.Status
		last = fmt.Sprintf("generation %d/%d, replicas %d, updated %d, available %d, unavailable %d",
			s.ObservedGeneration, d.Generation, s.Replicas, s.UpdatedReplicas, s.AvailableReplicas, s.UnavailableReplicas)
		if s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("deployment %s/%s not rolled out: %s", ns, name, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// assertPodsRevision checks that exactly n live pods match and that each was
// injected by revision.
func assertPodsRevision(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, selector, revision string, n int) {
	t.Helper()
	var live []corev1.Pod
	deadline := time.Now().Add(time.Minute)
	for {
		pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		require.NoError(t, err)
		live = live[:0]
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil {
				live = append(live, p)
			}
		}
		// Old pods linger until KWOK finishes deleting them.
		if len(live) == n && len(pods.Items) == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	require.Len(t, live, n)
	for _, p := range live {
		rev, ok := testenv.InjectedRevision(&p)
		require.True(t, ok, "pod %s has no sidecar.istio.io/status", p.Name)
		assert.Equal(t, revision, rev, "pod %s", p.Name)
		assert.Equal(t, corev1.PodRunning, p.Status.Phase, "pod %s", p.Name)
		// A native sidecar (an init container that keeps running) on nodes
		// whose kubelet supports it, a plain container otherwise.
		var proxy bool
		for _, ctr := range append(p.Spec.Containers, p.Spec.InitContainers...) {
			proxy = proxy || ctr.Name == "istio-proxy"
		}
		assert.True(t, proxy, "pod %s has an istio-proxy container", p.Name)
	}
}
