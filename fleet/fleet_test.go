package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/fleet"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
)

var ctx = context.Background()

// testFleet is n clusters, each with revisions 1-24-0 and 1-25-0, named
// c1…cn.
type testFleet struct {
	clusters []fleet.Cluster
	kubes    map[string]*fake.Clientset
}

func newFleet(n int) *testFleet {
	f := &testFleet{kubes: map[string]*fake.Clientset{}}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("c%d", i)
		kube := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").Kube()
		kube.ClearActions()
		f.kubes[name] = kube
		f.clusters = append(f.clusters, fleet.Cluster{Name: name, Kube: kube})
	}
	return f
}

// plan is each cluster's plan: point tag prod at 1-25-0 (a real write the
// journal records), then a step that fails while fail[cluster] is set.
type planner struct {
	mu    sync.Mutex
	fail  map[string]bool
	built atomic.Int32
}

func (p *planner) plan(_ context.Context, c fleet.Cluster) (upgrade.Plan, error) {
	p.built.Add(1)
	return upgrade.Plan{Name: "canary", Steps: []upgrade.Step{
		upgrade.SetTag(tag.SetOptions{Tag: "prod", Revision: "1-25-0", Overwrite: true}),
		upgrade.Func("health", "fails on demand", func(context.Context, upgrade.Env) (upgrade.Result, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.fail[c.Name] {
				return upgrade.Result{}, errors.New("unhealthy")
			}
			return upgrade.Result{Detail: "ok"}, nil
		}),
	}}, nil
}

func (f *testFleet) writes(name string) []string { return revkittest.Writes(f.kubes[name]) }

func TestValidation(t *testing.T) {
	f := newFleet(2)
	p := &planner{}
	base := func() fleet.Options {
		return fleet.Options{Clusters: f.clusters, Plan: p.plan,
			Waves: []fleet.Wave{{Name: "a", Clusters: []string{"c1"}}, {Name: "b", Clusters: []string{"c2"}}}}
	}
	for _, tc := range []struct {
		name, field string
		edit        func(o *fleet.Options)
	}{
		{"no plan", "Plan", func(o *fleet.Options) { o.Plan = nil }},
		{"no waves", "Waves", func(o *fleet.Options) { o.Waves = nil }},
		{"unknown cluster", "Waves[1].Clusters", func(o *fleet.Options) { o.Waves[1].Clusters = []string{"c9"} }},
		{"a cluster in two waves", "Waves[1].Clusters", func(o *fleet.Options) { o.Waves[1].Clusters = []string{"c1", "c2"} }},
		{"a cluster in no wave", "Waves", func(o *fleet.Options) { o.Waves = o.Waves[:1] }},
		{"an empty wave", "Waves[1].Clusters", func(o *fleet.Options) { o.Waves[1].Clusters = nil }},
		{"a wave name twice", "Waves[1].Name", func(o *fleet.Options) { o.Waves[1].Name = "a" }},
		{"a cluster name twice", "Clusters[1].Name", func(o *fleet.Options) {
			o.Clusters = []fleet.Cluster{f.clusters[0], {Name: "c1", Kube: f.kubes["c2"]}}
		}},
		{"no client", "Clusters[0].Kube", func(o *fleet.Options) { o.Clusters = []fleet.Cluster{{Name: "c1"}, f.clusters[1]} }},
		{"negative budget", "FailureBudget", func(o *fleet.Options) { o.FailureBudget = -1 }},
		{"negative parallelism", "Waves[0]", func(o *fleet.Options) { o.Waves[0].MaxParallel = -1 }},
		{"a gate without check", "Gates[0]", func(o *fleet.Options) { o.Gates = []fleet.Gate{{Name: "g"}} }},
		{"a fresh journal", "Journal.Fresh", func(o *fleet.Options) { o.Journal = &upgrade.Journal{Fresh: true} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base()
			o.Waves = append([]fleet.Wave(nil), o.Waves...)
			tc.edit(&o)
			rep, err := fleet.Run(ctx, o)
			var invalid *revkit.InvalidInputError
			require.ErrorAs(t, err, &invalid)
			assert.Equal(t, tc.field, invalid.Field)
			assert.Zero(t, p.built.Load(), "no plan built")
			require.NotNil(t, rep)
			for name := range f.kubes {
				assert.Empty(t, f.writes(name), "nothing written on %s", name)
			}
		})
	}
}

