package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"slices"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Layout, in pixels.
const (
	panelW     = 400 // one panel per profile, side by side
	imageH     = 450
	titleH     = 24 // band for -title, when given
	legendH    = 26 // band for the legend, under the title
	plotLeft   = 58 // room for the y tick labels
	plotRight  = 18
	plotTop    = 42 // panel title and "seconds" above the plot
	plotBottom = 44 // x tick labels and the x axis label below it
)

var (
	white = color.RGBA{255, 255, 255, 255}
	black = color.RGBA{0, 0, 0, 255}
	grid  = color.RGBA{225, 225, 225, 255}

	wayColor = map[string]color.RGBA{
		"revkit":  {31, 119, 180, 255}, // blue
		"kubectl": {214, 39, 40, 255},  // red
		"floor":   {70, 70, 70, 255},   // dark grey
	}
)

var face = basicfont.Face7x13

// render draws one panel per profile in points (which collect has sorted).
func render(points []point, title string) *image.RGBA {
	var profiles []string
	for _, p := range points {
		if !slices.Contains(profiles, p.Profile) {
			profiles = append(profiles, p.Profile)
		}
	}
	img := image.NewRGBA(image.Rect(0, 0, panelW*len(profiles), imageH))
	draw.Draw(img, img.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)

	top := 0
	if title != "" {
		drawTextCentered(img, title, img.Bounds().Dx()/2, 6, black)
		top += titleH
	}
	drawLegend(img, top+6)
	top += legendH

	for i, prof := range profiles {
		var pts []point
		for _, p := range points {
			if p.Profile == prof {
				pts = append(pts, p)
			}
		}
		drawPanel(img, image.Rect(i*panelW, top, (i+1)*panelW, imageH), prof, pts)
	}
	return img
}

func drawLegend(img *image.RGBA, top int) {
	const sample, gap, sep = 24, 5, 22
	width := 0
	for i, w := range ways {
		if i > 0 {
			width += sep
		}
		width += sample + gap + textWidth(w)
	}
	x := (img.Bounds().Dx() - width) / 2
	y := top + 6 // middle of a line of text
	for _, w := range ways {
		c := wayColor[w]
		drawLine(img, x, y, x+sample, y, c)
		drawMarker(img, x+sample/2, y, w, c)
		x += sample + gap
		drawText(img, w, x, top, black)
		x += textWidth(w) + sep
	}
}

