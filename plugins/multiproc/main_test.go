package main

import (
	"testing"

	"github.com/wslab/wslab/internal/conformance"
)

// The plugin, built as the host runs it, passes the conformance kit.
func TestConformance(t *testing.T) {
	conformance.RunGo(t, ".", conformance.Options{Settings: map[string]string{"other.multiprocessing_processes": "2"}})
}
