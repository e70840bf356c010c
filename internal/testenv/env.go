package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options configures Start. The zero value is a usable default.
type Options struct {
	// BinDir holds the binaries; default $REVKIT_BIN, else <repo>/bin.
	BinDir string
	// Nodes is the number of KWOK fake nodes (default 3), each with
	// PodsPerNode pod capacity (default 250), 32 CPUs and 256Gi of memory.
	Nodes       int
	PodsPerNode int
	// ClientQPS is the --kube-api-qps of kube-controller-manager (burst is
	// twice that); default 100. Raise it for large fleets.
	ClientQPS int
	// StartTimeout bounds Start; default 3 minutes.
	StartTimeout time.Duration
	// SkipIstioCRDs leaves the Istio CRDs out.
	SkipIstioCRDs bool
	// GatewayAPI installs the Kubernetes Gateway API CRDs too (see
	// InstallGatewayAPI), so that every istiod runs its gateway deployment
	// controller: istiod deploys Gateways of class istio (and, with
	// PILOT_ENABLE_AMBIENT=true in IstiodEnv, waypoints of class
	// istio-waypoint).
	GatewayAPI bool
	// IstiodEnv is extra environment ("NAME=value") for every istiod
	// process, after the environment testenv sets; e.g.
	// PILOT_ENABLE_AMBIENT=true, without which istiod ignores waypoints.
	IstiodEnv []string
	// DefaultClientLimits starts kube-controller-manager and kube-scheduler
	// without --kube-api-qps/--kube-api-burst, so they run with the
	// Kubernetes defaults (20/30 and 50/100) as in an untuned cluster;
	// ClientQPS and SchedulerQPS are then ignored.
	DefaultClientLimits bool
	// SchedulerQPS is the --kube-api-qps of kube-scheduler (burst twice
	// that); zero keeps the scheduler's default (50).
	SchedulerQPS int
	// PodReadyDelay delays KWOK's pod-ready stage, to model container start
	// and readiness probes; zero makes pods Ready at once.
	PodReadyDelay time.Duration
}

// Env is a running control plane. All fields are read-only.
type Env struct {
	// Config is an admin (system:masters) client config; Client, Dynamic
	// are clients built from it.
	Config  *rest.Config
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	// Kubeconfig is the path of an admin kubeconfig file for the same user.
	Kubeconfig string
	// Token is the admin bearer token.
	Token string
	// Dir is the temporary directory holding data, certs and logs.
	Dir string
	// BinDir is where the binaries were found.
	BinDir string
	// APIServerURL and EtcdURL are the loopback endpoints.
	APIServerURL string
	EtcdURL      string
	// CACertPEM is the CA of the apiserver's serving certificate.
	CACertPEM []byte

	t      testing.TB
	opts   Options
	pki    *pki
	mapper *restmapper.DeferredDiscoveryRESTMapper

	apiArgs []string
	apiProc *Process

	mu       sync.Mutex
	procs    []*Process
	istiods  map[string]*Istiod
	stopOnce sync.Once
	stopErr  error

	// The fake sidecars' traffic and metrics endpoints, and the Prometheus
	// that scrapes them (traffic.go, prometheus.go).
	traffic    map[TrafficFor]Traffic
	targets    map[*Sidecar]metricsTarget
	prometheus *Prometheus
	targetsMu  sync.Mutex
}

// Start starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler
// and KWOK with fake nodes, applies the Istio CRDs and returns when the
// control plane can run pods. Everything is torn down in t.Cleanup (also when
// Start fails). Start returns a *HostNetworkError without starting anything
// when called in the host's network namespace.
func Start(t testing.TB, opts Options) (*Env, error) {
	t.Helper()
	if err := CheckNetworkIsolated(); err != nil {
		return nil, err
	}
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.PodsPerNode == 0 {
		opts.PodsPerNode = 250
	}
	if opts.ClientQPS == 0 {
		opts.ClientQPS = 100
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 3 * time.Minute
	}
	binDir, err := resolveBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "revkit-testenv-")
	if err != nil {
		return nil, err
	}
	e := &Env{t: t, opts: opts, Dir: dir, BinDir: binDir, istiods: map[string]*Istiod{}}
	t.Cleanup(e.cleanup)

	ctx, cancel := context.WithTimeout(context.Background(), opts.StartTimeout)
	defer cancel()
	begin := time.Now()
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	t.Logf("testenv: control plane ready in %s (dir %s)", time.Since(begin).Round(time.Millisecond), dir)
	return e, nil
}

func resolveBinDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv("REVKIT_BIN")
	}
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "bin")
	}
	return filepath.Abs(dir)
}

// repoRoot walks up from the working directory to revkit's go.mod.
func repoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/revkit/revkit\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("testenv: cannot find the revkit repository above %s; set REVKIT_BIN", wd)
		}
	}
}

func (e *Env) bin(name string) string { return filepath.Join(e.BinDir, name) }

func (e *Env) logDir() string { return filepath.Join(e.Dir, "logs") }

// start runs the processes in dependency order.
func (e *Env) start(ctx context.Context) error {
	for _, d := range []string{e.logDir(), filepath.Join(e.Dir, "pki"), filepath.Join(e.Dir, "etcd")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	p, err := newPKI(filepath.Join(e.Dir, "pki"))
	if err != nil {
		return fmt.Errorf("testenv: generating certificates: %w", err)
	}
	e.pki = p
	e.Token = p.Token
	e.CACertPEM = p.CACertPEM

	if err := e.startEtcd(ctx); err != nil {
		return err
	}
	if err := e.startAPIServer(ctx); err != nil {
		return err
	}
	if err := e.startControllers(); err != nil {
		return err
	}
	if err := e.startKWOK(ctx); err != nil {
		return err
	}
	if !e.opts.SkipIstioCRDs {
		step := time.Now()
		crds, err := e.render(ctx, NewIstio, "-chart", "base", "-crds-only")
		if err != nil {
			return err
		}
		refs, err := e.Apply(ctx, crds, "")
		if err != nil {
			return fmt.Errorf("testenv: applying Istio CRDs: %w", err)
		}
		if err := e.WaitCRDsEstablished(ctx, refs); err != nil {
			return err
		}
		e.t.Logf("testenv: %d Istio CRDs established in %s", len(refs), time.Since(step).Round(time.Millisecond))
	}
	if e.opts.GatewayAPI {
		if _, err := e.InstallGatewayAPI(ctx); err != nil {
			return err
		}
	}
	if _, err := e.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: IstioNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("testenv: creating %s: %w", IstioNamespace, err)
	}
	step := time.Now()
	for _, ns := range []string{metav1.NamespaceDefault, IstioNamespace} {
		if err := e.WaitForServiceAccount(ctx, ns, "default"); err != nil {
			return err
		}
	}
	e.t.Logf("testenv: default service accounts in %s", time.Since(step).Round(time.Millisecond))
	return nil
}

// IstioNamespace is where the istiod objects live.
const IstioNamespace = "istio-system"

func (e *Env) spawn(name, binary, dir string, env, args []string) (*Process, error) {
	if dir == "" {
		dir = e.Dir
	}
	if env == nil {
		env = baseEnv()
	}
	p, err := startProcess(name, e.bin(binary), dir, e.logDir(), env, args)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p, nil
}

// baseEnv is a minimal environment for child processes: no proxies, no
// kubeconfig of the developer's.
func baseEnv() []string {
	env := []string{"HOME=" + os.TempDir(), "PATH=/usr/local/bin:/usr/bin:/bin"}
	if v := os.Getenv("TMPDIR"); v != "" {
		env = append(env, "TMPDIR="+v)
	}
	return env
}

