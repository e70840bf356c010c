package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Istiod is one istiod (pilot-discovery) process serving a revision, run out
// of cluster on loopback ports, and the objects rendered for it.
type Istiod struct {
	Revision string
	// Version is the Istio version it runs: its pilot-discovery binary, and
	// the charts StartIstiod renders and ChartValues' proxy image tag.
	Version IstioVersion
	// HTTPAddr serves readiness and debug (8080 in a pod); XDSAddr is the
	// plaintext xDS gRPC listener (15010), SecureXDSAddr the mTLS one
	// (15012), WebhookAddr the HTTPS injection/validation webhook (15017),
	// MonitoringAddr metrics and /debug/syncz (15014). All host:port.
	HTTPAddr, XDSAddr, SecureXDSAddr, WebhookAddr, MonitoringAddr string
	// InjectorWebhook is the MutatingWebhookConfiguration
	// (istio-sidecar-injector-<rev>), ValidatorWebhook the revision's
	// ValidatingWebhookConfiguration (istio-validator-<rev>-istio-system).
	InjectorWebhook, ValidatorWebhook string
	// Objects are the objects applied from the istio-discovery chart.
	Objects []ObjectRef
	// Process is the pilot-discovery process.
	Process *Process
	// Manifest is the rendered chart that was applied (empty when the chart
	// was installed by the caller, see ReserveIstiod).
	Manifest []byte

	ctrlzPort int
	// env is the environment it runs in, for its sidecars' metrics.
	env *Env

	mu       sync.Mutex
	sidecars []*Sidecar
	replicas []*Istiod
}

// SynczURL is the address of the revision's /debug/syncz endpoint.
func (i *Istiod) SynczURL() string { return "http://" + i.MonitoringAddr + "/debug/syncz" }

// ErrInvalidRevision is returned for a revision name that is not a DNS-1123
// label (Istio revisions use dashes: 1-31-0, not 1.31.0).
var ErrInvalidRevision = errors.New("testenv: invalid revision name")

// ErrRevisionRunning is returned by StartIstiod when the revision already has a
// running istiod in this environment.
var ErrRevisionRunning = errors.New("testenv: revision already running")

// StartIstiod renders the istio-discovery chart for revision with its webhooks
// pointed at a local pilot-discovery, applies it, starts that process and
// returns once istiod has patched the caBundle of its injector and validator
// (and switched the validator to failurePolicy Fail), and a dry-run pod
// selecting the revision comes back injected by it. The chart and the binary
// are those of IstioFor(revision): OldIstio's for OldIstio.Revision, else
// NewIstio's.
func (e *Env) StartIstiod(ctx context.Context, revision string) (*Istiod, error) {
	return e.StartIstiodVersion(ctx, revision, IstioFor(revision))
}

// StartIstiodVersion is StartIstiod with the Istio version chosen by the
// caller rather than by the revision's name.
func (e *Env) StartIstiodVersion(ctx context.Context, revision string, v IstioVersion) (*Istiod, error) {
	is, err := e.ReserveIstiod(revision)
	if err != nil {
		return nil, err
	}
	is.Version = v
	return e.startIstiod(ctx, is, true)
}

// ReserveIstiod picks the loopback addresses of a revision's istiod without
// starting anything, so that its chart can be installed by other means (for
// example revision.Install with Helm) with ChartValues, before
// StartInstalledIstiod runs the process. Its Version is IstioFor(revision);
// set it before ChartValues and StartInstalledIstiod to run another.
func (e *Env) ReserveIstiod(revision string) (*Istiod, error) {
	if errs := validation.IsDNS1123Label(revision); len(errs) > 0 {
		return nil, fmt.Errorf("%w %q: %s", ErrInvalidRevision, revision, strings.Join(errs, "; "))
	}
	e.mu.Lock()
	if old, ok := e.istiods[revision]; ok && old.Process != nil && !old.Process.Exited() {
		e.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrRevisionRunning, revision)
	}
	e.mu.Unlock()
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	return &Istiod{
		Revision:         revision,
		Version:          IstioFor(revision),
		HTTPAddr:         loopback(ports[0]),
		XDSAddr:          loopback(ports[1]),
		SecureXDSAddr:    loopback(ports[2]),
		WebhookAddr:      loopback(ports[3]),
		MonitoringAddr:   loopback(ports[4]),
		ctrlzPort:        ports[5],
		InjectorWebhook:  "istio-sidecar-injector-" + revision,
		ValidatorWebhook: "istio-validator-" + revision + "-" + IstioNamespace,
		env:              e,
	}, nil
}

