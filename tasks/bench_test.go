package tasks

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func BenchmarkCPU(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		if _, err := CPU(ctx, 1_000_000); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFib5000(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		if _, err := Fib(ctx, 5000); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIO1MB(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	const n = 1_000_000
	b.SetBytes(n)
	for b.Loop() {
		if _, err := IO(ctx, dir, "large_file.txt", n); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzFilePattern(f *testing.F) {
	for _, s := range []string{
		"large_file.txt", "../../etc/passwd", "", "/", ".", "..", "*", "a*b.txt",
		"*/..", "../*", "x/", "archive.tar.gz", "\\..\\x", ".*", "*.",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p := filePattern(in)
		if strings.Count(p, "*") != 1 {
			t.Fatalf("filePattern(%q) = %q: want exactly one '*'", in, p)
		}
		if strings.ContainsRune(p, '/') || strings.ContainsRune(p, filepath.Separator) {
			t.Fatalf("filePattern(%q) = %q contains a separator", in, p)
		}
		// The name CreateTemp would build stays directly inside dir.
		dir := filepath.FromSlash("/data/dir")
		name := filepath.Join(dir, strings.Replace(p, "*", "0123456789", 1))
		if filepath.Dir(name) != dir {
			t.Fatalf("filePattern(%q) = %q leads to %q, outside %q", in, p, name, dir)
		}
	})
}
