package supervise

import (
	"fmt"
	"os/exec"
	"runtime"
	"sync"
)

// Command is a child process started by Spawn.
type Command struct {
	cmd  *exec.Cmd
	wait chan struct{}
	err  error
}

// Spawn starts cmd with the parent-death signal (where the system has one)
// and, if group, in a process group of its own. Use it, or OnSpawnerThread,
// for every child: the parent-death signal fires when the thread that
// started the child ends, so children are started from one thread that
// never ends.
func Spawn(cmd *exec.Cmd, group bool) (*Command, error) {
	Prepare(cmd, group)
	var err error
	OnSpawnerThread(func() { err = cmd.Start() })
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	c := &Command{cmd: cmd, wait: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.wait)
	}()
	return c, nil
}

// Wait waits for the process to end.
func (c *Command) Wait() error {
	<-c.wait
	return c.err
}

// Exited is closed once the process has ended.
func (c *Command) Exited() <-chan struct{} { return c.wait }

// Kill kills the process and, if it leads a process group, the group.
func (c *Command) Kill() {
	KillGroup(c.cmd)
	c.cmd.Process.Kill()
}

// PID is the process's ID.
func (c *Command) PID() int { return c.cmd.Process.Pid }

var spawner struct {
	once sync.Once
	jobs chan func()
}

// OnSpawnerThread runs fn on the one OS thread that starts child
// processes, and returns when fn has returned. That thread never exits, so
// a child's parent-death signal fires only when this process dies.
func OnSpawnerThread(fn func()) {
	spawner.once.Do(func() {
		spawner.jobs = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for job := range spawner.jobs {
				job()
			}
		}()
	})
	done := make(chan struct{})
	spawner.jobs <- func() {
		defer close(done)
		fn()
	}
	<-done
}
