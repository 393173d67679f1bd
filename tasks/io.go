package tasks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

const ioChunk = 64 << 10

// pattern is what io tasks write, chunk after chunk.
var pattern = sync.OnceValue(func() []byte {
	b := make([]byte, ioChunk)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
})

// IO writes n bytes to a new file in dir, reads them back, checks them,
// removes the file and returns the number of bytes read back. The file is
// named after largeFileName plus a unique part; only its base name is used,
// so nothing in it can lead outside dir.
func IO(ctx context.Context, dir, largeFileName string, n int64) (read int64, err error) {
	if dir == "" {
		return 0, errors.New("io task: no data directory configured")
	}
	if n < 0 {
		return 0, fmt.Errorf("io task: negative size %d", n)
	}
	f, err := os.CreateTemp(dir, filePattern(largeFileName))
	if err != nil {
		return 0, fmt.Errorf("io task: create file: %w", err)
	}
	defer func() {
		f.Close()
		if rerr := os.Remove(f.Name()); rerr != nil && err == nil {
			err = fmt.Errorf("io task: remove file: %w", rerr)
		}
	}()

	chunk := pattern()
	for left := n; left > 0; {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		w := min(left, int64(len(chunk)))
		if _, err := f.Write(chunk[:w]); err != nil {
			return 0, fmt.Errorf("io task: write: %w", err)
		}
		left -= w
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("io task: rewind: %w", err)
	}
	buf := make([]byte, ioChunk)
	for read < n {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		want := min(n-read, int64(len(buf)))
		m, err := io.ReadFull(f, buf[:want])
		if err != nil {
			return 0, fmt.Errorf("io task: read back at offset %d of %d: %w", read, n, err)
		}
		if !bytes.Equal(buf[:m], chunk[:m]) {
			return 0, fmt.Errorf("io task: read back different bytes at offset %d", read)
		}
		read += int64(m)
	}
	// The file must end where the writes did.
	if m, _ := f.Read(buf[:1]); m != 0 {
		return 0, fmt.Errorf("io task: file longer than the %d bytes written", n)
	}
	return read, nil
}

// filePattern turns large_file_name into an os.CreateTemp pattern that keeps
// its extension: "large_file.txt" becomes "large_file-*.txt".
func filePattern(largeFileName string) string {
	base := filepath.Base(largeFileName)
	if base == "." || base == string(filepath.Separator) || base == "" {
		base = "large_file.txt"
	}
	base = strings.ReplaceAll(base, "*", "")
	ext := filepath.Ext(base)
	return strings.TrimSuffix(base, ext) + "-*" + ext
}
