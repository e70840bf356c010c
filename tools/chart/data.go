package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// The part of bench's ProfileResult that the chart needs.
type profileResult struct {
	Profile string `json:"profile"`
	Fleet   struct {
		Namespaces  int
		Deployments int
		Replicas    int
	} `json:"fleet"`
	Results []struct {
		Way     string  `json:"way"`
		Seconds float64 `json:"seconds"`
	} `json:"results"`
}

// ways in legend order.
var ways = []string{"revkit", "kubectl", "floor"}

// profileOrder puts the known profiles first, the rest after, by name.
var profileOrder = []string{"a", "b", "c"}

// point is one way's wall time on one fleet under one profile.
type point struct {
	Profile     string
	Way         string
	Namespaces  int
	Deployments int
	Replicas    int
	Seconds     float64
}

type pointKey struct {
	profile, way string
	namespaces   int
}

// collect reads bench JSON files and returns their points, sorted by profile
// (a, b, c, then others), way (legend order) and fleet size. A later file (or
// a later entry in the same file) replaces an earlier point with the same
// profile, way and number of namespaces. Ways it does not know are skipped
// with a warning.
func collect(files []string, warn io.Writer) ([]point, error) {
	if len(files) == 0 {
		return nil, errors.New("no input files (usage: chart -o OUT.png BENCH.json...)")
	}
	byKey := map[pointKey]point{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var prs []profileResult
		if err := json.Unmarshal(data, &prs); err != nil {
			return nil, fmt.Errorf("%s: not a JSON array of bench profile results: %w", f, err)
		}
		for i, pr := range prs {
			if pr.Profile == "" {
				return nil, fmt.Errorf("%s: entry %d: no profile name", f, i)
			}
			if pr.Fleet.Namespaces <= 0 {
				return nil, fmt.Errorf("%s: profile %s: fleet has %d namespaces", f, pr.Profile, pr.Fleet.Namespaces)
			}
			for _, r := range pr.Results {
				if !slices.Contains(ways, r.Way) {
					fmt.Fprintf(warn, "chart: %s: profile %s: skipping unknown way %q\n", f, pr.Profile, r.Way)
					continue
				}
				if !(r.Seconds > 0) || math.IsInf(r.Seconds, 0) {
					return nil, fmt.Errorf("%s: profile %s way %s: bad seconds %v", f, pr.Profile, r.Way, r.Seconds)
				}
				byKey[pointKey{pr.Profile, r.Way, pr.Fleet.Namespaces}] = point{
					Profile:     pr.Profile,
					Way:         r.Way,
					Namespaces:  pr.Fleet.Namespaces,
					Deployments: pr.Fleet.Deployments,
					Replicas:    pr.Fleet.Replicas,
					Seconds:     r.Seconds,
				}
			}
		}
	}
	if len(byKey) == 0 {
		return nil, fmt.Errorf("no points in %s", strings.Join(files, " "))
	}
	points := make([]point, 0, len(byKey))
	for _, p := range byKey {
		points = append(points, p)
	}
	slices.SortFunc(points, func(a, b point) int {
		if c := compareProfiles(a.Profile, b.Profile); c != 0 {
			return c
		}
		if c := slices.Index(ways, a.Way) - slices.Index(ways, b.Way); c != 0 {
			return c
		}
		return a.Namespaces - b.Namespaces
	})
	return points, nil
}

func compareProfiles(a, b string) int {
	ia, ib := slices.Index(profileOrder, a), slices.Index(profileOrder, b)
	if ia < 0 {
		ia = len(profileOrder)
	}
	if ib < 0 {
		ib = len(profileOrder)
	}
	if ia != ib {
		return ia - ib
	}
	return strings.Compare(a, b)
}
