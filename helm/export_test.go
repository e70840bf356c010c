package helm

import (
	"context"
	"encoding/json"

	"github.com/revkit/revkit/revision"
)

// UpgradeBaseAgainst runs UpgradeBase with the cluster's CRDs given as JSON
// documents by name (absent: not in the cluster).
func (c *Client) UpgradeBaseAgainst(ctx context.Context, opts revision.BaseOptions, crds map[string]string) (*revision.BaseResult, error) {
	return c.upgradeBase(ctx, opts, func(_ context.Context, name string) (*liveCRD, error) {
		doc, ok := crds[name]
		if !ok {
			return nil, nil
		}
		var c liveCRD
		return &c, json.Unmarshal([]byte(doc), &c)
	})
}
