//go:build integration

package testmain_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/revkit/revkit/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.RunMain(m, testenv.Options{Nodes: 1}, func(e *testenv.Env) { env = e }))
}

// Both tests see the same cluster: the namespace the first creates is there
// for the second.
func TestSharedFirst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NotNil(t, env)
	_, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shared"}}, metav1.CreateOptions{})
	require.NoError(t, err)
}

func TestSharedSecond(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := env.Client.CoreV1().Namespaces().Get(ctx, "shared", metav1.GetOptions{})
	require.NoError(t, err)
	require.False(t, env.Process("kube-apiserver").Exited())
}
