package host

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/config"
	"github.com/wslab/wslab/taskproto/conformance"
	"github.com/wslab/wslab/taskproto/plugin"
)

// The host's commands about plugins rather than tasks: --describe,
// --conformance, and the checksums verify_plugins checks.

// describeStrategy prints the keys the strategy declares, as the lines of
// config.ini that would set them to their defaults.
func describeStrategy(cfg *config.Config, name string, log hclog.Logger, stdout, stderr io.Writer) int {
	if name == Inproc {
		fmt.Fprintf(stdout, "# %s: built in, tasks run in the host process; it reads no keys of its own\n", Inproc)
		return ExitOK
	}
	checksum, err := checkedPluginChecksum(cfg, name)
	if err != nil {
		return failed(err, log, stderr)
	}
	proc, err := plugin.Launch(context.Background(), plugin.LaunchOptions{
		Name: name, Path: filepath.Join(cfg.Server.PluginDir, name), Logger: log, Checksum: checksum,
	})
	if err != nil {
		return failed(err, log, stderr)
	}
	defer proc.Kill()
	desc, err := proc.Describe(context.Background())
	if err != nil {
		return failed(err, log, stderr)
	}
	fmt.Fprint(stdout, formatDescription(desc))
	return ExitOK
}

// checkConformance runs the conformance kit against a plugin of the plugin
// directory, with the configuration file's values of its keys, and prints
// one line per check: the way to check a plugin written in another
// language, which cannot call the kit from its own tests.
func checkConformance(cfg *config.Config, name string, log hclog.Logger, stdout, stderr io.Writer) int {
	path := filepath.Join(cfg.Server.PluginDir, name)
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(stderr, "host: plugin %q: %v\n", name, err)
		return ExitUsage
	}
	checksum, err := checkedPluginChecksum(cfg, name)
	if err != nil {
		return failed(err, log, stderr)
	}
	// The plugin's warnings say why a check failed; its routine logs would
	// bury the table.
	level := hclog.LevelFromString(cfg.Server.LogLevel)
	quiet := hclog.New(&hclog.LoggerOptions{Name: name, Output: stderr, Level: max(level, hclog.Warn)})
	if level <= hclog.Debug {
		quiet.SetLevel(level)
	}
	failed := 0
	opt := conformance.Options{Resolve: cfg.StrategySettings, Checksum: checksum, Logger: quiet}
	for _, r := range conformance.Check(context.Background(), path, opt) {
		status := "ok"
		switch {
		case conformance.Skipped(r.Err):
			status = r.Err.Error()
		case r.Err != nil:
			status, failed = "FAIL: "+r.Err.Error(), failed+1
		}
		fmt.Fprintf(stdout, "%-32s %8v  %s\n", r.Check, r.Took.Round(time.Millisecond), status)
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "%s: %d checks failed\n", name, failed)
		return ExitFailed
	}
	fmt.Fprintf(stdout, "%s: conforms\n", name)
	return ExitOK
}

// formatDescription writes d as commented config.ini lines, one section
// after another in the order the keys are declared.
func formatDescription(d plugin.Description) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s: %s\n", d.Name, d.Description)
	if len(d.Keys) == 0 {
		b.WriteString("# it reads no keys of its own\n")
	}
	section := ""
	for _, k := range d.Keys {
		if k.Section != section {
			section = k.Section
			fmt.Fprintf(&b, "[%s]\n", section)
		}
		fmt.Fprintf(&b, "; %-32s ; %s: %s\n", k.Name+" = "+k.Default, k.Accepted(), k.Help)
	}
	return b.String()
}

// pluginChecksum is the SHA-256 the plugin's binary must have, from the
// plugin directory's manifest, and verify, the check of the other files
// the manifest lists, to run before each start; nil and a check that
// passes when [server] verify_plugins is off.
func pluginChecksum(cfg *config.Config, name string) (sum []byte, verify func() error, err error) {
	if !cfg.Server.VerifyPlugins {
		return nil, func() error { return nil }, nil
	}
	sums, err := plugin.ReadChecksums(cfg.Server.PluginDir)
	if err != nil {
		return nil, nil, fmt.Errorf("[server] verify_plugins is on: %w", err)
	}
	sum, ok := sums[name]
	if !ok {
		return nil, nil, fmt.Errorf("[server] verify_plugins is on and %s lists no checksum of plugin %s: refusing to start it",
			filepath.Join(cfg.Server.PluginDir, plugin.ChecksumsFile), name)
	}
	return sum, func() error {
		if err := plugin.CheckSupportFiles(cfg.Server.PluginDir, sums); err != nil {
			return fmt.Errorf("[server] verify_plugins is on: %w", err)
		}
		return nil
	}, nil
}

// checkedPluginChecksum is pluginChecksum for a command that starts the
// plugin itself: the other files are checked once, now.
func checkedPluginChecksum(cfg *config.Config, name string) ([]byte, error) {
	sum, verify, err := pluginChecksum(cfg, name)
	if err == nil {
		err = verify()
	}
	return sum, err
}
