package verify

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
)

// KubernetesSupport is one row of Istio's support table: the Kubernetes
// minor versions an Istio minor version supports.
type KubernetesSupport struct {
	// Istio is the Istio minor version, e.g. "1.30"; "master" is the row
	// of development builds, which covers every version newer than the
	// newest released row.
	Istio      string
	Kubernetes []string
}

// SupportTable is Istio's support table as data, with where and when it
// was read.
type SupportTable struct {
	Source string
	Read   string
	Rows   []KubernetesSupport
}

// IstioSupport is the support status table of istio.io
// (data/compatibility/supportStatus.yml, the data behind
// https://istio.io/latest/docs/releases/supported-releases/), as read on
// 2026-12-01. Istio's policy for the data plane is on the same page: "The
// Istio control plane can be one version ahead of the data plane. However,
// the data plane cannot be ahead of control plane."
var IstioSupport = SupportTable{
	Source: "https://github.com/istio/istio.io/blob/master/data/compatibility/supportStatus.yml",
	Read:   "2026-12-01",
	Rows: []KubernetesSupport{
		{Istio: "master", Kubernetes: []string{"1.32", "1.33", "1.34", "1.35", "1.36"}},
		{Istio: "1.30", Kubernetes: []string{"1.32", "1.33", "1.34", "1.35", "1.36"}},
		{Istio: "1.29", Kubernetes: []string{"1.31", "1.32", "1.33", "1.34", "1.35"}},
		{Istio: "1.28", Kubernetes: []string{"1.30", "1.31", "1.32", "1.33", "1.34"}},
		{Istio: "1.27", Kubernetes: []string{"1.29", "1.30", "1.31", "1.32", "1.33"}},
		{Istio: "1.26", Kubernetes: []string{"1.29", "1.30", "1.31", "1.32", "1.33"}},
	},
}

// DefaultMaxMinorJump is how many minor versions one upgrade may move
// ahead: Istio qualifies upgrades from one minor version to the next.
const DefaultMaxMinorJump = 1

// ProblemSkew: versions outside Istio's support policy.
const ProblemSkew ProblemKind = "version-skew"

// SkewOptions configures CheckSkew. Every check runs only when its inputs
// are set.
type SkewOptions struct {
	// Istio is the Istio version being installed, e.g. "1.30.1" or a
	// development build "1.31-alpha.<sha>". Required.
	Istio string
	// From is the version being upgraded from: the jump from it to Istio is
	// checked against MaxMinorJump, and a downgrade is refused unless
	// AllowDowngrade (a rollback).
	From string
	// MaxMinorJump; default DefaultMaxMinorJump.
	MaxMinorJump   int
	AllowDowngrade bool
	// Kubernetes is the server's version; read from the cluster when empty.
	Kubernetes string
	// Proxies are checked against the control plane that serves them: a
	// proxy may be one minor version behind its istiod or on the same one,
	// never ahead. Their revision's control-plane version comes from
	// ControlPlaneVersions (revision → version); a proxy of a revision not
	// listed there is checked against Istio.
	Proxies              []ProxyStatus
	ControlPlaneVersions map[string]string
	// Table; default IstioSupport.
	Table *SupportTable
}

// SkewReport is the result of CheckSkew.
type SkewReport struct {
	Istio, From, Kubernetes string
	// Supported are the Kubernetes versions the table gives for Istio, and
	// Row the table row they come from.
	Supported []string
	Row       string
	// ProxyVersions counts the proxies by Istio version.
	ProxyVersions map[string]int
	Problems      []Problem
	Source        string
}

// OK reports whether every version is within the policy.
func (r *SkewReport) OK() bool { return len(r.Problems) == 0 }

// Err returns a *VerificationError (matching revkit.ErrVersionSkew) naming
// each version or proxy outside the policy, or nil.
func (r *SkewReport) Err() error { return verificationErr(opSkew, r.Problems) }

const opSkew = "verify.CheckSkew"

