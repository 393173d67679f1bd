package main

import (
	"testing"

	"github.com/wslab/wslab/taskproto/conformance"
)

// The plugin, built as the host runs it, passes the conformance kit.
func TestConformance(t *testing.T) {
	bin, err := conformance.BuildGo(".", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	conformance.Run(t, bin, conformance.Options{})
}
