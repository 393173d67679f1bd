package strategy

import (
	"container/list"
	"sync"
)

// fifoSemaphore hands out n slots to waiters strictly in the order they
// joined. Unlike x/sync's Weighted, joining does not block, so a caller
// can join in arrival order and wait elsewhere.
type fifoSemaphore struct {
	mu      sync.Mutex
	free    int64
	waiters list.List // of chan struct{}, closed when granted a slot
}

func newFIFOSemaphore(n int64) *fifoSemaphore {
	return &fifoSemaphore{free: n}
}

// join takes a slot, or a place in line. ready is closed once the slot is
// the caller's; place identifies the caller to leave.
func (s *fifoSemaphore) join() (ready chan struct{}, place *list.Element) {
	ready = make(chan struct{})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.free > 0 && s.waiters.Len() == 0 {
		s.free--
		close(ready)
		return ready, nil
	}
	return ready, s.waiters.PushBack(ready)
}

// leave gives up a place in line. It reports false when the slot had been
// granted already: the caller then holds it and must release it.
func (s *fifoSemaphore) leave(ready chan struct{}, place *list.Element) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-ready:
		return false
	default:
		s.waiters.Remove(place)
		return true
	}
}

// release hands the slot to the first in line, or frees it.
func (s *fifoSemaphore) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if front := s.waiters.Front(); front != nil {
		s.waiters.Remove(front)
		close(front.Value.(chan struct{}))
		return
	}
	s.free++
}

// waiting is the number of callers in line.
func (s *fifoSemaphore) waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiters.Len()
}
