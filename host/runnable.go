package host

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/wslab/wslab/internal/pythonplugins"
)

// runCheckTimeout bounds CannotRun's run of a Python plugin's interpreter.
const runCheckTimeout = 20 * time.Second

// CannotRun says why the plugin at path cannot run on this machine, as far
// as the host can tell without starting it; "" when nothing stops it. A
// script's interpreter must be here, and a Python plugin's must import
// what the Python plugins need (pythonplugins.Packages), run as the
// script's first line runs it; a binary must be built for this machine.
func CannotRun(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	head, _ := bufio.NewReader(f).Peek(512)
	if line, ok := bytes.CutPrefix(head, []byte("#!")); ok {
		line, _, _ = bytes.Cut(line, []byte("\n"))
		return interpreterMissing(string(line))
	}
	return foreignBinary(path, head)
}

// interpreterMissing checks a script's interpreter line (after "#!"). As
// the kernel does, it takes the first word as the interpreter and the rest
// of the line as one argument.
func interpreterMissing(line string) string {
	interp, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	arg = strings.TrimSpace(arg)
	command := []string{interp}
	if arg != "" {
		command = append(command, arg)
	}
	if filepath.Base(interp) == "env" && arg != "" && !strings.HasPrefix(arg, "-") {
		found, err := exec.LookPath(arg)
		if err != nil {
			return fmt.Sprintf("needs %s, which is not on the PATH", arg)
		}
		command = []string{found}
	} else if _, err := exec.LookPath(interp); err != nil {
		return fmt.Sprintf("needs the interpreter %s, which is not here", interp)
	}
	if !strings.HasPrefix(filepath.Base(command[0]), "python") {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), runCheckTimeout)
	defer cancel()
	missing, err := pythonplugins.MissingPackages(ctx, command...)
	switch {
	case err != nil:
		return "its interpreter does not run: " + err.Error()
	case len(missing) > 0:
		return pythonplugins.Hint(missing)
	}
	return ""
}

// elfMachines are the ELF machines of the architectures Go builds for on
// Linux.
var elfMachines = map[string]elf.Machine{
	"386": elf.EM_386, "amd64": elf.EM_X86_64, "arm": elf.EM_ARM, "arm64": elf.EM_AARCH64,
	"loong64": elf.EM_LOONGARCH, "mips": elf.EM_MIPS, "mipsle": elf.EM_MIPS, "mips64": elf.EM_MIPS,
	"mips64le": elf.EM_MIPS, "ppc64": elf.EM_PPC64, "ppc64le": elf.EM_PPC64, "riscv64": elf.EM_RISCV,
	"s390x": elf.EM_S390,
}

// foreignBinary says that the binary at path, which begins with head, is
// built for another system or architecture (on Linux, which runs ELF
// binaries alone); "" when it is not, or the host cannot tell.
func foreignBinary(path string, head []byte) string {
	if runtime.GOOS != "linux" {
		return ""
	}
	switch {
	case bytes.HasPrefix(head, []byte("MZ")):
		return "built for Windows (rebuild it here, e.g. with make build)"
	case len(head) >= 4 && (bytes.Equal(head[:4], []byte{0xcf, 0xfa, 0xed, 0xfe}) || bytes.Equal(head[:4], []byte{0xfe, 0xed, 0xfa, 0xcf})):
		return "built for macOS (rebuild it here, e.g. with make build)"
	case !bytes.HasPrefix(head, []byte(elf.ELFMAG)):
		return ""
	}
	f, err := elf.Open(path)
	if err != nil {
		return "not a binary this machine runs: " + err.Error()
	}
	defer f.Close()
	if want, ok := elfMachines[runtime.GOARCH]; ok && f.Machine != want {
		return fmt.Sprintf("built for %s, this machine is %s (rebuild it here, e.g. with make build)",
			strings.ToLower(strings.TrimPrefix(f.Machine.String(), "EM_")), runtime.GOARCH)
	}
	return ""
}

// cannotRunAll is CannotRun of each plugin of dir named in names, checked
// all at once (a Python interpreter takes a moment to import gRPC).
func cannotRunAll(dir string, names []string) []string {
	why := make([]string, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() { why[i] = CannotRun(filepath.Join(dir, n)) })
	}
	wg.Wait()
	return why
}