func (e *Env) startEtcd(ctx context.Context) error {
	step := time.Now()
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	client, peer := "http://"+loopback(ports[0]), "http://"+loopback(ports[1])
	proc, err := e.spawn("etcd", "etcd", "", nil, []string{
		"--name=testenv",
		"--data-dir=" + filepath.Join(e.Dir, "etcd"),
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=testenv=" + peer,
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	})
	if err != nil {
		return err
	}
	e.EtcdURL = client
	hc := &http.Client{Timeout: 2 * time.Second}
	err = poll(ctx, "etcd /health", 100*time.Millisecond, []*Process{proc}, func(ctx context.Context) error {
		resp, err := hc.Get(client + "/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.t.Logf("testenv: etcd ready in %s at %s", time.Since(step).Round(time.Millisecond), client)
	return nil
}

func (e *Env) startAPIServer(ctx context.Context) error {
	step := time.Now()
	port, err := freePort()
	if err != nil {
		return err
	}
	certDir := filepath.Join(e.Dir, "apiserver")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return err
	}
	e.apiArgs = []string{
		"--etcd-servers=" + e.EtcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + certDir,
		"--tls-cert-file=" + e.pki.ServingCert,
		"--tls-private-key-file=" + e.pki.ServingKey,
		"--client-ca-file=" + e.pki.CACertFile,
		// Fills extension-apiserver-authentication, which the controller
		// manager and scheduler read (and complain about when empty).
		"--requestheader-client-ca-file=" + e.pki.CACertFile,
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--token-auth-file=" + e.pki.TokenFile,
		"--authorization-mode=Node,RBAC",
		"--service-account-key-file=" + e.pki.SAPubFile,
		"--service-account-signing-key-file=" + e.pki.SAKeyFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
		"--shutdown-delay-duration=0s",
		"--v=1",
	}
	proc, err := e.spawn("kube-apiserver", "kube-apiserver", "", nil, e.apiArgs)
	if err != nil {
		return err
	}
	e.apiProc = proc
	e.APIServerURL = "https://" + loopback(port)
	e.Config = &rest.Config{
		Host:            e.APIServerURL,
		BearerToken:     e.pki.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: e.pki.CACertPEM},
		QPS:             100,
		Burst:           200,
		UserAgent:       "revkit-testenv",
	}
	if e.Client, err = kubernetes.NewForConfig(e.Config); err != nil {
		return err
	}
	if e.Dynamic, err = dynamic.NewForConfig(e.Config); err != nil {
		return err
	}
	e.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(e.Client.Discovery()))
	if err := e.writeKubeconfig(); err != nil {
		return err
	}
	err = poll(ctx, "kube-apiserver /readyz", 200*time.Millisecond, []*Process{proc}, func(ctx context.Context) error {
		_, err := e.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	})
	if err != nil {
		return err
	}
	e.t.Logf("testenv: kube-apiserver ready in %s at %s", time.Since(step).Round(time.Millisecond), e.APIServerURL)
	return nil
}

func (e *Env) writeKubeconfig() error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["testenv"] = &clientcmdapi.Cluster{Server: e.APIServerURL, CertificateAuthorityData: e.pki.CACertPEM}
	cfg.AuthInfos[AdminUser] = &clientcmdapi.AuthInfo{Token: e.pki.Token}
	cfg.Contexts["testenv"] = &clientcmdapi.Context{Cluster: "testenv", AuthInfo: AdminUser, Namespace: metav1.NamespaceDefault}
	cfg.CurrentContext = "testenv"
	e.Kubeconfig = filepath.Join(e.Dir, "kubeconfig")
	return clientcmd.WriteToFile(*cfg, e.Kubeconfig)
}

