package sim

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/revkit/revkit/internal/kubeutil"
	"github.com/revkit/revkit/internal/mesh"
)

// writeWorkload stores a write to a Deployment, StatefulSet or DaemonSet
// as the apiserver does (defaults, a new generation when the spec changed,
// the status kept), then plays its controller. It returns the object as
// the apiserver returns it, before the controller acted.
func (s *Simulation) writeWorkload(a k8stesting.Action) (runtime.Object, error) {
	gvr, ns := a.GetResource(), a.GetNamespace()
	var old runtime.Object
	if a.GetVerb() != "create" {
		cur, err := s.tracker.Get(gvr, ns, actionName(a))
		if err != nil {
			return nil, err
		}
		old = cur
	}
	_, obj, err := s.store(a)
	if err != nil {
		return nil, err
	}
	m, err := apimeta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	var oldMeta metav1.Object
	if old != nil {
		oldMeta, _ = apimeta.Accessor(old)
	}
	s.prepare(m)
	var (
		specChanged bool
		sync        func() error
	)
	switch w := obj.(type) {
	case *appsv1.Deployment:
		defaultDeployment(w)
		if o, ok := old.(*appsv1.Deployment); ok {
			specChanged, w.Status = !equality.Semantic.DeepEqual(o.Spec, w.Spec), o.Status
		} else {
			w.Status = appsv1.DeploymentStatus{}
		}
		sync = func() error { return s.syncDeployment(w.DeepCopy()) }
	case *appsv1.StatefulSet:
		defaultStatefulSet(w)
		if o, ok := old.(*appsv1.StatefulSet); ok {
			specChanged, w.Status = !equality.Semantic.DeepEqual(o.Spec, w.Spec), o.Status
		} else {
			w.Status = appsv1.StatefulSetStatus{}
		}
		sync = func() error { return s.syncStatefulSet(w.DeepCopy()) }
	case *appsv1.DaemonSet:
		defaultDaemonSet(w)
		if o, ok := old.(*appsv1.DaemonSet); ok {
			specChanged, w.Status = !equality.Semantic.DeepEqual(o.Spec, w.Spec), o.Status
		} else {
			w.Status = appsv1.DaemonSetStatus{}
		}
		sync = func() error { return s.syncDaemonSet(w.DeepCopy()) }
	default:
		return obj, nil
	}
	if oldMeta != nil {
		m.SetUID(oldMeta.GetUID())
		m.SetGeneration(oldMeta.GetGeneration())
		if specChanged {
			m.SetGeneration(oldMeta.GetGeneration() + 1)
		}
	}
	if err := s.tracker.Update(gvr, obj, ns); err != nil {
		return nil, err
	}
	written := obj.DeepCopyObject()
	return written, sync()
}

// deleteWorkload deletes a workload and, as the garbage collector does,
// its ReplicaSets and pods.
func (s *Simulation) deleteWorkload(a k8stesting.Action) (runtime.Object, error) {
	gvr, ns := a.GetResource(), a.GetNamespace()
	cur, err := s.tracker.Get(gvr, ns, actionName(a))
	if err != nil {
		return nil, err
	}
	m, err := apimeta.Accessor(cur)
	if err != nil {
		return nil, err
	}
	_, obj, err := s.store(a)
	if err != nil {
		return nil, err
	}
	owners := map[types.UID]bool{m.GetUID(): true}
	if gvr.Resource == "deployments" {
		rss, err := s.ownedReplicaSets(ns, m.GetUID())
		if err != nil {
			return nil, err
		}
		for _, rs := range rss {
			owners[rs.UID] = true
			if err := s.tracker.Delete(rsGVR, ns, rs.Name); err != nil && !notFound(err) {
				return nil, err
			}
		}
	}
	pods, err := s.activePods(ns)
	if err != nil {
		return nil, err
	}
	for _, p := range pods {
		if ref := metav1.GetControllerOfNoCopy(p); ref != nil && owners[ref.UID] {
			if err := s.tracker.Delete(podsGVR, ns, p.Name); err != nil && !notFound(err) {
				return nil, err
			}
		}
	}
	return obj, nil
}

