//go:build linux

package host

import (
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// CannotRun reads what a plugin needs from its first bytes: a script's
// interpreter (as the kernel runs it, the rest of the line one argument),
// a Python interpreter's packages, a binary's architecture.
func TestCannotRun(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	foreign := elf.EM_AARCH64
	if runtime.GOARCH == "arm64" {
		foreign = elf.EM_X86_64
	}
	binary.LittleEndian.PutUint16(bin[18:20], uint16(foreign))
	cases := []struct{ name, path, want string }{
		{"this binary", self, ""},
		{"another architecture", write("foreign", string(bin)),
			"built for " + strings.ToLower(strings.TrimPrefix(foreign.String(), "EM_")) + ", this machine is " + runtime.GOARCH},
		{"windows", write("win", "MZ\x90\x00"), "built for Windows"},
		{"shell script", write("sh", "#!/bin/sh\nexit 0\n"), ""},
		{"no interpreter", write("gone", "#!/nonexistent/python3 -IB\n"), "needs the interpreter /nonexistent/python3, which is not here"},
		{"env, no command", write("envgone", "#!/usr/bin/env no-such-python-here\n"), "needs no-such-python-here, which is not on the PATH"},
		{"missing file", filepath.Join(dir, "absent"), "no such file"},
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		cases = append(cases, struct{ name, path, want string }{
			"python without its packages", write("py", "#!/usr/bin/python3 -IBS\n"),
			"needs grpcio, protobuf and cryptography: run make python-deps"})
	}
	for _, c := range cases {
		got := CannotRun(c.path)
		if c.want == "" && got != "" || !strings.Contains(got, c.want) {
			t.Errorf("%s: CannotRun = %q, want %q", c.name, got, c.want)
		}
	}
}
