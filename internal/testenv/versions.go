package testenv

import (
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// IstioVersion is one of the two Istio versions the tools build (see
// hack/tools.sh): its istiod binary and its charts in the binary directory,
// both from the same istio.io/istio module version.
//
// Neither module version is a tagged release: the module proxy serves only
// pseudo-versions of istio.io/istio. Both are 1.31 development builds (their
// VERSION file says 1.31): the old one from master in April 2026, after the
// release-1.30 branch was cut (istio.io/api 1.30.0-alpha, Kubernetes 0.35
// libraries, Go 1.25), the new one from late August 2026, late in the 1.31 cycle
// (istio.io/api past 1.31.0-rc.0, Kubernetes 0.36, Go 1.26). Name is what the
// binaries report as their version (set at link time) and the proxy image tag
// their charts inject.
type IstioVersion struct {
	// Name is the version, e.g. "1.31-dev.20260827.eed52ebb66ad".
	Name string
	// Module is the istio.io/istio module version it is built from.
	Module string
	// Revision is the revision name the tests and the demo install this
	// version as (a DNS-1123 label; StartIstiod maps it back to the version).
	Revision string
	// Binary is the pilot-discovery binary's file name in the binary directory.
	Binary string
	// Charts is the charts directory's name in the binary directory (base,
	// istio-discovery, gateway, istio-cni, ztunnel).
	Charts string
}

// The two Istio versions of the local control plane. OldIstio is what a
// canary upgrade starts from, NewIstio (the version tools/istio pins, whose
// istioctl is built too) what it goes to.
var (
	OldIstio = IstioVersion{
		Name:     "1.31-dev.20260423.b01690e6db7d",
		Module:   "v0.0.0-20260423205519-b01690e6db7d",
		Revision: "1-31-dev-0423",
		Binary:   "pilot-discovery-old",
		Charts:   "istio-charts-old",
	}
	NewIstio = IstioVersion{
		Name:     "1.31-dev.20260827.eed52ebb66ad",
		Module:   "v0.0.0-20260827124520-eed52ebb66ad",
		Revision: "1-31-dev-0827",
		Binary:   "pilot-discovery",
		Charts:   "istio-charts",
	}
)

// String is the version name.
func (v IstioVersion) String() string { return v.Name }

// ProxyImage is the sidecar image the version's injection template puts in
// a pod (the charts' hub, the version's name as tag).
func (v IstioVersion) ProxyImage() string { return "registry.istio.io/testing/proxyv2:" + v.Name }

// IstioFor is the version a revision name stands for: OldIstio for
// OldIstio.Revision, NewIstio for any other name (as on a real cluster, where
// a revision is usually named after the version it runs).
func IstioFor(revision string) IstioVersion {
	if revision == OldIstio.Revision {
		return OldIstio
	}
	return NewIstio
}

// VersionChartDir is the directory of one of a version's Istio charts
// ("base", "istio-discovery", "gateway", "istio-cni" or "ztunnel").
func (e *Env) VersionChartDir(v IstioVersion, name string) string {
	return filepath.Join(e.bin(v.Charts), name)
}

// ProxyVersion returns the Istio version of the sidecar injected into a pod,
// read from its istio-proxy container's image tag, and whether it has one.
func ProxyVersion(pod *corev1.Pod) (string, bool) {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if c.Name != "istio-proxy" {
				continue
			}
			i := strings.LastIndex(c.Image, ":")
			if i < 0 {
				return "", false
			}
			return c.Image[i+1:], true
		}
	}
	return "", false
}