// minorVersion is a parsed "major.minor".
type minorVersion struct{ major, minor int }

func (v minorVersion) String() string { return fmt.Sprintf("%d.%d", v.major, v.minor) }

func (v minorVersion) less(o minorVersion) bool {
	return v.major < o.major || (v.major == o.major && v.minor < o.minor)
}

var versionRE = regexp.MustCompile(`^v?(\d+)\.(\d+)`)

// parseMinor reads the major and minor version of an Istio or Kubernetes
// version ("1.30.1", "v1.36.3", "1.31-alpha.abc"), or refuses it as the
// named field.
func parseMinor(field, s string) (minorVersion, error) {
	m := versionRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return minorVersion{}, &revkit.InvalidInputError{Field: field, Value: s, Reason: "not a version (major.minor...)"}
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return minorVersion{major, minor}, nil
}

// Validate checks the options before any request.
func (o *SkewOptions) Validate() error {
	if o.Istio == "" {
		return &revkit.InvalidInputError{Field: "Istio", Reason: "the version being installed is required"}
	}
	if _, err := parseMinor("Istio", o.Istio); err != nil {
		return err
	}
	if o.From != "" {
		if _, err := parseMinor("From", o.From); err != nil {
			return err
		}
	}
	if o.Kubernetes != "" {
		if _, err := parseMinor("Kubernetes", o.Kubernetes); err != nil {
			return err
		}
	}
	if o.MaxMinorJump < 0 {
		return &revkit.InvalidInputError{Field: "MaxMinorJump", Value: strconv.Itoa(o.MaxMinorJump), Reason: "must not be negative"}
	}
	for rev, v := range o.ControlPlaneVersions {
		if _, err := parseMinor("ControlPlaneVersions["+rev+"]", v); err != nil {
			return err
		}
	}
	return nil
}

// CheckSkew checks versions against Istio's support policy: the
// Kubernetes server against the support table row of the Istio version
// being installed, the upgrade's jump from From, and each proxy against the
// control plane serving it. The report lists every version outside the
// policy; its Err is a typed error naming them. A version newer than the
// table's newest release is checked against the development row
// ("master"); one older than its oldest row is reported as unsupported.
//
// kube is read only for the server version when opts.Kubernetes is empty.
func CheckSkew(ctx context.Context, kube kubernetes.Interface, opts SkewOptions) (*SkewReport, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	table := opts.Table
	if table == nil {
		table = &IstioSupport
	}
	rep := &SkewReport{Istio: opts.Istio, From: opts.From, Kubernetes: opts.Kubernetes, Source: table.Source}
	to, _ := parseMinor("Istio", opts.Istio)

	if rep.Kubernetes == "" {
		if kube == nil {
			return nil, &revkit.InvalidInputError{Field: "kube", Reason: "needed to read the Kubernetes version, or set Kubernetes"}
		}
		info, err := discovery.ToServerVersionInterfaceWithContext(kube.Discovery()).ServerVersionWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: get server version: %w", opSkew, err)
		}
		rep.Kubernetes = info.GitVersion
	}
	k8s, err := parseMinor("Kubernetes", rep.Kubernetes)
	if err != nil {
		return nil, err
	}
	row, ok := table.row(to)
	switch {
	case !ok:
		rep.Problems = append(rep.Problems, Problem{Kind: ProblemSkew, Object: "istio " + opts.Istio,
			Detail: fmt.Sprintf("older than every row of the support table (%s, read %s): no longer supported", table.Source, table.Read)})
	default:
		rep.Row, rep.Supported = row.Istio, row.Kubernetes
		if !slices.Contains(row.Kubernetes, k8s.String()) {
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemSkew, Object: "kubernetes " + rep.Kubernetes,
				Detail: fmt.Sprintf("Istio %s supports Kubernetes %s", to, strings.Join(row.Kubernetes, ", "))})
		}
	}

	if opts.From != "" {
		from, _ := parseMinor("From", opts.From)
		jump := opts.MaxMinorJump
		if jump == 0 {
			jump = DefaultMaxMinorJump
		}
		switch {
		case to.less(from) && !opts.AllowDowngrade:
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemSkew, Object: "upgrade " + opts.From + " → " + opts.Istio,
				Detail: "a downgrade (allow it for a rollback)"})
		case from.major != to.major:
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemSkew, Object: "upgrade " + opts.From + " → " + opts.Istio,
				Detail: "across major versions"})
		case to.minor-from.minor > jump:
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemSkew, Object: "upgrade " + opts.From + " → " + opts.Istio,
				Detail: fmt.Sprintf("%d minor versions at once (at most %d)", to.minor-from.minor, jump)})
		}
	}

	if len(opts.Proxies) > 0 {
		rep.ProxyVersions = map[string]int{}
	}
	for _, p := range opts.Proxies {
		rep.ProxyVersions[p.IstioVersion]++
		cpVersion := opts.Istio
		if v, ok := opts.ControlPlaneVersions[p.Revision]; ok {
			cpVersion = v
		}
		cp, _ := parseMinor("control plane", cpVersion)
		pv, err := parseMinor("proxy", p.IstioVersion)
		if err != nil {
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemSkew, Object: p.ID, Detail: fmt.Sprintf("proxy version %q unknown", p.IstioVersion)})
			continue
		}
		switch {
		case cp.less(pv):
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemSkew, Object: p.ID,
				Detail: fmt.Sprintf("proxy %s is ahead of its control plane %s (revision %s)", p.IstioVersion, cpVersion, p.Revision)})
		case cp.major != pv.major || cp.minor-pv.minor > 1:
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemSkew, Object: p.ID,
				Detail: fmt.Sprintf("proxy %s is more than one minor version behind its control plane %s (revision %s)", p.IstioVersion, cpVersion, p.Revision)})
		}
	}
	sort.SliceStable(rep.Problems, func(i, j int) bool { return rep.Problems[i].Object < rep.Problems[j].Object })
	return rep, nil
}

