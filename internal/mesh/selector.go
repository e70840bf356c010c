package mesh

import (
	"sort"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Matches reports whether a label selector, as the apiserver reads a webhook's
// namespaceSelector or objectSelector, matches set. A nil selector matches
// everything; a malformed one matches nothing.
func Matches(sel *metav1.LabelSelector, set map[string]string) bool {
	if sel == nil {
		return true
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false
	}
	return s.Matches(labels.Set(set))
}

// NeverMatches reports whether sel is istioctl's deactivation selector (or
// any selector built on its key), which is meant never to match.
func NeverMatches(sel *metav1.LabelSelector) bool {
	if sel == nil {
		return false
	}
	if _, ok := sel.MatchLabels[LabelDeactivated]; ok {
		return true
	}
	for _, r := range sel.MatchExpressions {
		if r.Key == LabelDeactivated {
			return true
		}
	}
	return false
}

// keyConstraint gathers every requirement on one label key.
type keyConstraint struct {
	mustExist    bool
	mustNotExist bool
	allowed      map[string]bool // nil: any value
	forbidden    map[string]bool
	invalid      bool
}

func (k *keyConstraint) in(values []string) {
	k.mustExist = true
	next := map[string]bool{}
	for _, v := range values {
		if k.allowed == nil || k.allowed[v] {
			next[v] = true
		}
	}
	k.allowed = next
}

func (k *keyConstraint) notIn(values []string) {
	if k.forbidden == nil {
		k.forbidden = map[string]bool{}
	}
	for _, v := range values {
		k.forbidden[v] = true
	}
}

// witness returns a value that satisfies the constraint, whether the label
// is present at all, and false when none exists.
func (k *keyConstraint) witness() (value string, present bool, ok bool) {
	if k.invalid || (k.mustExist && k.mustNotExist) {
		return "", false, false
	}
	if !k.mustExist {
		return "", false, true
	}
	if k.allowed != nil {
		var cands []string
		for v := range k.allowed {
			if !k.forbidden[v] {
				cands = append(cands, v)
			}
		}
		if len(cands) == 0 {
			return "", false, false
		}
		sort.Strings(cands)
		return cands[0], true, true
	}
	for i := 0; ; i++ {
		v := "any"
		if i > 0 {
			v += strconv.Itoa(i)
		}
		if !k.forbidden[v] {
			return v, true, true
		}
	}
}

// Satisfiable reports whether one label set matches all the selectors at
// once, and returns such a set. Deactivated selectors are never satisfiable.
func Satisfiable(sels ...*metav1.LabelSelector) (map[string]string, bool) {
	cons := map[string]*keyConstraint{}
	get := func(key string) *keyConstraint {
		c := cons[key]
		if c == nil {
			c = &keyConstraint{}
			cons[key] = c
		}
		return c
	}
	for _, sel := range sels {
		if sel == nil {
			continue
		}
		if NeverMatches(sel) {
			return nil, false
		}
		for k, v := range sel.MatchLabels {
			get(k).in([]string{v})
		}
		for _, r := range sel.MatchExpressions {
			c := get(r.Key)
			switch r.Operator {
			case metav1.LabelSelectorOpIn:
				c.in(r.Values)
			case metav1.LabelSelectorOpNotIn:
				c.notIn(r.Values)
			case metav1.LabelSelectorOpExists:
				c.mustExist = true
			case metav1.LabelSelectorOpDoesNotExist:
				c.mustNotExist = true
			default:
				c.invalid = true
			}
		}
	}
	out := map[string]string{}
	for key, c := range cons {
		v, present, ok := c.witness()
		if !ok {
			return nil, false
		}
		if present {
			out[key] = v
		}
	}
	return out, true
}
