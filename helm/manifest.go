package helm

import (
	"maps"
	"slices"
	"sort"

	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"sigs.k8s.io/yaml"

	"github.com/revkit/revkit"
)

// splitManifest splits a release's manifest into its YAML documents, in
// order, as Helm does.
func splitManifest(manifest string) []string {
	byKey := releaseutil.SplitManifests(manifest)
	keys := slices.Collect(maps.Keys(byKey))
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	docs := make([]string, 0, len(keys))
	for _, k := range keys {
		docs = append(docs, byKey[k])
	}
	return docs
}

// objectRef names the object of one manifest document; a namespaced object
// without a namespace is in ns. Kind is "" for a document without one (a
// comment only).
func objectRef(doc, ns string) (revkit.ObjectRef, error) {
	var head struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
		return revkit.ObjectRef{}, err
	}
	ref := revkit.ObjectRef{Kind: head.Kind, Namespace: head.Metadata.Namespace, Name: head.Metadata.Name}
	switch {
	case clusterScoped[ref.Kind]:
		ref.Namespace = ""
	case ref.Namespace == "":
		ref.Namespace = ns
	}
	return ref, nil
}

// clusterScoped are the cluster-scoped kinds Istio's charts render: their
// objects have no namespace, whatever a manifest says.
var clusterScoped = map[string]bool{
	"MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true,
	"ClusterRole": true, "ClusterRoleBinding": true, "CustomResourceDefinition": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true, "Namespace": true,
}