// A plan that cannot be built for a cluster of the last wave stops the
// fleet before the first wave writes anything.
func TestEveryPlanBuiltFirst(t *testing.T) {
	f := newFleet(3)
	p := &planner{}
	_, err := fleet.Run(ctx, fleet.Options{Clusters: f.clusters,
		Waves: []fleet.Wave{{Name: "dev", Clusters: []string{"c1", "c2"}}, {Name: "prod", Clusters: []string{"c3"}}},
		Plan: func(ctx context.Context, c fleet.Cluster) (upgrade.Plan, error) {
			if c.Name == "c3" {
				return upgrade.Canary(ctx, c.Kube, upgrade.CanaryOptions{From: "1-24-0", To: "1-24-0"})
			}
			return p.plan(ctx, c)
		}})
	assert.ErrorIs(t, err, revkit.ErrInvalidInput)
	assert.Contains(t, err.Error(), "plan of cluster c3")
	for name := range f.kubes {
		assert.Empty(t, f.writes(name), "nothing written on %s", name)
	}
}

// The scenario on fakes: a failure in the first wave stops the
// second; the rerun resumes each cluster from its journal.
func TestFailedWaveStopsTheFleetAndTheRerunResumes(t *testing.T) {
	f := newFleet(3)
	p := &planner{fail: map[string]bool{"c2": true}}
	var events []revkit.Event
	var mu sync.Mutex
	opts := fleet.Options{Clusters: f.clusters, Plan: p.plan, Journal: &upgrade.Journal{Holder: "fleet-test"},
		Waves: []fleet.Wave{{Name: "first", Clusters: []string{"c1", "c2"}}, {Name: "second", Clusters: []string{"c3"}}},
		Common: revkit.Common{OnEvent: func(e revkit.Event) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}}}
	rep, err := fleet.Run(ctx, opts)
	var stopped *fleet.StoppedError
	require.ErrorAs(t, err, &stopped)
	assert.ErrorIs(t, err, fleet.ErrStopped)
	assert.Equal(t, "first", stopped.Wave)
	assert.Equal(t, []string{"c2"}, stopped.Failed)
	assert.Equal(t, upgrade.Done, rep.Cluster("c1").Outcome)
	assert.Equal(t, upgrade.Failed, rep.Cluster("c2").Outcome)
	assert.Equal(t, "health", rep.Cluster("c2").Plan.Failed().Name)
	assert.Equal(t, upgrade.NotRun, rep.Cluster("c3").Outcome)
	assert.Nil(t, rep.Cluster("c3").Plan)
	assert.Empty(t, f.writes("c3"), "the second wave never started")
	assert.Empty(t, rep.Waves[0].Gates, "no gate after a failed wave")
	assert.Regexp(t, `first\s+c2\s+failed\s+\S+\s+1/2\s+health: unhealthy`, rep.String())
	assert.Regexp(t, `second\s+c3\s+not-run\s+-\s+-`, rep.String())

	// Every event of a cluster's plan carries its name.
	byCluster := map[string]int{}
	for _, e := range events {
		if e.Kind == revkit.EventStep || e.Kind == revkit.EventObject {
			require.NotEmpty(t, e.Cluster, "event %+v", e)
			byCluster[e.Cluster]++
		}
	}
	assert.NotZero(t, byCluster["c1"])
	assert.NotZero(t, byCluster["c2"])
	assert.Zero(t, byCluster["c3"])

	// Fixed, the rerun resumes: c1 had completed, c2 resumes after its
	// tag step, c3 runs.
	p.mu.Lock()
	p.fail["c2"] = false
	p.mu.Unlock()
	for _, k := range f.kubes {
		k.ClearActions()
	}
	rep, err = fleet.Run(ctx, opts)
	require.NoError(t, err)
	assert.Equal(t, upgrade.Unchanged, rep.Cluster("c1").Outcome, "completed before: every step resumed")
	c2 := rep.Cluster("c2")
	assert.Equal(t, upgrade.Done, c2.Outcome)
	assert.True(t, c2.Plan.Steps[0].Resumed, "the tag step ran in the first run")
	assert.False(t, c2.Plan.Steps[1].Resumed)
	assert.Equal(t, upgrade.Done, rep.Cluster("c3").Outcome)
	assert.Equal(t, []string{"webhooks"}, gateNames(rep.Waves[0]))
	for _, name := range []string{"c1", "c2"} {
		for _, w := range f.writes(name) {
			assert.NotContains(t, w, "mutatingwebhookconfigurations", "%s: the tag is not written again", name)
		}
	}
	tags, err := tag.List(ctx, f.kubes["c3"], tag.ListOptions{})
	require.NoError(t, err)
	require.Len(t, tags, 1)
	assert.Equal(t, "1-25-0", tags[0].Revision)
}

