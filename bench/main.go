// Command bench migrates a fleet of namespaces from one Istio revision to
// another on a local control plane (internal/testenv, KWOK pods, two real
// istiods) three ways — revkit, the guide's kubectl loop and a parallel
// client-go floor — under named cluster profiles, and reports wall time,
// requests and revkit's memory. `make bench` runs it inside a loopback-only
// network namespace; see docs/BENCHMARKS.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/revkit/revkit/internal/testenv"
)

// Profile is a cluster configuration.
type Profile struct {
	Name        string
	Description string
	Options     testenv.Options
}

func profiles(raisedQPS int, readyDelay time.Duration) map[string]Profile {
	raised := testenv.Options{ClientQPS: raisedQPS, SchedulerQPS: raisedQPS}
	delayed := raised
	delayed.PodReadyDelay = readyDelay
	return map[string]Profile{
		"a": {"a", "controller-manager and scheduler at default client limits (20/30, 50/100), pods Ready at once",
			testenv.Options{DefaultClientLimits: true}},
		"b": {"b", fmt.Sprintf("controller-manager and scheduler --kube-api-qps=%d --kube-api-burst=%d, pods Ready at once", raisedQPS, 2*raisedQPS), raised},
		"c": {"c", fmt.Sprintf("as b, KWOK pod-ready stage delayed %s", readyDelay), delayed},
	}
}

// ProfileResult is one profile's run.
type ProfileResult struct {
	Profile     string    `json:"profile"`
	Description string    `json:"description"`
	Fleet       Fleet     `json:"fleet"`
	SetupSecs   float64   `json:"setup_seconds"`
	Results     []*Result `json:"results"`
}

func (p *ProfileResult) way(name string) *Result {
	for _, r := range p.Results {
		if r.Way == name {
			return r
		}
	}
	return nil
}

// Summary is the one-line summary of a profile.
func (p *ProfileResult) Summary() string {
	f := func(name string) (float64, bool) {
		if r := p.way(name); r != nil {
			return r.Seconds, true
		}
		return 0, false
	}
	num := func(v float64, ok bool) string {
		if !ok {
			return "na"
		}
		return fmt.Sprintf("%.1f", v)
	}
	rk, okR := f("revkit")
	kc, okK := f("kubectl")
	fl, okF := f("floor")
	ratio := func(a, b float64, ok bool) string {
		if !ok || b == 0 {
			return "na"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	requests, rss := "na", "na"
	if r := p.way("revkit"); r != nil {
		requests = fmt.Sprintf("%.0f", r.Client.Total())
		rss = fmt.Sprintf("%.0f", float64(r.RSSBytes)/(1<<20))
	}
	return fmt.Sprintf("bench: profile=%s ns=%d workloads=%d revkit_s=%s kubectl_s=%s floor_s=%s speedup_vs_kubectl=%s ratio_to_floor=%s requests=%s minimal_writes=%d rss_mb=%s",
		p.Profile, p.Fleet.Namespaces, p.Fleet.Workloads(), num(rk, okR), num(kc, okK), num(fl, okF),
		ratio(kc, rk, okR && okK), ratio(rk, fl, okR && okF), requests, p.Fleet.MinimalWrites(), rss)
}

func main() {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "-child") {
		childMain(os.Args[1:])
		return
	}
	var (
		f            Fleet
		profileList  = flag.String("profiles", "a,b,c", "cluster profiles to run, in order: a, b, c")
		wayList      = flag.String("ways", "revkit,kubectl,floor", "ways to migrate, in order")
		qps          = flag.Float64("qps", 50, "revkit's client QPS (rest.Config)")
		burst        = flag.Int("burst", 100, "revkit's client burst")
		raisedQPS    = flag.Int("raised-qps", 300, "--kube-api-qps of controller-manager and scheduler in profiles b and c")
		readyDelay   = flag.Duration("ready-delay", 5*time.Second, "KWOK pod-ready delay in profile c")
		floorWorkers = flag.Int("floor-workers", 100, "requests in flight for the floor")
		jsonOut      = flag.String("json", "", "also write the results as JSON to this file")
		clusters     = flag.Int("clusters", 0, "fleet mode: start this many control planes, each with the fleet, and upgrade them with fleet.Run one cluster per wave and all in one wave, alternately (uses the first of -profiles)")
		rounds       = flag.Int("rounds", 4, "fleet mode: fleet upgrades to run, alternating the way and the direction")
	)
	flag.IntVar(&f.Namespaces, "namespaces", 200, "namespaces in the fleet (up to 1000)")
	flag.IntVar(&f.Deployments, "deployments", 5, "Deployments per namespace")
	flag.IntVar(&f.Replicas, "replicas", 2, "replicas per Deployment")
	flag.Parse()
	if f.Namespaces < 1 || f.Namespaces > 1000 || f.Deployments < 1 || f.Replicas < 1 {
		fmt.Fprintln(os.Stderr, "bench: need 1..1000 namespaces and at least one Deployment and replica")
		os.Exit(2)
	}
	go func() {
		// Stop the control plane and remove its directory on Ctrl-C or
		// SIGTERM (its processes would die with us anyway).
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		stopCurrent()
		os.Exit(130)
	}()
	opts := options{Fleet: f, Ways: split(*wayList), QPS: *qps, Burst: *burst, FloorWorkers: *floorWorkers, Log: os.Stderr}
	all := profiles(*raisedQPS, *readyDelay)
	if *clusters > 0 {
		os.Exit(clustersMain(all, split(*profileList), *clusters, *rounds, opts, *jsonOut))
	}
	var results []*ProfileResult
	failed := false
	for _, name := range split(*profileList) {
		p, ok := all[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "bench: unknown profile %q\n", name)
			os.Exit(2)
		}
		pr, err := runProfile(context.Background(), p, opts)
		if pr != nil {
			results = append(results, pr)
			printTable(os.Stdout, pr)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: profile %s: %v\n", name, err)
			failed = true
		}
	}
	for _, pr := range results {
		fmt.Println(pr.Summary())
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

type options struct {
	Fleet        Fleet
	Ways         []string
	QPS          float64
	Burst        int
	FloorWorkers int
	Log          io.Writer
}

func (o options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, time.Now().UTC().Format("15:04:05 ")+format+"\n", args...)
	}
}

