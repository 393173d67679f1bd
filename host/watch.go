package host

import (
	"context"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/launch"
)

// pluginWatch is bin/host --watch ([server] watch_plugin): it watches the
// binary of the plugin serving now, and when that binary is replaced by
// other content (launch.BinaryWatch: settled, another SHA-256), switches
// to a new run of it through SwitchStrategy, as POST /admin/strategy does:
// the new binary is started and configured (checked against SHA256SUMS
// when verify_plugins is on), new tasks go to it, the old run finishes
// what it holds and stops. A binary that does not start leaves the old
// run serving, and is not tried again until it changes, or, under
// verify_plugins, until SHA256SUMS changes (the usual order is to copy the
// binary, then write its checksum). While inproc
// serves there is nothing to watch; after a switch to another plugin, its
// binary is watched.
type pluginWatch struct {
	srv    *Server
	log    hclog.Logger
	settle time.Duration
	// manifest is the SHA256SUMS a new binary must match, "" unless
	// verify_plugins is on.
	manifest string

	watch *launch.BinaryWatch // nil while no plugin serves
	// unwatchable is the path of the serving plugin that cannot be
	// watched (started by hand, unreadable): said once, not retried.
	unwatchable string
	// failed is the content of the binary that last failed to start, and
	// failedManifest the manifest as it was then; nil after a success.
	failed         []byte
	failedManifest fs.FileInfo
}

func newPluginWatch(srv *Server, log hclog.Logger, manifest string) *pluginWatch {
	return &pluginWatch{srv: srv, log: log, settle: launch.WatchSettle, manifest: manifest}
}

// run polls every launch.WatchPollInterval until ctx ends.
func (w *pluginWatch) run(ctx context.Context) {
	tick := time.NewTicker(launch.WatchPollInterval)
	defer tick.Stop()
	w.poll(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			w.poll(now)
		}
	}
}

// poll looks at the serving plugin's binary once, and switches to its new
// content when it has some.
func (w *pluginWatch) poll(now time.Time) {
	sup, ok := w.srv.Strategy().(*PluginSupervisor)
	if !ok {
		w.watch = nil
		return
	}
	name, path := sup.opt.Name, sup.opt.Path
	if w.watch == nil || w.watch.Path() != path {
		if path == w.unwatchable {
			return
		}
		if sup.opt.Reattach != nil { // started by hand: its binary is the debugger's business
			w.log.Info("not watching a plugin started by hand (--reattach)", "plugin", name)
			w.watch, w.unwatchable = nil, path
			return
		}
		bw, err := launch.NewBinaryWatch(path, w.settle)
		if err != nil {
			w.log.Warn("cannot watch the plugin binary", "plugin", name, "path", path, "error", err)
			w.watch, w.unwatchable = nil, path
			return
		}
		w.watch, w.failed = bw, nil
		w.log.Info("watching the plugin binary: a new build is started and switched to", "plugin", name, "path", path,
			"poll", launch.WatchPollInterval)
		return
	}
	sum, err := w.watch.Poll(now)
	if err != nil {
		w.log.Warn("cannot read the plugin binary", "plugin", name, "path", path, "error", err)
		return
	}
	if sum == nil {
		if sum = w.manifestChanged(); sum == nil {
			return
		}
	}
	short := hex.EncodeToString(sum)[:12]
	w.log.Info("the plugin binary changed: starting the new one", "plugin", name, "path", path, "sha256", short)
	info, err := w.srv.SwitchStrategy(name)
	switch {
	case errors.Is(err, ErrSwitchInProgress):
		w.log.Debug("the plugin binary changed during a switch: it is started once that switch is over", "plugin", name)
		return // the next poll tries again
	case err != nil:
		w.log.Error("the new plugin binary did not start: the running one keeps serving; it is tried again once it changes",
			"plugin", name, "path", path, "sha256", short, "error", err)
		w.failed, w.failedManifest = sum, nil
		if w.manifest != "" {
			w.failedManifest, _ = os.Stat(w.manifest)
		}
	default:
		w.log.Info("switched to the new plugin binary", "plugin", name, "pid", info.PID, "sha256", short)
		w.failed = nil
	}
	w.watch.Accept(sum)
}

// manifestChanged returns the content of the binary that failed to start
// when SHA256SUMS (verify_plugins) has changed since: its checksum may
// have been added.
func (w *pluginWatch) manifestChanged() []byte {
	if w.failed == nil || w.manifest == "" {
		return nil
	}
	st, err := os.Stat(w.manifest)
	if err != nil {
		return nil
	}
	if old := w.failedManifest; old != nil && old.Size() == st.Size() && old.ModTime().Equal(st.ModTime()) && os.SameFile(old, st) {
		return nil
	}
	w.log.Info("SHA256SUMS changed: trying the plugin binary that failed to start again", "manifest", w.manifest)
	return w.failed
}
