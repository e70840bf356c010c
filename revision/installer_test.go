package revision_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/revision"
)

// recorder is an Installer that records its calls and installs nothing.
type recorder struct {
	calls []string
}

func (r *recorder) Install(_ context.Context, _ kubernetes.Interface, o revision.InstallOptions) (*revision.InstallResult, error) {
	r.calls = append(r.calls, "install "+o.Revision)
	return &revision.InstallResult{Revision: o.Revision, Release: revision.ReleaseName(o.Revision), Version: 1,
		Objects: []revkit.ObjectRef{{Kind: "Deployment", Namespace: "istio-system", Name: "istiod-" + o.Revision}}}, nil
}

func (r *recorder) UpgradeBase(_ context.Context, _ kubernetes.Interface, o revision.BaseOptions) (*revision.BaseResult, error) {
	r.calls = append(r.calls, "upgrade-base "+o.Chart.Path)
	return &revision.BaseResult{Release: revision.BaseRelease}, nil
}

func (r *recorder) ReleaseObjects(_ context.Context, release string) ([]revkit.ObjectRef, bool, error) {
	r.calls = append(r.calls, "objects "+release)
	return nil, false, nil
}

func (r *recorder) UninstallRelease(_ context.Context, release string, _ time.Duration) error {
	r.calls = append(r.calls, "uninstall "+release)
	return nil
}

// Install and UpgradeBase check their options before any request, then
// hand them to the installer.
func TestInstallAndUpgradeBaseDelegate(t *testing.T) {
	chart := revision.ChartSource{Path: "charts/istiod"}
	installs := []struct {
		name string
		opts revision.InstallOptions
		ok   bool
	}{
		{"valid", revision.InstallOptions{Revision: "1-26-0", Chart: chart}, true},
		{"chart by reference", revision.InstallOptions{Revision: "1-26-0", Chart: revision.ChartSource{Ref: "oci://registry/istio/istiod"}}, true},
		{"chart in a named repository", revision.InstallOptions{Revision: "1-26-0", Chart: revision.ChartSource{Ref: "istio/istiod"}}, true},
		{"no installer", revision.InstallOptions{Revision: "1-26-0", Chart: chart}, false},
		{"dotted revision", revision.InstallOptions{Revision: "1.26.0", Chart: chart}, false},
		{"no chart", revision.InstallOptions{Revision: "1-26-0"}, false},
		{"path and ref", revision.InstallOptions{Revision: "1-26-0", Chart: revision.ChartSource{Path: "x", Ref: "oci://x/istiod"}}, false},
		{"plain name without repository", revision.InstallOptions{Revision: "1-26-0", Chart: revision.ChartSource{Ref: "istiod"}}, false},
		{"bad ValuesFrom", revision.InstallOptions{Revision: "1-26-0", Chart: chart, ValuesFrom: "1.25"}, false},
		{"bad base", revision.InstallOptions{Revision: "1-26-0", Chart: chart, Base: &revision.ChartSource{}}, false},
		{"bad namespace", revision.InstallOptions{Revision: "1-26-0", Chart: chart, ControlPlaneNamespace: "Istio_System"}, false},
		{"negative timeout", revision.InstallOptions{Revision: "1-26-0", Chart: chart, Timeout: -time.Second}, false},
		{"bad dry run", revision.InstallOptions{Revision: "1-26-0", Chart: chart, Common: revkit.Common{DryRun: 9}}, false},
	}
	for _, tc := range installs {
		t.Run("install "+tc.name, func(t *testing.T) {
			kube := base().Kube()
			kube.ClearActions()
			rec := &recorder{}
			if tc.name != "no installer" {
				tc.opts.Helm = rec
			}
			res, err := revision.Install(ctx, kube, tc.opts)
			require.NotNil(t, res)
			assert.Empty(t, kube.Actions(), "the options are checked without a request")
			if !tc.ok {
				assert.ErrorIs(t, err, revkit.ErrInvalidInput)
				assert.Empty(t, rec.calls, "the installer is not called")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, []string{"install 1-26-0"}, rec.calls)
			assert.Equal(t, "istiod-1-26-0", res.Release)
			assert.Equal(t, []revkit.Change{{Object: revkit.ObjectRef{Kind: "Deployment", Namespace: "istio-system", Name: "istiod-1-26-0"},
				Action: revkit.ActionCreate, Reason: "release istiod-1-26-0"}}, res.ObjectChanges())
		})
	}

	bases := []struct {
		name string
		opts revision.BaseOptions
		ok   bool
	}{
		{"valid", revision.BaseOptions{Chart: revision.ChartSource{Path: "charts/base"}}, true},
		{"no installer", revision.BaseOptions{Chart: revision.ChartSource{Path: "charts/base"}}, false},
		{"no chart", revision.BaseOptions{}, false},
		{"bad namespace", revision.BaseOptions{Chart: revision.ChartSource{Path: "charts/base"}, ControlPlaneNamespace: "-"}, false},
		{"bad dry run", revision.BaseOptions{Chart: revision.ChartSource{Path: "charts/base"}, Common: revkit.Common{DryRun: 9}}, false},
	}
	for _, tc := range bases {
		t.Run("base "+tc.name, func(t *testing.T) {
			kube := base().Kube()
			kube.ClearActions()
			rec := &recorder{}
			if tc.name != "no installer" {
				tc.opts.Helm = rec
			}
			res, err := revision.UpgradeBase(ctx, kube, tc.opts)
			require.NotNil(t, res)
			assert.Equal(t, revision.BaseRelease, res.Release)
			assert.Empty(t, kube.Actions())
			if !tc.ok {
				assert.ErrorIs(t, err, revkit.ErrInvalidInput)
				assert.Empty(t, rec.calls)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, []string{"upgrade-base charts/base"}, rec.calls)
		})
	}
}

