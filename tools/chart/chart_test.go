package main

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/plot"
)

type testWay struct {
	way     string
	seconds float64
}

type testProfile struct {
	profile    string
	namespaces int
	ways       []testWay
}

// writeBench writes profiles as bench does (extra fields included) and
// returns the file's path.
func writeBench(t *testing.T, name string, profiles ...testProfile) string {
	t.Helper()
	var out []map[string]any
	for _, p := range profiles {
		var results []map[string]any
		for _, w := range p.ways {
			results = append(results, map[string]any{
				"way": w.way, "seconds": w.seconds,
				"client": map[string]int{"LIST": 1}, "restarted": 10, "load_start": 1.5,
			})
		}
		out = append(out, map[string]any{
			"profile": p.profile, "description": "test", "setup_seconds": 3.0,
			"fleet":   map[string]int{"Namespaces": p.namespaces, "Deployments": 5, "Replicas": 2},
			"results": results,
		})
	}
	data, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, name, string(data))
}

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCollectLastFileWins(t *testing.T) {
	first := writeBench(t, "first.json",
		testProfile{"c", 20, []testWay{{"revkit", 30}, {"kubectl", 200}}},
		testProfile{"b", 50, []testWay{{"revkit", 10}, {"kubectl", 20}, {"floor", 5}}},
	)
	second := writeBench(t, "second.json",
		testProfile{"b", 50, []testWay{{"revkit", 11}}},
		testProfile{"b", 200, []testWay{{"revkit", 40}}},
	)

	got, err := collect([]string{first, second}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []point{ // profile, then way in legend order, then fleet size
		{"b", "revkit", 50, 5, 2, 11}, // from the second file
		{"b", "revkit", 200, 5, 2, 40},
		{"b", "kubectl", 50, 5, 2, 20},
		{"b", "floor", 50, 5, 2, 5},
		{"c", "revkit", 20, 5, 2, 30},
		{"c", "kubectl", 20, 5, 2, 200},
	}
	if !slices.Equal(got, want) {
		t.Errorf("collect(first, second) =\n%v\nwant\n%v", got, want)
	}

	got, err = collect([]string{second, first}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Seconds != 10 {
		t.Errorf("collect(second, first): b/revkit/50 = %v s, want 10 (first file given last)", got[0].Seconds)
	}
}

func TestCollectSkipsUnknownWay(t *testing.T) {
	f := writeBench(t, "x.json", testProfile{"a", 50, []testWay{{"revkit", 1}, {"helm", 2}}})
	var warn bytes.Buffer
	got, err := collect([]string{f}, &warn)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Way != "revkit" {
		t.Errorf("got %v, want only the revkit point", got)
	}
	if !strings.Contains(warn.String(), `"helm"`) {
		t.Errorf("no warning about the unknown way, got %q", warn.String())
	}
}

func TestCollectErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		want  string
	}{
		{"no files", nil, "no input files"},
		{"missing file", []string{filepath.Join(t.TempDir(), "nope.json")}, "no such file"},
		{"invalid JSON", []string{writeFile(t, "bad.json", `[{"profile":`)}, "not a JSON array"},
		{"object", []string{writeFile(t, "obj.json", `{"profile":"a"}`)}, "not a JSON array"},
		{"empty", []string{writeFile(t, "empty.json", `[]`)}, "no points"},
		{"only unknown ways", []string{writeBench(t, "u.json", testProfile{"a", 5, []testWay{{"helm", 1}}})}, "no points"},
		{"zero seconds", []string{writeBench(t, "z.json", testProfile{"a", 5, []testWay{{"floor", 0}}})}, "bad seconds"},
		{"no namespaces", []string{writeBench(t, "n.json", testProfile{"a", 0, []testWay{{"floor", 1}}})}, "0 namespaces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := collect(tc.files, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("collect: err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestScaleChoice(t *testing.T) {
	for _, tc := range []struct {
		sizes []int
		log   bool
	}{
		{[]int{50}, false},
		{[]int{50, 200}, false},
		{[]int{20, 200}, false}, // exactly 10x
		{[]int{20, 201}, true},
		{[]int{10, 100, 1000}, true},
	} {
		if got := useLogX(tc.sizes); got != tc.log {
			t.Errorf("useLogX(%v) = %v, want %v", tc.sizes, got, tc.log)
		}
		pts := make([]point, len(tc.sizes))
		for i, n := range tc.sizes {
			pts[i] = point{Profile: "a", Way: "revkit", Namespaces: n, Seconds: 10}
		}
		p, err := panel("a", pts)
		if err != nil {
			t.Fatal(err)
		}
		if _, isLog := p.X.Scale.(plot.LogScale); isLog != tc.log {
			t.Errorf("panel over %v: log x = %v, want %v", tc.sizes, isLog, tc.log)
		}
		if p.X.Min >= float64(tc.sizes[0]) || p.X.Max <= float64(tc.sizes[len(tc.sizes)-1]) {
			t.Errorf("panel over %v: x axis [%v, %v] does not leave room around the points", tc.sizes, p.X.Min, p.X.Max)
		}
	}
	for _, tc := range []struct {
		secs []float64
		log  bool
	}{
		{[]float64{31.5}, false},
		{[]float64{25.9, 31.5, 228.3}, false},
		{[]float64{1, 20}, false}, // exactly 20x
		{[]float64{1, 20.5}, true},
		{[]float64{0.4, 2100}, true},
	} {
		if got := useLogY(tc.secs); got != tc.log {
			t.Errorf("useLogY(%v) = %v, want %v", tc.secs, got, tc.log)
		}
		pts := make([]point, len(tc.secs))
		for i, v := range tc.secs {
			pts[i] = point{Profile: "a", Way: "revkit", Namespaces: 10 * (i + 1), Seconds: v}
		}
		p, err := panel("a", pts)
		if err != nil {
			t.Fatal(err)
		}
		_, isLog := p.Y.Scale.(plot.LogScale)
		if isLog != tc.log {
			t.Errorf("panel over %v: log y = %v, want %v", tc.secs, isLog, tc.log)
		}
		if !isLog && p.Y.Min != 0 {
			t.Errorf("panel over %v: linear axis starts at %v, want 0", tc.secs, p.Y.Min)
		}
		for _, v := range tc.secs {
			if v < p.Y.Min || v > p.Y.Max {
				t.Errorf("panel over %v: %v falls outside the axis [%v, %v]", tc.secs, v, p.Y.Min, p.Y.Max)
			}
		}
	}
}

func TestRender(t *testing.T) {
	// a: log x, three points per way (lines); b: linear x, two points per
	// way; c: one point per way (markers only).
	f := writeBench(t, "bench.json",
		testProfile{"c", 20, []testWay{{"revkit", 100}, {"kubectl", 200}, {"floor", 10}}},
		testProfile{"a", 10, []testWay{{"revkit", 3}, {"kubectl", 30}, {"floor", 1}}},
		testProfile{"a", 100, []testWay{{"revkit", 20}, {"kubectl", 300}, {"floor", 8}}},
		testProfile{"a", 1000, []testWay{{"revkit", 150}, {"kubectl", 3000}, {"floor", 60}}},
		testProfile{"b", 50, []testWay{{"revkit", 60}, {"kubectl", 120}, {"floor", 10}}},
		testProfile{"b", 200, []testWay{{"revkit", 180}, {"kubectl", 400}, {"floor", 100}}},
	)
	out := filepath.Join(t.TempDir(), "chart.png")
	if err := run([]string{"-o", out, f}, io.Discard); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := img.Bounds().Size(), image.Pt(1200, 450); got != want {
		t.Fatalf("image size %v, want %v", got, want)
	}

	// Count each way's pixels per panel (antialiased edges blend, the
	// inside of markers and lines has the way's colour exactly). Every way
	// is drawn in every panel, and lines add to the markers: a panel with
	// one point per way has far fewer than one with three.
	count := func(panel int, c color.RGBA) int {
		n := 0
		for y := 0; y < 450; y++ {
			for x := panel * panelW; x < (panel+1)*panelW; x++ {
				r, g, b, _ := img.At(x, y).RGBA()
				if uint8(r>>8) == c.R && uint8(g>>8) == c.G && uint8(b>>8) == c.B {
					n++
				}
			}
		}
		return n
	}
	for _, way := range ways {
		c := wayColor[way]
		lines, two, markers := count(0, c), count(1, c), count(2, c)
		if markers == 0 {
			t.Errorf("%s: not drawn in the panel with one point", way)
		}
		if lines < markers+100 || two < markers+100 {
			t.Errorf("%s: %d and %d pixels in the panels with lines, %d with markers only", way, lines, two, markers)
		}
	}

	// Deterministic: a second run gives the same bytes.
	again := filepath.Join(t.TempDir(), "again.png")
	if err := run([]string{"-o", again, f}, io.Discard); err != nil {
		t.Fatal(err)
	}
	data2, err := os.ReadFile(again)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, data2) {
		t.Error("two runs on the same input gave different PNGs")
	}
}

func TestRunNeedsOutput(t *testing.T) {
	f := writeBench(t, "b.json", testProfile{"a", 5, []testWay{{"floor", 1}}})
	if err := run([]string{f}, io.Discard); err == nil {
		t.Error("run without -o succeeded")
	}
	if err := run([]string{"-o", filepath.Join(t.TempDir(), "x.png")}, io.Discard); err == nil {
		t.Error("run without input files succeeded")
	}
}