// ChartValues are the istio-discovery chart values that point the
// revision's webhooks at this local istiod, and make its injection template
// use its version's proxy image tag.
func (i *Istiod) ChartValues() map[string]any {
	return map[string]any{
		"istiodRemote": map[string]any{"injectionURL": "https://" + i.WebhookAddr + "/inject"},
		"base":         map[string]any{"validationURL": "https://" + i.WebhookAddr + "/validate"},
		"global":       map[string]any{"tag": i.Version.Name},
	}
}

// ChartDir is the directory of one of NewIstio's charts ("istio-discovery",
// "base", "gateway", "istio-cni" or "ztunnel"); VersionChartDir picks the
// version.
func (e *Env) ChartDir(name string) string { return e.VersionChartDir(NewIstio, name) }

// StartInstalledIstiod runs the istiod process of a reserved revision whose
// chart was installed with ChartValues, and waits for it as StartIstiod
// does.
func (e *Env) StartInstalledIstiod(ctx context.Context, is *Istiod) (*Istiod, error) {
	return e.startIstiod(ctx, is, false)
}

func (e *Env) startIstiod(ctx context.Context, is *Istiod, apply bool) (*Istiod, error) {
	revision := is.Revision
	ctx, cancel := withDefaultTimeout(ctx, 3*time.Minute)
	defer cancel()
	begin := time.Now()
	if apply {
		manifest, err := e.render(ctx, is.Version, "-chart", "istio-discovery", "-revision", revision,
			"-namespace", IstioNamespace,
			"-set", "global.tag="+is.Version.Name,
			"-set", "istiodRemote.injectionURL=https://"+is.WebhookAddr+"/inject",
			"-set", "base.validationURL=https://"+is.WebhookAddr+"/validate",
		)
		if err != nil {
			return nil, err
		}
		is.Manifest = manifest
		if is.Objects, err = e.Apply(ctx, manifest, IstioNamespace); err != nil {
			return nil, fmt.Errorf("testenv: applying istio-discovery for %s: %w", revision, err)
		}
	}

	proc, err := e.spawnIstiod(is, "istiod-"+revision, "istiod-"+revision+"-local")
	if err != nil {
		return nil, err
	}
	is.Process = proc
	e.mu.Lock()
	e.istiods[revision] = is
	e.mu.Unlock()

	watch := []*Process{proc}
	err = poll(ctx, "caBundle of "+is.InjectorWebhook, 200*time.Millisecond, watch, func(ctx context.Context) error {
		mwc, err := e.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, is.InjectorWebhook, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, w := range mwc.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				return fmt.Errorf("webhook %s has no caBundle yet", w.Name)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// istiod's validation controller patches the caBundle and switches the
	// failure policy to Fail once its webhook answers.
	err = poll(ctx, "validation webhook "+is.ValidatorWebhook+" ready", 200*time.Millisecond, watch, func(ctx context.Context) error {
		vwc, err := e.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, is.ValidatorWebhook, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, w := range vwc.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 || w.FailurePolicy == nil || *w.FailurePolicy != admissionv1.Fail {
				return fmt.Errorf("webhook %s not ready (caBundle %d bytes)", w.Name, len(w.ClientConfig.CABundle))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = poll(ctx, "injection by "+revision, 250*time.Millisecond, watch, func(ctx context.Context) error {
		got, err := e.probeInjection(ctx, revision)
		if err != nil {
			return err
		}
		if got != revision {
			return fmt.Errorf("probe pod injected by %q", got)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	e.t.Logf("testenv: istiod %s (Istio %s) injecting in %s (xDS %s, monitoring %s, webhook %s)",
		revision, is.Version, time.Since(begin).Round(time.Millisecond), is.XDSAddr, is.MonitoringAddr, is.WebhookAddr)
	return is, nil
}

// spawnIstiod starts a pilot-discovery process on is's addresses, with its
// working directory and process named name and POD_NAME podName.
func (e *Env) spawnIstiod(is *Istiod, name, podName string) (*Process, error) {
	dir := filepath.Join(e.Dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	env := append(baseEnv(),
		"POD_NAMESPACE="+IstioNamespace,
		"POD_NAME="+podName,
		"REVISION="+is.Revision,
		"PILOT_CERT_PROVIDER=istiod",
		"ISTIOD_CUSTOM_HOST=127.0.0.1",
		"INJECTION_WEBHOOK_CONFIG_NAME="+is.InjectorWebhook,
		"CLUSTER_ID=Kubernetes",
		"KUBECONFIG="+e.Kubeconfig,
	)
	env = append(env, e.opts.IstiodEnv...)
	return e.spawn(name, is.Version.Binary, dir, env, []string{
		"discovery",
		"--kubeconfig=" + e.Kubeconfig,
		"--httpAddr=" + is.HTTPAddr,
		"--grpcAddr=" + is.XDSAddr,
		"--secureGRPCAddr=" + is.SecureXDSAddr,
		"--httpsAddr=" + is.WebhookAddr,
		"--monitoringAddr=" + is.MonitoringAddr,
		"--ctrlz_address=127.0.0.1",
		"--ctrlz_port=" + strconv.Itoa(is.ctrlzPort),
		"--domain=cluster.local",
		"--log_output_level=default:info",
	})
}

// StartReplica starts one more istiod process for a revision whose istiod
// runs, as a second replica of its Deployment would: the same revision,
// version and webhook configuration, its own addresses. Its sidecars are
// its own: ConnectPodSidecars spreads pods over a revision's replicas, so
// each replica's /debug/syncz reports only part of the revision's proxies,
// as on a cluster. The webhooks keep pointing at the first process.
// StopIstiod stops the replicas with it.
func (e *Env) StartReplica(ctx context.Context, revision string) (*Istiod, error) {
	primary := e.Istiod(revision)
	if primary == nil || primary.Process == nil || primary.Process.Exited() {
		return nil, fmt.Errorf("testenv: no running istiod for revision %q to add a replica to", revision)
	}
	ctx, cancel := withDefaultTimeout(ctx, 2*time.Minute)
	defer cancel()
	rep, err := e.ReserveIstiod(revision + "-replica")
	if err != nil {
		return nil, err
	}
	rep.Revision, rep.Version = revision, primary.Version
	rep.InjectorWebhook, rep.ValidatorWebhook = primary.InjectorWebhook, primary.ValidatorWebhook
	primary.mu.Lock()
	n := len(primary.replicas) + 1
	primary.mu.Unlock()
	name := fmt.Sprintf("istiod-%s-replica-%d", revision, n)
	proc, err := e.spawnIstiod(rep, name, name)
	if err != nil {
		return nil, err
	}
	rep.Process = proc
	begin := time.Now()
	if err := pollOK(ctx, name, "http://"+rep.HTTPAddr+"/ready", proc); err != nil {
		_ = proc.Stop(5 * time.Second)
		return nil, err
	}
	primary.mu.Lock()
	primary.replicas = append(primary.replicas, rep)
	primary.mu.Unlock()
	e.t.Logf("testenv: %s ready in %s (xDS %s, monitoring %s)", name, time.Since(begin).Round(time.Millisecond), rep.XDSAddr, rep.MonitoringAddr)
	return rep, nil
}

// Replicas are the revision's running istiod processes: the first one and
// those StartReplica added.
func (i *Istiod) Replicas() []*Istiod {
	i.mu.Lock()
	defer i.mu.Unlock()
	out := []*Istiod{i}
	for _, r := range i.replicas {
		if r.Process != nil && !r.Process.Exited() {
			out = append(out, r)
		}
	}
	return out
}

// probeInjection dry-run creates a pod selecting revision by its object label
// in the default namespace and returns the revision that injected it.
func (e *Env) probeInjection(ctx context.Context, revision string) (string, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:   "revkit-injection-probe-" + revision,
			Labels: map[string]string{"istio.io/rev": revision, "app": "revkit-injection-probe"},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/probe:1"}}},
	}
	got, err := e.Client.CoreV1().Pods(metav1.NamespaceDefault).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return "", err
	}
	rev, ok := InjectedRevision(got)
	if !ok {
		return "", errors.New("probe pod not injected")
	}
	return rev, nil
}

// InjectedRevision returns the revision recorded in a pod's
// sidecar.istio.io/status annotation, and whether the pod was injected.
func InjectedRevision(pod *corev1.Pod) (string, bool) {
	s, ok := pod.Annotations["sidecar.istio.io/status"]
	if !ok {
		return "", false
	}
	var status struct {
		Revision string `json:"revision"`
	}
	if err := json.Unmarshal([]byte(s), &status); err != nil {
		return "", false
	}
	return status.Revision, true
}

// Istiod returns the istiod started for revision, or nil.
func (e *Env) Istiod(revision string) *Istiod {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.istiods[revision]
}

// StopIstiod stops the revision's pilot-discovery process, as if its pods
// were gone. Its objects stay (removing them is what revision.Uninstall does).
func (e *Env) StopIstiod(revision string) error {
	is := e.Istiod(revision)
	if is == nil {
		return fmt.Errorf("testenv: no istiod for revision %q", revision)
	}
	var errs []error
	for _, r := range is.Replicas()[1:] {
		r.closeSidecars()
		errs = append(errs, r.Process.Stop(5*time.Second))
	}
	is.closeSidecars()
	errs = append(errs, is.Process.Stop(5*time.Second))
	return errors.Join(errs...)
}

// String describes the instance for logs.
func (i *Istiod) String() string {
	return "istiod " + i.Revision + " (pid " + strconv.Itoa(i.Process.Pid()) + ")"
}