// startControllers starts kube-controller-manager and kube-scheduler. Their
// readiness shows later: the default ServiceAccount (controller-manager) and
// bound pods (scheduler).
func (e *Env) startControllers() error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	kc := e.Kubeconfig
	qps := e.opts.ClientQPS
	if _, err := e.spawn("kube-controller-manager", "kube-controller-manager", "", nil, append(append([]string{
		"--kubeconfig=" + kc,
		"--authentication-kubeconfig=" + kc,
		"--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(ports[0]),
		"--cert-dir=" + filepath.Join(e.Dir, "kcm"),
		"--leader-elect=false",
		"--controllers=*",
		"--use-service-account-credentials=false",
		"--service-account-private-key-file=" + e.pki.SAKeyFile,
		"--root-ca-file=" + e.pki.CACertFile,
	}, clientLimitArgs(qps, e.opts.DefaultClientLimits)...), "--v=1")); err != nil {
		return err
	}
	if _, err := e.spawn("kube-scheduler", "kube-scheduler", "", nil, append(append([]string{
		"--kubeconfig=" + kc,
		"--authentication-kubeconfig=" + kc,
		"--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(ports[1]),
		"--cert-dir=" + filepath.Join(e.Dir, "scheduler"),
		"--leader-elect=false",
	}, clientLimitArgs(e.opts.SchedulerQPS, e.opts.DefaultClientLimits)...), "--v=1")); err != nil {
		return err
	}
	return nil
}

func (e *Env) startKWOK(ctx context.Context) error {
	step := time.Now()
	for i := range e.opts.Nodes {
		if err := e.createNode(ctx, fmt.Sprintf("kwok-node-%d", i)); err != nil {
			return err
		}
	}
	stages, err := e.kwokStages()
	if err != nil {
		return err
	}
	proc, err := e.spawn("kwok", "kwok", "", nil, []string{
		"--kubeconfig=" + e.Kubeconfig,
		"--config=" + stages,
		"--manage-all-nodes=true",
		"--cidr=10.244.0.0/16",
		"--node-ip=127.0.0.1",
		"--server-address=127.0.0.1:0",
	})
	if err != nil {
		return err
	}
	err = poll(ctx, "KWOK nodes Ready", 200*time.Millisecond, []*Process{proc}, func(ctx context.Context) error {
		nodes, err := e.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready < e.opts.Nodes {
			return fmt.Errorf("%d of %d nodes Ready", ready, e.opts.Nodes)
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.t.Logf("testenv: %d KWOK nodes Ready in %s", e.opts.Nodes, time.Since(step).Round(time.Millisecond))
	return nil
}

func (e *Env) createNode(ctx context.Context, name string) error {
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse(strconv.Itoa(e.opts.PodsPerNode)),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Annotations: map[string]string{
				"kwok.x-k8s.io/node":           "fake",
				"node.alpha.kubernetes.io/ttl": "0",
			},
			Labels: map[string]string{
				"type":                   "kwok",
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
			},
		},
		Status: corev1.NodeStatus{
			Capacity:    res,
			Allocatable: res,
			NodeInfo:    corev1.NodeSystemInfo{KubeletVersion: "v1.36.3-kwok", OperatingSystem: "linux", Architecture: "amd64"},
		},
	}
	_, err := e.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("testenv: creating node %s: %w", name, err)
	}
	return nil
}

// WaitForServiceAccount waits until the ServiceAccount exists; pods cannot be
// created in a namespace before its "default" ServiceAccount does.
func (e *Env) WaitForServiceAccount(ctx context.Context, namespace, name string) error {
	ctx, cancel := withDefaultTimeout(ctx, time.Minute)
	defer cancel()
	return poll(ctx, "ServiceAccount "+namespace+"/"+name, 100*time.Millisecond, e.Processes(), func(ctx context.Context) error {
		_, err := e.Client.CoreV1().ServiceAccounts(namespace).Get(ctx, name, metav1.GetOptions{})
		return err
	})
}

// withDefaultTimeout bounds ctx by d unless it already has a deadline, so that
// a forgotten timeout cannot hang a test run.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// Processes returns the processes started so far, in start order.
func (e *Env) Processes() []*Process {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*Process(nil), e.procs...)
}