func actionName(a k8stesting.Action) string {
	switch act := a.(type) {
	case k8stesting.CreateActionImpl:
		if m, err := apimeta.Accessor(act.GetObject()); err == nil {
			return m.GetName()
		}
	case k8stesting.UpdateActionImpl:
		if m, err := apimeta.Accessor(act.GetObject()); err == nil {
			return m.GetName()
		}
	case k8stesting.PatchActionImpl:
		return act.GetName()
	case k8stesting.DeleteActionImpl:
		return act.GetName()
	}
	return ""
}

// The apiserver's defaults for the fields the controllers read.

func defaultDeployment(d *appsv1.Deployment) {
	if d.Spec.Replicas == nil {
		d.Spec.Replicas = ptr.To[int32](1)
	}
	if d.Spec.Strategy.Type == "" {
		d.Spec.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if d.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if d.Spec.Strategy.RollingUpdate == nil {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		ru := d.Spec.Strategy.RollingUpdate
		if ru.MaxSurge == nil {
			ru.MaxSurge = ptr.To(intstr.FromString("25%"))
		}
		if ru.MaxUnavailable == nil {
			ru.MaxUnavailable = ptr.To(intstr.FromString("25%"))
		}
	}
	if d.Spec.ProgressDeadlineSeconds == nil {
		d.Spec.ProgressDeadlineSeconds = ptr.To[int32](600)
	}
	if d.Spec.RevisionHistoryLimit == nil {
		d.Spec.RevisionHistoryLimit = ptr.To[int32](10)
	}
}

func defaultStatefulSet(st *appsv1.StatefulSet) {
	if st.Spec.Replicas == nil {
		st.Spec.Replicas = ptr.To[int32](1)
	}
	if st.Spec.UpdateStrategy.Type == "" {
		st.Spec.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
	}
	if st.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType && st.Spec.UpdateStrategy.RollingUpdate == nil {
		st.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](0)}
	}
	if st.Spec.PodManagementPolicy == "" {
		st.Spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	}
}

func defaultDaemonSet(d *appsv1.DaemonSet) {
	if d.Spec.UpdateStrategy.Type == "" {
		d.Spec.UpdateStrategy.Type = appsv1.RollingUpdateDaemonSetStrategyType
	}
	if d.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		if d.Spec.UpdateStrategy.RollingUpdate == nil {
			d.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
		}
		ru := d.Spec.UpdateStrategy.RollingUpdate
		if ru.MaxUnavailable == nil {
			ru.MaxUnavailable = ptr.To(intstr.FromInt32(1))
		}
		if ru.MaxSurge == nil {
			ru.MaxSurge = ptr.To(intstr.FromInt32(0))
		}
	}
}

// rolloutFails reports whether the pods of template hash of the workload
// key never become ready, turning a pending FailRollout into that when
// the template is new (no pod of the workload has it yet).
func (s *Simulation) rolloutFails(key, hash string, templateIsNew bool) bool {
	if templateIsNew && s.failNext[key] {
		delete(s.failNext, key)
		s.failing[key] = hash
	}
	return s.failing[key] == hash
}

