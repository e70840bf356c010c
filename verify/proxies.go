package verify

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
)

const opProxies = "verify.Proxies"

// SyncSource yields the /debug/syncz document of one istiod. The revision of
// every proxy in it is the source's revision.
type SyncSource interface {
	// Revision is the revision of the istiod behind the source.
	Revision() string
	// Syncz returns the raw JSON of /debug/syncz.
	Syncz(ctx context.Context) ([]byte, error)
}

// HTTPSource reads /debug/syncz from istiod's monitoring port, e.g. through
// a port-forward or from inside the cluster.
type HTTPSource struct {
	// Rev is the revision of the istiod at URL.
	Rev string
	// URL is the base address of the monitoring port, e.g.
	// "http://127.0.0.1:15014" or "http://istiod-1-24-0.istio-system:15014".
	URL string
	// Client sends the request; nil means a client with Go's default
	// transport. The context bounds the request either way.
	Client *http.Client
}

// Revision returns s.Rev.
func (s HTTPSource) Revision() string { return s.Rev }

// Validate checks the URL; Proxies calls it before reading any source.
func (s HTTPSource) Validate() error {
	if s.URL == "" {
		return &revkit.InvalidInputError{Field: "HTTPSource.URL", Reason: "must not be empty"}
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return &revkit.InvalidInputError{Field: "HTTPSource.URL", Value: s.URL, Reason: err.Error()}
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &revkit.InvalidInputError{Field: "HTTPSource.URL", Value: s.URL, Reason: "must be an http(s) address with a host"}
	}
	return nil
}

// maxSynczBytes bounds a syncz response: tens of thousands of proxies take
// a few tens of megabytes.
const maxSynczBytes = 1 << 30

// Syncz sends GET <URL>/debug/syncz. A status other than 200 returns an
// *HTTPStatusError.
func (s HTTPSource) Syncz(ctx context.Context) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	endpoint := strings.TrimRight(s.URL, "/") + "/debug/syncz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", endpoint, err)
	}
	req.Header.Set("Accept", "application/json")
	client := s.Client
	if client == nil {
		client = &http.Client{}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return nil, &HTTPStatusError{URL: endpoint, StatusCode: resp.StatusCode, Status: resp.Status,
			Body: strings.TrimSpace(string(snippet))}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSynczBytes))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read body: %w", endpoint, err)
	}
	return body, nil
}

// StaticSource is a SyncSource that returns a fixed document: for tests,
// and for syncz output saved earlier.
type StaticSource struct {
	Rev  string
	JSON []byte
}

// Revision returns s.Rev.
func (s StaticSource) Revision() string { return s.Rev }

// Syncz returns s.JSON.
func (s StaticSource) Syncz(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.JSON, nil
}

// ProxiesOptions selects the istiods to ask and what to expect of their
// proxies.
type ProxiesOptions struct {
	// Sources are the istiods to read, usually one per revision (or per
	// istiod replica: each reports only the proxies connected to it).
	Sources []SyncSource `json:"-"`
	// Target is the revision every proxy should be connected to; empty
	// means no straggler check.
	Target string
	// Namespaces restricts the report to proxies in these namespaces;
	// empty means all.
	Namespaces []string
	// Kube, when set, makes the check complete: the running pods (in
	// Namespaces, or all) that carry the sidecar of a revision the sources
	// read, but that no source of that revision reports, are listed as
	// NotConnected and fail the check — a proxy that never reached its
	// istiod is absent from every replica's sync status, so without this a
	// check could pass while proxies are missing. Give one source per
	// istiod replica (ReplicaSources), or the proxies of the replicas not
	// read are reported as not connected.
	Kube kubernetes.Interface `json:"-"`
	// Settle, when positive, makes the check wait for proxies that are on
	// their way: while the only problems are proxies not yet in sync (STALE
	// or NOT SENT: a push in flight) or pods not yet connected (an Envoy
	// connects a moment after its pod runs), the sources are read again,
	// every second or Settle/5 if shorter, for up to Settle. Stragglers
	// and NACKed configuration (ERROR) end the wait at once: they do not
	// resolve themselves.
	Settle time.Duration
}

// RevisionProxies counts the proxies of one revision by overall state.
type RevisionProxies struct {
	Revision string
	// Sources is how many sources (istiod replicas) were read.
	Sources int
	Proxies int
	Synced  int
	Stale   int
	NotSent int
	Error   int
	Ignored int
	// Versions counts the proxies by Istio version.
	Versions map[string]int
}

