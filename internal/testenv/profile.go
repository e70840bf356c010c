package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clientLimitArgs gives a controller's --kube-api-qps/--kube-api-burst
// flags: none when the defaults are wanted or qps is zero.
func clientLimitArgs(qps int, defaults bool) []string {
	if defaults || qps <= 0 {
		return nil
	}
	return []string{"--kube-api-qps=" + strconv.Itoa(qps), "--kube-api-burst=" + strconv.Itoa(2*qps)}
}

// kwokStages returns the stages file KWOK runs with: bin/kwok-stages.yaml,
// or a copy in the environment's directory whose pod-ready stage waits
// PodReadyDelay.
func (e *Env) kwokStages() (string, error) {
	src := e.bin("kwok-stages.yaml")
	if e.opts.PodReadyDelay <= 0 {
		return src, nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	out, err := delayStage(string(b), "pod-ready", e.opts.PodReadyDelay.Milliseconds())
	if err != nil {
		return "", err
	}
	dst := filepath.Join(e.Dir, "kwok-stages.yaml")
	return dst, os.WriteFile(dst, []byte(out), 0o644)
}

// delayStage adds spec.delay to the KWOK Stage named name in a multi-document
// YAML stream.
func delayStage(stream, name string, ms int64) (string, error) {
	docs := strings.Split(stream, "\n---\n")
	found := false
	for i, d := range docs {
		if !strings.Contains(d, "\n  name: "+name+"\n") {
			continue
		}
		if !strings.Contains(d, "\nspec:\n") {
			return "", fmt.Errorf("testenv: KWOK stage %s has no spec", name)
		}
		docs[i] = strings.Replace(d, "\nspec:\n", fmt.Sprintf("\nspec:\n  delay:\n    durationMilliseconds: %d\n", ms), 1)
		found = true
	}
	if !found {
		return "", fmt.Errorf("testenv: no KWOK stage named %s in the stages file", name)
	}
	return strings.Join(docs, "\n---\n"), nil
}
