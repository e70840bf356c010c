// Command istio-render renders Istio's Helm charts with the Helm Go SDK, the
// way `helm template` would, for the local test control plane in
// internal/testenv. It keeps Helm out of the library's go.mod: the library's
// tests run this binary instead of importing Helm.
//
//	istio-render -charts bin/istio-charts -chart istio-discovery \
//	    -revision 1-31-0 -set istiodRemote.injectionURL=https://127.0.0.1:41017/inject
//	istio-render -charts bin/istio-charts -chart base -crds-only
//
// Rendered manifests go to stdout as one multi-document YAML stream, sorted by
// template name so the output is stable.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"helm.sh/helm/v4/pkg/strvals"
	"sigs.k8s.io/yaml"
)

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// stripComments drops YAML comment lines, so that a template that rendered to
// nothing but comments yields no document.
func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, ",") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "istio-render:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("istio-render", flag.ContinueOnError)
	chartsDir := fs.String("charts", "", "directory holding the charts (base, istio-discovery)")
	chartName := fs.String("chart", "istio-discovery", "chart to render: base or istio-discovery")
	revision := fs.String("revision", "", "Istio revision (DNS-1123 label, e.g. 1-31-0)")
	namespace := fs.String("namespace", "istio-system", "release namespace")
	crdsOnly := fs.Bool("crds-only", false, "print only the CustomResourceDefinitions (from crds/ and templates)")
	var sets setFlags
	fs.Var(&sets, "set", "value override key=value (Helm --set syntax); repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *chartsDir == "" {
		return errors.New("-charts is required")
	}
	ch, err := loader.Load(filepath.Join(*chartsDir, *chartName))
	if err != nil {
		return fmt.Errorf("loading chart %s: %w", *chartName, err)
	}

	vals := map[string]any{}
	if *revision != "" {
		if err := strvals.ParseInto("revision="+*revision, vals); err != nil {
			return err
		}
	}
	if err := strvals.ParseInto("global.istioNamespace="+*namespace, vals); err != nil {
		return err
	}
	for _, s := range sets {
		if err := strvals.ParseInto(s, vals); err != nil {
			return fmt.Errorf("parsing -set %q: %w", s, err)
		}
	}

	var docs []string
	for _, f := range ch.CRDObjects() {
		docs = append(docs, string(f.File.Data))
	}
	{
		release := common.ReleaseOptions{Name: "istiod", Namespace: *namespace, IsInstall: true, Revision: 1}
		if *chartName == "base" {
			release.Name = "istio-base"
		}
		if *revision != "" && *chartName != "base" {
			release.Name = "istiod-" + *revision
		}
		top, err := util.ToRenderValues(ch, vals, release, common.DefaultCapabilities)
		if err != nil {
			return fmt.Errorf("computing values: %w", err)
		}
		rendered, err := engine.Render(ch, top)
		if err != nil {
			return fmt.Errorf("rendering %s: %w", *chartName, err)
		}
		names := make([]string, 0, len(rendered))
		for name := range rendered {
			// Partials and notes are not manifests.
			base := filepath.Base(name)
			if strings.HasPrefix(base, "_") || strings.HasSuffix(base, ".txt") {
				continue
			}
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			body := strings.TrimSpace(rendered[name])
			if body == "" {
				continue
			}
			for _, doc := range docSep.Split(body, -1) {
				if strings.TrimSpace(stripComments(doc)) != "" {
					docs = append(docs, "# Source: "+name+"\n"+strings.TrimSpace(doc))
				}
			}
		}
	}
	if *crdsOnly {
		var crds []string
		for _, d := range docs {
			var head struct {
				Kind string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(d), &head); err != nil {
				return fmt.Errorf("parsing rendered manifest: %w", err)
			}
			if head.Kind == "CustomResourceDefinition" {
				crds = append(crds, d)
			}
		}
		docs = crds
	}
	for _, d := range docs {
		if _, err := fmt.Fprintf(out, "---\n%s\n", strings.TrimSpace(d)); err != nil {
			return err
		}
	}
	return nil
}
