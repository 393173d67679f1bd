package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/wslab/wslab/internal/attacks"
	"github.com/wslab/wslab/internal/conformance"
	"github.com/wslab/wslab/internal/wasm"
)

// The plugin, built as the host runs it with its module beside it as
// `make build` installs it, passes the conformance kit.
func TestConformance(t *testing.T) {
	dir := t.TempDir()
	bin, err := conformance.BuildGo(".", dir)
	if err != nil {
		t.Fatal(err)
	}
	module := filepath.Join(dir, wasm.ModuleDir, wasm.ModuleFile)
	if err := wasm.BuildGuest(context.Background(), "../..", module); err != nil {
		t.Fatal(err)
	}
	// What ships holds none of the tests' exports or attacks.
	b, err := os.ReadFile(module)
	if err != nil {
		t.Fatal(err)
	}
	for _, banned := range []string{"wslab_test_", attacks.Env} {
		if bytes.Contains(b, []byte(banned)) {
			t.Errorf("the module make build ships holds %q", banned)
		}
	}
	conformance.Run(t, bin, conformance.Options{})
}
