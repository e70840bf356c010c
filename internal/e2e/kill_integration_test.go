//go:build integration

package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/revkit/revkit/internal/mesh"
	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/tag"
	"github.com/revkit/revkit/upgrade"
	"github.com/revkit/revkit/verify"
)

// The kill test re-executes this test binary as the "upgrade program":
// TestMain runs killChild instead of the tests when these are set.
const (
	childKubeconfig = "REVKIT_KILLTEST_KUBECONFIG"
	childPlan       = "REVKIT_KILLTEST_PLAN"
	exitLocked      = 3
)

func TestMain(m *testing.M) {
	if os.Getenv(childKubeconfig) != "" {
		os.Exit(killChild(os.Getenv(childKubeconfig), os.Getenv(childPlan)))
	}
	os.Exit(m.Run())
}

var killApps = []string{"alpha", "bravo", "charlie"}

func killPlanOptions() upgrade.CanaryOptions {
	return upgrade.CanaryOptions{From: "1-30-0", To: "1-31-0", CanaryTag: "prod-canary",
		Namespaces: namespace.Selection{Selector: "killtest=true"}, BatchSize: 1, KeepOld: true,
		RestartTimeout: 2 * time.Minute}
}

// killChild runs the journaled canary plan once and exits 0 on success,
// exitLocked while an earlier (killed) run's lease is still live, 1 else.
func killChild(kubeconfig, plan string) int {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	kube := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	p, err := upgrade.Canary(ctx, kube, killPlanOptions())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	p.Name = plan
	_, err = upgrade.Execute(ctx, upgrade.Env{Kube: kube, Journal: &upgrade.Journal{
		Holder: "pid-" + strconv.Itoa(os.Getpid()), LeaseDuration: 3 * time.Second}}, p)
	switch {
	case errors.Is(err, upgrade.ErrLocked):
		return exitLocked
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestKillAndResume kills the process running a canary plan at seeded
// random points, reruns it to completion each time, and checks that every
// namespace ended on the new revision, every workload was restarted
// exactly once by the plan, and the webhooks neither overlap nor dangle.
func TestKillAndResume(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	env, err := testenv.Start(t, testenv.Options{})
	require.NoError(t, err)
	admin := env.Client
	for _, rev := range []string{"1-30-0", "1-31-0"} {
		_, err := env.StartIstiod(ctx, rev)
		require.NoError(t, err)
	}
	_, err = tag.Set(ctx, admin, tag.SetOptions{Tag: "prod-stable", Revision: "1-30-0"})
	require.NoError(t, err)
	for _, ns := range killApps {
		createNamespace(ctx, t, env, ns, map[string]string{"istio.io/rev": "prod-stable", "killtest": "true"})
		createDeployment(ctx, t, admin, ns, "web", 1)
	}
	for _, ns := range killApps {
		waitRolledOut(ctx, t, admin, ns, "web")
	}

	seed := time.Now().UnixNano()
	if s := os.Getenv("REVKIT_KILLTEST_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	rng := rand.New(rand.NewSource(seed))
	t.Logf("kill points from seed %d (set REVKIT_KILLTEST_SEED to replay)", seed)
	const points = 20
	for i := 0; i < points; i++ {
		plan := fmt.Sprintf("kill-%d", i)
		began := time.Now().UTC().Truncate(time.Second)
		delay := time.Duration(rng.Int63n(int64(7 * time.Second)))

		child := exec.Command(os.Args[0])
		child.Env = append(os.Environ(), childKubeconfig+"="+env.Kubeconfig, childPlan+"="+plan)
		require.NoError(t, child.Start())
		time.Sleep(delay)
		_ = child.Process.Signal(syscall.SIGKILL)
		state, _ := child.Process.Wait()
		finished := state != nil && state.Exited() && state.ExitCode() == 0

		reruns := 0
		for !finished {
			reruns++
			require.Less(t, reruns, 60, "plan %s did not complete after the kill", plan)
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), childKubeconfig+"="+env.Kubeconfig, childPlan+"="+plan)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			switch {
			case err == nil:
				finished = true
			case errors.As(err, &exit) && exit.ExitCode() == exitLocked:
				time.Sleep(time.Second)
			default:
				t.Fatalf("plan %s rerun %d: %v\n%s", plan, reruns, err, out)
			}
		}
		t.Logf("point %2d: killed after %s, completed after %d rerun(s)", i, delay.Round(time.Millisecond), reruns)

		// Every namespace on the canary, every pod on its revision.
		inj, err := revkittest.NamespaceInjection(ctx, admin)
		require.NoError(t, err)
		for _, ns := range killApps {
			assert.Equal(t, "istio.io/rev=prod-canary", inj[ns], "point %d: %s", i, ns)
		}
		pods, err := verify.Pods(ctx, admin, verify.PodsOptions{Selector: "killtest=true", Target: "1-31-0"})
		require.NoError(t, err)
		assert.NoError(t, pods.Err(), "point %d", i)
		// Each workload restarted exactly once by this plan: one
		// ReplicaSet whose template was stamped since the plan began.
		for _, ns := range killApps {
			rss, err := admin.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
			require.NoError(t, err)
			stamped := 0
			for _, rs := range rss.Items {
				if v, ok := rs.Spec.Template.Annotations[mesh.RestartedAtAnnotation]; ok {
					if at, err := time.Parse(time.RFC3339, v); err == nil && !at.Before(began) {
						stamped++
					}
				}
			}
			assert.Equal(t, 1, stamped, "point %d: %s/web restarted %d times by the plan", i, ns, stamped)
		}
		wh, err := verify.Webhooks(ctx, admin, verify.WebhooksOptions{})
		require.NoError(t, err)
		assert.NoError(t, wh.Err(), "point %d", i)
		if t.Failed() {
			return
		}

		// Back to the old revision for the next point.
		_, err = namespace.Migrate(ctx, admin, namespace.MigrateOptions{Selection: namespace.Selection{Selector: "killtest=true"}, Target: "prod-stable"})
		require.NoError(t, err)
		time.Sleep(time.Second) // a new second: the next plan's stamps are its own
		_, err = namespace.RolloutRestart(ctx, admin, namespace.RestartOptions{Selection: namespace.Selection{Selector: "killtest=true"},
			Target: "prod-stable", OnlyStale: true, Wait: true, Timeout: 2 * time.Minute, PollInterval: 300 * time.Millisecond})
		require.NoError(t, err)
		waitNoTerminatingAll(ctx, t, admin, killApps)
		time.Sleep(time.Second)
	}
}

func waitNoTerminatingAll(ctx context.Context, t *testing.T, kube kubernetes.Interface, nss []string) {
	t.Helper()
	for _, ns := range nss {
		waitNoTerminating(ctx, t, kube, ns)
	}
}
