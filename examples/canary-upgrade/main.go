// Command canary-upgrade runs the Istio canary upgrade from the guides as
// one revkit plan: install the new revision beside the old one, point the
// canary tag at it, move the namespaces over in batches (restart, verify),
// move the gateways, promote the stable tag and uninstall the old revision.
//
// With --kubeconfig (or $KUBECONFIG) it works on that cluster. Without, it
// starts a local control plane, installs an "old" revision (the older of the
// two Istio versions the tools build, from its own charts) with a few demo
// namespaces and a gateway on it, and upgrades them to the newer version's
// istiod and charts; run it that way with `make demo`.
//
// A gateway installed with Istio's gateway chart is never patched: name it
// with --gateway-release namespace/release and it moves through its own
// Helm release — upgraded in place, or with --gateways canary as a canary
// release beside it that its Service selects too, promoted with the stable
// tag (and on rollback uninstalled).
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/examples/internal/demo"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/helm"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, out, errOut io.Writer) int {
	fs := demo.FlagSet("canary-upgrade", "Upgrade namespaces from one Istio revision to another with a canary plan.", errOut)
	kubeconfig := demo.KubeconfigFlag(fs)
	from := fs.String("from", testenv.OldIstio.Revision, "revision in use now (local mode: runs Istio "+testenv.OldIstio.Name+")")
	to := fs.String("to", testenv.NewIstio.Revision, "revision to upgrade to (local mode: runs Istio "+testenv.NewIstio.Name+")")
	chart := fs.String("chart", "", "istiod chart (directory, .tgz or oci:// reference) to install --to from; empty: --to is installed already (local mode: the built chart)")
	selector := fs.String("selector", "demo=true", "label selector of the namespaces to migrate")
	canaryTag := fs.String("canary-tag", "prod-canary", "tag pointed at --to during the canary (empty: none)")
	stableTag := fs.String("stable-tag", "prod-stable", "tag moved to --to at promotion (empty: none)")
	batch := fs.Int("batch-size", 2, "namespaces per batch")
	gateways := fs.String("gateways", "in-place", `gateway move: "in-place", "canary" or "" to leave them`)
	gatewayNamespaces := fs.String("gateway-namespaces", "", "comma-separated namespaces of the gateway Deployments --gateways moves (empty: all)")
	gatewayRelease := fs.String("gateway-release", "", `"namespace/release" of a gateway installed with Istio's gateway chart: moved through its own release (in place, or with --gateways canary as a canary release promoted with the stable tag), never patched`)
	gatewayChart := fs.String("gateway-chart", "", "gateway chart to upgrade --gateway-release to (empty: the release's own chart)")
	keepOld := fs.Bool("keep-old", false, "do not uninstall --from at the end")
	checkProxies := fs.Bool("check-proxies", true, "with --kubeconfig: after every batch, read every replica of --to's istiod through port-forwards (needs pods/portforward and kubelets that serve it) and check that each pod's proxy is connected and SYNCED")
	dryRun := fs.String("dry-run", "none", `"none", "client" or "server"`)
	timeout := fs.Duration("timeout", 15*time.Minute, "time limit for the whole upgrade")
	if code, ok := demo.Parse(fs, args); !ok {
		return code
	}
	mode, err := revkit.ParseDryRun(*dryRun)
	if err != nil {
		fmt.Fprintln(errOut, err)
		return 2
	}
	ctx, cancel := demo.Context(*timeout)
	defer cancel()

	cluster, err := demo.Connect(*kubeconfig, out)
	if err != nil {
		fmt.Fprintln(errOut, "canary-upgrade:", err)
		return 1
	}
	defer cluster.Close()

	opts := upgrade.CanaryOptions{
		From: *from, To: *to, CanaryTag: *canaryTag, StableTag: *stableTag,
		Namespaces: namespace.Selection{Selector: *selector}, BatchSize: *batch,
		Gateways: gateway.Mode(*gateways), KeepOld: *keepOld,
		RestartTimeout: 5 * time.Minute,
	}
	if *gatewayNamespaces != "" {
		opts.GatewayNamespaces = strings.Split(*gatewayNamespaces, ",")
	}
	if *gatewayRelease != "" {
		ns, rel, ok := strings.Cut(*gatewayRelease, "/")
		if !ok || ns == "" || rel == "" {
			fmt.Fprintln(errOut, `canary-upgrade: --gateway-release must be "namespace/release"`)
			return 2
		}
		// The gateway's release is recorded in its own namespace.
		hg, err := helm.New(cluster.Config, ns, nil)
		if err != nil {
			fmt.Fprintln(errOut, "canary-upgrade:", err)
			return 1
		}
		gr := gateway.ReleaseOptions{Namespace: ns, Release: rel, Releaser: hg}
		if *gatewayChart != "" {
			gr.Chart = chartSource(*gatewayChart)
		}
		opts.GatewayReleases = []gateway.ReleaseOptions{gr}
		opts.GatewayReleaseMode = gateway.InPlace
		if opts.Gateways == gateway.Canary {
			opts.GatewayReleaseMode = gateway.Canary
		}
	}
	var local []upgrade.Step
	if cluster.Local != nil {
		if err := cluster.SeedMesh(ctx, *from, *stableTag, out); err != nil {
			fmt.Fprintln(errOut, "canary-upgrade: seeding the demo mesh:", err)
			return 1
		}
		fmt.Fprintln(out, "\nbefore the upgrade:")
		if err := demo.PrintMesh(ctx, out, cluster.Kube, cluster.LocalSources(*from)); err != nil {
			fmt.Fprintln(errOut, err)
			return 1
		}
		if err := demo.PrintProxyVersions(ctx, out, cluster.Kube, *selector); err != nil {
			fmt.Fprintln(errOut, err)
			return 1
		}
		is, err := cluster.Local.ReserveIstiod(*to)
		if err != nil {
			fmt.Fprintln(errOut, err)
			return 1
		}
		if *chart == "" {
			*chart = cluster.Local.VersionChartDir(is.Version, "istio-discovery")
		}
		fmt.Fprintf(out, "\nupgrading Istio %s → %s (revision %s → %s, chart %s)\n",
			testenv.IstioFor(*from), is.Version, *from, *to, *chart)
		opts.Install = &revision.InstallOptions{Chart: chartSource(*chart), Values: is.ChartValues(), Wait: true, Timeout: 3 * time.Minute}
		local = append(local, cluster.LocalRevisionStep(is))
		opts.Proxies = []verify.SyncSource{verify.HTTPSource{Rev: *to, URL: "http://" + is.MonitoringAddr}}
	} else {
		if *chart != "" {
			opts.Install = &revision.InstallOptions{Chart: chartSource(*chart), Wait: true, Timeout: 5 * time.Minute}
		}
		// Every replica of the new istiod, through port-forwards, found
		// when the proxies are checked (after the install).
		if *checkProxies {
			opts.Proxies = []verify.SyncSource{verify.RevisionSource{Rev: *to, Config: cluster.Config, Kube: cluster.Kube}}
		}
	}
	if opts.Install != nil {
		hc, err := helm.New(cluster.Config, "istio-system", nil)
		if err != nil {
			fmt.Fprintln(errOut, err)
			return 1
		}
		opts.Install.Helm = hc
	}

	plan, err := upgrade.Canary(ctx, cluster.Kube, opts)
	if err != nil {
		fmt.Fprintln(errOut, "canary-upgrade:", err)
		return 1
	}
	if cluster.Local != nil {
		batches, err := opts.Batches(ctx, cluster.Kube)
		if err != nil {
			fmt.Fprintln(errOut, "canary-upgrade:", err)
			return 1
		}
		plan = localize(plan, cluster, local[0], batches)
	}
	fmt.Fprintf(out, "\nplan:\n%s\n", plan)

	// TransientRetry: a step that fails because the apiserver cannot answer
	// for a moment (restarting, overloaded) runs again for up to a minute
	// instead of stopping the upgrade.
	env := upgrade.Env{Kube: cluster.Kube, TransientRetry: time.Minute,
		Common: revkit.Common{DryRun: mode, OnEvent: demo.PrintEvents(out)}}
	rep, err := upgrade.Execute(ctx, env, plan)
	fmt.Fprintf(out, "\nreport:\n%s\n", rep)
	if err != nil {
		name := "?"
		if f := rep.Failed(); f != nil {
			name = f.Name
		}
		fmt.Fprintf(errOut, "canary-upgrade: step %q failed: %v\n", name, err)
		return 1
	}
	fmt.Fprintln(out, "after the upgrade:")
	var sources []verify.SyncSource
	if cluster.Local != nil {
		sources = cluster.LocalSources(*from, *to)
	}
	if err := demo.PrintMesh(ctx, out, cluster.Kube, sources); err != nil {
		fmt.Fprintln(errOut, err)
		return 1
	}
	if cluster.Local != nil {
		if err := demo.PrintProxyVersions(ctx, out, cluster.Kube, *selector); err != nil {
			fmt.Fprintln(errOut, err)
			return 1
		}
	}
	return 0
}

