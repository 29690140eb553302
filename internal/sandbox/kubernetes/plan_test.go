package kubernetes

import (
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vizops/viz-operator/internal/sandbox"
)

var testSettings = Settings{Namespace: "ns", PoolName: "pool", PoolUID: "0123abcd-0000", Template: Template{Image: "img"}}

// pod builds a Pod of slot in a state: "starting", "ready", "busy", "failed" (cannot
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

func TestDecide(t *testing.T) {
	live := func(View) bool { return true }
	lost := func(View) bool { return false }
	type want struct {
		Create []int
		Delete []string // pod names
	}
	for name, tc := range map[string]struct {
		pods []corev1.Pod
		want Want
		out  want
	}{
		"empty pool warms minReady": {
			want: Want{MinReady: 2, MaxSandboxes: 5, Live: live},
			out:  want{Create: []int{0, 1}},
		},
		"starting Pods count: nothing more is made": {
			pods: []corev1.Pod{pod(0, "starting", false), pod(1, "starting", false)},
			want: Want{MinReady: 2, MaxSandboxes: 5, Live: live},
		},
		"a terminating Pod holds its slot, so it is never replaced twice": {
			pods: []corev1.Pod{pod(0, "terminating", false), pod(1, "ready", false)},
			want: Want{MinReady: 2, MaxSandboxes: 5, Live: live},
			out:  want{Create: []int{2}},
		},
		"never more than maxSandboxes, however many wait": {
			pods: []corev1.Pod{pod(0, "busy", false), pod(1, "busy", false)},
			want: Want{MinReady: 1, MaxSandboxes: 3, Waiting: 10, Live: live},
			out:  want{Create: []int{2}},
		},
		"all slots held, busy: nothing": {
			pods: []corev1.Pod{pod(0, "busy", false), pod(1, "busy", false)},
			want: Want{MinReady: 2, MaxSandboxes: 2, Waiting: 3, Live: live},
		},
		"waiting claims get a Pod each, beyond minReady": {
			want: Want{MinReady: 0, MaxSandboxes: 4, Waiting: 2, Live: live},
			out:  want{Create: []int{0, 1}},
		},
		"a busy Pod whose job was lost is deleted": {
			pods: []corev1.Pod{pod(0, "busy", false), pod(1, "ready", false)},
			want: Want{MinReady: 1, MaxSandboxes: 2, Live: lost},
			out:  want{Delete: []string{"pool-0123a-0"}},
		},
		"template change: warm stale Pods go, a busy stale one stays": {
			pods: []corev1.Pod{pod(0, "busy", true), pod(1, "ready", true), pod(2, "starting", true)},
			want: Want{MinReady: 1, MaxSandboxes: 4, Live: live},
			out:  want{Create: []int{3}, Delete: []string{"pool-0123a-1", "pool-0123a-2"}},
		},
		"an exited agent's Pod is deleted": {
			pods: []corev1.Pod{pod(0, "exited", false)},
			want: Want{MinReady: 1, MaxSandboxes: 2, Live: live},
			out:  want{Create: []int{1}, Delete: []string{"pool-0123a-0"}},
		},
		"a Pod that cannot start is kept and reported, not re-made in a loop": {
			pods: []corev1.Pod{pod(0, "failed", false)},
			want: Want{MinReady: 1, MaxSandboxes: 2, Live: live},
		},
		"minReady lowered: Starting Pods shed before Ready ones": {
			pods: []corev1.Pod{pod(0, "ready", false), pod(1, "starting", false), pod(2, "ready", false)},
			want: Want{MinReady: 1, MaxSandboxes: 3, Live: live},
			out:  want{Delete: []string{"pool-0123a-1", "pool-0123a-2"}},
		},
		"maxSandboxes lowered: Pods in slots over it go": {
			pods: []corev1.Pod{pod(0, "ready", false), pod(3, "ready", false)},
			want: Want{MinReady: 2, MaxSandboxes: 2, Live: live},
			out:  want{Create: []int{1}, Delete: []string{"pool-0123a-3"}},
		},
		"deleting: everything but live busy Pods goes, nothing is made": {
			pods: []corev1.Pod{pod(0, "busy", false), pod(1, "ready", false), pod(2, "starting", false)},
			want: Want{MinReady: 3, MaxSandboxes: 3, Deleting: true, Live: live},
			out:  want{Delete: []string{"pool-0123a-1", "pool-0123a-2"}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			plan := Decide(testSettings, Classify(tc.pods, TemplateHash(testSettings.Template)), tc.want)
			got := want{Create: plan.Create}
			for _, d := range plan.Delete {
				got.Delete = append(got.Delete, d.Pod.Name)
			}
			sort.Strings(got.Delete)
			if diff := cmp.Diff(tc.out, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	pods := []corev1.Pod{pod(0, "ready", false), pod(1, "busy", false), pod(2, "starting", false), pod(3, "failed", false), pod(4, "terminating", false)}
	st := Status(Classify(pods, TemplateHash(testSettings.Template)))
	got := []int{st.Ready, st.Busy, st.Starting, st.Total}
	if diff := cmp.Diff([]int{1, 1, 1, 4}, got); diff != "" {
		t.Errorf("ready, busy, starting, total (-want +got):\n%s", diff)
	}
	if st.Sandboxes[1].Owner != "ns/r" {
		t.Errorf("busy sandbox owner = %q, want ns/r", st.Sandboxes[1].Owner)
	}
	if want := "sandbox Pod pool-0123a-3 cannot start: ImagePullBackOff"; st.Degraded != want {
		t.Errorf("Degraded = %q, want %q", st.Degraded, want)
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

func TestSlot(t *testing.T) {
	for name, tc := range map[string]struct {
		name string
		want int
	}{
		"slot 0":           {"pool-0123a-0", 0},
		"slot 12":          {"pool-0123a-12", 12},
		"another pool":     {"other-0123a-1", -1},
		"leading zero":     {"pool-0123a-01", -1},
		"not a number":     {"pool-0123a-token", -1},
		"negative":         {"pool-0123a--1", -1},
		"the prefix alone": {"pool-0123a-", -1},
	} {
		t.Run(name, func(t *testing.T) {
			if got := Slot(testSettings, tc.name); got != tc.want {
				t.Errorf("Slot(%q) = %d, want %d", tc.name, got, tc.want)
			}
		})
	}
	long := testSettings
	long.PoolName = "a-very-long-pool-name-that-goes-on-and-on-and-on-for-ever-and-ever"
	if n := PodName(long, 999); len(n) > 63 {
		t.Errorf("PodName of a long pool is %d characters, want <= 63: %s", len(n), n)
	}
	if Slot(long, PodName(long, 7)) != 7 {
		t.Errorf("Slot does not invert PodName for a long pool name")
	}
}
