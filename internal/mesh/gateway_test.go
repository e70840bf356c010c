package mesh

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestIsGateway(t *testing.T) {
	cases := []struct {
		name        string
		labels      map[string]string
		annotations map[string]string
		want        bool
	}{
		{"istiod's pods", map[string]string{"app": "istiod", "istio": "pilot"}, nil, false},
		{"istiod's validator", map[string]string{"app": "istiod", "istio": "istiod"}, nil, false},
		{"no labels", nil, nil, false},
		{"an application", map[string]string{"app": "web"}, nil, false},
		{"gateway chart (istio=<name>)", map[string]string{"istio": "ingress"}, nil, true},
		{"istioctl ingress gateway", map[string]string{"istio": "ingressgateway"}, nil, true},
		{"gateway injection template", map[string]string{"app": "gw"}, map[string]string{"inject.istio.io/templates": "gateway"}, true},
		{"gateway template among others", nil, map[string]string{"inject.istio.io/templates": "sidecar,gateway"}, true},
		{"sidecar template", nil, map[string]string{"inject.istio.io/templates": "sidecar"}, false},
		{"Gateway API", map[string]string{"gateway.networking.k8s.io/gateway-name": "web"}, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, IsGateway(tc.labels, tc.annotations))
		})
	}
}
