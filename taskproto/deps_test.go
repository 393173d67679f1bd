package taskproto_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The contract's types pull no RPC machinery into the packages that only
// speak about tasks: the workloads, the WebSocket protocol, the client.
func TestTypesPullNoRPC(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../client", "../tasks", "../internal/wsproto").CombinedOutput()
	if err != nil {
		t.Skipf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"google.golang.org/grpc", "github.com/hashicorp/go-plugin", "google.golang.org/protobuf"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("%s is a dependency of the client, the tasks or wsproto", dep)
			}
		}
	}
}
