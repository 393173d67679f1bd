package tasks

import (
	"container/list"
	"context"
	"sync"
	"time"

	"github.com/wslab/wslab/taskproto"
)

// Job is a task waiting for its turn in a Queue.
type Job struct {
	Ctx      context.Context
	Task     taskproto.Task
	Done     taskproto.Done
	Enqueued time.Time // when it was submitted: Since(Enqueued) is its wait

	place *list.Element // in the queue; nil once taken or dropped
	// stop unregisters the drop on Ctx's end; set under the queue's lock
	// before the job can be taken.
	stop func() bool
}

// NewJob is the job of task t, submitted now.
func NewJob(ctx context.Context, t taskproto.Task, done taskproto.Done) *Job {
	return &Job{Ctx: ctx, Task: t, Done: done, Enqueued: time.Now()}
}

// Queue is a FIFO of jobs in which a job whose context ends while it waits
// is dropped at once and handed to OnDrop to answer, without a goroutine
// waiting for each job. Its mutex guards the queue and whatever its owner
// keeps beside it (free workers, a closed flag), so that deciding to queue
// a job and queueing it are one step: hold it around the Locked methods.
// It has no bound of its own; its owner refuses a job that would pass the
// bound it sets (see the pool strategy's queue_size), with overloaded.
type Queue struct {
	sync.Mutex
	// OnDrop answers a job whose context ended while it waited (with
	// Ctx.Err()); it runs without the lock. Set it before the first push.
	OnDrop func(*Job)

	jobs list.List
}

// PushLocked queues j; the caller holds the lock.
func (q *Queue) PushLocked(j *Job) {
	j.place = q.jobs.PushBack(j)
	// Runs in a goroutine of its own, after the lock is released.
	j.stop = context.AfterFunc(j.Ctx, func() { q.drop(j) })
}

// PopLocked takes the oldest job, or returns nil; the caller holds the
// lock.
func (q *Queue) PopLocked() *Job {
	front := q.jobs.Front()
	if front == nil {
		return nil
	}
	j := q.jobs.Remove(front).(*Job)
	j.place = nil
	j.stop()
	return j
}

// OldestLocked is the job that has waited longest, left in the queue, or
// nil; the caller holds the lock.
func (q *Queue) OldestLocked() *Job {
	if front := q.jobs.Front(); front != nil {
		return front.Value.(*Job)
	}
	return nil
}

// LenLocked is how many jobs wait; the caller holds the lock.
func (q *Queue) LenLocked() int { return q.jobs.Len() }

// Len is how many jobs wait.
func (q *Queue) Len() int {
	q.Lock()
	defer q.Unlock()
	return q.jobs.Len()
}

// Drain takes every job left, oldest first.
func (q *Queue) Drain() []*Job {
	q.Lock()
	defer q.Unlock()
	var out []*Job
	for j := q.PopLocked(); j != nil; j = q.PopLocked() {
		out = append(out, j)
	}
	return out
}

func (q *Queue) drop(j *Job) {
	q.Lock()
	if j.place == nil { // taken first
		q.Unlock()
		return
	}
	q.jobs.Remove(j.place)
	j.place = nil
	q.Unlock()
	q.OnDrop(j)
}
