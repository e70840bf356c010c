package verify_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revkittest"
	"github.com/revkit/revkit/verify"
)

func TestCheckSkew(t *testing.T) {
	proxy := func(id, rev, version string) verify.ProxyStatus {
		return verify.ProxyStatus{ID: id, Revision: rev, IstioVersion: version}
	}
	for _, tc := range []struct {
		name    string
		opts    verify.SkewOptions
		row     string
		objects []string // problems' objects; none means OK
	}{
		{name: "supported: Istio 1.30 on Kubernetes 1.34, from 1.29",
			opts: verify.SkewOptions{Istio: "1.30.1", From: "1.29.3", Kubernetes: "v1.34.2"}, row: "1.30"},
		{name: "Kubernetes too new for Istio 1.29",
			opts: verify.SkewOptions{Istio: "1.29.0", Kubernetes: "v1.36.0"}, row: "1.29", objects: []string{"kubernetes v1.36.0"}},
		{name: "Kubernetes too old for Istio 1.30",
			opts: verify.SkewOptions{Istio: "1.30.0", Kubernetes: "1.31.4"}, row: "1.30", objects: []string{"kubernetes 1.31.4"}},
		{name: "a development build newer than every release uses the master row",
			opts: verify.SkewOptions{Istio: "1.32-alpha.eed52ebb", Kubernetes: "v1.36.3"}, row: "master"},
		{name: "a release older than the table is unsupported",
			opts: verify.SkewOptions{Istio: "1.20.8", Kubernetes: "v1.28.0"}, objects: []string{"istio 1.20.8"}},
		{name: "two minor versions at once",
			opts: verify.SkewOptions{Istio: "1.30.0", From: "1.28.1", Kubernetes: "v1.33.0"}, row: "1.30", objects: []string{"upgrade 1.28.1 → 1.30.0"}},
		{name: "two minor versions, allowed",
			opts: verify.SkewOptions{Istio: "1.30.0", From: "1.28.1", Kubernetes: "v1.33.0", MaxMinorJump: 2}, row: "1.30"},
		{name: "a downgrade, refused",
			opts: verify.SkewOptions{Istio: "1.29.0", From: "1.30.0", Kubernetes: "v1.33.0"}, row: "1.29", objects: []string{"upgrade 1.30.0 → 1.29.0"}},
		{name: "a downgrade for a rollback",
			opts: verify.SkewOptions{Istio: "1.29.0", From: "1.30.0", Kubernetes: "v1.33.0", AllowDowngrade: true}, row: "1.29"},
		{name: "proxies: same, one behind, two behind, ahead",
			opts: verify.SkewOptions{Istio: "1.30.0", Kubernetes: "v1.33.0",
				ControlPlaneVersions: map[string]string{"1-29-0": "1.29.0"},
				Proxies: []verify.ProxyStatus{
					proxy("same.shop", "1-30-0", "1.30.0"),
					proxy("behind.shop", "1-30-0", "1.29.5"),
					proxy("far.shop", "1-30-0", "1.28.0"),
					proxy("ahead.shop", "1-29-0", "1.30.0"),
				}}, row: "1.30", objects: []string{"ahead.shop", "far.shop"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := verify.CheckSkew(context.Background(), nil, tc.opts)
			require.NoError(t, err)
			assert.Equal(t, tc.row, rep.Row)
			var got []string
			for _, p := range rep.Problems {
				got = append(got, p.Object)
				assert.Equal(t, verify.ProblemSkew, p.Kind)
			}
			assert.Equal(t, tc.objects, got, "%v", rep.Problems)
			if tc.objects == nil {
				assert.True(t, rep.OK())
				assert.NoError(t, rep.Err())
				return
			}
			err = rep.Err()
			assert.True(t, errors.Is(err, revkit.ErrVersionSkew), "%v", err)
			assert.True(t, errors.Is(err, revkit.ErrVerificationFailed))
			var ve *verify.VerificationError
			require.ErrorAs(t, err, &ve)
			assert.Contains(t, err.Error(), tc.objects[0], "the error names what is out of policy")
		})
	}
}

func TestCheckSkewReadsTheServerVersion(t *testing.T) {
	kube := revkittest.NewCluster().WithServerVersion("v1.36.3").Kube()
	rep, err := verify.CheckSkew(context.Background(), kube, verify.SkewOptions{Istio: "1.29.2"})
	require.NoError(t, err)
	assert.Equal(t, "v1.36.3", rep.Kubernetes)
	assert.ErrorIs(t, rep.Err(), revkit.ErrVersionSkew, "Kubernetes 1.36 is not in Istio 1.29's row")
}

func TestCheckSkewRefusesBadInput(t *testing.T) {
	for _, o := range []verify.SkewOptions{
		{},
		{Istio: "latest"},
		{Istio: "1.30.0", From: "old"},
		{Istio: "1.30.0", Kubernetes: "x"},
		{Istio: "1.30.0", MaxMinorJump: -1},
		{Istio: "1.30.0", ControlPlaneVersions: map[string]string{"a": "?"}},
		{Istio: "1.30.0"}, // no Kubernetes version and no cluster
	} {
		_, err := verify.CheckSkew(context.Background(), nil, o)
		assert.ErrorIs(t, err, revkit.ErrInvalidInput, "%+v", o)
	}
}
