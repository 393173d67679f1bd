// Package docs holds the tests that keep the documentation true to the
// code: every Go and Python snippet in README.md and docs/ is an excerpt of
// code that is built and tested.
package docs
