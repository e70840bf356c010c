package mesh

import "github.com/revkit/revkit"

// Overlap is a namespace/pod label combination that two injectors would both
// inject.
type Overlap = revkit.Overlap

// FindOverlaps checks every pair of injectors: if some namespace and pod
// labels satisfy a webhook of each, the pair overlaps. Two webhooks of one
// configuration never count: Istio builds them to be mutually exclusive, and
// the apiserver would call the configuration once per webhook anyway.
func FindOverlaps(injectors []Injector) []Overlap {
	var out []Overlap
	for a := 0; a < len(injectors); a++ {
		for b := a + 1; b < len(injectors); b++ {
			if ov, ok := overlap(&injectors[a], &injectors[b]); ok {
				out = append(out, ov)
			}
		}
	}
	return out
}

func overlap(x, y *Injector) (Overlap, bool) {
	for _, wx := range x.Webhooks {
		for _, wy := range y.Webhooks {
			nsLabels, ok := Satisfiable(wx.NamespaceSelector, wy.NamespaceSelector)
			if !ok {
				continue
			}
			podLabels, ok := Satisfiable(wx.ObjectSelector, wy.ObjectSelector)
			if !ok {
				continue
			}
			return Overlap{
				First: x.Name, Second: y.Name,
				FirstWebhook: wx.Name, SecondWebhook: wy.Name,
				NamespaceLabels: nsLabels, PodLabels: podLabels,
			}, true
		}
	}
	return Overlap{}, false
}

// OverlapsAfter returns the overlaps that adding (or replacing, by name) the
// injectors added to existing would create. Overlaps among the existing
// injectors alone are not reported: they are not the change's doing.
func OverlapsAfter(existing []Injector, added []Injector, removed ...string) []Overlap {
	gone := map[string]bool{}
	for _, n := range removed {
		gone[n] = true
	}
	for _, a := range added {
		gone[a.Name] = true
	}
	var after []Injector
	for _, inj := range existing {
		if !gone[inj.Name] {
			after = append(after, inj)
		}
	}
	after = append(after, added...)
	isAdded := map[string]bool{}
	for _, a := range added {
		isAdded[a.Name] = true
	}
	var out []Overlap
	for _, ov := range FindOverlaps(after) {
		if isAdded[ov.First] || isAdded[ov.Second] {
			out = append(out, ov)
		}
	}
	return out
}
