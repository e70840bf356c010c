package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// GatewayAPICRDsDir is the directory, in the binary directory, that holds
// the Kubernetes Gateway API CRDs (standard channel) of the
// sigs.k8s.io/gateway-api version NewIstio is built with; hack/tools.sh
// copies them there from the module cache, with a VERSION file.
const GatewayAPICRDsDir = "gateway-api-crds"

// GatewayAPIVersion is the Gateway API version of the CRDs in the binary
// directory (its VERSION file), e.g. "v1.6.0".
func (e *Env) GatewayAPIVersion() (string, error) {
	b, err := os.ReadFile(filepath.Join(e.bin(GatewayAPICRDsDir), "VERSION"))
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v (copy them with `make tools` or hack/tools.sh --data)", ErrBinaryMissing, GatewayAPICRDsDir, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// InstallGatewayAPI applies the Gateway API CRDs (and the standard
// channel's admission policy) from the binary directory and waits until
// the CRDs are served. istiod starts its gateway deployment controller once
// the Gateway CRD exists (its CRD watcher waits for it, so istiod may
// already run); Options.GatewayAPI installs them during Start, before any
// istiod.
func (e *Env) InstallGatewayAPI(ctx context.Context) ([]ObjectRef, error) {
	v, err := e.GatewayAPIVersion()
	if err != nil {
		return nil, err
	}
	step := time.Now()
	files, err := filepath.Glob(filepath.Join(e.bin(GatewayAPICRDsDir), "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var refs []ObjectRef
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return refs, err
		}
		r, err := e.Apply(ctx, data, "")
		refs = append(refs, r...)
		if err != nil {
			return refs, fmt.Errorf("testenv: applying Gateway API %s (%s): %w", v, filepath.Base(f), err)
		}
	}
	if err := e.WaitCRDsEstablished(ctx, refs); err != nil {
		return refs, err
	}
	e.t.Logf("testenv: Gateway API %s: %d objects applied, CRDs established in %s", v, len(refs), time.Since(step).Round(time.Millisecond))
	return refs, nil
}
