package main

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Layout, in pixels.
const (
	panelW = 400 // one panel per profile, side by side
	imageH = 450
	titleH = 28 // band for -title, when given
	dpi    = 96
)

var wayColor = map[string]color.RGBA{
	"revkit":  {31, 119, 180, 255}, // blue
	"kubectl": {214, 39, 40, 255},  // red
	"floor":   {70, 70, 70, 255},   // dark grey
}

// wayGlyph gives each way its own marker, so the chart reads in grey too.
var wayGlyph = map[string]draw.GlyphDrawer{
	"revkit":  draw.CircleGlyph{},
	"kubectl": draw.BoxGlyph{},
	"floor":   draw.PyramidGlyph{},
}

// px converts pixels to the canvas's length unit at dpi.
func px(n int) vg.Length { return vg.Length(n) * vg.Inch / dpi }

// render draws one panel per profile in points (which collect has sorted).
func render(points []point, title string) (image.Image, error) {
	var profiles []string
	for _, p := range points {
		if !slices.Contains(profiles, p.Profile) {
			profiles = append(profiles, p.Profile)
		}
	}
	c := vgimg.NewWith(vgimg.UseWH(px(panelW*len(profiles)), px(imageH)), vgimg.UseDPI(dpi),
		vgimg.UseBackgroundColor(color.White))
	dc := draw.New(c)
	if title != "" {
		t := draw.TextStyle{Color: color.Black, Font: font.From(plot.DefaultFont, 14), Handler: plot.DefaultTextHandler,
			XAlign: draw.XCenter, YAlign: draw.YTop}
		dc.FillText(t, vg.Point{X: dc.Center().X, Y: dc.Max.Y - px(6)}, title)
		dc.Max.Y -= px(titleH)
	}
	tiles := draw.Tiles{Rows: 1, Cols: len(profiles), PadX: px(8), PadTop: px(4), PadBottom: px(4), PadLeft: px(4), PadRight: px(8)}
	for i, prof := range profiles {
		var pts []point
		for _, p := range points {
			if p.Profile == prof {
				pts = append(pts, p)
			}
		}
		pl, err := panel(prof, pts)
		if err != nil {
			return nil, err
		}
		pl.Draw(tiles.At(dc, i, 0))
	}
	return c.Image(), nil
}

// panel plots one profile: a line and markers per way.
func panel(profile string, pts []point) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "profile " + profile
	p.X.Label.Text = xLabel(pts)
	p.Y.Label.Text = "seconds"
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs, p.Legend.YOffs = px(6), -px(4)
	p.Title.Padding = px(6)
	p.Add(plotter.NewGrid())

	var sizes []int
	var secs []float64
	for _, pt := range pts {
		if !slices.Contains(sizes, pt.Namespaces) {
			sizes = append(sizes, pt.Namespaces)
		}
		secs = append(secs, pt.Seconds)
	}
	slices.Sort(sizes)
	if useLogX(sizes) {
		p.X.Scale = plot.LogScale{}
	}
	// A tick at each fleet size measured.
	var xticks []plot.Tick
	for _, s := range sizes {
		xticks = append(xticks, plot.Tick{Value: float64(s), Label: strconv.Itoa(s)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(xticks)
	// Room above the highest point for the legend, and below the lowest on
	// a log axis.
	if lo, hi := slices.Min(secs), slices.Max(secs); useLogY(secs) {
		p.Y.Scale = plot.LogScale{}
		p.Y.Min, p.Y.Max = lo/1.5, hi*2.5
		p.Y.Tick.Marker = plot.TickerFunc(ticks125)
	} else {
		p.Y.Min, p.Y.Max = 0, hi*1.3
	}
	// Pad the x axis so that the first and last markers are not cut.
	lo, hi := float64(sizes[0]), float64(sizes[len(sizes)-1])
	if useLogX(sizes) {
		p.X.Min, p.X.Max = lo/1.25, hi*1.25
	} else {
		pad := max((hi-lo)*0.06, lo*0.1, 1)
		p.X.Min, p.X.Max = lo-pad, hi+pad
	}

	for _, way := range ways {
		var xys plotter.XYs
		for _, pt := range pts { // sorted by fleet size
			if pt.Way == way {
				xys = append(xys, plotter.XY{X: float64(pt.Namespaces), Y: pt.Seconds})
			}
		}
		if len(xys) == 0 {
			continue
		}
		line, scatter, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, fmt.Errorf("profile %s, %s: %w", profile, way, err)
		}
		c := wayColor[way]
		line.Color, line.Width = c, vg.Points(1.5)
		scatter.Color, scatter.Shape, scatter.Radius = c, wayGlyph[way], vg.Points(3.5)
		if len(xys) > 1 {
			p.Add(line)
		}
		p.Add(scatter)
		p.Legend.Add(way, line, scatter)
	}
	return p, nil
}

// ticks125 puts ticks at 1, 2 and 5 times each power of ten on a log
// axis, labelled.
func ticks125(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for d := math.Pow(10, math.Floor(math.Log10(lo))); d <= hi; d *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if v := m * d; v >= lo && v <= hi {
				out = append(out, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
			}
		}
	}
	return out
}

// xLabel names the x axis, with the fleet's shape when all points share it.
func xLabel(pts []point) string {
	d, r := pts[0].Deployments, pts[0].Replicas
	for _, p := range pts {
		if p.Deployments != d || p.Replicas != r {
			return "namespaces"
		}
	}
	if d <= 0 || r <= 0 {
		return "namespaces"
	}
	return fmt.Sprintf("namespaces (x%d Deployments x%d replicas)", d, r)
}

// useLogX: fleet sizes spanning more than 10x go on a log axis.
func useLogX(sizes []int) bool {
	return float64(slices.Max(sizes)) > 10*float64(slices.Min(sizes))
}

// useLogY: seconds spanning more than 20x go on a log axis.
func useLogY(secs []float64) bool {
	return slices.Max(secs) > 20*slices.Min(secs)
}
