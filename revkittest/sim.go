package revkittest

import (
	"k8s.io/client-go/kubernetes/fake"

	"github.com/revkit/revkit"
	"github.com/revkit/revkit/internal/sim"
)

// Simulation plays the part of a cluster's controllers and of Istio's
// injector on a fake clientset, synchronously, inside the calls that
// change something:
//
//   - when a Deployment, StatefulSet or DaemonSet is created or its spec
//     changes (a rollout restart, a label on the pod template, a scale),
//     the apiserver's part is played (defaults, metadata.generation) and
//     then the controller's: new pods replace the old ones as the
//     workload's update strategy says (a Deployment through a ReplicaSet
//     per pod template, labelled pod-template-hash; surge and
//     unavailability limits respected), and the status moves as the
//     controller moves it (observedGeneration, replica counts, and for a
//     Deployment the Available and Progressing conditions);
//   - when a pod is created, by a controller or by a client, the injector
//     webhooks the apiserver would call for it are found from the
//     MutatingWebhookConfigurations present, with the injection model
//     revkit uses for its own answers, and the first stamps its revision's
//     sidecar (the sidecar.istio.io/status annotation, the istio-proxy
//     container, the labels Istio's injection template sets). A webhook
//     that cannot be reached (its Service is missing, or its istiod was
//     stopped with StopIstiod) refuses the pod when it fails closed, as the
//     apiserver does, and is skipped when its failure policy is Ignore;
//   - a write with dryRun=All is judged (admission, conflicts) but not
//     stored, as by the apiserver; a plain fake clientset stores it;
//   - deleting a workload deletes its ReplicaSets and pods, as the garbage
//     collector does.
//
// Its methods: Kube returns the clientset; FailRollout(namespace, name)
// makes a workload's next rollout fail (ProgressDeadlineExceeded, or held
// in progress with SimOptions.HoldStuckRollouts); CrashRevision(rev) makes
// that revision's sidecars crash (pods not ready); StopIstiod and
// StartIstiod make a revision's webhook unreachable and back; StaleProxies
// makes its proxies never acknowledge; SyncSource(rev) reports the
// simulated proxies as istiod's /debug/syncz would, for verify.Proxies;
// Close turns the clientset back into a plain fake.
//
// Nothing runs in the background: each change is complete when the call
// that made it returns, so a test is deterministic and needs no waiting.
// Faults compose: FailNth, FailAlways, ConnectionRefused and any reactor
// prepended to the clientset see a call before the simulation does. The
// pods the Cluster built are adopted when the simulation starts. The
// fake's watches deliver every change: a test that opens a watch must read
// it (the fake panics after 100 unread events). upgrade.Preview runs its
// in-memory copy of a cluster on the same simulation.
type Simulation = sim.Simulation

// SimOptions configures a Simulation: Now (stamps conditions and start
// times), HoldStuckRollouts (a stuck rollout stays in progress until its
// wait times out, instead of reporting ProgressDeadlineExceeded at once),
// IstioVersions (the proxy version of each revision; default its name) and
// Nodes (the nodes a new DaemonSet runs on; default 3). The zero value
// simulates a healthy cluster whose rollouts complete at once.
type SimOptions = sim.Options

// SyncSource is a revision's simulated istiod /debug/syncz, for
// verify.Proxies (see Simulation.SyncSource).
type SyncSource = sim.SyncSource

// Simulate builds the cluster and starts a simulation on it; see
// Simulation. Like Kube, it panics if the builder was misused.
func (c *Cluster) Simulate(opts SimOptions) *Simulation {
	s, err := Simulate(c.Kube(), opts)
	if err != nil {
		panic("revkittest: " + err.Error())
	}
	return s
}

// Simulate starts a simulation on a fake clientset, e.g. one a test built
// by hand with fake.NewClientset. It adopts the pods already there (see
// Simulation) and fails if an object cannot be read or written back.
func Simulate(kube *fake.Clientset, opts SimOptions) (*Simulation, error) {
	if kube == nil {
		return nil, &revkit.InvalidInputError{Field: "kube", Reason: "must not be nil"}
	}
	return sim.New(kube, opts)
}
