package strategy

import (
	"container/list"
	"context"
	"sync"
	"time"

	"github.com/wslab/wslab/taskproto"
)

// job is a task waiting for its turn.
type job struct {
	ctx      context.Context
	task     taskproto.Task
	done     taskproto.Done
	enqueued time.Time
	place    *list.Element // in the queue; nil once taken or dropped
	// stop unregisters the drop on ctx's end; set under the queue's lock
	// before the job can be taken.
	stop func() bool
}

// jobQueue is a FIFO of jobs in which a job whose context ends is dropped
// at once and answered, without a goroutine waiting for each job.
type jobQueue struct {
	mu   sync.Mutex
	jobs list.List
	// dropped answers a job whose context ended while it waited.
	dropped func(*job)
}

// pushLocked queues j; the caller holds q.mu.
func (q *jobQueue) pushLocked(j *job) {
	j.place = q.jobs.PushBack(j)
	// Runs in a goroutine of its own, after q.mu is released.
	j.stop = context.AfterFunc(j.ctx, func() { q.drop(j) })
}

// popLocked takes the oldest job; the caller holds q.mu.
func (q *jobQueue) popLocked() *job {
	front := q.jobs.Front()
	if front == nil {
		return nil
	}
	j := q.jobs.Remove(front).(*job)
	j.place = nil
	j.stop()
	return j
}

func (q *jobQueue) drop(j *job) {
	q.mu.Lock()
	if j.place == nil { // taken first
		q.mu.Unlock()
		return
	}
	q.jobs.Remove(j.place)
	j.place = nil
	q.mu.Unlock()
	q.dropped(j)
}

// drain takes every job left.
func (q *jobQueue) drain() []*job {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*job
	for j := q.popLocked(); j != nil; j = q.popLocked() {
		out = append(out, j)
	}
	return out
}

func (q *jobQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.jobs.Len()
}
