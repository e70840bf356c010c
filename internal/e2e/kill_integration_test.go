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
	"strings"
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
	return upgrade.CanaryOptions{From: oldRev, To: newRev, CanaryTag: "prod-canary",
		Namespaces: namespace.Selection{Selector: "killtest=true"}, BatchSize: 1, KeepOld: true,
		RestartTimeout: 2 * time.Minute, RecordState: true}
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
	build := upgrade.Canary
	if strings.HasPrefix(plan, "rollback") {
		build = upgrade.Rollback // to the state the canary recorded
	}
	p, err := build(ctx, kube, killPlanOptions())
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
// exactly once by the plan, and the webhooks neither overlap nor dangle;
// then does the same to the rollback to the state the canary recorded,
// which must bring every namespace, pod and tag back as they were.
func TestKillAndResume(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	env, err := testenv.Start(t, testenv.Options{})
	require.NoError(t, err)
	admin := env.Client
	for _, rev := range []string{oldRev, newRev} {
		_, err := env.StartIstiod(ctx, rev)
		require.NoError(t, err)
	}
	_, err = tag.Set(ctx, admin, tag.SetOptions{Tag: "prod-stable", Revision: oldRev})
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
	// Each point kills the canary plan, reruns it to completion and checks
	// it; then does the same with the rollback to the recorded state, which
	// also brings the namespaces back for the next point.
	// Six points of each in `make test` (about 4 minutes); set
	// REVKIT_KILLTEST_POINTS for a longer run.
	points := 6
	if s := os.Getenv("REVKIT_KILLTEST_POINTS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			points = n
		}
	}
	for i := 0; i < points; i++ {
		plan := fmt.Sprintf("kill-%d", i)
		began := time.Now().UTC().Truncate(time.Second)
		delay := time.Duration(rng.Int63n(int64(7 * time.Second)))
		reruns := killAndRerun(t, env.Kubeconfig, plan, delay)
		t.Logf("point %2d: canary killed after %s, completed after %d rerun(s)", i, delay.Round(time.Millisecond), reruns)
		checkConverged(ctx, t, admin, i, began, "istio.io/rev=prod-canary", newRev)
		tags, err := tag.List(ctx, admin, tag.ListOptions{})
		require.NoError(t, err)
		assert.Len(t, tags, 2, "point %d: prod-stable and prod-canary", i)
		if t.Failed() {
			return
		}
		time.Sleep(time.Second) // a new second: the rollback's stamps are its own

		plan = fmt.Sprintf("rollback-%d", i)
		began = time.Now().UTC().Truncate(time.Second)
		delay = time.Duration(rng.Int63n(int64(4 * time.Second)))
		reruns = killAndRerun(t, env.Kubeconfig, plan, delay)
		t.Logf("point %2d: rollback killed after %s, completed after %d rerun(s)", i, delay.Round(time.Millisecond), reruns)
		checkConverged(ctx, t, admin, i, began, "istio.io/rev=prod-stable", oldRev)
		tags, err = tag.List(ctx, admin, tag.ListOptions{})
		require.NoError(t, err)
		require.Len(t, tags, 1, "point %d: the canary tag the plan created is gone", i)
		assert.Equal(t, "prod-stable", tags[0].Name)
		if t.Failed() {
			return
		}
		waitNoTerminatingAll(ctx, t, admin, killApps)
		time.Sleep(time.Second)
	}
}

// killAndRerun runs plan in a child process, kills it after delay, and
// reruns it until it completes; it returns the number of reruns.
func killAndRerun(t *testing.T, kubeconfig, plan string, delay time.Duration) int {
	t.Helper()
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), childKubeconfig+"="+kubeconfig, childPlan+"="+plan)
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
		cmd.Env = append(os.Environ(), childKubeconfig+"="+kubeconfig, childPlan+"="+plan)
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
	return reruns
}

// checkConverged checks that every namespace is labelled label, every pod
// runs rev, every workload was restarted exactly once since began (one
// ReplicaSet whose template was stamped since) and the webhooks neither
// overlap nor dangle.
func checkConverged(ctx context.Context, t *testing.T, admin kubernetes.Interface, point int, began time.Time, label, rev string) {
	t.Helper()
	inj, err := revkittest.NamespaceInjection(ctx, admin)
	require.NoError(t, err)
	for _, ns := range killApps {
		assert.Equal(t, label, inj[ns], "point %d: %s", point, ns)
	}
	pods, err := verify.Pods(ctx, admin, verify.PodsOptions{Selector: "killtest=true", Target: rev})
	require.NoError(t, err)
	assert.NoError(t, pods.Err(), "point %d", point)
	for _, ns := range killApps {
		// The pods run that revision's Istio version's sidecar.
		list, err := admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		require.NoError(t, err)
		for i := range list.Items {
			if p := &list.Items[i]; p.DeletionTimestamp == nil {
				got, _ := testenv.ProxyVersion(p)
				assert.Equal(t, testenv.IstioFor(rev).Name, got, "point %d: proxy version of %s/%s", point, ns, p.Name)
			}
		}
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
		assert.Equal(t, 1, stamped, "point %d: %s/web restarted %d times by the plan", point, ns, stamped)
	}
	wh, err := verify.Webhooks(ctx, admin, verify.WebhooksOptions{})
	require.NoError(t, err)
	assert.NoError(t, wh.Err(), "point %d", point)
}

func waitNoTerminatingAll(ctx context.Context, t *testing.T, kube kubernetes.Interface, nss []string) {
	t.Helper()
	for _, ns := range nss {
		waitNoTerminating(ctx, t, kube, ns)
	}
}
