package wasm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// GuestPackage is the guest's package, relative to the module root.
const GuestPackage = "./internal/wasm/guest"

// BuildGuest builds the guest as `make build` does, with the go command,
// into out (mode 0644: a module, not a program), for the tests and tools
// that build their own binaries. root is the repository's root; tags are
// extra build tags (wasmtest: the tests' exports).
func BuildGuest(ctx context.Context, root, out string, tags ...string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("build wasm guest: %w", err)
	}
	args := []string{"build", "-buildmode=c-shared", "-o", out}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.CommandContext(ctx, "go", append(args, GuestPackage)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build wasm guest: go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	if err := os.Chmod(out, 0o644); err != nil {
		return fmt.Errorf("build wasm guest: %w", err)
	}
	return nil
}