func chartSource(s string) revision.ChartSource {
	if strings.HasPrefix(s, "oci://") {
		return revision.ChartSource{Ref: s}
	}
	return revision.ChartSource{Path: s}
}

// localize adapts the plan to the local control plane, where istiod runs as
// a process rather than as the chart's Deployment, and pods run no Envoy:
// it starts the new istiod right after the install, connects the pods'
// sidecars after every restart, and stops the old istiod after its
// uninstall. That a plan can be edited like this is the point of it being
// data.
func localize(p upgrade.Plan, c *demo.Cluster, startIstiod upgrade.Step, batches [][]string) upgrade.Plan {
	var steps []upgrade.Step
	batch := 0
	for _, s := range p.Steps {
		steps = append(steps, s)
		switch upgrade.KindOf(s) {
		case upgrade.KindInstallRevision:
			steps = append(steps, startIstiod)
		case upgrade.KindMoveGateways:
			steps = append(steps, c.ConnectSidecarsStep("connect-sidecars "+strings.Fields(s.Name())[0], []string{"istio-ingress"}))
		case upgrade.KindUpgradeGatewayRelease, upgrade.KindCanaryGatewayRelease, upgrade.KindPromoteGatewayRelease:
			ns := s.(upgrade.InputReporter).Inputs().(gateway.ReleaseOptions).Namespace
			steps = append(steps, c.ConnectSidecarsStep("connect-sidecars "+strings.Fields(s.Name())[0], []string{ns}))
		case upgrade.KindUninstallRevision, upgrade.KindUninstallAdded:
			steps = append(steps, c.StopRevisionStep(uninstalled(s)))
		case upgrade.KindRestartWorkloads:
			if batch < len(batches) {
				steps = append(steps, c.ConnectSidecarsStep(fmt.Sprintf("connect-sidecars %d/%d", batch+1, len(batches)), batches[batch]))
				batch++
			}
		}
	}
	p.Steps = steps
	return p
}

// uninstalled is the revision an uninstall step removes, from its inputs.
func uninstalled(s upgrade.Step) string {
	switch in := s.(upgrade.InputReporter).Inputs().(type) {
	case revision.UninstallOptions:
		return in.Revision
	case upgrade.UninstallAddedOptions:
		return in.Revision
	}
	return ""
}
