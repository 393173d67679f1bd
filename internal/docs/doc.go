// Package docs holds the tests that keep the documentation true to the
// code: every Go snippet in README.md and docs/ is an excerpt of code that
// compiles.
package docs
