package kubernetes

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/vizops/viz-operator/internal/sandbox"
)

// Claim is what a busy Pod's AnnotationClaim holds.
type Claim struct {
	sandbox.Claimant
	// Manager is the id of the manager process that claimed the Pod.
	Manager string `json:"manager"`
	// At is when the Pod was claimed.
	At time.Time `json:"at"`
}

// ClaimOf returns a busy Pod's claim (nil when it has none or it cannot be read).
func ClaimOf(pod *corev1.Pod) *Claim {
	v, ok := pod.Annotations[AnnotationClaim]
	if !ok {
		return nil
	}
	c := &Claim{}
	if err := json.Unmarshal([]byte(v), c); err != nil {
		return nil
	}
	return c
}

// Executions is how many jobs pod has run.
func Executions(pod *corev1.Pod) int {
	n, _ := strconv.Atoi(pod.Annotations[AnnotationExecutions])
	return n
}

// markClaimed turns a copy of a warm Pod into a busy one for c. The caller writes it
// with the Pod's resourceVersion as precondition: of two claims of one Pod, one wins.
func markClaimed(pod *corev1.Pod, c Claim) {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // plain values: cannot fail
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Labels[LabelState] = StateBusy
	pod.Annotations[AnnotationClaim] = string(b)
	if _, ok := pod.Annotations[AnnotationServedNamespace]; !ok {
		pod.Annotations[AnnotationServedNamespace] = claimNamespace(c.Key)
	}
}

// claimNamespace is the namespace of a claim's "namespace/name" key.
func claimNamespace(key string) string {
	ns, _, _ := strings.Cut(key, "/")
	return ns
}

// servesNamespace reports whether pod may run a job of namespace ns: a Pod that ran
// a job of one namespace runs no other namespace's (its processes and files are
// gone with each context, but a Pod is the boundary tenants are promised).
func servesNamespace(pod *corev1.Pod, ns string) bool {
	served, ok := pod.Annotations[AnnotationServedNamespace]
	return !ok || served == ns
}

// markWarm turns a copy of a busy Pod back into a warm one after its job.
func markWarm(pod *corev1.Pod, executions int) {
	pod.Labels[LabelState] = StateWarm
	delete(pod.Annotations, AnnotationClaim)
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[AnnotationExecutions] = strconv.Itoa(executions)
}

// startFailures are container waiting reasons that mean the Pod will not start by
// itself.
var startFailures = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true,
	"CreateContainerConfigError": true, "CreateContainerError": true,
	"RunContainerError": true, "CrashLoopBackOff": true,
}

// View is one Pod as the pool sees it.
type View struct {
	Pod   *corev1.Pod
	State sandbox.State
	// Current: made from the pool's current template.
	Current bool
	// Terminating: being deleted; it still holds its slot.
	Terminating bool
	// Exited: the agent's container ended (phase Succeeded or Failed).
	Exited bool
	// Problem says why a Pod cannot start, when it cannot.
	Problem string
	Claim   *Claim
	Since   time.Time
}

// Classify sorts a pool's Pods into states (Starting, Ready, Busy, Failed).
func Classify(pods []corev1.Pod, templateHash string) []View {
	out := make([]View, 0, len(pods))
	for i := range pods {
		p := &pods[i]
		v := View{Pod: p, Current: p.Labels[LabelTemplateHash] == templateHash,
			Terminating: p.DeletionTimestamp != nil, Since: p.CreationTimestamp.Time}
		ready := podReady(p)
		switch {
		case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
			v.State, v.Exited = sandbox.StateFailed, true
			v.Problem = fmt.Sprintf("sandbox Pod %s exited (phase %s)%s", p.Name, p.Status.Phase, reasonSuffix(p.Status.Reason, p.Status.Message))
		case p.Labels[LabelState] == StateBusy:
			v.State = sandbox.StateBusy
			v.Claim = ClaimOf(p)
			if v.Claim != nil {
				v.Since = v.Claim.At
			}
		case ready:
			v.State = sandbox.StateReady
			if c := podCondition(p, corev1.PodReady); c != nil {
				v.Since = c.LastTransitionTime.Time
			}
		default:
			v.State = sandbox.StateStarting
			if msg := startProblem(p); msg != "" {
				v.State, v.Problem = sandbox.StateFailed, msg
			}
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pod.Name < out[j].Pod.Name })
	return out
}

func reasonSuffix(reason, msg string) string {
	switch {
	case reason != "" && msg != "":
		return ": " + reason + ": " + msg
	case reason != "":
		return ": " + reason
	case msg != "":
		return ": " + msg
	}
	return ""
}

func podCondition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func podReady(p *corev1.Pod) bool {
	c := podCondition(p, corev1.PodReady)
	return p.Status.Phase == corev1.PodRunning && c != nil && c.Status == corev1.ConditionTrue &&
		p.Status.PodIP != "" && p.DeletionTimestamp == nil
}

// startProblem says why a Pod cannot start, or "".
func startProblem(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && startFailures[w.Reason] {
			return fmt.Sprintf("sandbox Pod %s cannot start: %s%s", p.Name, w.Reason, reasonSuffix("", w.Message))
		}
	}
	if c := podCondition(p, corev1.PodScheduled); c != nil && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
		return fmt.Sprintf("sandbox Pod %s cannot be scheduled: %s", p.Name, c.Message)
	}
	return ""
}

