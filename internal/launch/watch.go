package launch

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"time"
)

// The host's watch of a plugin binary (bin/host --watch): it notices a
// binary replaced in the plugin directory, by a build or a copy, once the
// new one is whole.

// WatchPollInterval is how often the host looks at the running plugin's
// binary when it watches it.
const WatchPollInterval = 500 * time.Millisecond

// WatchSettle is how long a changed binary must keep the same size,
// modification time and file before it is read: a binary still being
// written (a copy in place, a linker at work) is not started half-written.
const WatchSettle = time.Second

// BinaryWatch notices when the file at a path gets content other than the
// content last accepted. Each Poll costs a stat; the file is read (for its
// SHA-256) only once it has changed and settled, so a touch that leaves the
// content as it was is read once, then ignored. It is not safe for
// concurrent use: one goroutine polls it.
type BinaryWatch struct {
	path   string
	settle time.Duration

	accepted      []byte    // SHA-256 of the content last accepted
	acceptedStamp fileStamp // the file as it was when that content was read

	seen      fileStamp // the file as the last Poll saw it
	seenSince time.Time // since when it has looked so

	hashedStamp fileStamp // the file as it was when last read
	hashed      []byte    // and its SHA-256 then
}

// fileStamp is what a Poll compares: size, modification time, and which
// file it is (a rename over the path makes another file of the same size
// and time).
type fileStamp struct{ info fs.FileInfo }

func (a fileStamp) same(b fileStamp) bool {
	if a.info == nil || b.info == nil {
		return a.info == nil && b.info == nil
	}
	return a.info.Size() == b.info.Size() && a.info.ModTime().Equal(b.info.ModTime()) && os.SameFile(a.info, b.info)
}

// NewBinaryWatch starts watching path, whose content now is the accepted
// one; settle is WatchSettle but in tests.
func NewBinaryWatch(path string, settle time.Duration) (*BinaryWatch, error) {
	w := &BinaryWatch{path: path, settle: settle}
	stamp, sum, err := w.read()
	if err != nil {
		return nil, err
	}
	w.accepted, w.acceptedStamp, w.seen = sum, stamp, stamp
	return w, nil
}

// Path is the file watched.
func (w *BinaryWatch) Path() string { return w.path }

// read hashes the file, and says what it was while it was read; an error
// when it changed meanwhile.
func (w *BinaryWatch) read() (fileStamp, []byte, error) {
	before, err := os.Stat(w.path)
	if err != nil {
		return fileStamp{}, nil, err
	}
	sum, err := FileChecksum(w.path)
	if err != nil {
		return fileStamp{}, nil, err
	}
	after, err := os.Stat(w.path)
	if err != nil {
		return fileStamp{}, nil, err
	}
	if !(fileStamp{before}).same(fileStamp{after}) {
		return fileStamp{after}, nil, errChangedWhileRead
	}
	return fileStamp{after}, sum, nil
}

var errChangedWhileRead = errors.New("changed while it was read")

// Poll looks at the file at now, and returns the SHA-256 of its content
// once that content differs from the accepted one and the file has not
// changed for the settle time; nil otherwise. A path with no file (between
// a removal and a copy) is a file not yet settled. The content it returns
// stays the one returned, at each Poll, until Accept.
func (w *BinaryWatch) Poll(now time.Time) ([]byte, error) {
	info, err := os.Stat(w.path)
	if errors.Is(err, fs.ErrNotExist) {
		info, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	stamp := fileStamp{info}
	switch {
	case !stamp.same(w.seen):
		w.seen, w.seenSince = stamp, now
		return nil, nil
	case info == nil, stamp.same(w.acceptedStamp), now.Sub(w.seenSince) < w.settle:
		return nil, nil
	}
	if !stamp.same(w.hashedStamp) {
		read, sum, err := w.read()
		if errors.Is(err, errChangedWhileRead) {
			w.seen, w.seenSince = read, now
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		w.hashedStamp, w.hashed = read, sum
	}
	if bytes.Equal(w.hashed, w.accepted) { // touched, or written back as it was
		w.acceptedStamp = w.hashedStamp
		return nil, nil
	}
	return w.hashed, nil
}

// Accept makes sum, returned by Poll, the accepted content: Poll returns
// nothing more until the file changes again. The host accepts a binary it
// switched to, and one that failed to start (it is not tried again until
// it changes).
func (w *BinaryWatch) Accept(sum []byte) {
	w.accepted = sum
	if bytes.Equal(sum, w.hashed) {
		w.acceptedStamp = w.hashedStamp
	}
}
