package upgrade

// StepKind identifies what a step does, whatever it is named: the steps
// this package builds have one (Named keeps the kind of the step it
// renames); a step of another kind reports KindCustom.
type StepKind string

// The kinds of the steps this package builds.
const (
	KindPrecheck               StepKind = "precheck"
	KindInstallRevision        StepKind = "install-revision"
	KindUpgradeBase            StepKind = "upgrade-base"
	KindSetTag                 StepKind = "set-tag"
	KindRemoveTag              StepKind = "remove-tag"
	KindMigrateNamespaces      StepKind = "migrate-namespaces"
	KindRestartWorkloads       StepKind = "restart-workloads"
	KindVerifyPods             StepKind = "verify-pods"
	KindVerifyProxies          StepKind = "verify-proxies"
	KindVerifyWebhooks         StepKind = "verify-webhooks"
	KindVerifySkew             StepKind = "verify-skew"
	KindMoveGateways           StepKind = "move-gateways"
	KindRemoveCanaryGateways   StepKind = "remove-canary-gateways"
	KindUninstallRevision      StepKind = "uninstall-revision"
	KindUninstallAdded         StepKind = "uninstall-added-revision"
	KindPause                  StepKind = "pause"
	KindRecordState            StepKind = "record-state"
	KindRestoreState           StepKind = "restore-state"
	KindUpgradeAgent           StepKind = "upgrade-node-agent"
	KindUpgradeGatewayRelease  StepKind = "upgrade-gateway-release"
	KindCanaryGatewayRelease   StepKind = "canary-gateway-release"
	KindPromoteGatewayRelease  StepKind = "promote-gateway-release"
	KindRollbackGatewayRelease StepKind = "rollback-gateway-release"
	// KindCustom is every other step: Func, and steps of the caller's own
	// types.
	KindCustom StepKind = "custom"
)

// KindOf returns the kind of a step.
func KindOf(s Step) StepKind {
	if k, ok := s.(interface{ Kind() StepKind }); ok && k.Kind() != "" {
		return k.Kind()
	}
	return KindCustom
}
