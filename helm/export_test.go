package revision

import (
	"context"
	"encoding/json"
)

// UpgradeBaseAgainst runs UpgradeBase with the cluster's CRDs given as JSON
// documents by name (absent: not in the cluster).
func UpgradeBaseAgainst(ctx context.Context, opts BaseOptions, crds map[string]string) (*BaseResult, error) {
	return upgradeBase(ctx, opts, func(_ context.Context, name string) (*liveCRD, error) {
		doc, ok := crds[name]
		if !ok {
			return nil, nil
		}
		var c liveCRD
		return &c, json.Unmarshal([]byte(doc), &c)
	})
}
