package wire

import (
	"errors"
	"fmt"
	"testing"

	"github.com/wslab/wslab/taskproto"
)

// A configuration value a strategy refuses crosses the control channel
// as a KeyError, so that the host reports the key (and exits 2).
func TestKeyErrorCrossesConfigure(t *testing.T) {
	key := taskproto.Key{Section: "multiproc", Name: "sandbox"}
	sent := ConfigureError(fmt.Errorf("build executor: %w", &taskproto.KeyError{Key: key, Problem: "strict needs seccomp"}))
	ke := KeyErrorOf(sent)
	if ke == nil || ke.Key.Section != "multiproc" || ke.Key.Name != "sandbox" || ke.Problem != "strict needs seccomp" {
		t.Fatalf("received %v from %v", ke, sent)
	}
	if KeyErrorOf(ConfigureError(errors.New("no such file"))) != nil {
		t.Error("an error that is not a key's came back as one")
	}
}