// runProfile starts a control plane for the profile, creates the fleet on
// "old" and migrates it to "new" each way in turn, moving it back to "old"
// between ways.
func runProfile(ctx context.Context, p Profile, o options) (*ProfileResult, error) {
	f := o.Fleet
	res := &ProfileResult{Profile: p.Name, Description: p.Description, Fleet: f}
	begin := time.Now()
	eo := p.Options
	// Room for every pod plus a surge of one per Deployment. testenv's
	// nodes have 32 CPUs and each pod's istio-proxy requests 100m, so a
	// node holds 320 injected pods.
	pods := f.Workloads() * (f.Replicas + 1)
	eo.Nodes = max(3, pods/300+2)
	eo.PodsPerNode = 320
	eo.StartTimeout = 5 * time.Minute
	o.logf("profile %s: %s; starting the control plane", p.Name, p.Description)
	env, stop, err := testenv.Launch(eo, o.Log)
	if err != nil {
		return nil, err
	}
	setStop(stop)
	defer stopCurrent()
	for _, rev := range []string{"old", "new"} {
		if _, err := env.StartIstiod(ctx, rev); err != nil {
			return nil, fmt.Errorf("istiod %s: %w", rev, err)
		}
	}
	setup := rest.CopyConfig(env.Config)
	setup.QPS, setup.Burst = -1, 0
	kube, err := kubernetes.NewForConfig(setup)
	if err != nil {
		return nil, err
	}
	o.logf("profile %s: creating %d namespaces × %d Deployments × %d replicas on old", p.Name, f.Namespaces, f.Deployments, f.Replicas)
	if err := f.create(ctx, env, kube, "old"); err != nil {
		return nil, err
	}
	if err := f.waitPodsOn(ctx, kube, "old", 10*time.Minute); err != nil {
		return nil, err
	}
	res.SetupSecs = time.Since(begin).Seconds()
	o.logf("profile %s: fleet ready in %.1fs", p.Name, res.SetupSecs)

	for i, way := range o.Ways {
		if i > 0 {
			o.logf("profile %s: resetting the fleet to old", p.Name)
			if err := f.reset(ctx, kube, "old"); err != nil {
				return res, fmt.Errorf("reset before %s: %w", way, err)
			}
		}
		r, err := runWay(ctx, env, kube, way, o)
		if r != nil {
			res.Results = append(res.Results, r)
		}
		if err != nil {
			return res, fmt.Errorf("%s: %w", way, err)
		}
		o.logf("profile %s: %s took %.1fs; client %s; apiserver %s", p.Name, way, r.Seconds, r.Client, r.APIServer)
		// Every way must leave the whole fleet on new; old pods still
		// terminating get a moment to go.
		if err := f.waitPodsOn(ctx, kube, "new", 2*time.Minute); err != nil {
			return res, fmt.Errorf("after %s: %w", way, err)
		}
	}
	return res, nil
}

