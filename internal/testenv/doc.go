// Package testenv starts a real, local Kubernetes control plane with Istio
// control-plane revisions for revkit's integration tests: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, KWOK (fake nodes
// that make pods Running and Ready) and one out-of-cluster istiod
// (pilot-discovery) per revision, whose injection and validation webhooks the
// apiserver reaches on loopback.
//
// Everything runs as child processes of the test binary. The binaries come
// from $REVKIT_BIN, or <repo>/bin when it is unset; `make tools` builds them.
//
//	env, err := testenv.Start(t, testenv.Options{})
//	require.NoError(t, err)
//	rev, err := env.StartIstiod(ctx, "1-31-0")
//	require.NoError(t, err)
//	// env.Client, env.Config, env.Kubeconfig; rev.MonitoringAddr, rev.XDSAddr, ...
//
// # Two Istio versions
//
// The tools build two istiods from two istio.io/istio module versions, each
// with its own charts: OldIstio (bin/pilot-discovery-old,
// bin/istio-charts-old) and NewIstio (bin/pilot-discovery, bin/istio-charts).
// StartIstiod runs OldIstio for the revision named OldIstio.Revision and
// NewIstio for any other; StartIstiodVersion chooses explicitly. Each
// version's injection template puts its own proxy image tag (the version's
// Name) into pods, which ProxyVersion reads back.
//
//	old, err := env.StartIstiod(ctx, testenv.OldIstio.Revision) // Istio 1.31-dev.20260423...
//	new, err := env.StartIstiod(ctx, testenv.NewIstio.Revision) // Istio 1.31-dev.20260827...
//
// # Gateway API
//
// Options.GatewayAPI installs the Kubernetes Gateway API CRDs (standard
// channel, bin/gateway-api-crds: the sigs.k8s.io/gateway-api version
// NewIstio is built with, copied by hack/tools.sh); InstallGatewayAPI does
// it later. Every istiod then runs its gateway deployment controller and
// creates the Deployment, Service and ServiceAccount of each Gateway of
// class istio whose istio.io/rev label names its revision or one of its
// tags; their pods run as KWOK pods. Waypoints (class istio-waypoint) need
// ambient mode in istiod: Options.IstiodEnv PILOT_ENABLE_AMBIENT=true.
//
//	env, err := testenv.Start(t, testenv.Options{GatewayAPI: true,
//		IstiodEnv: []string{"PILOT_ENABLE_AMBIENT=true"}})
//
// # Network safety
//
// The apiserver dials Service ClusterIPs (10.0.0.0/24) and KWOK's fake pod
// IPs (10.244.0.0/16) when it calls webhooks or proxies. That traffic must
// never leave the machine, so Start refuses to run in the host's network
// namespace and returns a *HostNetworkError: run test binaries inside a
// loopback-only namespace, e.g. with hack/netns-run.sh (what `make test`
// does). There a dial to 10.x fails at once with "network unreachable".
//
// # Cleanup
//
// Each process runs in its own process group with a parent-death signal of
// SIGKILL, so nothing outlives a killed test binary. t.Cleanup stops every
// process (SIGTERM to its group, then SIGKILL) and removes the temporary
// directory, also when the test fails or panics; on failure it first logs
// the tail of every process's log. When REVKIT_TESTENV_PIDFILE is set, the
// pid of every started process is appended to that file, so that a run can
// prove afterwards that none of them is alive (hack/check-leaks.sh). When
// REVKIT_TESTENV_LOG_DIR is set, the process logs are copied there before
// the temporary directory is removed.
package testenv
