package ambient_test

import (
	"errors"
	"fmt"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/ambient"
)

// The control plane is upgraded before the node agents: a ztunnel may be one
// minor version behind its istiod, never ahead of it.
func ExampleCheckSkew() {
	for _, v := range []struct{ ztunnel, istiod string }{
		{"1.30.2", "1.31.0"}, // the control plane went first
		{"1.31.0", "1.30.2"}, // ztunnel first: refused
		{"1.29.0", "1.31.0"}, // two minor versions apart: refused
	} {
		err := ambient.CheckSkew(ambient.Ztunnel, v.ztunnel, v.istiod)
		fmt.Println(v.ztunnel, "with", v.istiod+":", err == nil, errors.Is(err, revkit.ErrVersionSkew))
	}
	// Output:
	// 1.30.2 with 1.31.0: true false
	// 1.31.0 with 1.30.2: false true
	// 1.29.0 with 1.31.0: false true
}
