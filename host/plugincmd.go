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
	"github.com/wslab/wslab/internal/conformance"
	"github.com/wslab/wslab/internal/launch"
	"github.com/wslab/wslab/taskproto/wire"
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
	desc, err := describePlugin(context.Background(), cfg, name, log)
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
	// The plugin's warnings say why a check failed; its routine logs would
	// bury the table, unless debugging was asked for.
	level := hclog.LevelFromString(cfg.Server.LogLevel)
	if level == hclog.Info {
		level = hclog.Warn
	}
	lo, err := pluginLaunch(cfg, name, hclog.New(&hclog.LoggerOptions{Name: name, Output: stderr, Level: level}))
	if _, serr := os.Stat(lo.Path); serr != nil {
		fmt.Fprintf(stderr, "host: plugin %q: %v\n", name, serr)
		return ExitUsage
	}
	if err != nil {
		return failed(err, log, stderr)
	}
	fails := 0
	opt := conformance.Options{Resolve: cfg.StrategySettings, Checksum: lo.Checksum, Verify: lo.Verify, Logger: lo.Logger}
	for _, r := range conformance.Check(context.Background(), lo.Path, opt) {
		status := "ok"
		switch {
		case conformance.Skipped(r.Err):
			status = r.Err.Error()
		case r.Err != nil:
			status, fails = "FAIL: "+r.Err.Error(), fails+1
		}
		fmt.Fprintf(stdout, "%-32s %8v  %s\n", r.Check, r.Took.Round(time.Millisecond), status)
	}
	if fails > 0 {
		fmt.Fprintf(stdout, "%s: %d checks failed\n", name, fails)
		return ExitFailed
	}
	fmt.Fprintf(stdout, "%s: conforms\n", name)
	return ExitOK
}

// formatDescription writes d as commented config.ini lines, one section
// after another in the order the keys are declared.
func formatDescription(d wire.Description) string {
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

// pluginLaunch says how to start the plugin of the plugin directory: with
// [server] verify_plugins on, its binary must have the SHA-256 the
// directory's manifest gives, and the other files the manifest lists are
// checked before each start.
func pluginLaunch(cfg *config.Config, name string, log hclog.Logger) (launch.LaunchOptions, error) {
	opt := launch.LaunchOptions{Name: name, Path: filepath.Join(cfg.Server.PluginDir, name), Logger: log}
	if !cfg.Server.VerifyPlugins {
		return opt, nil
	}
	sums, err := launch.ReadChecksums(cfg.Server.PluginDir)
	if err != nil {
		return opt, fmt.Errorf("[server] verify_plugins is on: %w", err)
	}
	sum, ok := sums[name]
	if !ok {
		return opt, fmt.Errorf("[server] verify_plugins is on and %s lists no checksum of plugin %s: refusing to start it",
			filepath.Join(cfg.Server.PluginDir, launch.ChecksumsFile), name)
	}
	opt.Checksum = sum
	opt.Verify = func() error {
		if err := launch.CheckSupportFiles(cfg.Server.PluginDir, sums); err != nil {
			return fmt.Errorf("[server] verify_plugins is on: %w", err)
		}
		return nil
	}
	return opt, nil
}