// An upgrade's objects are updates of the release.
func TestInstallResultChanges(t *testing.T) {
	res := &revision.InstallResult{Release: "istiod-1-26-0", Upgraded: true,
		Objects: []revkit.ObjectRef{{Kind: "Service", Namespace: "istio-system", Name: "istiod-1-26-0"}}}
	assert.Equal(t, []revkit.Change{{Object: res.Objects[0], Action: revkit.ActionUpdate, Reason: "release istiod-1-26-0"}}, res.ObjectChanges())
}

func TestCRDChangeAndStoredVersionError(t *testing.T) {
	for _, tc := range []struct {
		c    revision.CRDChange
		want string
	}{
		{revision.CRDChange{Action: revkit.ActionCreate, Added: []string{"v1alpha1", "v1"}}, "new CRD, versions v1alpha1, v1"},
		{revision.CRDChange{Action: revkit.ActionUpdate, Added: []string{"v1"}, StorageFrom: "v1beta1", StorageTo: "v1"}, "adds v1, storage v1beta1 → v1"},
		{revision.CRDChange{Action: revkit.ActionUpdate, Removed: []string{"v1alpha1"}, StorageFrom: "v1", StorageTo: "v1"}, "removes v1alpha1"},
		{revision.CRDChange{Action: revkit.ActionUnchanged, StorageFrom: "v1", StorageTo: "v1"}, "versions unchanged"},
	} {
		assert.Equal(t, tc.want, tc.c.String())
	}
	err := error(&revision.StoredVersionError{CRD: "widgets.example.io", Version: "v1alpha1"})
	assert.ErrorIs(t, err, revkit.ErrInUse)
	assert.NotErrorIs(t, err, revkit.ErrInvalidInput)
	assert.Contains(t, err.Error(), "removes version v1alpha1 of CRD widgets.example.io")
	res := &revision.BaseResult{Changes: []revkit.Change{{Action: revkit.ActionUpdate}}}
	assert.Equal(t, res.Changes, res.ObjectChanges())
}

// With an installer that has no release of the revision, Uninstall asks it
// for the release and, finding none, removes the revision by label
// without calling Helm.
func TestUninstallAsksTheInstaller(t *testing.T) {
	kube := base().Kube()
	rec := &recorder{}
	res, err := revision.Uninstall(ctx, kube, revision.UninstallOptions{Revision: "1-24-0", Helm: rec})
	require.NoError(t, err)
	assert.Equal(t, []string{"objects istiod-1-24-0"}, rec.calls)
	assert.Empty(t, res.Release)
	assert.True(t, res.Changed())
	assert.Equal(t, res.Changes, res.ObjectChanges())
}
