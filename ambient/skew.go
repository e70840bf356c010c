package ambient

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/revkit/revkit"
)

// Component names one of the ambient node agents.
type Component string

const (
	// Ztunnel is the per-node proxy (DaemonSet "ztunnel", pods app=ztunnel).
	Ztunnel Component = "ztunnel"
	// CNI is the node agent (DaemonSet "istio-cni-node",
	// pods k8s-app=istio-cni-node).
	CNI Component = "istio-cni"
)

func (c Component) validate() error {
	switch c {
	case Ztunnel, CNI:
		return nil
	}
	return &revkit.InvalidInputError{Field: "Component", Value: string(c), Reason: `must be "ztunnel" or "istio-cni"`}
}

// SkewError refuses a node agent version that its control plane does not
// support. It matches [revkit.ErrVersionSkew].
type SkewError struct {
	Component    Component
	Version      string
	ControlPlane string
	Reason       string
}

func (e *SkewError) Error() string {
	return fmt.Sprintf("%s %s with control plane %s: %s", e.Component, e.Version, e.ControlPlane, e.Reason)
}

func (e *SkewError) Is(target error) bool { return target == revkit.ErrVersionSkew }

// CheckSkew applies Istio's skew rule for the ambient node agents: an agent
// at 1.x works with a control plane at 1.x or 1.x+1. So the agent must not
// be newer than its control plane (also within a minor version: a newer
// patch or a later build of the same minor is refused — the control plane
// is upgraded first) and at most one minor version older. Versions are
// Istio's ("1.31.2", "1.31.0-distroless", "1.31-dev.20260827.eed52ebb66ad");
// one that does not parse is a *revkit.InvalidInputError.
func CheckSkew(c Component, version, controlPlane string) error {
	if err := c.validate(); err != nil {
		return err
	}
	v, err := parseVersion("Version", version)
	if err != nil {
		return err
	}
	cp, err := parseVersion("ControlPlane", controlPlane)
	if err != nil {
		return err
	}
	skew := func(reason string) error {
		return &SkewError{Component: c, Version: version, ControlPlane: controlPlane, Reason: reason}
	}
	switch {
	case v.major != cp.major:
		return skew("a different major version")
	case v.compare(cp) > 0:
		return skew(fmt.Sprintf("%s is newer than its control plane; upgrade the control plane first", c))
	case cp.minor-v.minor > 1:
		return skew(fmt.Sprintf("%s is %d minor versions behind; the control plane supports agents one minor version older at most",
			c, cp.minor-v.minor))
	}
	return nil
}

type istioVersion struct {
	major, minor, patch int
	// pre is a pre-release ("dev.20260827.eed52ebb66ad", "beta.1"); a
	// release sorts after every pre-release of its version.
	pre string
}

var versionRE = regexp.MustCompile(`^v?(\d+)\.(\d+)(?:\.(\d+))?(?:-(.+))?$`)

// variants are image tag suffixes that name a build flavour, not a version.
var variants = []string{"-distroless", "-debug"}

func parseVersion(field, s string) (istioVersion, error) {
	t := s
	for _, suf := range variants {
		t = strings.TrimSuffix(t, suf)
	}
	m := versionRE.FindStringSubmatch(t)
	if m == nil {
		return istioVersion{}, &revkit.InvalidInputError{Field: field, Value: s,
			Reason: `not an Istio version like "1.31.2" or "1.31-dev.20260827.eed52ebb66ad"`}
	}
	var v istioVersion
	v.major, _ = strconv.Atoi(m[1])
	v.minor, _ = strconv.Atoi(m[2])
	if m[3] != "" {
		v.patch, _ = strconv.Atoi(m[3])
	}
	v.pre = m[4]
	return v, nil
}

func (v istioVersion) compare(o istioVersion) int {
	for _, d := range []int{v.major - o.major, v.minor - o.minor, v.patch - o.patch} {
		if d != 0 {
			return sign(d)
		}
	}
	switch {
	case v.pre == o.pre:
		return 0
	case v.pre == "":
		return 1
	case o.pre == "":
		return -1
	}
	return strings.Compare(v.pre, o.pre)
}

func sign(d int) int {
	if d < 0 {
		return -1
	}
	return 1
}

// imageVersion is the version in an image reference's tag without its
// build variant ("1.31.0" for ztunnel:1.31.0-distroless), "" when the tag
// is not a version (latest, a digest).
func imageVersion(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return ""
	}
	tag := image[i+1:]
	if _, err := parseVersion("", tag); err != nil {
		return ""
	}
	for _, suf := range variants {
		tag = strings.TrimSuffix(tag, suf)
	}
	return tag
}