func gateNames(w fleet.WaveReport) []string {
	var out []string
	for _, g := range w.Gates {
		out = append(out, g.Name)
	}
	return out
}

func TestFailureBudget(t *testing.T) {
	f := newFleet(4)
	p := &planner{fail: map[string]bool{"c1": true, "c3": true}}
	opts := fleet.Options{Clusters: f.clusters, Plan: p.plan, FailureBudget: 1,
		Waves: []fleet.Wave{{Name: "a", Clusters: []string{"c1", "c2"}}, {Name: "b", Clusters: []string{"c3"}}, {Name: "c", Clusters: []string{"c4"}}}}
	rep, err := fleet.Run(ctx, opts)
	var stopped *fleet.StoppedError
	require.ErrorAs(t, err, &stopped)
	assert.Equal(t, "b", stopped.Wave, "one failure is within the budget; the second is not")
	assert.Equal(t, []string{"c1", "c3"}, stopped.Failed)
	assert.Equal(t, upgrade.Done, rep.Cluster("c2").Outcome)
	assert.Equal(t, upgrade.NotRun, rep.Cluster("c4").Outcome)
	assert.Equal(t, 2, rep.Count(upgrade.Failed))
	assert.Equal(t, []string{"webhooks"}, gateNames(rep.Waves[0]), "the gate ran on the wave within budget")
}

