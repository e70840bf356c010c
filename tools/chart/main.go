// Command chart draws the bench results (../../bench writes them as JSON) as
// one PNG: a panel per cluster profile, wall seconds against the number of
// namespaces in the fleet, one line per way (revkit, kubectl, floor).
//
//	cd tools/chart && go run . -o ../../docs/bench-fleet.png FILE...
//
// When several files give the same (profile, way, namespaces), the file given
// last on the command line wins. `make bench-chart` runs it.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"io"
	"os"
)

func main() {
	err := run(os.Args[1:], os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
}

// errUsage is returned for bad flags; the flag package has already printed why.
var errUsage = errors.New("usage")

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("chart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "output PNG `path` (required)")
	title := fs.String("title", "", "optional title drawn above the panels")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: chart -o OUT.png [-title TEXT] BENCH.json...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if *out == "" {
		fmt.Fprintln(stderr, "chart: -o is required")
		fs.Usage()
		return errUsage
	}
	points, err := collect(fs.Args(), stderr)
	if err != nil {
		return err
	}
	img, err := render(points, *title)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	return os.WriteFile(*out, buf.Bytes(), 0o644)
}