// Process returns the process with this name (e.g. "kube-apiserver"), or nil.
func (e *Env) Process(name string) *Process {
	for _, p := range e.Processes() {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// render runs istio-render with a version's charts copied into the binary
// directory.
func (e *Env) render(ctx context.Context, v IstioVersion, args ...string) ([]byte, error) {
	args = append([]string{"-charts", e.bin(v.Charts)}, args...)
	if _, err := os.Stat(e.bin("istio-render")); err != nil {
		return nil, fmt.Errorf("%w: istio-render: %v (build it with `make tools`)", ErrBinaryMissing, err)
	}
	cmd := exec.CommandContext(ctx, e.bin("istio-render"), args...)
	cmd.Env = baseEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("testenv: istio-render %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// Stop stops every process (istiods first, etcd last). It is safe to call
// more than once; t.Cleanup calls it too.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		e.mu.Lock()
		istiods := make([]*Istiod, 0, len(e.istiods))
		for _, is := range e.istiods {
			istiods = append(istiods, is)
		}
		e.mu.Unlock()
		for _, is := range istiods {
			for _, r := range is.Replicas() {
				r.closeSidecars()
			}
		}
		procs := e.Processes()
		var errs []error
		for i := len(procs) - 1; i >= 0; i-- {
			if err := procs[i].Stop(5 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
		e.stopErr = errors.Join(errs...)
	})
	return e.stopErr
}

func (e *Env) cleanup() {
	if err := e.Stop(); err != nil {
		e.t.Errorf("testenv: stopping: %v", err)
	}
	if e.t.Failed() {
		for _, p := range e.Processes() {
			e.t.Logf("testenv: ---- last lines of %s (pid %d) ----\n%s", p.Name, p.Pid(), p.Tail(40))
		}
	}
	if d := os.Getenv("REVKIT_TESTENV_LOG_DIR"); d != "" {
		dst := filepath.Join(d, sanitize(e.t.Name())+"-"+filepath.Base(e.Dir))
		if err := copyDir(e.logDir(), dst); err != nil {
			e.t.Logf("testenv: copying logs: %v", err)
		}
	}
	if err := os.RemoveAll(e.Dir); err != nil {
		e.t.Errorf("testenv: removing %s: %v", e.Dir, err)
	}
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}

func copyDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, en := range entries {
		if en.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, en.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, en.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Kubectl returns a command running bin/kubectl (v1.36.3, built by `make
// tools`) against this environment with the admin kubeconfig. It is a child
// of the test binary like the control plane, so it runs in the same
// loopback-only network namespace.
func (e *Env) Kubectl(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.bin("kubectl"), append([]string{"--kubeconfig=" + e.Kubeconfig}, args...)...)
	cmd.Env = append(baseEnv(), "KUBECONFIG="+e.Kubeconfig)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// RestartAPIServer stops kube-apiserver and starts it again on the same
// address with the same flags, as an apiserver rollout or crash would, and
// returns once it is ready. Clients keep their configuration; requests in
// between fail with connection errors.
func (e *Env) RestartAPIServer(ctx context.Context, down time.Duration) error {
	if err := e.StopAPIServer(); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(down):
	}
	return e.StartAPIServer(ctx)
}

// StopAPIServer stops kube-apiserver (SIGTERM, then SIGKILL after 5 s) and
// returns once it has exited. StartAPIServer brings it back.
func (e *Env) StopAPIServer() error {
	if e.apiProc == nil {
		return errors.New("testenv: no apiserver to stop")
	}
	if e.apiProc.Exited() {
		return errors.New("testenv: the apiserver is already stopped")
	}
	return e.apiProc.Stop(5 * time.Second)
}

// StartAPIServer starts kube-apiserver again after StopAPIServer, on the
// same address with the same flags, and returns once it is ready.
func (e *Env) StartAPIServer(ctx context.Context) error {
	if e.apiProc == nil {
		return errors.New("testenv: no apiserver to start")
	}
	if !e.apiProc.Exited() {
		return errors.New("testenv: the apiserver is still running")
	}
	proc, err := e.spawn("kube-apiserver", "kube-apiserver", "", nil, e.apiArgs)
	if err != nil {
		return err
	}
	e.apiProc = proc
	return poll(ctx, "kube-apiserver /readyz after restart", 200*time.Millisecond, []*Process{proc}, func(ctx context.Context) error {
		_, err := e.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	})
}
