package kubernetes

import (
	"encoding/json"
	"fmt"
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

// exited says that a Pod's agent ended (phase Succeeded or Failed), or "".
func exited(p *corev1.Pod) string {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return fmt.Sprintf("sandbox Pod %s exited (phase %s)%s", p.Name, p.Status.Phase, reasonSuffix(p.Status.Reason, p.Status.Message))
	}
	return ""
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