// ProxiesReport is the result of Proxies.
type ProxiesReport struct {
	Target string
	// Revisions summarises each source revision, sorted by name.
	Revisions []RevisionProxies
	// Proxies lists every proxy reported (in the selected namespaces), by
	// revision, then namespace and ID.
	Proxies []ProxyStatus
	// Stragglers are the proxies on a revision other than Target.
	Stragglers []ProxyStatus
	// NotSynced are the proxies whose overall state is STALE, ERROR or
	// NOT SENT.
	NotSynced []ProxyStatus
	// NotConnected are the running pods with a sidecar of a revision read
	// that no source of that revision reports (with ProxiesOptions.Kube).
	NotConnected []NotConnected
}

// NotConnected is a pod whose sidecar never showed up at its istiod.
type NotConnected struct {
	Namespace, Pod string
	// Revision is the revision of the pod's sidecar.
	Revision string
}

// OK reports whether every proxy is on Target, none is out of sync and
// every pod's proxy is connected.
func (r *ProxiesReport) OK() bool {
	return len(r.Stragglers) == 0 && len(r.NotSynced) == 0 && len(r.NotConnected) == 0
}

// Err returns a *VerificationError listing the stragglers and the proxies
// out of sync, or nil when OK.
func (r *ProxiesReport) Err() error {
	var problems []Problem
	for _, p := range r.Stragglers {
		problems = append(problems, Problem{Kind: ProblemStraggler, Object: p.ID, Detail: "on revision " + p.Revision})
	}
	for _, p := range r.NotSynced {
		problems = append(problems, Problem{Kind: ProblemNotSynced, Object: p.ID, Detail: describeNotSynced(&p)})
	}
	for _, p := range r.NotConnected {
		problems = append(problems, Problem{Kind: ProblemNotConnected, Object: p.Namespace + "/" + p.Pod,
			Detail: "carries revision " + p.Revision + "'s sidecar, but no istiod of " + p.Revision + " reports its proxy"})
	}
	return verificationErr(opProxies, problems)
}

// describeNotSynced names the types that hold the proxy back, e.g.
// "CDS STALE, LDS ERROR (…)".
func describeNotSynced(p *ProxyStatus) string {
	var parts []string
	for _, t := range p.Types {
		switch t.State {
		case StateStale:
			s := t.Type + " " + string(t.State)
			if t.Acked == "" {
				s += " (never acknowledged)"
			}
			parts = append(parts, s)
		case StateError:
			parts = append(parts, t.Type+" ERROR ("+t.LastError+")")
		}
	}
	if len(parts) == 0 {
		return string(p.State)
	}
	return strings.Join(parts, ", ")
}

// Validate checks the options as Proxies does before reading any source.
func (o *ProxiesOptions) Validate() error { return o.validate() }

func (o *ProxiesOptions) validate() error {
	if len(o.Sources) == 0 {
		return &revkit.InvalidInputError{Field: "Sources", Reason: "must name at least one istiod"}
	}
	for i, s := range o.Sources {
		field := fmt.Sprintf("Sources[%d]", i)
		if s == nil {
			return &revkit.InvalidInputError{Field: field, Reason: "must not be nil"}
		}
		if err := validateTarget(field+".Revision", s.Revision()); err != nil {
			return err
		}
		if v, ok := s.(interface{ Validate() error }); ok {
			if err := v.Validate(); err != nil {
				return err
			}
		}
	}
	if o.Settle < 0 {
		return &revkit.InvalidInputError{Field: "Settle", Value: o.Settle.String(), Reason: "must not be negative"}
	}
	if o.Target != "" {
		if err := validateTarget("Target", o.Target); err != nil {
			return err
		}
	}
	return validateNamespaces(o.Namespaces)
}

// Proxies reads the syncz document of every source and reports, per
// revision, how many proxies are SYNCED, STALE, NOT SENT or in ERROR, which
// proxies are on a revision other than Target, and which are out of sync.
//
// Bad options return a *revkit.InvalidInputError before any source is read;
// a source that cannot be read or parsed a *SourceError. A report with
// stragglers is not an error: check OK or Err.
func Proxies(ctx context.Context, opts ProxiesOptions) (*ProxiesReport, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	rep, err := readProxies(ctx, opts)
	if err != nil || opts.Settle <= 0 {
		return rep, err
	}
	interval := min(time.Second, opts.Settle/5)
	deadline := time.Now().Add(opts.Settle)
	for rep.settling() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: %w", opProxies, ctx.Err())
		case <-time.After(interval):
		}
		if rep, err = readProxies(ctx, opts); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// settling reports whether the report fails only on what resolves itself
