package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDelayStage(t *testing.T) {
	stream := "kind: Stage\nmetadata:\n  name: pod-create\nspec:\n  x: 1\n---\nkind: Stage\nmetadata:\n  name: pod-ready\nspec:\n  resourceRef: {}\n"
	out, err := delayStage(stream, "pod-ready", 5000)
	require.NoError(t, err)
	docs := strings.Split(out, "\n---\n")
	require.Len(t, docs, 2)
	assert.NotContains(t, docs[0], "delay")
	assert.Contains(t, docs[1], "\nspec:\n  delay:\n    durationMilliseconds: 5000\n  resourceRef: {}\n")

	_, err = delayStage(stream, "pod-delete", 5000)
	assert.Error(t, err)
}

// The stages file shipped by `make tools` has a pod-ready stage to delay.
func TestDelayStageRealFile(t *testing.T) {
	dir, err := resolveBinDir("")
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(dir, "kwok-stages.yaml"))
	if os.IsNotExist(err) {
		t.Log("bin/kwok-stages.yaml not built (make tools)")
		return
	}
	require.NoError(t, err)
	out, err := delayStage(string(b), "pod-ready", 5000)
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(out, "durationMilliseconds: 5000"))
}

func TestClientLimitArgs(t *testing.T) {
	assert.Equal(t, []string{"--kube-api-qps=300", "--kube-api-burst=600"}, clientLimitArgs(300, false))
	assert.Nil(t, clientLimitArgs(300, true))
	assert.Nil(t, clientLimitArgs(0, false))
}
