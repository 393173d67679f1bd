package host

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/wslab/wslab/internal/config"
	"github.com/wslab/wslab/internal/launch"
	"github.com/wslab/wslab/taskproto"
	"github.com/wslab/wslab/taskproto/wire"
)

// The sections of config.ini that no one reads. A key that the host or the
// strategy it runs does not know is refused (config.CheckKeys); a section
// that neither of them reads may be another strategy's, whose keys the
// host learns only by starting it: so the host warns about a section that
// no installed strategy declares, and asks the installed plugins only
// when a section is left that none is named after. A section named after
// an installed plugin is taken as that plugin's (the shipped plugins name
// their sections so); its keys are checked when that plugin runs.

// describeTimeout bounds the time the host spends, before it serves,
// asking the other installed plugins which sections they read.
const describeTimeout = 10 * time.Second

// warnUnownedSections logs one warning for each section of cfg's file that
// neither the host nor any installed strategy reads: declared are the keys
// of the strategy name, which runs.
func warnUnownedSections(ctx context.Context, cfg *config.Config, name string, declared []taskproto.Key, log hclog.Logger) {
	left := cfg.UnownedSections(declared)
	if len(left) == 0 {
		return
	}
	installed, _ := ListPlugins(cfg.Server.PluginDir)
	left = slices.DeleteFunc(left, func(s string) bool { return slices.Contains(installed, s) })
	if len(left) == 0 {
		return
	}
	candidates := append(config.KnownSections(declared), installed...)
	others := slices.DeleteFunc(slices.Clone(installed), func(n string) bool { return n == name })
	ctx, cancel := context.WithTimeout(ctx, describeTimeout)
	defer cancel()
	owned, unasked := declaredSections(ctx, cfg, others)
	for s := range owned {
		candidates = append(candidates, s)
	}
	for _, s := range left {
		if owned[s] != "" {
			continue
		}
		msg := fmt.Sprintf("[%s]: ignored: neither the host nor any installed strategy reads this section", s)
		if cfg.Path != "" {
			msg = cfg.Path + ": " + msg
		}
		if near := config.Suggest(s, candidates); near != "" {
			msg += "; did you mean [" + near + "]?"
		}
		if len(unasked) > 0 {
			msg += fmt.Sprintf(" (not asked, for they did not start: %s)", strings.Join(unasked, ", "))
		}
		log.Warn(msg)
	}
}

// declaredSections starts each plugin of names, all at once, to ask it
// which keys it declares, and returns each section they declare keys in
// with the first plugin (by name) that does, and the plugins that did not
// answer, sorted.
func declaredSections(ctx context.Context, cfg *config.Config, names []string) (owned map[string]string, unasked []string) {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		keys = map[string][]taskproto.Key{}
	)
	for _, n := range names {
		wg.Go(func() {
			desc, err := describePlugin(ctx, cfg, n, hclog.NewNullLogger())
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				unasked = append(unasked, n)
				return
			}
			keys[n] = desc.Keys
		})
	}
	wg.Wait()
	slices.Sort(unasked)
	owned = map[string]string{}
	for _, n := range slices.Sorted(maps.Keys(keys)) {
		for _, k := range keys[n] {
			if owned[k.Section] == "" {
				owned[k.Section] = n
			}
		}
	}
	return owned, unasked
}

// describePlugin starts the plugin of the plugin directory, asks it for
// its description, and stops it.
func describePlugin(ctx context.Context, cfg *config.Config, name string, log hclog.Logger) (wire.Description, error) {
	opt, err := pluginLaunch(cfg, name, log)
	if err != nil {
		return wire.Description{}, err
	}
	proc, err := launch.Launch(ctx, opt)
	if err != nil {
		return wire.Description{}, err
	}
	defer proc.Kill()
	return proc.Describe(ctx)
}