var (
	stopMu  sync.Mutex
	stopEnv func()
)

func setStop(stop func()) {
	stopMu.Lock()
	defer stopMu.Unlock()
	stopEnv = stop
}

// stopCurrent stops the running environment, once.
func stopCurrent() {
	stopMu.Lock()
	defer stopMu.Unlock()
	if stopEnv != nil {
		stopEnv()
		stopEnv = nil
	}
}

func runWay(ctx context.Context, env *testenv.Env, kube kubernetes.Interface, way string, o options) (*Result, error) {
	if !slices.Contains([]string{"revkit", "kubectl", "floor"}, way) {
		return nil, fmt.Errorf("unknown way %q", way)
	}
	before, err := scrapeRequests(ctx, kube)
	if err != nil {
		return nil, err
	}
	r := &Result{Way: way, LoadStart: loadAvg()}
	var counter clientCounter
	start := time.Now()
	switch way {
	case "revkit":
		var child *childResult
		child, err = runRevkitChild(ctx, env, "new", o.QPS, o.Burst)
		if child != nil {
			r.Client, r.RSSBytes, r.HeapBytes, r.Restarted = child.Client, child.RSSBytes, child.HeapBytes, child.Restarted
		}
	case "kubectl":
		err = migrateKubectl(ctx, env, o.Fleet, "new", &counter)
		r.Restarted = o.Fleet.Workloads()
	case "floor":
		err = migrateFloor(ctx, env.Config, o.Fleet, "new", o.FloorWorkers, &counter)
		r.Restarted = o.Fleet.Workloads()
	}
	r.Seconds = time.Since(start).Seconds()
	r.LoadEnd = loadAvg()
	if way != "revkit" {
		r.Client = counter.counts()
	}
	after, serr := scrapeRequests(ctx, kube)
	if serr == nil {
		// /metrics itself is not counted in apiserver_request_total.
		r.APIServer = after.Sub(before)
	}
	return r, err
}

// printTable prints a profile's results as a Markdown table.
func printTable(w io.Writer, p *ProfileResult) {
	fmt.Fprintf(w, "\n### profile %s — %s\n\nfleet %d namespaces × %d Deployments × %d replicas (%d workloads, %d pods); minimal writes %d; setup %.0fs\n\n",
		p.Profile, p.Description, p.Fleet.Namespaces, p.Fleet.Deployments, p.Fleet.Replicas, p.Fleet.Workloads(),
		p.Fleet.Workloads()*p.Fleet.Replicas, p.Fleet.MinimalWrites(), p.SetupSecs)
	fmt.Fprintln(w, "| way | wall s | client requests | client by verb | apiserver requests (all clients) by verb | peak RSS MB | peak heap MB | load start→end |")
	fmt.Fprintln(w, "|---|---:|---:|---|---|---:|---:|---|")
	for _, r := range p.Results {
		rss, heap := "", ""
		if r.RSSBytes > 0 {
			rss = fmt.Sprintf("%.0f", float64(r.RSSBytes)/(1<<20))
			heap = fmt.Sprintf("%.0f", float64(r.HeapBytes)/(1<<20))
		}
		fmt.Fprintf(w, "| %s | %.1f | %.0f | %s | %s | %s | %s | %.1f→%.1f |\n", r.Way, r.Seconds, r.Client.Total(), r.Client, r.APIServer, rss, heap, r.LoadStart, r.LoadEnd)
	}
	fmt.Fprintln(w)
}

// clustersMain runs the fleet mode and prints its rounds and ratios.
func clustersMain(all map[string]Profile, names []string, n, rounds int, o options, jsonOut string) int {
	if n < 2 || rounds < 2 || len(names) == 0 {
		fmt.Fprintln(os.Stderr, "bench: fleet mode needs -clusters >= 2, -rounds >= 2 and a profile")
		return 2
	}
	p, ok := all[names[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "bench: unknown profile %q\n", names[0])
		return 2
	}
	res, err := runClusters(context.Background(), p, n, rounds, o)
	if res != nil {
		res.print(os.Stdout)
		fmt.Println(res.Summary())
		if jsonOut != "" {
			b, _ := json.MarshalIndent(res, "", "  ")
			werr := os.MkdirAll(filepath.Dir(jsonOut), 0o755)
			if werr == nil {
				werr = os.WriteFile(jsonOut, b, 0o644)
			}
			if werr != nil {
				fmt.Fprintln(os.Stderr, "bench:", werr)
				return 1
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: fleet mode:", err)
		return 1
	}
	return 0
}
