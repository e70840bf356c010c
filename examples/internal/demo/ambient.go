package demo

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	rv1 "helm.sh/helm/v4/pkg/release/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/helm"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
)

// ambientEnv is the local control plane of an ambient mesh: istiod in
// ambient mode, the Gateway API CRDs (waypoints are Gateways), three nodes
// for the node agents, and Istio's CRDs from the base chart, installed by
// Helm as a platform team would.
var ambientEnv = testenv.Options{SkipIstioCRDs: true, Nodes: 3, GatewayAPI: true,
	IstiodEnv: []string{"PILOT_ENABLE_AMBIENT=true"}}

// ConnectAmbient is Connect for an ambient mesh: without a kubeconfig the
// local control plane it starts runs istiod in ambient mode.
func ConnectAmbient(kubeconfig string, log io.Writer) (*Cluster, error) {
	return connect(kubeconfig, log, ambientEnv)
}

// BaseValues are the base chart's values here: no default validator (the
// default tag is revkit's to set).
var BaseValues = map[string]any{"defaultRevision": ""}

// AgentValues are the values of a version's istio-cni and ztunnel charts in
// the local control plane: the version's image tag (the charts of a
// development build carry none).
func AgentValues(v testenv.IstioVersion) (cni, ztunnel map[string]any) {
	return map[string]any{"profile": "ambient", "global": map[string]any{"hub": "registry.invalid/istio", "tag": v.Name}},
		map[string]any{"hub": "registry.invalid/istio", "tag": v.Name}
}

// SeedAmbient installs an ambient mesh of the version with Helm, as Istio's
// ambient guide does — base, istiod (revision v.Revision, ambient
// profile), istio-cni, ztunnel — points tag stable at it, and creates the
// namespace "shop" in ambient mode with a Deployment and a waypoint on tag
// stable (istiod renders the waypoint's Deployment).
func (c *Cluster) SeedAmbient(ctx context.Context, hc *helm.Client, v testenv.IstioVersion, stable string, log io.Writer) error {
	if c.Local == nil {
		return fmt.Errorf("demo: seeding needs the local control plane")
	}
	fmt.Fprintf(log, "installing Istio %s in ambient mode with Helm: base, istiod %s, istio-cni, ztunnel\n", v, v.Revision)
	if _, err := revision.UpgradeBase(ctx, c.Kube, revision.BaseOptions{Chart: revision.ChartSource{Path: c.Local.VersionChartDir(v, "base")},
		Values: BaseValues, Helm: hc, Wait: true, Timeout: 2 * time.Minute}); err != nil {
		return err
	}
	is, err := c.Local.ReserveIstiod(v.Revision)
	if err != nil {
		return err
	}
	is.Version = v
	values := is.ChartValues()
	values["profile"] = "ambient"
	if _, err := revision.Install(ctx, c.Kube, revision.InstallOptions{Revision: v.Revision,
		Chart: revision.ChartSource{Path: c.Local.VersionChartDir(v, "istio-discovery")}, Values: values,
		Helm: hc, Wait: true, Timeout: 3 * time.Minute}); err != nil {
		return err
	}
	if _, err := c.Local.StartInstalledIstiod(ctx, is); err != nil {
		return err
	}
	if _, err := tag.Set(ctx, c.Kube, tag.SetOptions{Tag: stable, Revision: v.Revision}); err != nil {
		return err
	}
	cni, zt := AgentValues(v)
	cni["revision"], zt["revision"] = v.Revision, v.Revision
	for _, r := range []struct {
		chart  string
		values map[string]any
	}{{"istio-cni", cni}, {"ztunnel", zt}} {
		if err := helmInstall(ctx, hc, c.Local.VersionChartDir(v, r.chart), r.chart, r.values); err != nil {
			return err
		}
	}
	fmt.Fprintf(log, "creating namespace shop in ambient mode, with a waypoint on tag %s\n", stable)
	if err := c.namespace(ctx, "shop", map[string]string{"istio.io/dataplane-mode": "ambient"}); err != nil {
		return err
	}
	if err := c.deployment(ctx, "shop", "web", nil, nil); err != nil {
		return err
	}
	wp := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
		"metadata": map[string]any{"name": "waypoint", "namespace": "shop",
			"labels": map[string]any{"istio.io/rev": stable, gateway.LabelWaypointFor: "service"}},
		"spec": map[string]any{"gatewayClassName": gateway.ClassWaypoint,
			"listeners": []any{map[string]any{"name": "mesh", "port": int64(15008), "protocol": "HBONE"}}},
	}}
	if _, err := c.Local.Dynamic.Resource(gateway.GatewayResource).Namespace("shop").Create(ctx, wp, metav1.CreateOptions{}); err != nil {
		return err
	}
	return c.WaitReady(ctx, []string{"shop"})
}

// helmInstall installs a chart as a release in istio-system, as `helm
// install` would.
func helmInstall(ctx context.Context, hc *helm.Client, dir, name string, values map[string]any) error {
	_, err := hc.InstallRelease(ctx, revkit.ReleaseOptions{Release: name, Chart: revkit.ChartSource{Path: dir},
		Values: values, Timeout: 2 * time.Minute})
	if err != nil {
		return fmt.Errorf("helm install %s: %w", name, err)
	}
	return nil
}

// TestAmbientMesh starts a local control plane for an example's
// integration test with the ambient mesh of SeedAmbient on from, and the
// revision of to installed beside it (rendered, not a Helm release).
func TestAmbientMesh(t *testing.T, ctx context.Context, from, to testenv.IstioVersion, stable string) (*testenv.Env, *Cluster) {
	t.Helper()
	env, err := testenv.Start(t, ambientEnv)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Kube: env.Client, Config: env.Config, Local: env}
	hc, err := helm.New(env.Config, "istio-system", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SeedAmbient(ctx, hc, from, stable, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := env.StartIstiodVersion(ctx, to.Revision, to); err != nil {
		t.Fatal(err)
	}
	return env, c
}

// InstallGatewayRelease installs Istio's gateway chart of version v as
// release name in namespace ns (created here) on revision v.Revision, with
// one replica, as `helm install <name> istio/gateway -n <ns> --set
// revision=<rev>` would, waits for it, and returns the Helm client of that
// namespace (where the release is recorded).
func InstallGatewayRelease(t *testing.T, ctx context.Context, env *testenv.Env, ns, name string, v testenv.IstioVersion) *helm.Client {
	t.Helper()
	c := &Cluster{Kube: env.Client, Config: env.Config, Local: env}
	if err := c.namespace(ctx, ns, nil); err != nil {
		t.Fatal(err)
	}
	hg, err := helm.New(env.Config, ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hg.InstallRelease(ctx, revkit.ReleaseOptions{Namespace: ns, Release: name,
		Chart: revkit.ChartSource{Path: env.VersionChartDir(v, "gateway")}, Timeout: 2 * time.Minute,
		Values: map[string]any{"revision": v.Revision, "replicaCount": 1, "autoscaling": map[string]any{"enabled": false}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx, []string{ns}); err != nil {
		t.Fatal(err)
	}
	return hg
}

// DeployedReleases names the releases hc keeps that are deployed, as
// "name#version".
func DeployedReleases(t *testing.T, hc *helm.Client) []string {
	t.Helper()
	rels, err := hc.Configuration().Releases.ListDeployed()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rels {
		if rel, ok := r.(*rv1.Release); ok {
			out = append(out, fmt.Sprintf("%s#%d", rel.Name, rel.Version))
		}
	}
	return out
}
