package mesh

import (
	"strings"

	"istio.io/api/annotation"
	"istio.io/api/label"
)

var (
	// LabelGatewayName is the Gateway API's label on the objects of a
	// gateway deployed for a Gateway resource.
	LabelGatewayName = label.IoK8sNetworkingGatewayGatewayName.Name
	// LabelGatewayManaged marks the gateways (and waypoints) istiod deploys
	// and keeps in line with their Gateway resource itself.
	LabelGatewayManaged = label.GatewayManaged.Name
)

// IsGateway reports whether an object belongs to an Istio gateway rather
// than to istiod, from its labels and annotations — for a workload, its pod
// template's: its pods use Istio's gateway injection template
// (inject.istio.io/templates), it carries the Gateway API's gateway-name
// label, or an "istio" label other than istiod's own ("pilot", "istiod"):
// Istio's gateway chart labels a gateway's objects istio=<gateway name>,
// istioctl's istio=ingressgateway and the like.
//
// revision.Uninstall leaves such objects alone, and package gateway moves
// such Deployments (those istiod does not manage).
func IsGateway(labels, annotations map[string]string) bool {
	if strings.Contains(annotations[annotation.InjectTemplates.Name], "gateway") {
		return true
	}
	if _, ok := labels[LabelGatewayName]; ok {
		return true
	}
	v, ok := labels["istio"]
	return ok && v != "pilot" && v != "istiod"
}
