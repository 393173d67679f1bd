//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wslab/wslab/internal/attackrecord"
	"github.com/wslab/wslab/internal/attacks"
)

// outcomeOf is attack n's reply as the ladder records it.
func outcomeOf(n int64, rep reply) attackrecord.Outcome {
	o := attackrecord.Outcome{Attack: attacks.Names[n], N: n, Code: rep.code()}
	switch {
	case rep.Error != nil:
		o.Message = rep.Error.Message
	case rep.Result != nil:
		o.Message = *rep.Result
	}
	return o
}

// withEffects adds to the outcomes what the attacks did outside their
// replies: whether the file outside the data directory still holds want,
// and how many connections the listener accepted.
func withEffects(outcomes []attackrecord.Outcome, outside, want string, accepted int) []attackrecord.Outcome {
	b, err := os.ReadFile(outside)
	file := "the file outside unchanged"
	switch {
	case err != nil:
		file = "the file outside unreadable: " + err.Error()
	case string(b) != want:
		file = fmt.Sprintf("the file outside now holds %q", b)
	}
	for i := range outcomes {
		switch outcomes[i].N {
		case attacks.WriteOutside:
			outcomes[i].Effect = file
		case attacks.Connect:
			outcomes[i].Effect = fmt.Sprintf("the listener accepted %d connections", accepted)
			if accepted == 1 {
				outcomes[i].Effect = "the listener accepted 1 connection"
			}
		}
	}
	return outcomes
}

// recordAttacks writes, once the test has ended (and so knows whether it
// passed), what the attacks did on rung, for bin/lab's ladder: in
// attackrecord.Dir of the checkout's bin/, beside the binaries the lab
// runs. A record that cannot be written fails the test.
func recordAttacks(t *testing.T, rung string, outcomes []attackrecord.Outcome) {
	t.Helper()
	r := attackrecord.Record{Rung: rung, Test: t.Name(), Recorded: time.Now().UTC(), Attacks: outcomes}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		r.Kernel = strings.TrimSpace(string(b))
	}
	r.Commit = checkoutCommit()
	dir, err := filepath.Abs(attackrecord.Dir(filepath.Join("..", "..", "bin")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Passed = !t.Failed()
		if err := attackrecord.Write(dir, r); err != nil {
			t.Errorf("record the attacks on %s: %v", rung, err)
			return
		}
		t.Logf("attacks on %s recorded in %s", rung, dir)
	})
}

// checkoutCommit is the checkout's HEAD, "+dirty" when files differ from
// it; "" without git.
func checkoutCommit() string {
	out, err := exec.Command("git", "-C", "../..", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return ""
	}
	commit := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", "../..", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		commit += "+dirty"
	}
	return commit
}
