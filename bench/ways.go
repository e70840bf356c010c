package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/revkit/revkit/internal/testenv"
	"github.com/revkit/revkit/namespace"
	"github.com/revkit/revkit/verify"
)

// Result is one way of migrating the fleet, measured.
type Result struct {
	Way     string  `json:"way"`
	Seconds float64 `json:"seconds"`
	// Client counts the requests the way itself sent, by verb.
	Client Counts `json:"client"`
	// APIServer is the delta of apiserver_request_total over the run, all
	// clients included (controllers, scheduler, KWOK, istiods).
	APIServer Counts `json:"apiserver"`
	// RSSBytes and HeapBytes: peak of the process that ran the way (revkit
	// only: it runs as its own process).
	RSSBytes  uint64 `json:"rss_bytes,omitempty"`
	HeapBytes uint64 `json:"heap_bytes,omitempty"`
	// Restarted counts restarted workloads as the way reports them.
	Restarted int `json:"restarted"`
	// Load is /proc/loadavg's 1-minute figure when the way started and
	// ended: the machine is shared.
	LoadStart float64 `json:"load_start"`
	LoadEnd   float64 `json:"load_end"`
}

// childResult is what `bench -child revkit` prints.
type childResult struct {
	Restarted int    `json:"restarted"`
	Client    Counts `json:"client"`
	RSSBytes  uint64 `json:"rss_bytes"`
	HeapBytes uint64 `json:"heap_bytes"`
	Error     string `json:"error,omitempty"`
}

// runRevkitChild runs the revkit way in a fresh process (this binary with
// -child revkit), so that its RSS is that of a program doing only this.
func runRevkitChild(ctx context.Context, env *testenv.Env, target string, qps float64, burst int) (*childResult, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, "-child=revkit", "-kubeconfig="+env.Kubeconfig, "-target="+target,
		fmt.Sprintf("-qps=%g", qps), fmt.Sprintf("-burst=%d", burst))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var res childResult
	if jerr := json.Unmarshal(stdout.Bytes(), &res); jerr != nil {
		return nil, fmt.Errorf("revkit child: %v: %v: %s", err, jerr, stderr.String())
	}
	if res.Error != "" {
		return &res, fmt.Errorf("revkit child: %s", res.Error)
	}
	return &res, err
}

// childMain is the revkit way: what a program using the library does to move
// every namespace labelled bench=fleet to target.
func childMain(args []string) {
	fs := flag.NewFlagSet("child", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "")
	target := fs.String("target", "new", "")
	qps := fs.Float64("qps", 50, "")
	burst := fs.Int("burst", 100, "")
	_ = fs.String("child", "", "")
	_ = fs.Parse(args)

	mem := startMemSampler()
	res := childResult{}
	err := func() error {
		cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
		if err != nil {
			return err
		}
		cfg.QPS, cfg.Burst = float32(*qps), *burst
		var counter clientCounter
		defer func() { res.Client = counter.counts() }()
		kube, err := kubernetes.NewForConfig(counter.wrap(cfg))
		if err != nil {
			return err
		}
		n, err := migrateRevkit(context.Background(), kube, *target)
		res.Restarted = n
		return err
	}()
	if err != nil {
		res.Error = err.Error()
	}
	res.HeapBytes, res.RSSBytes = mem.Stop()
	_ = json.NewEncoder(os.Stdout).Encode(res)
}

// migrateRevkit is the library's way with its defaults: Migrate, then
// RolloutRestart with Wait, then verify.Pods.
func migrateRevkit(ctx context.Context, kube kubernetes.Interface, target string) (int, error) {
	sel := namespace.Selection{Selector: fleetSelector}
	if _, err := namespace.Migrate(ctx, kube, namespace.MigrateOptions{Selection: sel, Target: target}); err != nil {
		return 0, err
	}
	rr, err := namespace.RolloutRestart(ctx, kube, namespace.RestartOptions{Selection: sel, Target: target,
		Wait: true, Timeout: rolloutTimeout})
	if err != nil {
		return 0, err
	}
	report, err := verify.Pods(ctx, kube, verify.PodsOptions{Selector: fleetSelector, Target: target})
	if err != nil {
		return 0, err
	}
	// Old pods are deleted right after the rollout completes; verify.Pods
	// may still see a few terminating ones.
	return len(rr.Restarted()), report.Err()
}

// migrateKubectl is the guide's loop, namespace by namespace, with the real
// kubectl binary. kubectl runs with -v=6 so that its requests can be
// counted; that only adds log lines.
func migrateKubectl(ctx context.Context, env *testenv.Env, f Fleet, target string, counter *clientCounter) error {
	for i := range f.Namespaces {
		ns := f.namespace(i)
		for _, args := range [][]string{
			{"label", "namespace", ns, "istio-injection-", "istio.io/rev=" + target, "--overwrite"},
			{"rollout", "restart", "deployment", "-n", ns},
			{"rollout", "status", "deployment", "-n", ns},
		} {
			cmd := env.Kubectl(ctx, append(args, "-v=6")...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("kubectl %v: %w: %s", args, err, tail(out.String(), 2000))
			}
			countKubectl(out.Bytes(), counter)
		}
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// migrateFloor is the floor: the minimal writes in parallel with no
// client-side rate limit, then one cluster-wide watch until every rollout is
// done.
func migrateFloor(ctx context.Context, cfg *rest.Config, f Fleet, target string, workers int, counter *clientCounter) error {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0
	kube, err := kubernetes.NewForConfig(counter.wrap(cfg))
	if err != nil {
		return err
	}
	gens, err := f.migrateParallel(ctx, kube, target, workers)
	if err != nil {
		return err
	}
	_, err = waitRolledOut(ctx, kube, gens)
	return err
}
