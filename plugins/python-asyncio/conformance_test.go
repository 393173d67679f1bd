// Package pythonasyncio_test runs the conformance kit against the python-asyncio
// plugin, written in Python, as the host starts it.
package pythonasyncio_test

import (
	"testing"

	"github.com/wslab/wslab/internal/conformance"
)

func TestConformance(t *testing.T) {
	conformance.RunPython(t, "./python-asyncio", conformance.Options{})
}
