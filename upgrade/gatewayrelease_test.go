package upgrade_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/gateway"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/upgrade"
)

// Gateways installed by Helm move through their own releases: in place
// after the namespaces, or as a canary release promoted with the stable
// tag; a rollback uninstalls the canary and moves each back in place.
func TestCanaryGatewayReleases(t *testing.T) {
	c := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").WithNamespace("shop", revkittest.Rev("1-24-0"))
	kube := c.Kube()
	base := upgrade.CanaryOptions{From: "1-24-0", To: "1-25-0", StableTag: "prod-stable", KeepOld: true, RollbackOnFailure: true,
		Namespaces: namespace.Selection{Namespaces: []string{"shop"}},
		GatewayReleases: []gateway.ReleaseOptions{{Namespace: "istio-ingress", Release: "ingress", Releaser: nopReleaser{},
			Chart: revkit.ChartSource{Path: "charts/gateway"}}}}
	for _, tc := range []struct {
		mode           gateway.Mode
		steps, rollbck []string
	}{
		{mode: gateway.InPlace,
			steps:   []string{"upgrade-gateway-release istio-ingress/ingress→1-25-0", "set-tag prod-stable→1-25-0", "verify-webhooks"},
			rollbck: []string{"rollback: upgrade-gateway-release istio-ingress/ingress→1-24-0"}},
		{mode: gateway.Canary,
			steps: []string{"canary-gateway-release istio-ingress/ingress→1-25-0", "set-tag prod-stable→1-25-0",
				"promote-gateway-release istio-ingress/ingress→1-25-0", "verify-webhooks"},
			rollbck: []string{"rollback: rollback-gateway-release istio-ingress/ingress→1-25-0",
				"rollback: upgrade-gateway-release istio-ingress/ingress→1-24-0"}},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			o := base
			o.GatewayReleaseMode = tc.mode
			plan, err := upgrade.Canary(ctx, kube, o)
			require.NoError(t, err)
			names := stepNames(plan)
			assert.Equal(t, tc.steps, names[len(names)-len(tc.steps):])
			var back []string
			for _, s := range plan.OnFailure {
				if k := upgrade.KindOf(s); k != upgrade.KindSetTag && k != upgrade.KindMigrateNamespaces &&
					k != upgrade.KindRestartWorkloads && k != upgrade.KindVerifyPods {
					back = append(back, s.Name())
				}
			}
			assert.Equal(t, tc.rollbck, back)

			sp, err := upgrade.Save(ctx, kube, plan)
			require.NoError(t, err)
			_, err = sp.Plan(upgrade.LoadOptions{})
			assert.ErrorIs(t, err, revkit.ErrInvalidInput, "a gateway release step without its Releaser")
			_, loaded := roundTrip(t, sp, upgrade.LoadOptions{GatewayReleasers: map[string]revkit.Releaser{"istio-ingress": nopReleaser{}}})
			assert.Equal(t, upgrade.Fingerprint(plan), upgrade.Fingerprint(loaded))
		})
	}

	for name, edit := range map[string]func(*upgrade.CanaryOptions){
		"unknown mode":     func(o *upgrade.CanaryOptions) { o.GatewayReleaseMode = "sideways" },
		"no namespace":     func(o *upgrade.CanaryOptions) { o.GatewayReleases[0].Namespace = "" },
		"no gateway named": func(o *upgrade.CanaryOptions) { o.GatewayReleases[0].Release = "" },
		"no releaser":      func(o *upgrade.CanaryOptions) { o.GatewayReleases[0].Releaser = nil },
	} {
		t.Run(name, func(t *testing.T) {
			o := base
			o.GatewayReleases = []gateway.ReleaseOptions{base.GatewayReleases[0]}
			edit(&o)
			_, err := upgrade.Canary(ctx, kube, o)
			assert.ErrorIs(t, err, revkit.ErrInvalidInput)
		})
	}
}