// claimable reports whether v can be claimed now.
func claimable(v View) bool {
	return v.State == sandbox.StateReady && v.Current && !v.Terminating &&
		v.Pod.Labels[LabelState] == StateWarm
}

// Status is the pool status of views.
func Status(views []View) sandbox.PoolStatus {
	var st sandbox.PoolStatus
	var problems []string
	for _, v := range views {
		if v.Terminating {
			continue
		}
		st.Total++
		switch v.State {
		case sandbox.StateReady:
			st.Ready++
		case sandbox.StateBusy:
			st.Busy++
		case sandbox.StateStarting:
			st.Starting++
		}
		if v.Problem != "" {
			problems = append(problems, v.Problem)
		}
		s := sandbox.SandboxStatus{ID: v.Pod.Name, State: v.State, Since: v.Since}
		if v.Claim != nil {
			s.Owner = v.Claim.Key
		}
		st.Sandboxes = append(st.Sandboxes, s)
	}
	if len(problems) > 0 {
		st.Degraded = problems[0]
		if len(problems) > 1 {
			st.Degraded += fmt.Sprintf(" (and %d more)", len(problems)-1)
		}
	}
	return st
}

// Want is what the pool wants of its Pods.
type Want struct {
	MinReady, MaxSandboxes int
	// Waiting is how many claims wait for a sandbox now (they want one more each).
	Waiting int
	// Deleting: the pool is being deleted; every Pod goes, busy ones once their job
	// has ended.
	Deleting bool
	// Live reports whether a busy Pod's job still runs (in this manager or another).
	// A busy Pod whose job was lost (a manager restarted, the request went away) is
	// deleted.
	Live func(v View) bool
}

// Deletion is a Pod to delete and why.
type Deletion struct {
	Pod    *corev1.Pod
	Reason string
}

// Plan is what to create and delete.
type Plan struct {
	// Create are the slots to make Pods in.
	Create []int
	// Delete are Pods to delete.
	Delete []Deletion
}

// Decide plans a pool's Pods: keep minReady (plus one per waiting claim) warm Pods of
// the current template, never more than maxSandboxes Pods in all. Only slots that no
// Pod holds are filled, terminating Pods included, so a Pod the cache has not seen go
// is never replaced twice. Busy Pods are never deleted while their job runs.
func Decide(s Settings, views []View, w Want) Plan {
	var plan Plan
	held := map[int]bool{}
	total, busy := 0, 0
	var warm []View // current, not terminating, Starting or Ready
	for _, v := range views {
		if slot := Slot(s, v.Pod.Name); slot >= 0 {
			held[slot] = true
		}
		if v.Terminating {
			continue
		}
		total++
		switch {
		case v.Exited:
			plan.Delete = append(plan.Delete, Deletion{v.Pod, "its agent exited"})
		case v.State == sandbox.StateBusy:
			if w.Live == nil || !w.Live(v) {
				plan.Delete = append(plan.Delete, Deletion{v.Pod, "its job was lost (the request moved on, or the manager that ran it restarted)"})
			} else {
				busy++
			}
		case w.Deleting:
			plan.Delete = append(plan.Delete, Deletion{v.Pod, "the pool is being deleted"})
		case !v.Current:
			plan.Delete = append(plan.Delete, Deletion{v.Pod, "the pool's template changed"})
		case Slot(s, v.Pod.Name) < 0 || Slot(s, v.Pod.Name) >= w.MaxSandboxes:
			plan.Delete = append(plan.Delete, Deletion{v.Pod, "its slot is over maxSandboxes"})
		case v.State == sandbox.StateFailed:
			// Cannot start (image, scheduling): kept and reported, not re-made in a loop.
			warm = append(warm, v)
		default:
			warm = append(warm, v)
		}
	}
	if w.Deleting {
		return plan
	}
	target := min(w.MinReady+w.Waiting, max(0, w.MaxSandboxes-busy))
	if len(warm) > target {
		// Shed the excess: Starting before Ready, then the highest slots.
		sort.SliceStable(warm, func(i, j int) bool {
			if (warm[i].State == sandbox.StateReady) != (warm[j].State == sandbox.StateReady) {
				return warm[j].State == sandbox.StateReady
			}
			return Slot(s, warm[i].Pod.Name) > Slot(s, warm[j].Pod.Name)
		})
		for _, v := range warm[:len(warm)-target] {
			plan.Delete = append(plan.Delete, Deletion{v.Pod, "more warm sandboxes than wanted"})
		}
		return plan
	}
	need := target - len(warm)
	for slot := 0; slot < w.MaxSandboxes && need > 0; slot++ {
		if !held[slot] {
			plan.Create = append(plan.Create, slot)
			need--
		}
	}
	return plan
}

// BecameReady reports how long a sandbox Pod took to become ready (creation to its
// Ready condition), when the update from old to cur is that transition.
func BecameReady(old, cur *corev1.Pod) (time.Duration, bool) {
	if podReady(old) || !podReady(cur) {
		return 0, false
	}
	c := podCondition(cur, corev1.PodReady)
	d := c.LastTransitionTime.Sub(cur.CreationTimestamp.Time)
	return max(d, 0), true
}