// newReplicaSet creates the ReplicaSet of a Deployment's template.
func (s *Simulation) newReplicaSet(d *appsv1.Deployment, hash string) (*appsv1.ReplicaSet, error) {
	tmpl := *d.Spec.Template.DeepCopy()
	tmpl.Labels = labels.Merge(tmpl.Labels, map[string]string{appsv1.DefaultDeploymentUniqueLabelKey: hash})
	sel := d.Spec.Selector.DeepCopy()
	if sel == nil {
		sel = &metav1.LabelSelector{}
	}
	sel.MatchLabels = labels.Merge(sel.MatchLabels, map[string]string{appsv1.DefaultDeploymentUniqueLabelKey: hash})
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: d.Name + "-" + hash, Namespace: d.Namespace, Labels: tmpl.Labels,
			Annotations: map[string]string{"deployment.kubernetes.io/revision": strconv.FormatInt(d.Generation, 10)}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](0), Selector: sel, Template: tmpl},
	}
	own(rs, d, "Deployment")
	s.prepare(rs)
	if err := s.tracker.Create(rsGVR, rs, rs.Namespace); err != nil {
		return nil, err
	}
	return rs, nil
}

func (s *Simulation) ownedReplicaSets(ns string, owner types.UID) ([]*appsv1.ReplicaSet, error) {
	list, err := s.tracker.List(rsGVR, kindOf(rsGVR), ns)
	if err != nil {
		return nil, err
	}
	var out []*appsv1.ReplicaSet
	items := list.(*appsv1.ReplicaSetList).Items
	for i := range items {
		if ownedBy(&items[i], owner) {
			out = append(out, &items[i])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// activePods lists the namespace's pods that are not finished, by name.
func (s *Simulation) activePods(ns string) ([]*corev1.Pod, error) {
	list, err := s.tracker.List(podsGVR, kindOf(podsGVR), ns)
	if err != nil {
		return nil, err
	}
	var out []*corev1.Pod
	items := list.(*corev1.PodList).Items
	for i := range items {
		if mesh.PodActive(&items[i]) {
			out = append(out, &items[i])
		}
	}
	sortPods(out)
	return out, nil
}

func podsOwnedBy(pods []*corev1.Pod, owner types.UID) []*corev1.Pod {
	var out []*corev1.Pod
	for _, p := range pods {
		if ownedBy(p, owner) {
			out = append(out, p)
		}
	}
	return out
}

func countReady(pods []*corev1.Pod) int32 {
	var n int32
	for _, p := range pods {
		if kubeutil.PodReady(p) {
			n++
		}
	}
	return n
}

// notReadyFirst orders pods as controllers pick them for removal.
func notReadyFirst(pods []*corev1.Pod) {
	sort.SliceStable(pods, func(i, j int) bool { return !kubeutil.PodReady(pods[i]) && kubeutil.PodReady(pods[j]) })
}

func (s *Simulation) deletePod(p *corev1.Pod) error {
	if err := s.tracker.Delete(podsGVR, p.Namespace, p.Name); err != nil && !notFound(err) {
		return err
	}
	return nil
}

// podName names the next pod of owner (a ReplicaSet or DaemonSet) as
// "<owner>-<5 characters>", derived from the owner and a count, so that
// names are the same in every run.
func (s *Simulation) podName(owner metav1.Object) string {
	key := owner.GetNamespace() + "/" + owner.GetName()
	s.podSeq[key]++
	h := fnv.New64a()
	_, _ = fmt.Fprintf(h, "%s/%d", key, s.podSeq[key])
	return owner.GetName() + "-" + encode(h.Sum64(), 5)
}

// scaled resolves a surge or unavailability limit against a replica count.
func scaled(v *intstr.IntOrString, total int32, roundUp bool) int32 {
	if v == nil {
		return 0
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(v, int(total), roundUp)
	if err != nil || n < 0 {
		return 0
	}
	return int32(n)
}

// syncDeployment plays the Deployment controller: a ReplicaSet per pod
// template, the new one scaled up and the old ones down within the
// strategy's limits, until nothing more can be done, then the status.
func (s *Simulation) syncDeployment(d *appsv1.Deployment) error {
	key := d.Namespace + "/" + d.Name
	hash := templateHash(&d.Spec.Template)
	rss, err := s.ownedReplicaSets(d.Namespace, d.UID)
	if err != nil {
		return err
	}
	var newRS *appsv1.ReplicaSet
	var oldRSs []*appsv1.ReplicaSet
	for _, rs := range rss {
		if rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == hash {
			newRS = rs
		} else {
			oldRSs = append(oldRSs, rs)
		}
	}
	all, err := s.activePods(d.Namespace)
	if err != nil {
		return err
	}
	var newPods, oldPods []*corev1.Pod
	if newRS != nil {
		newPods = podsOwnedBy(all, newRS.UID)
	}
	for _, rs := range oldRSs {
		oldPods = append(oldPods, podsOwnedBy(all, rs.UID)...)
	}
	if d.Spec.Paused {
		// A paused Deployment does not roll out; its controller still
		// observes the generation.
		return s.deploymentStatus(d, newRS, newPods, oldPods, nil)
	}
	if newRS == nil {
		if newRS, err = s.newReplicaSet(d, hash); err != nil {
			return err
		}
	}
	fails := s.rolloutFails(key, hash, len(newPods) == 0)
	desired := *d.Spec.Replicas
	var refused error
	create := func(n int32) (bool, error) {
		created := false
		for ; n > 0 && refused == nil; n-- {
			p, err := s.startPod(newRS, "ReplicaSet", &newRS.Spec.Template, s.podName(newRS), nil, "", fails)
			if err != nil {
				if isInternal(err) {
					return created, err
				}
				refused = err
				break
			}
			newPods, created = append(newPods, p), true
		}
		return created, nil
	}
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		for _, p := range oldPods {
			if err := s.deletePod(p); err != nil {
				return err
			}
		}
		oldPods = nil
		if _, err := create(desired - int32(len(newPods))); err != nil {
			return err
		}
	} else {
		ru := d.Spec.Strategy.RollingUpdate
		surge, unavailable := scaled(ru.MaxSurge, desired, true), scaled(ru.MaxUnavailable, desired, false)
		if surge == 0 && unavailable == 0 {
			unavailable = 1
		}
		for {
			changed, err := create(min(desired-int32(len(newPods)), desired+surge-int32(len(newPods)+len(oldPods))))
			if err != nil {
				return err
			}
			// Old pods that are not ready go first and cost no
			// availability; ready ones only while enough stay available.
			notReadyFirst(oldPods)
			budget := countReady(newPods) + countReady(oldPods) - (desired - unavailable)
			kept := oldPods[:0]
			for _, p := range oldPods {
				if kubeutil.PodReady(p) {
					if budget <= 0 {
						kept = append(kept, p)
						continue
					}
					budget--
				}
				if err := s.deletePod(p); err != nil {
					return err
				}
				changed = true
			}
			oldPods = kept
			if extra := int32(len(newPods)) - desired; extra > 0 && len(oldPods) == 0 {
				notReadyFirst(newPods)
				for _, p := range newPods[:extra] {
					if err := s.deletePod(p); err != nil {
						return err
					}
				}
				newPods, changed = newPods[extra:], true
			}
			if !changed {
				break
			}
		}
	}
	newRS.Spec.Replicas = ptr.To(int32(len(newPods)))
	if err := s.replicaSetStatus(newRS, newPods); err != nil {
		return err
	}
	for _, rs := range oldRSs {
		mine := podsOwnedBy(oldPods, rs.UID)
		rs.Spec.Replicas = ptr.To(int32(len(mine)))
		if err := s.replicaSetStatus(rs, mine); err != nil {
			return err
		}
	}
	return s.deploymentStatus(d, newRS, newPods, oldPods, refused)
}

func (s *Simulation) replicaSetStatus(rs *appsv1.ReplicaSet, pods []*corev1.Pod) error {
	n, ready := int32(len(pods)), countReady(pods)
	rs.Status = appsv1.ReplicaSetStatus{Replicas: n, FullyLabeledReplicas: n, ReadyReplicas: ready, AvailableReplicas: ready,
		ObservedGeneration: rs.Generation}
	return s.tracker.Update(rsGVR, rs, rs.Namespace)
}

// deploymentStatus writes the status the Deployment controller reports.
// The simulation does all it can in one go, so a rollout that is not
// complete now is stuck: past its progress deadline, unless
// HoldStuckRollouts.
func (s *Simulation) deploymentStatus(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, newPods, oldPods []*corev1.Pod, refused error) error {
	desired := *d.Spec.Replicas
	unavailable := int32(0)
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil && d.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType {
		unavailable = scaled(ru.MaxUnavailable, desired, false)
	}
	total := int32(len(newPods) + len(oldPods))
	available := countReady(newPods) + countReady(oldPods)
	st := &d.Status
	st.ObservedGeneration = d.Generation
	st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas = total, int32(len(newPods)), available, available
	st.UnavailableReplicas = max(0, desired-available)
	now := metav1.NewTime(s.opts.Now())
	if available >= desired-unavailable {
		setDeploymentCondition(st, appsv1.DeploymentAvailable, corev1.ConditionTrue, "MinimumReplicasAvailable", "Deployment has minimum availability.", now)
	} else {
		setDeploymentCondition(st, appsv1.DeploymentAvailable, corev1.ConditionFalse, "MinimumReplicasUnavailable", "Deployment does not have minimum availability.", now)
	}
	rsName := ""
	if newRS != nil {
		rsName = newRS.Name
	}
	complete := newRS != nil && int32(len(newPods)) == desired && total == desired && available == desired
	switch {
	case d.Spec.Paused:
		setDeploymentCondition(st, appsv1.DeploymentProgressing, corev1.ConditionUnknown, "DeploymentPaused", "Deployment is paused", now)
	case complete:
		setDeploymentCondition(st, appsv1.DeploymentProgressing, corev1.ConditionTrue, "NewReplicaSetAvailable",
			fmt.Sprintf("ReplicaSet %q has successfully progressed.", rsName), now)
	case s.opts.HoldStuckRollouts:
		setDeploymentCondition(st, appsv1.DeploymentProgressing, corev1.ConditionTrue, "ReplicaSetUpdated",
			fmt.Sprintf("ReplicaSet %q is progressing.", rsName), now)
	default:
		setDeploymentCondition(st, appsv1.DeploymentProgressing, corev1.ConditionFalse, "ProgressDeadlineExceeded",
			fmt.Sprintf("ReplicaSet %q has timed out progressing.", rsName), now)
	}
	if refused != nil {
		setDeploymentCondition(st, appsv1.DeploymentReplicaFailure, corev1.ConditionTrue, "FailedCreate", refused.Error(), now)
	} else {
		for i, c := range st.Conditions {
			if c.Type == appsv1.DeploymentReplicaFailure {
				st.Conditions = append(st.Conditions[:i], st.Conditions[i+1:]...)
				break
			}
		}
	}
	return s.tracker.Update(deployGVR, d, d.Namespace)
}

func setDeploymentCondition(st *appsv1.DeploymentStatus, t appsv1.DeploymentConditionType, status corev1.ConditionStatus, reason, msg string, now metav1.Time) {
	c := appsv1.DeploymentCondition{Type: t, Status: status, Reason: reason, Message: msg, LastUpdateTime: now, LastTransitionTime: now}
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			if st.Conditions[i].Status == status {
				c.LastTransitionTime = st.Conditions[i].LastTransitionTime
			}
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}

// syncStatefulSet plays the StatefulSet controller: pods named by ordinal,
// created in order; with RollingUpdate, replaced from the highest ordinal
// down to the partition, one at a time, each waited for until ready (the
// rollout stops at a pod that does not become ready). Unlike the real
// controller, which then waits for someone to delete the broken pod
// (kubernetes#67250), a pod that is not ready and not on the update
// revision is replaced by the next rollout. OnDelete replaces nothing.
func (s *Simulation) syncStatefulSet(st *appsv1.StatefulSet) error {
	key := st.Namespace + "/" + st.Name
	updateRev := st.Name + "-" + templateHash(&st.Spec.Template)
	all, err := s.activePods(st.Namespace)
	if err != nil {
		return err
	}
	byOrd := map[int]*corev1.Pod{}
	templateIsNew := true
	for _, p := range podsOwnedBy(all, st.UID) {
		if i := strings.LastIndexByte(p.Name, '-'); i >= 0 {
			if ord, err := strconv.Atoi(p.Name[i+1:]); err == nil {
				byOrd[ord] = p
			}
		}
		if p.Labels[appsv1.ControllerRevisionHashLabelKey] == updateRev {
			templateIsNew = false
		}
	}
	fails := s.rolloutFails(key, updateRev, templateIsNew)
	create := func(ord int) (*corev1.Pod, error) {
		name := fmt.Sprintf("%s-%d", st.Name, ord)
		return s.startPod(st, "StatefulSet", &st.Spec.Template, name,
			map[string]string{appsv1.ControllerRevisionHashLabelKey: updateRev, appsv1.StatefulSetPodNameLabel: name}, "", fails)
	}
	n := int(*st.Spec.Replicas)
	ordered := st.Spec.PodManagementPolicy != appsv1.ParallelPodManagement
	blocked := false
	for ord := 0; ord < n && !blocked; ord++ {
		p := byOrd[ord]
		if p == nil {
			if p, err = create(ord); err != nil {
				if isInternal(err) {
					return err
				}
				break
			}
			byOrd[ord] = p
		}
		// A pod that is not ready holds back the next ordinal, unless it is
		// of an older revision: the rolling update below replaces it.
		blocked = ordered && !kubeutil.PodReady(p) && p.Labels[appsv1.ControllerRevisionHashLabelKey] == updateRev
	}
	var extra []int
	for ord := range byOrd {
		if ord >= n {
			extra = append(extra, ord)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(extra)))
	for _, ord := range extra {
		if err := s.deletePod(byOrd[ord]); err != nil {
			return err
		}
		delete(byOrd, ord)
	}
	if ru := st.Spec.UpdateStrategy.RollingUpdate; !blocked && st.Spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType {
		partition := 0
		if ru != nil && ru.Partition != nil {
			partition = int(*ru.Partition)
		}
		for ord := n - 1; ord >= partition; ord-- {
			p := byOrd[ord]
			if p == nil {
				break
			}
			if p.Labels[appsv1.ControllerRevisionHashLabelKey] == updateRev {
				if !kubeutil.PodReady(p) {
					break
				}
				continue
			}
			if err := s.deletePod(p); err != nil {
				return err
			}
			delete(byOrd, ord)
			np, err := create(ord)
			if err != nil {
				if isInternal(err) {
					return err
				}
				break
			}
			byOrd[ord] = np
			if !kubeutil.PodReady(np) {
				break
			}
		}
	}
	var pods []*corev1.Pod
	for _, p := range byOrd {
		pods = append(pods, p)
	}
	ready := countReady(pods)
	var updated int32
	for _, p := range pods {
		if p.Labels[appsv1.ControllerRevisionHashLabelKey] == updateRev {
			updated++
		}
	}
	stt := &st.Status
	if stt.CurrentRevision == "" || (int(updated) == n && int(ready) == n) {
		stt.CurrentRevision = updateRev
	}
	var current int32
	for _, p := range pods {
		if p.Labels[appsv1.ControllerRevisionHashLabelKey] == stt.CurrentRevision {
			current++
		}
	}
	stt.ObservedGeneration, stt.UpdateRevision = st.Generation, updateRev
	stt.Replicas, stt.ReadyReplicas, stt.AvailableReplicas = int32(len(pods)), ready, ready
	stt.UpdatedReplicas, stt.CurrentReplicas = updated, current
	return s.tracker.Update(stsGVR, st, st.Namespace)
}

// syncDaemonSet plays the DaemonSet controller: one pod per node; with
// RollingUpdate, old pods replaced node by node while no more than
// maxUnavailable nodes lack a ready pod. OnDelete replaces nothing.
func (s *Simulation) syncDaemonSet(d *appsv1.DaemonSet) error {
	key := d.Namespace + "/" + d.Name
	hash := templateHash(&d.Spec.Template)
	nodes := int(d.Status.DesiredNumberScheduled)
	if nodes == 0 {
		nodes = s.opts.Nodes
	}
	all, err := s.activePods(d.Namespace)
	if err != nil {
		return err
	}
	byNode := map[string]*corev1.Pod{}
	templateIsNew := true
	var extra []*corev1.Pod
	for _, p := range podsOwnedBy(all, d.UID) {
		if p.Labels[appsv1.ControllerRevisionHashLabelKey] == hash {
			templateIsNew = false
		}
		if byNode[p.Spec.NodeName] != nil || !isSimNode(p.Spec.NodeName, nodes) {
			extra = append(extra, p)
			continue
		}
		byNode[p.Spec.NodeName] = p
	}
	for _, p := range extra {
		if err := s.deletePod(p); err != nil {
			return err
		}
	}
	fails := s.rolloutFails(key, hash, templateIsNew)
	create := func(node string) (*corev1.Pod, error) {
		return s.startPod(d, "DaemonSet", &d.Spec.Template, s.podName(d),
			map[string]string{appsv1.ControllerRevisionHashLabelKey: hash}, node, fails)
	}
	for i := 0; i < nodes; i++ {
		if node := nodeName(i); byNode[node] == nil {
			p, err := create(node)
			if err != nil {
				if isInternal(err) {
					return err
				}
				break
			}
			byNode[node] = p
		}
	}
	if ru := d.Spec.UpdateStrategy.RollingUpdate; d.Spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		maxUnavailable := int32(1)
		if ru != nil {
			maxUnavailable = scaled(ru.MaxUnavailable, int32(nodes), true)
			if maxUnavailable == 0 && scaled(ru.MaxSurge, int32(nodes), true) == 0 {
				maxUnavailable = 1
			}
		}
		var unavailable int32
		for i := 0; i < nodes; i++ {
			if p := byNode[nodeName(i)]; p == nil || !kubeutil.PodReady(p) {
				unavailable++
			}
		}
		for i := 0; i < nodes; i++ {
			node := nodeName(i)
			p := byNode[node]
			if p == nil || p.Labels[appsv1.ControllerRevisionHashLabelKey] == hash {
				continue
			}
			wasReady := kubeutil.PodReady(p)
			if wasReady && unavailable >= maxUnavailable {
				break
			}
			if err := s.deletePod(p); err != nil {
				return err
			}
			delete(byNode, node)
			if wasReady {
				unavailable++
			}
			np, err := create(node)
			if err != nil {
				if isInternal(err) {
					return err
				}
				break
			}
			byNode[node] = np
			if kubeutil.PodReady(np) {
				unavailable--
			}
		}
	}
	var pods []*corev1.Pod
	var updated int32
	for _, p := range byNode {
		pods = append(pods, p)
		if p.Labels[appsv1.ControllerRevisionHashLabelKey] == hash {
			updated++
		}
	}
	ready := countReady(pods)
	d.Status = appsv1.DaemonSetStatus{ObservedGeneration: d.Generation, DesiredNumberScheduled: int32(nodes),
		CurrentNumberScheduled: int32(len(pods)), UpdatedNumberScheduled: updated, NumberReady: ready,
		NumberAvailable: ready, NumberUnavailable: int32(nodes) - ready, Conditions: d.Status.Conditions}
	return s.tracker.Update(dsGVR, d, d.Namespace)
}

func isSimNode(name string, nodes int) bool {
	for i := 0; i < nodes; i++ {
		if name == nodeName(i) {
			return true
		}
	}
	return false
}