// Within a wave at most MaxParallel clusters run at once, and after the
// first failure no further cluster of the wave starts.
func TestMaxParallelAndStopWithinAWave(t *testing.T) {
	f := newFleet(6)
	var running, peak atomic.Int32
	var started sync.Map
	plan := func(_ context.Context, c fleet.Cluster) (upgrade.Plan, error) {
		return upgrade.Plan{Name: "p", Steps: []upgrade.Step{upgrade.Func("work", "", func(context.Context, upgrade.Env) (upgrade.Result, error) {
			started.Store(c.Name, true)
			n := running.Add(1)
			defer running.Add(-1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
			if c.Name == "c3" {
				return upgrade.Result{}, errors.New("boom")
			}
			return upgrade.Result{}, nil
		})}}, nil
	}
	names := []string{"c1", "c2", "c3", "c4", "c5", "c6"}
	rep, err := fleet.Run(ctx, fleet.Options{Clusters: f.clusters, Plan: plan,
		Waves: []fleet.Wave{{Name: "all", Clusters: names, MaxParallel: 2}}})
	require.ErrorIs(t, err, fleet.ErrStopped)
	assert.LessOrEqual(t, peak.Load(), int32(2))
	assert.Equal(t, int32(2), peak.Load(), "two at once")
	// c5 may have taken c4's slot before c3 failed; c6 needs a slot freed
	// after the failure, and so never starts.
	_, c6 := started.Load("c6")
	assert.False(t, c6, "nothing starts after the failure")
	assert.Equal(t, upgrade.NotRun, rep.Cluster("c6").Outcome)
}

func TestGatesAndApproval(t *testing.T) {
	t.Run("a failing gate stops the fleet before the next wave", func(t *testing.T) {
		f := newFleet(2)
		p := &planner{}
		var seen []string
		rep, err := fleet.Run(ctx, fleet.Options{Clusters: f.clusters, Plan: p.plan,
			Waves: []fleet.Wave{{Name: "a", Clusters: []string{"c1"}}, {Name: "b", Clusters: []string{"c2"}}},
			Gates: []fleet.Gate{{Name: "error-budget", Check: func(_ context.Context, w *fleet.WaveReport) error {
				seen = append(seen, w.Name)
				return fmt.Errorf("5xx rate up: %w", revkit.ErrVerificationFailed)
			}}}})
		var stopped *fleet.StoppedError
		require.ErrorAs(t, err, &stopped)
		assert.Equal(t, "error-budget", stopped.Gate)
		assert.ErrorIs(t, err, revkit.ErrVerificationFailed)
		assert.Equal(t, []string{"a"}, seen)
		assert.Equal(t, upgrade.NotRun, rep.Cluster("c2").Outcome)
		assert.Equal(t, []string{"webhooks", "error-budget"}, gateNames(rep.Waves[0]))
		assert.Contains(t, rep.String(), "gate error-budget after wave a: failed: 5xx rate up")
	})
	t.Run("the built-in gate finds an overlapping injector", func(t *testing.T) {
		f := newFleet(2)
		p := &planner{}
		mwc, err := f.kubes["c1"].AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "istio-sidecar-injector-1-25-0", metav1.GetOptions{})
		require.NoError(t, err)
		_, err = f.kubes["c1"].AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx,
			&admv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "rogue"}, Webhooks: mwc.Webhooks}, metav1.CreateOptions{})
		require.NoError(t, err)
		rep, err := fleet.Run(ctx, fleet.Options{Clusters: f.clusters, Plan: p.plan,
			Waves: []fleet.Wave{{Name: "a", Clusters: []string{"c1"}}, {Name: "b", Clusters: []string{"c2"}}}})
		var stopped *fleet.StoppedError
		require.ErrorAs(t, err, &stopped)
		assert.Equal(t, "webhooks", stopped.Gate)
		assert.ErrorIs(t, err, revkit.ErrOverlap)
		assert.Contains(t, err.Error(), "cluster c1")
		assert.Equal(t, upgrade.NotRun, rep.Cluster("c2").Outcome)
	})
	t.Run("a refused approval stops before the wave", func(t *testing.T) {
		f := newFleet(2)
		p := &planner{}
		rep, err := fleet.Run(ctx, fleet.Options{Clusters: f.clusters, Plan: p.plan,
			Waves: []fleet.Wave{{Name: "a", Clusters: []string{"c1"}}, {Name: "b", Clusters: []string{"c2"},
				Approve: func(_ context.Context, wave string, sofar *fleet.Report) error {
					if sofar.Cluster("c1").Outcome != upgrade.Done {
						return errors.New("c1 not done")
					}
					return errors.New("change freeze")
				}}}})
		assert.ErrorIs(t, err, fleet.ErrNotApproved)
		assert.ErrorIs(t, err, fleet.ErrStopped)
		assert.Contains(t, err.Error(), "change freeze")
		assert.Equal(t, upgrade.Done, rep.Cluster("c1").Outcome)
		assert.Equal(t, upgrade.NotRun, rep.Cluster("c2").Outcome)
		assert.Empty(t, f.writes("c2"))
	})
	t.Run("a cancelled context starts nothing", func(t *testing.T) {
		f := newFleet(1)
		p := &planner{}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := fleet.Run(cctx, fleet.Options{Clusters: f.clusters, Plan: p.plan, Waves: []fleet.Wave{{Name: "a", Clusters: []string{"c1"}}}})
		assert.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, f.writes("c1"))
	})
}

// A dry run writes nothing and runs no gate.
func TestDryRun(t *testing.T) {
	f := newFleet(2)
	p := &planner{}
	rep, err := fleet.Run(ctx, fleet.Options{Clusters: f.clusters, Plan: p.plan, Journal: &upgrade.Journal{},
		Common: revkit.Common{DryRun: revkit.DryRunClient},
		Waves:  []fleet.Wave{{Name: "a", Clusters: []string{"c1"}}, {Name: "b", Clusters: []string{"c2"}}}})
	require.NoError(t, err)
	assert.Equal(t, 2, rep.Count(upgrade.Done))
	assert.Empty(t, rep.Waves[0].Gates)
	for name := range f.kubes {
		assert.Empty(t, f.writes(name))
	}
	assert.True(t, strings.HasPrefix(rep.String(), "WAVE"))
}

