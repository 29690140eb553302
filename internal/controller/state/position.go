package state

import "k8s.io/apimachinery/pkg/types"

// PositionWindow is how many places at the head of a pool's queue have their exact
// position written on every change.
const PositionWindow = 10

// PositionOutdated reports whether a waiting request whose status says written must be
// rewritten now that its place is pos. Within the first PositionWindow places, on every
// change: those are the requests about to run. Further back, only when the place has
// halved or doubled since it was written, so status.queuePosition stays within a factor
// of two of the true place while a request walks down a long queue in about log2(P/10)
// writes. (Buckets of tens, hundreds, ... cost one write per bucket crossed, 9 a
// decade: every completion rewrote about one request per bucket boundary.)
func PositionOutdated(written, pos int) bool {
	switch {
	case written == pos:
		return false
	case written <= 0, pos <= PositionWindow:
		return true
	default:
		return 2*pos <= written || pos >= 2*written
	}
}

// ReportedPosition is the queue position uid's status last had written (false: none).
func (m *Memory) ReportedPosition(uid types.UID) (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.reported[uid]
	return p, ok
}

// RefreshPositions recomputes every waiting request's place and wakes (at routine
// priority) only those whose written position is outdated, so positions are written
// in batches, in proportion to the work, not once per waiter per completion.
func (m *Memory) RefreshPositions() {
	for id, pos := range m.Queue.Positions() {
		if prev, ok := m.ReportedPosition(types.UID(id)); ok && !PositionOutdated(prev, pos) {
			continue
		}
		if it, ok := m.Queue.Waiting(id); ok {
			m.exec.WakeRoutine(ParseKey(it.Key))
		}
	}
	m.changed(m.Queue)
}
