// Package pythonmultiprocessing_test runs the conformance kit against the python-multiprocessing
// plugin, written in Python, as the host starts it.
package pythonmultiprocessing_test

import (
	"testing"

	"github.com/wslab/wslab/internal/conformance"
)

func TestConformance(t *testing.T) {
	conformance.RunPython(t, "./python-multiprocessing", conformance.Options{Settings: map[string]string{"other.multiprocessing_processes": "2"}})
}
