package lab

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/wslab/wslab/internal/config"
)

// Exit statuses of the lab command.
const (
	ExitOK     = config.ExitOK
	ExitFailed = 1 // the report is written, but a strategy failed or the run was interrupted
	ExitUsage  = config.ExitUsage
)

// Main is the lab command: `lab --config FILE --out DIR`, `lab bench`, or
// `lab compare OLD NEW`.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "bench":
			return BenchMain(args[1:], stdout, stderr)
		case "compare":
			return CompareMain(args[1:], stdout, stderr)
		}
	}
	fset := flag.NewFlagSet("lab", flag.ContinueOnError)
	fset.SetOutput(stderr)
	flags := config.NewFlags(fset)
	binDir := fset.String("bin-dir", "", "directory holding host and plugins/ (default: beside the lab binary)")
	flags.String("out", "lab", "out", "report `directory`", func(c *config.Config) *string { return &c.Lab.Out })
	flags.List("strategies", "lab", "strategies", "comma-separated strategies", func(c *config.Config) *[]string { return &c.Lab.Strategies })
	flags.List("scenarios", "lab", "scenarios", "comma-separated scenarios", func(c *config.Config) *[]string { return &c.Lab.Scenarios })
	flags.Duration("duration", "lab", "duration_ms", "length of the timed scenarios", func(c *config.Config) *time.Duration { return &c.Lab.Duration })
	flags.Int64("rounds", "lab", "rounds", "rounds of every strategy under every scenario", func(c *config.Config) *int64 { return &c.Lab.Rounds })
	live := fset.Bool("live", false, "print the live page of each host the lab starts, and open it in $BROWSER or xdg-open")
	cfg, err := flags.Parse(args)
	if err != nil {
		return config.UsageStatus(stderr, "lab", err)
	}
	dir, err := resolveBinDir(*binDir)
	if err != nil {
		fmt.Fprintf(stderr, "lab: %v\n", err)
		return ExitUsage
	}
	*binDir = dir

	names, err := Strategies(cfg, *binDir)
	if err != nil {
		fmt.Fprintf(stderr, "lab: %v\n", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	scs := Scenarios(cfg)
	fmt.Fprintf(stderr, "lab: %d strategies × %d scenarios × %d rounds, report in %s\n", len(names), len(scs), cfg.Lab.Rounds, cfg.Lab.Out)
	opt := Options{
		Config:   cfg,
		BinDir:   *binDir,
		LogDir:   filepath.Join(cfg.Lab.Out, "logs"),
		Progress: stderr,
	}
	if *live {
		opener := newLiveOpener(stderr, cfg.Server.AuthToken, browserCommand())
		defer opener.close()
		opt.OnHost = opener.hostStarted
	}
	report := Run(ctx, opt, names, scs)
	md, err := WriteReports(cfg.Lab.Out, report)
	if err != nil {
		fmt.Fprintf(stderr, "lab: write report: %v\n", err)
		return ExitFailed
	}
	fmt.Fprint(stdout, md)
	fmt.Fprintf(stderr, "lab: done in %s; report in %s (report.md, report.json, report.html)\n",
		time.Duration(report.Seconds*float64(time.Second)).Round(time.Second), cfg.Lab.Out)
	if len(report.failures()) > 0 {
		return ExitFailed
	}
	return ExitOK
}

// resolveBinDir is dir, or the lab binary's own directory, once it holds a
// host binary.
func resolveBinDir(dir string) (string, error) {
	if dir == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("find own directory: %w", err)
		}
		dir = filepath.Dir(exe)
	}
	if _, err := os.Stat(filepath.Join(dir, "host")); err != nil {
		return "", fmt.Errorf("no host binary in %s (run make build): %w", dir, err)
	}
	return dir, nil
}