func TestPrimaryRemoteValidation(t *testing.T) {
	f := newFleet(3)
	p := &planner{}
	for _, tc := range []struct {
		name    string
		primary map[string]string // cluster → its primary
		waves   []fleet.Wave
		reason  string
	}{
		{"unknown primary", map[string]string{"c2": "c9"}, nil, "no such cluster"},
		{"its own primary", map[string]string{"c2": "c2"}, nil, "must not itself be a remote"},
		{"a remote as primary", map[string]string{"c2": "c1", "c3": "c2"}, nil, "must not itself be a remote"},
		{"remote in the primary's wave", map[string]string{"c2": "c1"},
			[]fleet.Wave{{Name: "a", Clusters: []string{"c1", "c2"}}, {Name: "b", Clusters: []string{"c3"}}}, "in a wave before"},
		{"remote before its primary", map[string]string{"c1": "c3"}, nil, "in a wave before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clusters := slicesClone(f.clusters)
			for i := range clusters {
				clusters[i].Primary = tc.primary[clusters[i].Name]
			}
			waves := tc.waves
			if waves == nil {
				waves = []fleet.Wave{{Name: "a", Clusters: []string{"c1"}}, {Name: "b", Clusters: []string{"c2"}}, {Name: "c", Clusters: []string{"c3"}}}
			}
			_, err := fleet.Run(ctx, fleet.Options{Clusters: clusters, Waves: waves, Plan: p.plan})
			var invalid *revkit.InvalidInputError
			require.ErrorAs(t, err, &invalid)
			assert.Contains(t, invalid.Field, ".Primary")
			assert.Contains(t, invalid.Reason, tc.reason)
			assert.Zero(t, p.built.Load())
		})
	}
}

// The remotes gate: after the primary's wave, a remote whose tag points at
// a revision the primary no longer serves stops the fleet before the
// remote's wave; served, the fleet goes on.
func TestRemotesGate(t *testing.T) {
	p := &planner{}
	run := func(primaryRevs ...string) (*fleet.Report, error, *fake.Clientset) {
		c := revkittest.NewCluster()
		for _, r := range primaryRevs {
			c = c.WithRevision(r)
		}
		primary := c.Kube()
		remote := revkittest.NewCluster().WithRevision("1-24-0").WithRevision("1-25-0").WithTag("prod-stable", "1-24-0").
			WithNamespace("shop", revkittest.Rev("prod-stable")).Kube()
		remote.ClearActions()
		rep, err := fleet.Run(ctx, fleet.Options{Plan: p.plan,
			Clusters: []fleet.Cluster{{Name: "primary", Kube: primary}, {Name: "remote", Kube: remote, Primary: "primary"}},
			Waves:    []fleet.Wave{{Name: "primaries", Clusters: []string{"primary"}}, {Name: "remotes", Clusters: []string{"remote"}}}})
		return rep, err, remote
	}
	rep, err, remote := run("1-25-0")
	var stopped *fleet.StoppedError
	require.ErrorAs(t, err, &stopped)
	assert.Equal(t, "remotes", stopped.Gate)
	assert.ErrorIs(t, err, revkit.ErrVerificationFailed)
	assert.ErrorContains(t, err, "remote remote uses revision 1-24-0 (its injector, tags prod-stable, namespaces shop), which primary primary does not serve")
	assert.Equal(t, upgrade.NotRun, rep.Cluster("remote").Outcome)
	assert.Empty(t, revkittest.Writes(remote))

	rep, err, _ = run("1-24-0", "1-25-0")
	require.NoError(t, err)
	assert.Equal(t, []string{"webhooks", "remotes"}, gateNames(rep.Waves[0]))
	assert.Equal(t, upgrade.Done, rep.Cluster("remote").Outcome)
}

func slicesClone(in []fleet.Cluster) []fleet.Cluster { return append([]fleet.Cluster(nil), in...) }
