package testenv_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/revkit/revkit/internal/testenv"
)

// The versions testenv names must be the ones the tools modules pin, and
// their names what hack/tools.sh links into the binaries
// (1.31-dev.<date>.<commit> of the pseudo-version).
func TestIstioVersionsMatchToolsModules(t *testing.T) {
	pseudo := regexp.MustCompile(`^v0\.0\.0-(\d{8})\d{6}-([0-9a-f]{12})$`)
	for _, tc := range []struct {
		v   testenv.IstioVersion
		mod string
	}{
		{testenv.OldIstio, "../../tools/istio-old/go.mod"},
		{testenv.NewIstio, "../../tools/istio/go.mod"},
	} {
		b, err := os.ReadFile(tc.mod)
		require.NoError(t, err)
		assert.Regexp(t, `(?m)^\s*(require\s+)?istio\.io/istio `+regexp.QuoteMeta(tc.v.Module)+`( |$)`, string(b), "%s pins %s", tc.mod, tc.v.Module)
		m := pseudo.FindStringSubmatch(tc.v.Module)
		require.NotNil(t, m, tc.v.Module)
		assert.Equal(t, "1.31-dev."+m[1]+"."+m[2], tc.v.Name)
		assert.Empty(t, validation.IsDNS1123Label(tc.v.Revision))
		assert.Equal(t, tc.v, testenv.IstioFor(tc.v.Revision))
	}
	assert.Less(t, testenv.OldIstio.Module, testenv.NewIstio.Module, "old is older")
	assert.NotEqual(t, testenv.OldIstio.Binary, testenv.NewIstio.Binary)
	assert.NotEqual(t, testenv.OldIstio.Charts, testenv.NewIstio.Charts)
	assert.Equal(t, testenv.NewIstio, testenv.IstioFor("1-30-0"), "any other revision runs the new version")
}

func TestProxyVersion(t *testing.T) {
	proxy := func(image string) corev1.Container { return corev1.Container{Name: "istio-proxy", Image: image} }
	for _, tc := range []struct {
		name string
		spec corev1.PodSpec
		want string
		ok   bool
	}{
		{"not injected", corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}, "", false},
		{"sidecar container", corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}, proxy(testenv.OldIstio.ProxyImage())}}, testenv.OldIstio.Name, true},
		{"native sidecar", corev1.PodSpec{InitContainers: []corev1.Container{proxy(testenv.NewIstio.ProxyImage())}}, testenv.NewIstio.Name, true},
		{"untagged image", corev1.PodSpec{Containers: []corev1.Container{proxy("proxyv2")}}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := testenv.ProxyVersion(&corev1.Pod{Spec: tc.spec})
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.ok, ok)
		})
	}
	assert.True(t, strings.HasSuffix(testenv.NewIstio.ProxyImage(), ":"+testenv.NewIstio.Name))
}