func drawPanel(img *image.RGBA, r image.Rectangle, profile string, pts []point) {
	plot := image.Rect(r.Min.X+plotLeft, r.Min.Y+plotTop, r.Max.X-plotRight, r.Max.Y-plotBottom)
	mid := (plot.Min.X + plot.Max.X) / 2
	drawTextCentered(img, "profile "+profile, mid, r.Min.Y, black)
	drawText(img, "seconds", r.Min.X+8, plot.Min.Y-20, black)

	var sizes []int
	var secs []float64
	for _, p := range pts {
		if !slices.Contains(sizes, p.Namespaces) {
			sizes = append(sizes, p.Namespaces)
		}
		secs = append(secs, p.Seconds)
	}
	slices.Sort(sizes)
	xs, xticks := xScale(sizes)
	ys, yticks := yScale(secs)
	px := func(v float64) int { return plot.Min.X + int(math.Round(xs.frac(v)*float64(plot.Dx()))) }
	py := func(v float64) int { return plot.Max.Y - int(math.Round(ys.frac(v)*float64(plot.Dy()))) }

	for _, t := range yticks {
		y := py(t.v)
		hline(img, plot.Min.X, plot.Max.X, y, grid)
		hline(img, plot.Min.X-4, plot.Min.X-1, y, black)
		drawText(img, t.label, plot.Min.X-7-textWidth(t.label), y-6, black)
	}
	lastRight := math.MinInt
	for _, t := range xticks {
		x := px(t.v)
		vline(img, x, plot.Min.Y, plot.Max.Y, grid)
		vline(img, x, plot.Max.Y+1, plot.Max.Y+4, black)
		w := textWidth(t.label)
		if lx := x - w/2; lx >= lastRight+6 { // drop labels that would overlap
			drawText(img, t.label, lx, plot.Max.Y+6, black)
			lastRight = lx + w
		}
	}
	vline(img, plot.Min.X, plot.Min.Y, plot.Max.Y, black)
	hline(img, plot.Min.X, plot.Max.X, plot.Max.Y, black)
	drawTextCentered(img, xLabel(pts), mid, plot.Max.Y+24, black)

	// Lines first, then markers on top; revkit last so it is on top.
	for _, markers := range []bool{false, true} {
		for i := len(ways) - 1; i >= 0; i-- {
			way, c := ways[i], wayColor[ways[i]]
			prevX, prevY, first := 0, 0, true
			for _, p := range pts { // sorted by fleet size
				if p.Way != way {
					continue
				}
				x, y := px(float64(p.Namespaces)), py(p.Seconds)
				switch {
				case markers:
					drawMarker(img, x, y, way, c)
				case !first:
					drawLine(img, prevX, prevY, x, y, c)
				}
				prevX, prevY, first = x, y, false
			}
		}
	}
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

// scale maps a value to [0, 1] across the axis.
type scale struct {
	log    bool
	lo, hi float64 // domain; log10 of it when log
}

func (s scale) frac(v float64) float64 {
	if s.log {
		v = math.Log10(v)
	}
	return (v - s.lo) / (s.hi - s.lo)
}

type tick struct {
	v     float64
	label string
}

// useLogX: fleet sizes spanning more than 10x go on a log axis.
func useLogX(sizes []int) bool {
	return float64(slices.Max(sizes)) > 10*float64(slices.Min(sizes))
}

// useLogY: seconds spanning more than 20x go on a log axis.
func useLogY(secs []float64) bool {
	return slices.Max(secs) > 20*slices.Min(secs)
}

// xScale returns the x axis for fleet sizes (sorted, distinct, > 0), with a
// tick at each.
func xScale(sizes []int) (scale, []tick) {
	lo, hi := float64(sizes[0]), float64(sizes[len(sizes)-1])
	var s scale
	switch {
	case useLogX(sizes):
		l, h := math.Log10(lo), math.Log10(hi)
		pad := 0.07 * (h - l)
		s = scale{log: true, lo: l - pad, hi: h + pad}
	case len(sizes) == 1:
		s = scale{lo: 0, hi: 2 * hi} // alone, in the middle
	default:
		s = scale{lo: 0, hi: 1.08 * hi}
	}
	ticks := make([]tick, len(sizes))
	for i, n := range sizes {
		ticks[i] = tick{float64(n), strconv.Itoa(n)}
	}
	return s, ticks
}

// yScale returns the y axis for wall seconds (all > 0): linear from 0 with
// round steps, or log with ticks at 1, 2, 5 (or fewer) per decade.
func yScale(secs []float64) (scale, []tick) {
	lo, hi := slices.Min(secs), slices.Max(secs)
	if !useLogY(secs) {
		step := niceStep(hi / 5)
		n := int(math.Ceil(hi/step - 1e-9))
		decimals := max(0, -int(math.Floor(math.Log10(step)+1e-9)))
		ticks := make([]tick, 0, n+1)
		for i := 0; i <= n; i++ {
			v := float64(i) * step
			ticks = append(ticks, tick{v, strconv.FormatFloat(v, 'f', decimals, 64)})
		}
		return scale{lo: 0, hi: float64(n) * step}, ticks
	}
	s := scale{log: true, lo: math.Log10(lo / 1.25), hi: math.Log10(hi * 1.25)}
	var ticks []tick
	for _, mantissas := range [][]float64{{1, 2, 5}, {1, 3}, {1}} {
		ticks = ticks[:0]
		for k := int(math.Floor(s.lo)); k <= int(math.Ceil(s.hi)); k++ {
			for _, m := range mantissas {
				v := m * math.Pow(10, float64(k))
				if l := math.Log10(v); l >= s.lo && l <= s.hi {
					ticks = append(ticks, tick{v, strconv.FormatFloat(v, 'f', max(0, -k), 64)})
				}
			}
		}
		if len(ticks) <= 7 {
			break
		}
	}
	return s, ticks
}

// niceStep returns the smallest of 1, 2, 5 times a power of ten that is >= raw.
func niceStep(raw float64) float64 {
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw*(1-1e-9) {
			return m * mag
		}
	}
	return 10 * mag
}

// Drawing.

func textWidth(s string) int { return font.MeasureString(face, s).Round() }

// drawText draws s with its top-left corner at (x, top).
func drawText(img *image.RGBA, s string, x, top int, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: face, Dot: fixed.P(x, top+face.Ascent)}
	d.DrawString(s)
}

func drawTextCentered(img *image.RGBA, s string, cx, top int, c color.Color) {
	drawText(img, s, cx-textWidth(s)/2, top, c)
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	for x := x0; x <= x1; x++ {
		img.SetRGBA(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	for y := y0; y <= y1; y++ {
		img.SetRGBA(x, y, c)
	}
}

// drawLine draws a 2 px wide line (Bresenham, doubled across its direction).
func drawLine(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x1 < x0 {
		sx = -1
	}
	if y1 < y0 {
		sy = -1
	}
	steep := -dy > dx
	err := dx + dy
	for {
		img.SetRGBA(x0, y0, c)
		if steep {
			img.SetRGBA(x0+1, y0, c)
		} else {
			img.SetRGBA(x0, y0+1, c)
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * err
		if e2 >= dy {
			err += dy
			x0 += sx
		}
		if e2 <= dx {
			err += dx
			y0 += sy
		}
	}
}

// drawMarker draws a way's marker centred on (x, y): revkit a disc, kubectl a
// square, floor a diamond.
func drawMarker(img *image.RGBA, x, y int, way string, c color.RGBA) {
	for dy := -4; dy <= 4; dy++ {
		for dx := -4; dx <= 4; dx++ {
			var in bool
			switch way {
			case "revkit":
				in = dx*dx+dy*dy <= 13
			case "kubectl":
				in = abs(dx) <= 3 && abs(dy) <= 3
			default:
				in = abs(dx)+abs(dy) <= 4
			}
			if in {
				img.SetRGBA(x+dx, y+dy, c)
			}
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
