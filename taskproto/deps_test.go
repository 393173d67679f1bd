package taskproto_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The contract's types pull no RPC machinery into the packages that only
// speak about tasks: the workloads, the WebSocket protocol, the client.
// The client may have protobuf's runtime, which Prometheus's data model
// (its --metrics reading) is written in; the workloads and the protocol
// may not.
func TestTypesPullNoRPC(t *testing.T) {
	for _, c := range []struct {
		pkgs   []string
		banned []string
	}{
		{[]string{"../client"}, []string{"google.golang.org/grpc", "github.com/hashicorp/go-plugin"}},
		{[]string{"../tasks", "../internal/wsproto"}, []string{"google.golang.org/grpc", "github.com/hashicorp/go-plugin", "google.golang.org/protobuf"}},
	} {
		out, err := exec.Command("go", append([]string{"list", "-deps"}, c.pkgs...)...).CombinedOutput()
		if err != nil {
			t.Skipf("go list: %v\n%s", err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, banned := range c.banned {
				if strings.HasPrefix(dep, banned) {
					t.Errorf("%s is a dependency of %v", dep, c.pkgs)
				}
			}
		}
	}
}

// The SDK sits at the bottom: what a strategy author imports (taskproto
// and its subpackages, the tasks) pulls in nothing of the host's, so that
// the host and the strategies depend on it and never the other way.
func TestSDKImportsNoInternal(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...", "../tasks").CombinedOutput()
	if err != nil {
		t.Skipf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/wslab/wslab/") && strings.Contains(dep+"/", "/internal/") {
			t.Errorf("%s is a dependency of the SDK", dep)
		}
	}
}