// row finds the table row of an Istio minor version: its own, the
// development row for a version newer than every release, or none.
func (t *SupportTable) row(v minorVersion) (KubernetesSupport, bool) {
	var newest minorVersion
	var dev *KubernetesSupport
	for i, r := range t.Rows {
		if r.Istio == "master" {
			dev = &t.Rows[i]
			continue
		}
		rv, err := parseMinor("table", r.Istio)
		if err != nil {
			continue
		}
		if rv == v {
			return r, true
		}
		if newest.less(rv) {
			newest = rv
		}
	}
	if newest.less(v) && dev != nil {
		return *dev, true
	}
	return KubernetesSupport{}, false
}

// ProxySkewOptions configures ProxySkew.
type ProxySkewOptions struct {
	// Skew: the versions to check against; its Proxies are filled from
	// Sources.
	Skew SkewOptions
	// Sources are the istiods whose proxies are checked, and Namespaces
	// limits them (empty: all).
	Sources    []SyncSource
	Namespaces []string
}

// Validate checks the options before any request.
func (o *ProxySkewOptions) Validate() error {
	if err := o.Skew.Validate(); err != nil {
		return err
	}
	po := ProxiesOptions{Sources: o.Sources, Namespaces: o.Namespaces}
	return po.Validate()
}

// ProxySkew reads the proxies the sources report (Proxies) and checks them,
// with the other versions of opts.Skew, against Istio's support policy
// (CheckSkew): a gate for a plan, after the workloads were restarted onto
// the new control plane.
func ProxySkew(ctx context.Context, kube kubernetes.Interface, opts ProxySkewOptions) (*SkewReport, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	prox, err := Proxies(ctx, ProxiesOptions{Sources: opts.Sources, Namespaces: opts.Namespaces})
	if err != nil {
		return nil, err
	}
	so := opts.Skew
	so.Proxies = prox.Proxies
	return CheckSkew(ctx, kube, so)
}
