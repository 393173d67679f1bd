package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/wslab/wslab/internal/wasm"
	"github.com/wslab/wslab/taskproto/conformance"
)

// The plugin, built as the host runs it with its module beside it as
// `make build` installs it, passes the conformance kit.
func TestConformance(t *testing.T) {
	dir := t.TempDir()
	bin, err := conformance.BuildGo(".", dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := wasm.BuildGuest(context.Background(), "../..", filepath.Join(dir, wasm.ModuleDir, wasm.ModuleFile)); err != nil {
		t.Fatal(err)
	}
	conformance.Run(t, bin, conformance.Options{})
}
