//go:build !unix

package host

import "errors"

// rawSockets says the host may write to and peek at its sockets directly:
// not here, where every write goes through a writer goroutine and every
// read through gorilla.
const rawSockets = false

func writeNonBlocking(uintptr, []byte) (int, error) { return 0, errors.ErrUnsupported }

func nothingToRead(uintptr) bool { return false }
