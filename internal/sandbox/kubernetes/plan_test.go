package kubernetes

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vizops/viz-operator/internal/sandbox"
)

var testSettings = Settings{Namespace: "ns", PoolName: "pool", PoolUID: "0123abcd-0000", Template: Template{Image: "img"}}

// pod builds a Pod named PodName(testSettings, slot) in a state: "starting", "ready", "busy", "failed" (cannot
// pull its image), "exited", "terminating"; stale marks another template.
func pod(slot int, state string, stale bool) corev1.Pod {
	p := RenderPod(testSettings)(slot)
	if stale {
		p.Labels[LabelTemplateHash] = "old"
	}
	ready := func() {
		p.Status.Phase = corev1.PodRunning
		p.Status.PodIP = "10.0.0.1"
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	switch state {
	case "ready":
		ready()
	case "busy":
		ready()
		markClaimed(p, Claim{Claimant: sandbox.Claimant{Key: "ns/r", UID: "u", Attempt: 1}})
	case "failed":
		p.Status.Phase = corev1.PodPending
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}}
	case "exited":
		p.Status.Phase = corev1.PodFailed
	case "terminating":
		ready()
		p.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	}
	return *p
}

// startProblem and exited name why a Pod will not become Ready.
func TestStartProblem(t *testing.T) {
	unschedulable := pod(0, "starting", false)
	unschedulable.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: "0/1 nodes"}}
	for name, tc := range map[string]struct {
		pod  corev1.Pod
		want string
	}{
		"starting":      {pod(0, "starting", false), ""},
		"ready":         {pod(0, "ready", false), ""},
		"image":         {pod(0, "failed", false), "sandbox Pod pool-0123a-0 cannot start: ImagePullBackOff"},
		"unschedulable": {unschedulable, "sandbox Pod pool-0123a-0 cannot be scheduled: 0/1 nodes"},
		"exited":        {pod(0, "exited", false), "sandbox Pod pool-0123a-0 exited (phase Failed)"},
	} {
		t.Run(name, func(t *testing.T) {
			got := startProblem(&tc.pod) + exited(&tc.pod)
			if got != tc.want {
				t.Errorf("problem = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestBecameReady(t *testing.T) {
	starting, ready := pod(0, "starting", false), pod(0, "ready", false)
	ready.CreationTimestamp = metav1.NewTime(time.Unix(100, 0))
	ready.Status.Conditions[0].LastTransitionTime = metav1.NewTime(time.Unix(103, 0))
	if d, ok := BecameReady(&starting, &ready); !ok || d != 3*time.Second {
		t.Errorf("starting -> ready = %v, %v; want 3s, true", d, ok)
	}
	if _, ok := BecameReady(&ready, &ready); ok {
		t.Errorf("ready -> ready counted as a start")
	}
	if _, ok := BecameReady(&ready, &starting); ok {
		t.Errorf("ready -> starting counted as a start")
	}
}

// Pod names are the pool's prefix and a random suffix of the generateName alphabet,
// and short enough for a long pool name. Collisions are possible (Start draws again:
// TestStartDrawsAnotherNameOnACollision), so 1,000 draws need only be nearly all
// distinct: more than 5 repeats in 1,000 has odds below one in 10^9.
func TestNewPodName(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		n := newPodName(testSettings)
		suffix, ok := strings.CutPrefix(n, "pool-0123a-")
		if !ok || len(suffix) != 5 || strings.Trim(suffix, "bcdfghjklmnpqrstvwxz2456789") != "" {
			t.Fatalf("name %q: want the prefix and 5 characters of the generateName alphabet", n)
		}
		seen[n] = true
	}
	if len(seen) < 995 {
		t.Errorf("%d distinct names in 1,000 draws, want nearly all", len(seen))
	}
	long := testSettings
	long.PoolName = "a-very-long-pool-name-that-goes-on-and-on-and-on-for-ever-and-ever"
	if n := newPodName(long); len(n) > 63 {
		t.Errorf("the Pod name of a long pool is %d characters, want <= 63: %s", len(n), n)
	}
}