// in a moment: proxies waiting for a push, pods whose Envoy is connecting.
func (r *ProxiesReport) settling() bool {
	if r.OK() || len(r.Stragglers) > 0 {
		return false
	}
	for _, p := range r.NotSynced {
		if p.State == StateError {
			return false
		}
	}
	return true
}

// readProxies reads every source once.
func readProxies(ctx context.Context, opts ProxiesOptions) (*ProxiesReport, error) {
	report := &ProxiesReport{Target: opts.Target}
	summaries := map[string]*RevisionProxies{}
	// A proxy that reconnected may be listed by two replicas for a moment:
	// it is counted once.
	seen := map[string]bool{}
	for _, src := range opts.Sources {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", opProxies, err)
		}
		rev := src.Revision()
		data, err := src.Syncz(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", opProxies, &SourceError{Revision: rev, Err: err})
		}
		proxies, err := ParseSyncz(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", opProxies, &SourceError{Revision: rev, Err: err})
		}
		sum := summaries[rev]
		if sum == nil {
			sum = &RevisionProxies{Revision: rev, Versions: map[string]int{}}
			summaries[rev] = sum
		}
		sum.Sources++
		for i := range proxies {
			p := &proxies[i]
			if len(opts.Namespaces) > 0 && !slices.Contains(opts.Namespaces, p.Namespace) {
				continue
			}
			if seen[rev+"/"+p.ID] {
				continue
			}
			seen[rev+"/"+p.ID] = true
			p.Revision = rev
			sum.add(p.State)
			sum.Versions[p.IstioVersion]++
			report.Proxies = append(report.Proxies, *p)
		}
	}
	sort.SliceStable(report.Proxies, func(a, b int) bool {
		pa, pb := &report.Proxies[a], &report.Proxies[b]
		if pa.Revision != pb.Revision {
			return pa.Revision < pb.Revision
		}
		if pa.Namespace != pb.Namespace {
			return pa.Namespace < pb.Namespace
		}
		return pa.ID < pb.ID
	})
	for _, p := range report.Proxies {
		if opts.Target != "" && p.Revision != opts.Target {
			report.Stragglers = append(report.Stragglers, p)
		}
		switch p.State {
		case StateStale, StateError, StateNotSent:
			report.NotSynced = append(report.NotSynced, p)
		}
	}
	for _, sum := range summaries {
		report.Revisions = append(report.Revisions, *sum)
	}
	if opts.Kube != nil {
		missing, err := notConnected(ctx, opts, summaries, seen)
		if err != nil {
			return nil, err
		}
		report.NotConnected = missing
	}
	sort.Slice(report.Revisions, func(a, b int) bool { return report.Revisions[a].Revision < report.Revisions[b].Revision })
	return report, nil
}

func (r *RevisionProxies) add(s SyncState) {
	r.Proxies++
	switch s {
	case StateSynced:
		r.Synced++
	case StateStale:
		r.Stale++
	case StateNotSent:
		r.NotSent++
	case StateError:
		r.Error++
	case StateIgnored:
		r.Ignored++
	}
}

// notConnected lists the running pods with a sidecar of a revision read
// whose proxy no source of that revision reported.
func notConnected(ctx context.Context, opts ProxiesOptions, read map[string]*RevisionProxies, seen map[string]bool) ([]NotConnected, error) {
	namespaces := opts.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	var out []NotConnected
	for _, ns := range namespaces {
		err := kubeutil.EachPod(ctx, opts.Kube, ns, metav1.ListOptions{}, func(p *corev1.Pod) {
			if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
				return
			}
			rev, injected := mesh.PodRevision(p)
			if !injected || read[rev] == nil || seen[rev+"/"+p.Name+"."+p.Namespace] {
				return
			}
			out = append(out, NotConnected{Namespace: p.Namespace, Pod: p.Name, Revision: rev})
		})
		if err != nil {
			return nil, &revkit.OpError{Op: opProxies, Verb: "list", Object: revkit.ObjectRef{Kind: "Pod", Namespace: ns}, Err: err}
		}
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].Namespace != out[b].Namespace {
			return out[a].Namespace < out[b].Namespace
		}
		return out[a].Pod < out[b].Pod
	})
	return out, nil
}
