package upgrade

import (
	"context"
	"fmt"

	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
)

// The steps that move a gateway installed by Helm (Istio's gateway chart)
// through its own release, never patching what the release owns.

// UpgradeGatewayRelease upgrades a gateway's Helm release in place to run
// opts.Target (gateway.UpgradeRelease). Its name is
// "upgrade-gateway-release <namespace>/<gateway>→<target>".
func UpgradeGatewayRelease(opts gateway.ReleaseOptions) Step {
	return gatewayReleaseStep("upgrade-gateway-release", "upgrade the Helm release of gateway %s to run %s", KindUpgradeGatewayRelease,
		gateway.UpgradeRelease, opts)
}

// CanaryGatewayRelease installs a canary release beside a gateway's release
// on opts.Target, which the gateway's Service selects too
// (gateway.CanaryRelease). Its name is
// "canary-gateway-release <namespace>/<gateway>→<target>".
func CanaryGatewayRelease(opts gateway.ReleaseOptions) Step {
	return gatewayReleaseStep("canary-gateway-release", "install a canary release of gateway %s on %s beside it", KindCanaryGatewayRelease,
		gateway.CanaryRelease, opts)
}

// PromoteGatewayRelease moves a gateway's release to opts.Target and
// uninstalls its canary release (gateway.PromoteCanaryRelease). Its name is
// "promote-gateway-release <namespace>/<gateway>→<target>".
func PromoteGatewayRelease(opts gateway.ReleaseOptions) Step {
	return gatewayReleaseStep("promote-gateway-release", "promote gateway %s: its release to %s, its canary uninstalled", KindPromoteGatewayRelease,
		gateway.PromoteCanaryRelease, opts)
}

// RollbackGatewayRelease uninstalls a gateway's canary release on
// opts.Target (gateway.RollbackCanaryRelease). Its name is
// "rollback-gateway-release <namespace>/<gateway>→<target>".
func RollbackGatewayRelease(opts gateway.ReleaseOptions) Step {
	return gatewayReleaseStep("rollback-gateway-release", "uninstall the canary release of gateway %s on %s", KindRollbackGatewayRelease,
		gateway.RollbackCanaryRelease, opts)
}

type gatewayReleaseCall = func(context.Context, kubernetes.Interface, gateway.ReleaseOptions) (*gateway.ReleaseResult, error)

func gatewayReleaseStep(verb, desc string, kind StepKind, call gatewayReleaseCall, opts gateway.ReleaseOptions) Step {
	opts.Values = cloneValues(opts.Values)
	who := opts.Namespace + "/" + opts.Name
	if opts.Name == "" {
		who = opts.Namespace + "/" + opts.Release
	}
	return newOp(verb+" "+who+"→"+opts.Target, fmt.Sprintf(desc, who, opts.Target), opts,
		opSpec[gateway.ReleaseOptions, *gateway.ReleaseResult]{kind: kind, call: call, headline: gatewayReleaseHeadline,
			preview: func(ctx context.Context, env Env, o gateway.ReleaseOptions) (Result, error) {
				// Rendered only: the Releaser reaches the real cluster.
				o.DryRun, o.Wait = revkit.DryRunClient, false
				res, err := call(ctx, env.Kube, o)
				if err != nil {
					return Result{Detail: err.Error()}, err
				}
				return Result{Outcome: Done, Changes: res.Changes, Detail: gatewayReleaseHeadline(res) + " (rendered)"}, nil
			}})
}

func gatewayReleaseHeadline(res *gateway.ReleaseResult) string {
	h := "release " + res.Release
	if res.Canary != "" {
		h += ", canary " + res.Canary
	}
	return h + " on " + orUnknown(res.Revision)
}
