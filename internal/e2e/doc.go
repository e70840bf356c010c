// Package e2e holds revkit's integration tests: the operations run against a
// real local control plane (internal/testenv) with real istiod revisions.
// They are behind the build tag "integration" and run with make test.
package e2e
