// Command lab runs every strategy under the same client load and writes a
// report comparing them:
//
//	lab --config config.ini --out lab-report
//
// See package lab.
package main

import (
	"os"

	"github.com/wslab/wslab/lab"
)

func main() {
	if code, ok := lab.BenchChild(); ok {
		os.Exit(code)
	}
	os.Exit(lab.Main(os.Args[1:], os.Stdout, os.Stderr))
}
