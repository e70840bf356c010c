package revkit

import "strings"

// ChartSource names a Helm chart: one of Istio's (base, istio-discovery —
// published as "istiod" —, gateway, istio-cni — published as "cni" —,
// ztunnel). Set exactly one of Path and Ref.
type ChartSource struct {
	// Path is a chart directory or a packaged chart (.tgz) on local disk.
	Path string
	// Ref is a chart to fetch: "oci://registry/path/istiod", or a chart
	// name in the repository at RepoURL.
	Ref string
	// RepoURL is the chart repository for a plain Ref.
	RepoURL string
	// Version constrains the chart version for Ref; empty means latest.
	Version string
}

// Validate refuses a source that names no chart, or two; field names the
// option that holds it in the error.
func (c ChartSource) Validate(field string) error {
	switch {
	case c.Path == "" && c.Ref == "":
		return &InvalidInputError{Field: field, Reason: "set Path or Ref"}
	case c.Path != "" && c.Ref != "":
		return &InvalidInputError{Field: field, Reason: "set only one of Path and Ref"}
	case c.Ref != "" && !strings.HasPrefix(c.Ref, "oci://") && c.RepoURL == "" && !strings.Contains(c.Ref, "/"):
		return &InvalidInputError{Field: field, Value: c.Ref, Reason: `a plain chart name needs RepoURL (or use "repo/chart" or oci://)`}
	}
	return nil
}
