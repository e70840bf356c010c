package helm

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	chartcommon "helm.sh/helm/v4/pkg/chart"
	rv1 "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revision"
)

// carriedValues reads the user-supplied values of revision from's release
// and its chart's defaults: the values without the revision's own keys,
// and the defaults of the chart it was installed from.
func carriedValues(cfg *action.Configuration, from string) (values, oldDefaults map[string]any, err error) {
	name := revision.ReleaseName(from)
	last, err := cfg.Releases.Last(name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, nil, &revkit.NotFoundError{Kind: "Helm release of revision", Name: name}
	}
	if err != nil {
		return nil, nil, err
	}
	rel, ok := last.(*rv1.Release)
	if !ok {
		return nil, nil, fmt.Errorf("release %s: unsupported release type %T", name, last)
	}
	values = deepCopy(rel.Config)
	for _, k := range revision.RevisionValueKeys {
		delete(values, k)
	}
	if rel.Chart != nil {
		oldDefaults = rel.Chart.Values
	}
	return values, oldDefaults, nil
}

// chartDefaults are a chart's default values.
func chartDefaults(chrt chartcommon.Charter) map[string]any {
	acc, err := chartcommon.NewAccessor(chrt)
	if err != nil {
		return nil
	}
	return acc.Values()
}

// mergeValues lays over onto base, recursively for maps; over wins.
func mergeValues(base, over map[string]any) map[string]any {
	out := deepCopy(base)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range over {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = mergeValues(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// diffDefaults lists the defaults that differ between two charts, by
// dotted key, sorted; keys whose value the user sets (in set) are left out:
// the user's value applies either way.
func diffDefaults(old, updated, set map[string]any) []revision.ValueChange {
	of, nf, sf := map[string]string{}, map[string]string{}, map[string]string{}
	flatten("", old, of)
	flatten("", updated, nf)
	flatten("", set, sf)
	keys := map[string]bool{}
	for k := range of {
		keys[k] = true
	}
	for k := range nf {
		keys[k] = true
	}
	var out []revision.ValueChange
	for k := range keys {
		if userSets(k, sf) {
			continue
		}
		o, hadOld := of[k]
		n, hasNew := nf[k]
		switch {
		case !hadOld:
			out = append(out, revision.ValueChange{Key: k, Action: revkit.ActionCreate, New: n})
		case !hasNew:
			out = append(out, revision.ValueChange{Key: k, Action: revkit.ActionDelete, Old: o})
		case o != n:
			out = append(out, revision.ValueChange{Key: k, Action: revkit.ActionUpdate, Old: o, New: n})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// userSets reports whether the user's values set key or a parent of it.
func userSets(key string, set map[string]string) bool {
	for {
		if _, ok := set[key]; ok {
			return true
		}
		i := strings.LastIndex(key, ".")
		if i < 0 {
			return false
		}
		key = key[:i]
	}
}

// flatten writes every leaf of m (non-map values, empty maps) under its
// dotted key, as JSON.
func flatten(prefix string, m map[string]any, out map[string]string) {
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			flatten(key, sub, out)
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			b = []byte(fmt.Sprint(v))
		}
		out[key] = string(b)
	}
}

// deepCopy copies nested maps so that merging never writes into a
// release's or the caller's values.
func deepCopy(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := maps.Clone(m)
	for k, v := range out {
		if sub, ok := v.(map[string]any); ok {
			out[k] = deepCopy(sub)
		}
	}
	return out
}
