// Package sim plays a cluster's workload controllers and Istio's injector
// on a fake clientset, synchronously, inside the calls that change
// something (see Simulation). revkittest.Simulate offers it to embedding
// programs' tests; upgrade.Preview runs its in-memory copy of a cluster on
// it, so that a step's restarts leave pods injected as the next step would
// find them.
package sim
