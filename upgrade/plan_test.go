package upgrade_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

type planStringCase struct {
	name string
	plan upgrade.Plan
	want string
}

func planStringCases() []planStringCase {
	shop := namespace.Selection{Namespaces: []string{"shop"}}
	return []planStringCase{
		{
			name: "canary with rollback",
			plan: upgrade.Plan{
				Name: "canary 1-25-0",
				Steps: []upgrade.Step{
					upgrade.InstallRevision(revision.InstallOptions{Revision: "1-25-0", Chart: revision.ChartSource{Ref: "oci://example/istiod"}}),
					upgrade.SetTag(tag.SetOptions{Tag: "prod-canary", Revision: "1-25-0", Overwrite: true}),
					upgrade.MigrateNamespace(namespace.MigrateOptions{Target: "prod-canary",
						Selection: namespace.Selection{Namespaces: []string{"a", "b", "c", "d", "e", "f", "g"}}}),
					upgrade.RolloutRestart(namespace.RestartOptions{Target: "prod-canary", OnlyStale: true, Wait: true,
						Selection: namespace.Selection{Selector: "team=shop"}}),
					upgrade.VerifyPods(verify.PodsOptions{Target: "1-25-0"}),
					upgrade.VerifyProxies(verify.ProxiesOptions{Target: "1-25-0", Sources: []verify.SyncSource{
						verify.HTTPSource{Rev: "1-25-0", URL: "http://127.0.0.1:15014"}}}),
					upgrade.VerifyWebhooks(verify.WebhooksOptions{}),
					upgrade.Func("soak", "wait 10 minutes and watch the error rate", nil),
					upgrade.Uninstall(revision.UninstallOptions{Revision: "1-24-0"}),
				},
				OnFailure: []upgrade.Step{
					upgrade.Named("rollback-tag", upgrade.SetTag(tag.SetOptions{Tag: "prod-canary", Revision: "1-24-0"})),
					upgrade.Named("rollback-restart", upgrade.RolloutRestart(namespace.RestartOptions{Target: "1-24-0",
						Selection: namespace.Selection{Namespaces: []string{"shop"}, Selector: "team=shop"}})),
					upgrade.Named("remove-canary", upgrade.Uninstall(revision.UninstallOptions{Revision: "1-25-0", Force: true,
						ControlPlaneNamespace: "istio-control"})),
				},
			},
			want: `Plan "canary 1-25-0":
  1. install-revision 1-25-0      install revision 1-25-0 into istio-system from oci://example/istiod
  2. set-tag prod-canary→1-25-0   point tag prod-canary at revision 1-25-0 (moving it if it points elsewhere)
  3. migrate-namespaces           label namespaces a, b, c, d, e and 2 more istio.io/rev=prod-canary, removing istio-injection
  4. restart-workloads            restart workloads in namespaces matching team=shop whose pods are not on prod-canary, and wait for the rollouts
  5. verify-pods                  check that the pods in all mesh namespaces run revision 1-25-0
  6. verify-proxies               check that the proxies reported by istiod 1-25-0 are SYNCED and on revision 1-25-0
  7. verify-webhooks              check the webhooks in istio-system: no overlapping injectors, no dangling service, no orphaned revision
  8. soak                         wait 10 minutes and watch the error rate
  9. uninstall-revision 1-24-0    remove revision 1-24-0 from istio-system unless it is still in use
On failure:
  1. rollback-tag                 point tag prod-canary at revision 1-24-0
  2. rollback-restart             restart workloads in namespace shop and namespaces matching team=shop (target 1-24-0)
  3. remove-canary                remove revision 1-25-0 from istio-control even if it is still in use (forced)
`,
		},
		{
			name: "unnamed, nothing on failure, a step without description",
			plan: upgrade.Plan{Steps: []upgrade.Step{
				upgrade.MigrateNamespace(namespace.MigrateOptions{Target: "1-25-0", Selection: shop}),
				upgrade.Func("pause", "", nil),
				upgrade.VerifyPods(verify.PodsOptions{Namespaces: []string{"shop"}}),
			}},
			want: `Plan:
  1. migrate-namespaces   label namespace shop istio.io/rev=1-25-0, removing istio-injection
  2. pause
  3. verify-pods          check that the pods in namespace shop run the sidecar their namespace selects
On failure:
  (none)
`,
		},
		{
			name: "empty and broken plans still print",
			plan: upgrade.Plan{Name: "broken", OnFailure: []upgrade.Step{nil, upgrade.Named("n", nil)}},
			want: `Plan "broken":
  (none)
On failure:
  1. <nil>
  2. n
`,
		},
	}
}

func TestPlanString(t *testing.T) {
	for _, tt := range planStringCases() {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.plan.String())
		})
	}
}

func TestReportString(t *testing.T) {
	start := time.Date(2026, 11, 25, 21, 0, 0, 0, time.UTC)
	rep := &upgrade.Report{
		Plan:   upgrade.Plan{Name: "canary"},
		DryRun: revkit.DryRunClient,
		Steps: []upgrade.StepReport{
			{Name: "set-tag prod-canary→1-25-0", Outcome: upgrade.Done, Detail: "prod-canary → 1-25-0: create 2", Started: start, Duration: 1234567 * time.Nanosecond},
			{Name: "verify-pods", Outcome: upgrade.Failed, Detail: "2 of 3 pods\nnot on 1-25-0", Started: start, Duration: 2 * time.Second, Err: errors.New("x")},
			{Name: "uninstall-revision 1-24-0", Outcome: upgrade.NotRun},
		},
		OnFailure: []upgrade.StepReport{
			{Name: "rollback-tag", Outcome: upgrade.Unchanged, Detail: "prod-canary → 1-24-0: unchanged 2", Started: start, Duration: 300 * time.Microsecond},
		},
	}
	want := `Plan "canary" (dry run: client):
STEP                        OUTCOME    DURATION  DETAIL
set-tag prod-canary→1-25-0  done       1ms       prod-canary → 1-25-0: create 2
verify-pods                 failed     2s        2 of 3 pods not on 1-25-0
uninstall-revision 1-24-0   not-run    -
On failure:
rollback-tag                unchanged  0s        prod-canary → 1-24-0: unchanged 2
`
	assert.Equal(t, want, rep.String())
	assert.Equal(t, "verify-pods", rep.Failed().Name)

	plain := &upgrade.Report{Steps: []upgrade.StepReport{{Name: "a", Outcome: upgrade.Done, Started: start}}}
	assert.Equal(t, "Plan:\nSTEP  OUTCOME  DURATION  DETAIL\na     done     0s\n", plain.String())
}
