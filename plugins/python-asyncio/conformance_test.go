// Package pythonasyncio_test runs the conformance kit against the python-asyncio plugin,
// written in Python, as the host starts it.
package pythonasyncio_test

import (
	"testing"

	"github.com/wslab/wslab/internal/pythonplugins"
	"github.com/wslab/wslab/taskproto/conformance"
)

func TestConformance(t *testing.T) {
	if why := pythonplugins.Missing(); why != "" {
		t.Skip(why)
	}
	t.Setenv("PYTHONDONTWRITEBYTECODE", "1") // no __pycache__ in the source tree
	conformance.Run(t, "./python-asyncio", conformance.Options{})
}
