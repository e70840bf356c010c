package upgrade

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
)

// The copy's writes reach the cluster as server-side dry runs, with the
// same verb, object and patch; the cluster's refusal fails the write in the
// copy; an answer that only says the write depends on an earlier step
// (404, 409) lets it through, counted apart.
func TestServerDryRunForwardsWrites(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery+" "+strings.TrimSpace(string(body)))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/namespaces/locked"):
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,"message":"denied by policy"}`)
		case strings.HasSuffix(r.URL.Path, "/namespaces/new"):
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`)
		default:
			_, _ = io.WriteString(w, `{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"shop","resourceVersion":"42"}}`)
		}
	}))
	defer srv.Close()
	cluster, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	require.NoError(t, err)

	ctx := context.Background()
	copyKube := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "locked"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "new"}})
	sd := &serverDryRun{ctx: ctx, kube: cluster}
	sd.install(copyKube)

	patch := []byte(`{"metadata":{"labels":{"istio.io/rev":"1-25-0"}}}`)
	_, err = copyKube.CoreV1().Namespaces().Patch(ctx, "shop", types.MergePatchType, patch, metav1.PatchOptions{})
	require.NoError(t, err)
	ns, err := copyKube.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "1-25-0", ns.Labels["istio.io/rev"], "the copy took the write")

	_, err = copyKube.CoreV1().Namespaces().Patch(ctx, "locked", types.MergePatchType, patch, metav1.PatchOptions{})
	require.Error(t, err)
	assert.True(t, apierrors.IsForbidden(err), "the cluster's refusal: %v", err)
	ns, err = copyKube.CoreV1().Namespaces().Get(ctx, "locked", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Empty(t, ns.Labels, "a refused write does not reach the copy")

	_, err = copyKube.CoreV1().Namespaces().Patch(ctx, "new", types.MergePatchType, patch, metav1.PatchOptions{})
	require.NoError(t, err, "a write the cluster cannot judge alone goes through")

	_, err = copyKube.CoreV1().ConfigMaps("shop").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", ResourceVersion: "7"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, copyKube.CoreV1().ConfigMaps("shop").Delete(ctx, "c", metav1.DeleteOptions{}))

	// An update carries the cluster's resourceVersion, not the copy's:
	// some kinds refuse an unconditional update.
	ns, err = copyKube.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
	require.NoError(t, err)
	ns.ResourceVersion = "copy-version"
	ns.Labels["team"] = "a"
	_, err = copyKube.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{})
	require.NoError(t, err)

	sd.off = true
	_, err = copyKube.CoreV1().Namespaces().Patch(ctx, "locked", types.MergePatchType, patch, metav1.PatchOptions{})
	require.NoError(t, err, "Preview's own writes to the copy are not sent")

	assert.Equal(t, "server dry run: 4 accepted, 1 depend on earlier steps", sd.summary())
	assert.Equal(t, "", sd.summary(), "the counts are per step")
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, 7)
	assert.Equal(t, `PATCH /api/v1/namespaces/shop?dryRun=All {"metadata":{"labels":{"istio.io/rev":"1-25-0"}}}`, seen[0])
	assert.Equal(t, `POST /api/v1/namespaces/shop/configmaps?dryRun=All {"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"c"}}`, seen[3], "without the copy's resourceVersion")
	assert.Equal(t, "DELETE /api/v1/namespaces/shop/configmaps/c?dryRun=All ", seen[4])
	assert.Equal(t, "GET /api/v1/namespaces/shop? ", seen[5])
	assert.Contains(t, seen[6], `PUT /api/v1/namespaces/shop?dryRun=All {"kind":"Namespace","apiVersion":"v1","metadata":{"name":"shop","resourceVersion":"42"`)
}
