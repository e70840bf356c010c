// Package upgrade strings revkit's operations together into a plan and runs
// it.
//
// A [Plan] is data: an ordered list of named [Step]s plus the steps to run
// when one of them fails. The step constructors are named after the
// operations they run ([SetTag], [RemoveTag], [MigrateNamespace],
// [RolloutRestart], [VerifyPods], [VerifyProxies], [VerifyWebhooks],
// [VerifySkew], [UpgradeBase], [InstallRevision], [MoveGateways],
// [RemoveCanaryGateways], [Uninstall], [UninstallAdded], [RecordState],
// [RestoreState], [Precheck], [Pause]); [Func] turns any function into a step, e.g. a health
// gate, and [Named] renames a step. Package metrics builds a gate from the
// traffic in Prometheus (metrics.Gate, for CanaryOptions.Gates); this
// package does not import it. Print a plan to review it, then [Execute] it:
//
//	plan := upgrade.Plan{
//		Name: "canary 1-25-0",
//		Steps: []upgrade.Step{
//			upgrade.SetTag(tag.SetOptions{Tag: "prod-canary", Revision: "1-25-0", Overwrite: true}),
//			upgrade.MigrateNamespace(namespace.MigrateOptions{ /* … */ }),
//			upgrade.RolloutRestart(namespace.RestartOptions{ /* … */ }),
//			upgrade.VerifyPods(verify.PodsOptions{Target: "1-25-0"}),
//		},
//		OnFailure: []upgrade.Step{
//			upgrade.Named("rollback-tag", upgrade.SetTag(tag.SetOptions{Tag: "prod-canary", Revision: "1-24-0", Overwrite: true})),
//		},
//	}
//	fmt.Print(plan)
//	report, err := upgrade.Execute(ctx, upgrade.Env{Kube: kube}, plan)
//	fmt.Print(report)
//
// Execute validates every step before it runs any, stops at the first
// failure, reports the later steps as not run, runs the on-failure steps
// and returns a [Report] of every step (outcome, detail, timing).
//
// # Dry run
//
// A plan runs in one dry-run mode, [Env].Common.DryRun: each step copies the
// plan's Common into its operation's options. In a dry run (client or
// server) nothing persists, so the verification steps have nothing to check
// and report [Skipped] with detail "dry run". Steps made with [Func] see the
// mode in their Env and decide themselves.
//
// Each step of a dry run sees the cluster as it is, not as the steps before
// it would have left it: a plan that creates a tag and then migrates
// namespaces to that tag fails the migration in a dry run with
// [revkit.ErrNotFound]. [Preview] is the dry run that composes: it runs the
// plan against an in-memory copy read from the cluster, so each step sees
// the effects of the ones before, and [Report.Changes] lists what the whole
// plan would change, object by object. With [PreviewOptions].ServerDryRun
// each of those writes is also judged by the apiserver (a server-side dry
// run): validation, admission and authorization refuse there what they
// would refuse in the real run.
//
// # One result contract
//
// Every step built from an operation runs it through one generic adapter:
// the operation's options get the plan's [revkit.Common], and its result
// (a [revkit.Result], complete even when the operation fails) becomes the
// step's [Result].Changes. [KindOf] identifies a step by what it does, not
// by its name.
//
// # Installs through Helm
//
// [InstallRevision], [UpgradeBase] and the uninstall of a revision's Helm
// release reach Helm only through the [revision.Installer] in their
// options' Helm field (CanaryOptions.Install.Helm, CanaryOptions.Helm,
// LoadOptions.Helm for a saved plan); package helm provides it
// (helm.New). This package does not import Helm, so a program that runs
// plans without installing does not link it.
//
// # Saved plans
//
// [Save] writes a plan down as data with the state of the cluster it
// depends on; [SavedPlan.Plan] rebuilds it and [Apply] runs it, refusing
// with a [*DriftError] when that state changed since. [KindOf] tells what a
// step does, whatever it is named.
//
// # Rollback to the recorded state
//
// With [CanaryOptions].RecordState the plan records, before its first
// write, the injection labels of its namespaces, where its tags pointed, the
// revisions installed and the gateways' revisions ([RecordState]); its
// rollbacks then put back exactly that ([RestoreState]) rather than what the
// options suggest, and uninstall the new revision only if the plan added it
// ([UninstallAdded]).
//
// # Events
//
// Execute emits a [revkit.Event] with Operation "upgrade.Execute" when a
// step starts ([ActionStart]) and ends (the outcome as the Action), and sets
// Event.Step on every event the step's operations emit, so that one
// callback follows the whole plan.
//
// # Surviving an apiserver outage
//
// Every step this package builds is idempotent, and two settings of [Env]
// build on that. With a [Journal], progress is kept in the cluster, so a
// rerun of a plan that stopped (or whose program died) resumes after its
// last completed step. With TransientRetry, a step that fails because the
// apiserver cannot answer for a moment — connection refused, 429, 5xx —
// runs again before it counts as failed, so the plan rides out an
// apiserver restart without a rerun:
//
//	env := upgrade.Env{Kube: kube, TransientRetry: time.Minute,
//		Journal: &upgrade.Journal{}}
//	report, err := upgrade.Execute(ctx, env, plan)
//
// Rollout waits always read through such errors until their timeout.
//
// # Errors
//
// An invalid plan is refused before anything runs, with an error matching
// [revkit.ErrInvalidInput]: a [*DuplicateStepError] or an
// [*InvalidStepError] that wraps the step's own validation error. A step
// that fails makes Execute return the report and a [*StepError] that
// unwraps to the step's error: errors.Is(err, revkit.ErrVerificationFailed)
// tells a failed verification gate from an operation that could not be
// carried out.
package upgrade
