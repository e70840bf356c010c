package upgrade_test

import (
	"io"
	"log/slog"

	"helm.sh/helm/v4/pkg/action"
	chartcommon "helm.sh/helm/v4/pkg/chart/common"
	kubefake "helm.sh/helm/v4/pkg/kube/fake"
	"helm.sh/helm/v4/pkg/storage"
	"helm.sh/helm/v4/pkg/storage/driver"

	"github.com/revkit/revkit/helm"
	"github.com/revkit/revkit/revision"
	"github.com/revkit/revkit/verify"
)

// testChart is the small istiod stand-in chart of the helm package.
var testChart = revision.ChartSource{Path: "../helm/testdata/istiod"}

// memHelm is a Helm client with in-memory release storage and a kube
// client that applies nothing.
func memHelm() *helm.Client {
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	mem := driver.NewMemory()
	mem.SetNamespace("istio-system")
	cfg.Releases = storage.Init(mem)
	cfg.KubeClient = &kubefake.PrintingKubeClient{Out: io.Discard, LogOutput: io.Discard}
	cfg.Capabilities = chartcommon.DefaultCapabilities
	return helm.NewFromConfiguration(cfg)
}

func verifyPrecheckDefaults() verify.PrecheckOptions { return verify.PrecheckOptions{} }
